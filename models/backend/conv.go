package backend

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// ConvGeneral implements backends.Builder without simplego's convolution: the input is
// transposed to [batch, spatial..., channels], dilated and padded with Pad, and then
//
//   - for each kernel position, a strided slice of it (a "shifted" copy of the input) is
//     multiplied by that position's kernel matrix: the slices are concatenated on the
//     channels axis and contracted with the kernel in one DotGeneral (im2col);
//   - depthwise kernels (one input channel per group) multiply each slice by the kernel
//     position's per-channel weights and add them up, with no matrix multiplication;
//   - when the output has fewer spatial positions than the kernel (the kernel gradient of a
//     convolution is such a convolution), the roles swap: one slice per output position is
//     contracted with the whole kernel;
//   - batch groups (used by the kernel gradient of grouped convolutions) always take the
//     per-output-position path.
func (b *Builder) ConvGeneral(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (out backends.Op, err error) {
	defer recoverCompose(&err, "ConvGeneral")
	c := composer{b.Builder}
	inShape, kShape := c.shape(input), c.shape(kernel)
	spatial := inShape.Rank() - 2
	p := convParams{
		axes:      axes,
		strides:   onesIfUnset(strides, spatial),
		paddings:  paddings,
		inputDil:  onesIfUnset(inputDilations, spatial),
		kernelDil: onesIfUnset(kernelDilations, spatial),
		groups:    max(channelGroupCount, 1),
		batchGrps: max(batchGroupCount, 1),
	}
	if len(p.paddings) == 0 {
		p.paddings = make([][2]int, spatial)
	}
	outShape, err := shapeinference.ConvGeneralOp(inShape, kShape, axes, p.strides, p.paddings,
		p.inputDil, p.kernelDil, p.groups, p.batchGrps)
	if err != nil {
		return nil, err
	}
	out = c.conv(input, kernel, p, outShape)
	if got := c.shape(out); !got.Equal(outShape) {
		c.fail("composed convolution has shape %s, expected %s", got, outShape)
	}
	return out, nil
}

// convParams are ConvGeneral's parameters with unset values replaced by their defaults.
type convParams struct {
	axes                backends.ConvolveAxesConfig
	strides             []int
	paddings            [][2]int
	inputDil, kernelDil []int
	groups, batchGrps   int
}

// onesIfUnset returns values with unset (nil or non-positive) entries replaced by 1.
func onesIfUnset(values []int, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
		if i < len(values) && values[i] > 0 {
			out[i] = values[i]
		}
	}
	return out
}

// conv builds the convolution in the canonical layouts: input [N, S..., C],
// kernel [K..., Cin/groups, Cout], output [N/batchGroups, O..., Cout].
func (c composer) conv(input, kernel backends.Op, p convParams,
	outShape shapes.Shape) backends.Op {
	axes := p.axes
	spatial := len(axes.InputSpatial)
	inPerm := append(append([]int{axes.InputBatch}, axes.InputSpatial...), axes.InputChannels)
	x := c.transpose(input, inPerm...)
	kPerm := append(append([]int(nil), axes.KernelSpatial...),
		axes.KernelInputChannels, axes.KernelOutputChannels)
	w := c.transpose(kernel, kPerm...)

	// Dilate and pad the spatial axes of the input.
	dtype := c.shape(x).DType
	zero := c.scalar(dtype, 0)
	padConf := make([]backends.PadAxis, spatial+2)
	needPad := false
	for i := range spatial {
		padConf[1+i] = backends.PadAxis{
			Start: p.paddings[i][0], End: p.paddings[i][1], Interior: p.inputDil[i] - 1,
		}
		needPad = needPad || padConf[1+i] != backends.PadAxis{}
	}
	if needPad {
		x = c.pad(x, zero, padConf)
	}

	outDims := make([]int, spatial)
	for i, axis := range axes.OutputSpatial {
		outDims[i] = outShape.Dimensions[axis]
	}
	wDims := c.dims(w)
	kDims := wDims[:spatial]
	numK, numOut := product(kDims), product(outDims)

	var y backends.Op
	switch {
	case p.batchGrps > 1 || numOut < numK:
		y = c.convPerOutput(x, w, p, outDims)
	case wDims[spatial] == 1 && p.groups > 1:
		y = c.convDepthwise(x, w, p, outDims)
	default:
		y = c.convPerKernel(x, w, p, outDims)
	}

	// Canonical [N, O..., Cout] to the requested output layout.
	outPerm := make([]int, spatial+2)
	outPerm[axes.OutputBatch] = 0
	for i, axis := range axes.OutputSpatial {
		outPerm[axis] = 1 + i
	}
	outPerm[axes.OutputChannels] = spatial + 1
	return c.transpose(y, outPerm...)
}

