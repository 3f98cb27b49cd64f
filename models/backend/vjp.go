package backend

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// The gradients below replace or complete entries of graph.VJPRegistration when this package
// is imported. They build only standard operations, so they hold on any backend.
func init() {
	graph.VJPRegistration[graph.NodeTypeDotGeneral] = singleOutput(dotGeneralVJP)
	graph.VJPRegistration[graph.NodeTypeDot] = singleOutput(dotVJP)
	graph.VJPRegistration[graph.NodeTypeConvGeneral] = singleOutput(convGeneralVJP)
	if _, found := graph.VJPRegistration[graph.NodeTypePad]; !found {
		graph.VJPRegistration[graph.NodeTypePad] = singleOutput(padVJP)
	}
	if _, found := graph.VJPRegistration[graph.NodeTypeReverse]; !found {
		graph.VJPRegistration[graph.NodeTypeReverse] = singleOutput(reverseVJP)
	}
	upstreamGatherVJP = graph.VJPRegistration[graph.NodeTypeGather]
	graph.VJPRegistration[graph.NodeTypeGather] = gatherVJP
}

func singleOutput(fn func(node, v *graph.Node) []*graph.Node) graph.VJP {
	return func(node *graph.Node, vjps []*graph.Node, _ shapes.Shape) []*graph.Node {
		return fn(node, vjps[0])
	}
}

// dotGeneralVJP is the gradient of DotGeneral as two DotGenerals: v with the other operand,
// contracting what the forward product crossed, then a transpose to the operand's layout.
// GoMLX v0.26.0's own VJP multiplies broadcast tensors instead, which materialises the whole
// [batch, M, K, N] product.
func dotGeneralVJP(node, v *graph.Node) []*graph.Node {
	params := nodeParams(node)
	lhs, rhs := node.Inputs()[0], node.Inputs()[1]
	lhsContract, lhsBatch := params.ints("lhsContractingAxes"), params.ints("lhsBatchAxes")
	rhsContract, rhsBatch := params.ints("rhsContractingAxes"), params.ints("rhsBatchAxes")
	lhsCross := crossAxes(lhs.Rank(), lhsContract, lhsBatch)
	rhsCross := crossAxes(rhs.Rank(), rhsContract, rhsBatch)

	// v is [batch..., lhsCross..., rhsCross...].
	numBatch := len(lhsBatch)
	vBatch := iota(numBatch)
	vLhs := rangeOf(numBatch, len(lhsCross))
	vRhs := rangeOf(numBatch+len(lhsCross), len(rhsCross))

	// d lhs = v . rhs over rhs's crossed axes: [batch..., lhsCross..., rhsContract (sorted)...].
	dLhs := graph.DotGeneral(v, vRhs, vBatch, rhs, rhsCross, rhsBatch)
	perm := make([]int, lhs.Rank())
	for i, axis := range lhsBatch {
		perm[axis] = i
	}
	for j, axis := range lhsCross {
		perm[axis] = numBatch + j
	}
	sortedRhs := slices.Sorted(slices.Values(rhsContract))
	for i, axis := range lhsContract {
		perm[axis] = numBatch + len(lhsCross) + slices.Index(sortedRhs, rhsContract[i])
	}
	dLhs = transposeIfNeeded(dLhs, perm)

	// d rhs = lhs . v over lhs's crossed axes: [batch..., lhsContract (sorted)..., rhsCross...].
	dRhs := graph.DotGeneral(lhs, lhsCross, lhsBatch, v, vLhs, vBatch)
	perm = make([]int, rhs.Rank())
	for i, axis := range rhsBatch {
		perm[axis] = i
	}
	sortedLhs := slices.Sorted(slices.Values(lhsContract))
	for i, axis := range rhsContract {
		perm[axis] = numBatch + slices.Index(sortedLhs, lhsContract[i])
	}
	for j, axis := range rhsCross {
		perm[axis] = numBatch + len(lhsContract) + j
	}
	dRhs = transposeIfNeeded(dRhs, perm)
	return []*graph.Node{dLhs, dRhs}
}

// dotVJP is the gradient of Dot (vector.vector, matrix.vector, matrix.matrix) with matrix
// products only.
func dotVJP(node, v *graph.Node) []*graph.Node {
	lhs, rhs := node.Inputs()[0], node.Inputs()[1]
	switch {
	case lhs.Rank() == 1 && rhs.Rank() == 1: // scalar v
		return []*graph.Node{graph.Mul(v, rhs), graph.Mul(v, lhs)}
	case lhs.Rank() == 2 && rhs.Rank() == 1: // v [m]
		outer := graph.Mul(graph.InsertAxes(v, -1), graph.InsertAxes(rhs, 0))
		return []*graph.Node{outer, graph.DotGeneral(v, []int{0}, nil, lhs, []int{0}, nil)}
	case lhs.Rank() == 2 && rhs.Rank() == 2: // v [m, n]
		return []*graph.Node{
			graph.DotGeneral(v, []int{1}, nil, rhs, []int{1}, nil),
			graph.DotGeneral(lhs, []int{0}, nil, v, []int{0}, nil),
		}
	}
	panicf("gradient of Dot of ranks %d and %d is not defined", lhs.Rank(), rhs.Rank())
	return nil
}

// convGeneralVJP is the gradient of ConvGeneral as two ConvGenerals, for any channel group
// count (depthwise included), strides, paddings and kernel dilations:
//
//   - d input is the transposed convolution: v dilated by the strides and padded by the
//     effective kernel size, convolved with the spatially flipped kernel whose channel roles
//     (within each group) are swapped; the forward padding is then cut off.
//   - d kernel is the convolution of the input with v as kernel, batch and channel roles
//     swapped, v dilated by the strides, and one batch group per channel group.
//
// Gradients of convolutions with input dilation or batch groups are not defined: those are
// themselves gradients, and second derivatives are not supported.
func convGeneralVJP(node, v *graph.Node) []*graph.Node {
	params := nodeParams(node)
	x, w := node.Inputs()[0], node.Inputs()[1]
	axes := params.convAxes("axes")
	spatial := x.Rank() - 2
	strides := onesIfUnset(params.ints("strides"), spatial)
	kernelDil := onesIfUnset(params.ints("kernelDilations"), spatial)
	paddings := params.pairs("paddings")
	if len(paddings) == 0 {
		paddings = make([][2]int, spatial)
	}
	groups := max(params.int("channelGroupCount"), 1)
	for _, d := range params.ints("inputDilations") {
		if d > 1 {
			panicf("gradient of ConvGeneral with input dilation is not defined " +
				"(it is a convolution gradient; second derivatives are not supported)")
		}
	}
	if params.int("batchGroupCount") > 1 {
		panicf("gradient of ConvGeneral with batch groups is not defined " +
			"(it is a convolution gradient; second derivatives are not supported)")
	}

	xDims, wDims, yDims := x.Shape().Dimensions, w.Shape().Dimensions, node.Shape().Dimensions
	dxPad := make([][2]int, spatial)
	dwPad := make([][2]int, spatial)
	trim := make([]backends.PadAxis, x.Rank())
	for i := range spatial {
		size := xDims[axes.InputSpatial[i]]
		k := wDims[axes.KernelSpatial[i]]
		out := yDims[axes.OutputSpatial[i]]
		effective := (k-1)*kernelDil[i] + 1
		padded := size + paddings[i][0] + paddings[i][1]
		used := (out-1)*strides[i] + 1
		unused := padded - effective - (out-1)*strides[i] // trailing input no window reached
		dxPad[i] = [2]int{effective - 1, padded - used}
		dwPad[i] = [2]int{paddings[i][0], paddings[i][1] - unused}
		trim[axes.InputSpatial[i]] = backends.PadAxis{Start: -paddings[i][0], End: -paddings[i][1]}
	}

	// d input. Kernel to [K..., Cin/G, Cout], flipped, then to [K..., Cout/G, Cin] so that
	// within group g, the new kernel[k, m, g*Cin/G + c] = kernel[K-1-k, c, g*Cout/G + m].
	kPerm := append(append([]int(nil), axes.KernelSpatial...),
		axes.KernelInputChannels, axes.KernelOutputChannels)
	wc := transposeIfNeeded(w, kPerm)
	wc = graph.Reverse(wc, iota(spatial)...)
	kSizes := wc.Shape().Dimensions[:spatial]
	groupIn, cout := wc.Shape().Dimensions[spatial], wc.Shape().Dimensions[spatial+1]
	wt := graph.Reshape(wc, append(append([]int(nil), kSizes...), groupIn, groups, cout/groups)...)
	wt = transposeIfNeeded(wt, append(iota(spatial), spatial+2, spatial+1, spatial))
	wt = graph.Reshape(wt, append(append([]int(nil), kSizes...), cout/groups, groups*groupIn)...)
	dxAxes := backends.ConvolveAxesConfig{
		InputBatch:           axes.OutputBatch,
		InputChannels:        axes.OutputChannels,
		InputSpatial:         axes.OutputSpatial,
		KernelSpatial:        iota(spatial),
		KernelInputChannels:  spatial,
		KernelOutputChannels: spatial + 1,
		OutputBatch:          axes.InputBatch,
		OutputChannels:       axes.InputChannels,
		OutputSpatial:        axes.InputSpatial,
	}
	dx := graph.ConvGeneral(v, wt, dxAxes, nil, dxPad, strides, kernelDil, groups, 1)
	dx = graph.Pad(dx, graph.ScalarZero(x.Graph(), x.DType()), trim...)

	// d kernel.
	dwAxes := backends.ConvolveAxesConfig{
		InputBatch:           axes.InputChannels,
		InputChannels:        axes.InputBatch,
		InputSpatial:         axes.InputSpatial,
		KernelInputChannels:  axes.OutputBatch,
		KernelOutputChannels: axes.OutputChannels,
		KernelSpatial:        axes.OutputSpatial,
		OutputBatch:          axes.KernelInputChannels,
		OutputChannels:       axes.KernelOutputChannels,
		OutputSpatial:        axes.KernelSpatial,
	}
	dw := graph.ConvGeneral(x, v, dwAxes, kernelDil, dwPad, nil, strides, 1, groups)
	return []*graph.Node{dx, dw}
}