// shifted returns the strided slice of x (canonical [N, S..., C]) whose element o along the
// spatial axes is x[start + o*step], with count elements per spatial axis.
func (c composer) shifted(x backends.Op, start, step, count []int) backends.Op {
	dims := c.dims(x)
	rank := len(dims)
	starts := make([]int, rank)
	limits := append([]int(nil), dims...)
	strides := make([]int, rank)
	strides[0], strides[rank-1] = 1, 1
	for i := range start {
		starts[1+i] = start[i]
		limits[1+i] = start[i] + (count[i]-1)*step[i] + 1
		strides[1+i] = step[i]
	}
	return c.slice(x, starts, limits, strides)
}

// kernelOffset returns the start in the padded input of kernel position k.
func kernelOffset(k, kernelDil []int) []int {
	start := make([]int, len(k))
	for i := range k {
		start[i] = k[i] * kernelDil[i]
	}
	return start
}

// convPerKernel is the im2col form: one shifted slice per kernel position, concatenated on
// the channels axis and contracted with the kernel reshaped to [K*Cin/groups, Cout].
func (c composer) convPerKernel(x, w backends.Op, p convParams, outDims []int) backends.Op {
	xDims, wDims := c.dims(x), c.dims(w)
	spatial := len(outDims)
	n := xDims[0]
	groupIn, cout := wDims[spatial], wDims[spatial+1]
	numK, numOut := product(wDims[:spatial]), product(outDims)
	g := p.groups

	var cols []backends.Op
	forEachIndex(wDims[:spatial], func(k []int) {
		patch := c.shifted(x, kernelOffset(k, p.kernelDil), p.strides, outDims)
		// Groups: [N*O, G, 1, Cin/G], so that concatenation keeps groups apart.
		cols = append(cols, c.reshape(patch, n*numOut, g, 1, groupIn))
	})
	col := c.concat(2, cols...)

	var y backends.Op
	if g == 1 {
		col = c.reshape(col, n*numOut, numK*groupIn)
		kernel := c.reshape(w, numK*groupIn, cout)
		y = c.dot(col, []int{1}, nil, kernel, []int{0}, nil)
	} else {
		col = c.reshape(col, n*numOut, g, numK*groupIn)
		kernel := c.reshape(w, numK, groupIn, g, cout/g)
		kernel = c.transpose(kernel, 2, 0, 1, 3)
		kernel = c.reshape(kernel, g, numK*groupIn, cout/g)
		y = c.dot(col, []int{2}, []int{1}, kernel, []int{1}, []int{0}) // [G, N*O, Cout/G]
		y = c.transpose(y, 1, 0, 2)
	}
	return c.reshape(y, append(append([]int{n}, outDims...), cout)...)
}