// padVJP is the gradient of Pad: the padding is cut off v and the interior padding skipped
// with a strided slice; the fill value gets the sum of what was cut.
func padVJP(node, v *graph.Node) []*graph.Node {
	x, fill := node.Inputs()[0], node.Inputs()[1]
	config := nodeParams(node).padAxes("axesConfig")
	undo := make([]backends.PadAxis, x.Rank())
	specs := make([]graph.SliceAxisSpec, x.Rank())
	for axis := range x.Rank() {
		specs[axis] = graph.AxisRange()
		if axis < len(config) {
			undo[axis] = backends.PadAxis{Start: -config[axis].Start, End: -config[axis].End}
			specs[axis] = graph.AxisRange().Stride(config[axis].Interior + 1)
		}
	}
	dx := graph.Slice(graph.Pad(v, graph.ScalarZero(x.Graph(), x.DType()), undo...), specs...)
	dFill := graph.Sub(graph.ReduceAllSum(v), graph.ReduceAllSum(dx))
	return []*graph.Node{dx, graph.ConvertDType(dFill, fill.DType())}
}

// reverseVJP is the gradient of Reverse: v reversed on the same axes.
func reverseVJP(node, v *graph.Node) []*graph.Node {
	return []*graph.Node{graph.Reverse(v, nodeParams(node).ints("axes")...)}
}