// convDepthwise handles one input channel per group: the output is the sum over kernel
// positions of each shifted slice times that position's weights, [C] or [C, multiplier].
func (c composer) convDepthwise(x, w backends.Op, p convParams, outDims []int) backends.Op {
	xDims, wDims := c.dims(x), c.dims(w)
	spatial := len(outDims)
	n, channels := xDims[0], xDims[spatial+1]
	cout := wDims[spatial+1]
	mult := cout / channels
	numK := product(wDims[:spatial])

	// Kernel as [numK, C, mult], sliced per position below; the size-1 axes of
	// [N, O..., C, 1] * [1, ..., 1, C, mult] broadcast.
	kernel := c.reshape(w, numK, channels, mult)
	weightDims := make([]int, spatial+3)
	for i := range weightDims {
		weightDims[i] = 1
	}
	weightDims[spatial+1], weightDims[spatial+2] = channels, mult

	var y backends.Op
	i := 0
	forEachIndex(wDims[:spatial], func(k []int) {
		patch := c.shifted(x, kernelOffset(k, p.kernelDil), p.strides, outDims)
		patch = c.reshape(patch, append(append([]int{n}, outDims...), channels, 1)...)
		weights := c.slice(kernel, []int{i, 0, 0}, []int{i + 1, channels, mult}, []int{1, 1, 1})
		term := c.mul(patch, c.reshape(weights, weightDims...))
		if y == nil {
			y = term
		} else {
			y = c.add(y, term)
		}
		i++
	})
	return c.reshape(y, append(append([]int{n}, outDims...), cout)...)
}

// convPerOutput contracts, for each output position, the input window under the kernel with
// the whole kernel. It is the fast form when the output has few positions and the kernel
// many, and the one that implements batch groups.
func (c composer) convPerOutput(x, w backends.Op, p convParams, outDims []int) backends.Op {
	xDims, wDims := c.dims(x), c.dims(w)
	spatial := len(outDims)
	n, channels := xDims[0], xDims[spatial+1]
	kDims := wDims[:spatial]
	groupIn, cout := wDims[spatial], wDims[spatial+1]
	g, bg := p.groups, p.batchGrps
	nOut := n / bg

	// Kernel as [K..., Cin/G, G, Cout/G] or, for batch groups, [K..., Cin, BG, Cout/BG].
	grouping := max(g, bg)
	kernel := c.reshape(w, append(append([]int(nil), kDims...), groupIn, grouping, cout/grouping)...)
	kContract := append(iota(spatial), spatial)

	var rows []backends.Op
	forEachIndex(outDims, func(o []int) {
		start := make([]int, spatial)
		for i := range o {
			start[i] = o[i] * p.strides[i]
		}
		window := c.shifted(x, start, p.kernelDil, kDims) // [N, K..., C]
		var row backends.Op
		switch {
		case bg > 1:
			// [BG, N/BG, K..., C] . [K..., C, BG, Cout/BG] -> [BG, N/BG, Cout/BG]
			window = c.reshape(window, append(append([]int{bg, nOut}, kDims...), channels)...)
			lhsContract := make([]int, spatial+1)
			for i := range lhsContract {
				lhsContract[i] = 2 + i
			}
			row = c.dot(window, lhsContract, []int{0}, kernel, kContract, []int{spatial + 1})
			row = c.transpose(row, 1, 0, 2)
		case g > 1:
			// [N, K..., G, C/G] . [K..., C/G, G, Cout/G] -> [G, N, Cout/G]
			window = c.reshape(window, append(append([]int{n}, kDims...), g, groupIn)...)
			lhsContract := append(rangeOf(1, spatial), spatial+2)
			row = c.dot(window, lhsContract, []int{spatial + 1}, kernel, kContract, []int{spatial + 1})
			row = c.transpose(row, 1, 0, 2)
		default:
			// [N, K..., C] . [K..., C, 1, Cout] -> [N, 1, Cout]
			lhsContract := make([]int, spatial+1)
			for i := range lhsContract {
				lhsContract[i] = 1 + i
			}
			row = c.dot(window, lhsContract, nil, kernel, kContract, nil)
		}
		rows = append(rows, c.reshape(row, nOut, 1, cout))
	})
	y := c.concat(1, rows...)
	return c.reshape(y, append(append([]int{nOut}, outDims...), cout)...)
}

func product(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}

// iota returns 0, 1, ..., n-1.
func iota(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