// crossAxes returns, in increasing order, the axes that are neither contracted nor batch.
func crossAxes(rank int, contracting, batch []int) []int {
	var cross []int
	for axis := range rank {
		if !slices.Contains(contracting, axis) && !slices.Contains(batch, axis) {
			cross = append(cross, axis)
		}
	}
	return cross
}

// rangeOf returns from, from+1, ..., from+n-1.
func rangeOf(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// transposeIfNeeded transposes x unless perm is the identity.
func transposeIfNeeded(x *graph.Node, perm []int) *graph.Node {
	for i, p := range perm {
		if i != p {
			return graph.TransposeAllAxes(x, perm...)
		}
	}
	return x
}

// nodeFields reads the parameters a graph node was built with. GoMLX v0.26.0 keeps them in
// an unexported struct (node.inputs); reflection reads them, and a missing field panics with
// a message naming it, which is what a GoMLX upgrade that renames them will produce.
type nodeFields struct {
	node   *graph.Node
	fields reflect.Value
}

func nodeParams(node *graph.Node) nodeFields {
	inputs := reflect.ValueOf(node).Elem().FieldByName("inputs")
	if !inputs.IsValid() || inputs.IsNil() {
		panicf("graph node %s has no inputs field: the VJPs of package backend "+
			"read GoMLX v0.26.0's node parameters and need updating for this GoMLX", node)
	}
	return nodeFields{node: node, fields: inputs.Elem().Elem()}
}

func (p nodeFields) field(name string) reflect.Value {
	f := p.fields.FieldByName(name)
	if !f.IsValid() {
		panicf("graph node %s has no parameter %q: the VJPs of package backend "+
			"read GoMLX v0.26.0's node parameters and need updating for this GoMLX", p.node, name)
	}
	return f
}

func (p nodeFields) int(name string) int { return int(p.field(name).Int()) }

func (p nodeFields) ints(name string) []int { return intsOf(p.field(name)) }

func (p nodeFields) pairs(name string) [][2]int {
	f := p.field(name)
	out := make([][2]int, f.Len())
	for i := range out {
		out[i] = [2]int{int(f.Index(i).Index(0).Int()), int(f.Index(i).Index(1).Int())}
	}
	return out
}

func (p nodeFields) padAxes(name string) []backends.PadAxis {
	f := p.field(name)
	out := make([]backends.PadAxis, f.Len())
	for i := range out {
		e := f.Index(i)
		out[i] = backends.PadAxis{
			Start:    int(e.FieldByName("Start").Int()),
			End:      int(e.FieldByName("End").Int()),
			Interior: int(e.FieldByName("Interior").Int()),
		}
	}
	return out
}

func (p nodeFields) convAxes(name string) backends.ConvolveAxesConfig {
	f := p.field(name)
	get := func(n string) int { return int(f.FieldByName(n).Int()) }
	return backends.ConvolveAxesConfig{
		InputBatch:           get("InputBatch"),
		InputChannels:        get("InputChannels"),
		InputSpatial:         intsOf(f.FieldByName("InputSpatial")),
		KernelInputChannels:  get("KernelInputChannels"),
		KernelOutputChannels: get("KernelOutputChannels"),
		KernelSpatial:        intsOf(f.FieldByName("KernelSpatial")),
		OutputBatch:          get("OutputBatch"),
		OutputChannels:       get("OutputChannels"),
		OutputSpatial:        intsOf(f.FieldByName("OutputSpatial")),
	}
}

func intsOf(f reflect.Value) []int {
	out := make([]int, f.Len())
	for i := range out {
		out[i] = int(f.Index(i).Int())
	}
	return out
}

// panicf panics with an error, the way graph-building code reports failures; graph.Exec
// returns it as an error.
func panicf(format string, args ...any) {
	panic(fmt.Errorf(format, args...))
}
