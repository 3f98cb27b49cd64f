package tflite

import (
	"fmt"
	"math"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite/schema"
)

type optionsFunc = func(*flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT)

// conv writes a convolution with the batch norm and activation after it:
// CONV_2D, or DEPTHWISE_CONV_2D when every channel is its own group.
func (l *lowering) conv(i int) error {
	layer := l.n.Layers[i]
	x, xs := l.in(i, 0)
	if len(xs) != 4 {
		return fmt.Errorf("convolution of a rank-%d tensor: want NHWC", len(xs))
	}
	cin, cout, k, s := xs[3], layer.Channels, layer.Kernel, max(layer.Stride, 1)
	depthwise := layer.Groups > 1
	if depthwise && (layer.Groups != cin || cout != cin) {
		return fmt.Errorf("%d groups of %d channels: only depthwise grouping (groups = "+
			"channels) has a TFLite operator here", layer.Groups, cin)
	}
	w, b := l.weights(layer.Name), l.bias(layer)

	chain := []int{i}
	last := i
	if j, ok := l.next(last, net.BatchNorm); ok {
		if err := l.foldBatchNorm(l.n.Layers[j].Name, w, b); err != nil {
			return err
		}
		chain, last = append(chain, j), j
	}
	act := schema.ActivationFunctionTypeNONE
	hardSigmoid := false
	if j, ok := l.next(last, net.ReLU); ok {
		act, chain, last = schema.ActivationFunctionTypeRELU, append(chain, j), j
	} else if j, ok := l.next(last, net.HardSigmoid); ok {
		// relu6(z+3)/6: the 3 goes into the bias, the clamp into the
		// operator, the 1/6 into a MUL after it.
		for c := range b {
			b[c] += 3
		}
		act, chain, last = schema.ActivationFunctionTypeRELU6, append(chain, j), j
		hardSigmoid = true
	}

	outShape := []int{xs[0], (xs[1] + s - 1) / s, (xs[2] + s - 1) / s, cout}
	filter, filterShape, quantDim := w, []int{1, k, k, cout}, 3
	if !depthwise {
		// [k, k, in, out] to TFLite's OHWI [out, k, k, in].
		filter = make([]float32, len(w))
		for y := range k {
			for xx := range k {
				for ci := range cin {
					for co := range cout {
						filter[((co*k+y)*k+xx)*cin+ci] = w[((y*k+xx)*cin+ci)*cout+co]
					}
				}
			}
		}
		filterShape, quantDim = []int{cout, k, k, cin}, 0
	}

	outName := l.n.Layers[last].Name
	convName := outName
	var out int32
	var err error
	if hardSigmoid {
		convName = outName + "/relu6"
		if l.int8() {
			r, err := l.rangeOf(outName)
			if err != nil {
				return err
			}
			out = l.g.addTensor(&tensor{name: convName, shape: outShape,
				typ: schema.TensorTypeINT8, quant: activationQuant(Range{0, 6 * r.Max})})
		} else {
			out, _ = l.activation(convName, outShape, nil)
		}
	} else if out, err = l.activation(convName, outShape, nil); err != nil {
		return err
	}

	filterT, biasT := l.convConstants(layer.Name, x, filter, filterShape, quantDim, b)
	if depthwise {
		l.g.addOp(schema.BuiltinOperatorDEPTHWISE_CONV_2D, l.version(1, 3),
			[]int32{x, filterT, biasT}, []int32{out}, depthwiseOptions(s, act))
	} else {
		l.g.addOp(schema.BuiltinOperatorCONV_2D, l.version(1, 3),
			[]int32{x, filterT, biasT}, []int32{out}, convOptions(s, act))
	}
	if hardSigmoid {
		if out, err = l.mulSixth(out, outName, outShape); err != nil {
			return err
		}
	}
	for _, j := range chain {
		l.done[j] = true
	}
	l.set(last, out, outShape)
	return nil
}

// convConstants adds a convolution's filter and bias as the precision
// stores them: int8 per output channel (along quantDim) with int32 biases
// for INT8, floats otherwise.
func (l *lowering) convConstants(name string, x int32, filter []float32, shape []int,
	quantDim int, bias []float32) (int32, int32) {
	if !l.int8() {
		return l.constant(name+"/filter", shape, filter),
			l.constant(name+"/bias", []int{len(bias)}, bias)
	}
	q, scales := quantizeWeights(filter, shape, quantDim)
	filterT := l.g.addTensor(&tensor{name: name + "/filter", shape: shape,
		typ: schema.TensorTypeINT8, data: int8Bytes(q),
		quant: &quantization{scales: scales, zeroPoints: zeros(len(scales)),
			dim: int32(quantDim)}})
	qb, biasScales := quantizeBias(bias, l.quantOf(x).scales[0], scales)
	biasT := l.g.addTensor(&tensor{name: name + "/bias", shape: []int{len(bias)},
		typ: schema.TensorTypeINT32, data: int32Bytes(qb),
		quant: &quantization{scales: biasScales, zeroPoints: zeros(len(biasScales))}})
	return filterT, biasT
}

// foldBatchNorm folds batch norm bn's running statistics into the weights
// w ([..., channels], channels last) and biases b of the layer before it.
func (l *lowering) foldBatchNorm(bn string, w, b []float32) error {
	get := func(v string) []float32 { return l.w[bn+"/"+v].Values }
	gamma, beta := get(net.VarGamma), get(net.VarBeta)
	mean, variance := get(net.VarMean), get(net.VarVariance)
	c := len(b)
	if len(gamma) != c {
		return fmt.Errorf("batch norm %q of %d channels after %d", bn, len(gamma), c)
	}
	scale := make([]float64, c)
	for j := range c {
		scale[j] = float64(gamma[j]) / math.Sqrt(float64(variance[j])+net.BNEpsilon)
		b[j] = float32((float64(b[j])-float64(mean[j]))*scale[j] + float64(beta[j]))
	}
	for at := range w {
		w[at] = float32(float64(w[at]) * scale[at%c])
	}
	return nil
}

// mulSixth writes the 1/6 of a hard sigmoid as a MUL into layer name's tensor.
func (l *lowering) mulSixth(x int32, name string, shape []int) (int32, error) {
	sixth := float32(1.0 / 6)
	var k int32
	if l.int8() {
		k = l.g.addTensor(&tensor{name: name + "/sixth", shape: []int{1},
			typ: schema.TensorTypeINT8, data: []byte{127},
			quant: &quantization{scales: []float32{sixth / 127}, zeroPoints: zeros(1)}})
	} else {
		k = l.g.addTensor(&tensor{name: name + "/sixth", shape: []int{1},
			typ: schema.TensorTypeFLOAT32, data: float32Bytes([]float32{sixth})})
	}
	out, err := l.activation(name, shape, nil)
	if err != nil {
		return 0, err
	}
	l.g.addOp(schema.BuiltinOperatorMUL, l.mulVersion(x, k, out), []int32{x, k},
		[]int32{out}, mulOptions())
	return out, nil
}

// mulVersion is MUL's version: 2 for int8, 3 when the int8 rescale
// in1*in2/out is at least 1.
func (l *lowering) mulVersion(a, b, out int32) int32 {
	if !l.int8() {
		return 1
	}
	sa, sb, so := l.quantOf(a).scales[0], l.quantOf(b).scales[0], l.quantOf(out).scales[0]
	if float64(sa)*float64(sb)/float64(so) >= 1 {
		return 3
	}
	return 2
}

// dense writes FULLY_CONNECTED, with a ReLU after it fused.
func (l *lowering) dense(i int) error {
	layer := l.n.Layers[i]
	x, xs := l.in(i, 0)
	if len(xs) != 2 {
		return fmt.Errorf("dense layer on a rank-%d tensor: flatten it first", len(xs))
	}
	in, out := xs[1], layer.Channels
	w, b := l.weights(layer.Name), l.bias(layer)
	last := i
	act := schema.ActivationFunctionTypeNONE
	if j, ok := l.next(i, net.ReLU); ok {
		act, last = schema.ActivationFunctionTypeRELU, j
		l.done[j] = true
	}
	// [in, out] to TFLite's [out, in].
	weights := make([]float32, len(w))
	for r := range in {
		for c := range out {
			weights[c*in+r] = w[r*out+c]
		}
	}
	outShape := []int{xs[0], out}
	y, err := l.activation(l.n.Layers[last].Name, outShape, nil)
	if err != nil {
		return err
	}
	var wT, bT int32
	if l.int8() {
		// One scale for the whole matrix: TFLite 2.14's int8
		// FULLY_CONNECTED takes per-tensor weights only.
		q, scales := quantizeWeights(weights, []int{out, in}, -1)
		wT = l.g.addTensor(&tensor{name: layer.Name + "/weights", shape: []int{out, in},
			typ: schema.TensorTypeINT8, data: int8Bytes(q),
			quant: &quantization{scales: scales, zeroPoints: zeros(1)}})
		qb, biasScales := quantizeBias(b, l.quantOf(x).scales[0], scales)
		bT = l.g.addTensor(&tensor{name: layer.Name + "/bias", shape: []int{out},
			typ: schema.TensorTypeINT32, data: int32Bytes(qb),
			quant: &quantization{scales: biasScales[:1], zeroPoints: zeros(1)}})
	} else {
		wT = l.constant(layer.Name+"/weights", []int{out, in}, weights)
		bT = l.constant(layer.Name+"/bias", []int{out}, b)
	}
	l.g.addOp(schema.BuiltinOperatorFULLY_CONNECTED, l.version(1, 4), []int32{x, wT, bT},
		[]int32{y}, func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
			schema.FullyConnectedOptionsStart(b)
			schema.FullyConnectedOptionsAddFusedActivationFunction(b, act)
			schema.FullyConnectedOptionsAddWeightsFormat(b,
				schema.FullyConnectedOptionsWeightsFormatDEFAULT)
			schema.FullyConnectedOptionsAddKeepNumDims(b, false)
			return schema.BuiltinOptionsFullyConnectedOptions, schema.FullyConnectedOptionsEnd(b)
		})
	l.done[i] = true
	l.set(last, y, outShape)
	return nil
}

// unary writes an element-wise operator without options.
func (l *lowering) unary(i int, op schema.BuiltinOperator, int8Version int32) error {
	x, xs := l.in(i, 0)
	y, err := l.activation(l.n.Layers[i].Name, xs, nil)
	if err != nil {
		return err
	}
	version := int32(1)
	if op == schema.BuiltinOperatorRELU && l.int8() {
		version = 2
	} else if l.int8() {
		version = int8Version
	}
	l.g.addOp(op, version, []int32{x}, []int32{y}, nil)
	l.set(i, y, xs)
	return nil
}

// add writes ADD, with a ReLU after it fused (ResNet's residuals).
func (l *lowering) add(i int) error {
	x, xs := l.in(i, 0)
	y, _ := l.in(i, 1)
	last := i
	act := schema.ActivationFunctionTypeNONE
	if j, ok := l.next(i, net.ReLU); ok {
		act, last = schema.ActivationFunctionTypeRELU, j
		l.done[j] = true
	}
	out, err := l.activation(l.n.Layers[last].Name, xs, nil)
	if err != nil {
		return err
	}
	l.g.addOp(schema.BuiltinOperatorADD, l.version(1, 2), []int32{x, y}, []int32{out},
		func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
			schema.AddOptionsStart(b)
			schema.AddOptionsAddFusedActivationFunction(b, act)
			return schema.BuiltinOptionsAddOptions, schema.AddOptionsEnd(b)
		})
	l.done[i] = true
	l.set(last, out, xs)
	return nil
}

// scale writes squeeze-excite's gating as a broadcasting MUL.
func (l *lowering) scale(i int) error {
	x, xs := l.in(i, 0)
	gate, _ := l.in(i, 1)
	out, err := l.activation(l.n.Layers[i].Name, xs, nil)
	if err != nil {
		return err
	}
	l.g.addOp(schema.BuiltinOperatorMUL, l.mulVersion(x, gate, out), []int32{x, gate},
		[]int32{out}, mulOptions())
	l.set(i, out, xs)
	return nil
}

// mean writes global average pooling as MEAN over height and width,
// keeping them.
func (l *lowering) mean(i int) error {
	x, xs := l.in(i, 0)
	name := l.n.Layers[i].Name
	axes := l.int32Constant(name+"/axes", []int32{1, 2})
	shape := []int{xs[0], 1, 1, xs[3]}
	out, err := l.activation(name, shape, nil)
	if err != nil {
		return err
	}
	l.g.addOp(schema.BuiltinOperatorMEAN, l.version(1, 2), []int32{x, axes}, []int32{out},
		func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
			schema.ReducerOptionsStart(b)
			schema.ReducerOptionsAddKeepDims(b, true)
			return schema.BuiltinOptionsReducerOptions, schema.ReducerOptionsEnd(b)
		})
	l.set(i, out, shape)
	return nil
}

// maxPool writes MAX_POOL_2D with SAME padding; int8 keeps the input's
// quantisation, as TFLite requires.
func (l *lowering) maxPool(i int) error {
	layer := l.n.Layers[i]
	x, xs := l.in(i, 0)
	s, k := max(layer.Stride, 1), layer.Kernel
	shape := []int{xs[0], (xs[1] + s - 1) / s, (xs[2] + s - 1) / s, xs[3]}
	out, err := l.activation(layer.Name, shape, l.quantOf(x))
	if err != nil {
		return err
	}
	l.g.addOp(schema.BuiltinOperatorMAX_POOL_2D, l.version(1, 2), []int32{x}, []int32{out},
		func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
			schema.Pool2DOptionsStart(b)
			schema.Pool2DOptionsAddPadding(b, schema.PaddingSAME)
			schema.Pool2DOptionsAddStrideW(b, int32(s))
			schema.Pool2DOptionsAddStrideH(b, int32(s))
			schema.Pool2DOptionsAddFilterWidth(b, int32(k))
			schema.Pool2DOptionsAddFilterHeight(b, int32(k))
			return schema.BuiltinOptionsPool2DOptions, schema.Pool2DOptionsEnd(b)
		})
	l.set(i, out, shape)
	return nil
}

// upsample writes nearest-neighbour upsampling by 2 as four copies of the
// channels (CONCATENATION) rearranged by DEPTH_TO_SPACE: output cell
// (2y+i, 2x+j) takes channel block 2i+j of cell (y, x), which is the cell
// itself. Unlike RESIZE_NEAREST_NEIGHBOR, whose output size is a constant,
// this stays right when the runtime resizes the graph's input.
func (l *lowering) upsample(i int) error {
	name := l.n.Layers[i].Name
	x, xs := l.in(i, 0)
	tiledShape := []int{xs[0], xs[1], xs[2], 4 * xs[3]}
	tiled, err := l.activation(name+"/tiled", tiledShape, l.quantOf(x))
	if err != nil {
		return err
	}
	l.g.addOp(schema.BuiltinOperatorCONCATENATION, l.version(1, 2),
		[]int32{x, x, x, x}, []int32{tiled},
		func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
			schema.ConcatenationOptionsStart(b)
			schema.ConcatenationOptionsAddAxis(b, 3)
			return schema.BuiltinOptionsConcatenationOptions, schema.ConcatenationOptionsEnd(b)
		})
	shape := []int{xs[0], 2 * xs[1], 2 * xs[2], xs[3]}
	out, err := l.activation(name, shape, l.quantOf(x))
	if err != nil {
		return err
	}
	l.g.addOp(schema.BuiltinOperatorDEPTH_TO_SPACE, l.version(1, 2), []int32{tiled},
		[]int32{out}, func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
			schema.DepthToSpaceOptionsStart(b)
			schema.DepthToSpaceOptionsAddBlockSize(b, 2)
			return schema.BuiltinOptionsDepthToSpaceOptions, schema.DepthToSpaceOptionsEnd(b)
		})
	l.set(i, out, shape)
	return nil
}

// flatten writes RESHAPE to [-1, H*W*C], so the batch may change.
func (l *lowering) flatten(i int) error {
	layer := l.n.Layers[i]
	x, xs := l.in(i, 0)
	size := 1
	for _, d := range xs[1:] {
		size *= d
	}
	if size != layer.Channels {
		return fmt.Errorf("flattening %v gives %d features, the layer says %d", xs, size,
			layer.Channels)
	}
	shape := l.int32Constant(layer.Name+"/shape", []int32{-1, int32(size)})
	outShape := []int{xs[0], size}
	out, err := l.activation(layer.Name, outShape, l.quantOf(x))
	if err != nil {
		return err
	}
	l.g.addOp(schema.BuiltinOperatorRESHAPE, 1, []int32{x, shape}, []int32{out},
		func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
			newShape := int32Vector(b, []int32{-1, int32(size)},
				schema.ReshapeOptionsStartNewShapeVector)
			schema.ReshapeOptionsStart(b)
			schema.ReshapeOptionsAddNewShape(b, newShape)
			return schema.BuiltinOptionsReshapeOptions, schema.ReshapeOptionsEnd(b)
		})
	l.set(i, out, outShape)
	return nil
}

func convOptions(stride int, act schema.ActivationFunctionType) optionsFunc {
	return func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
		schema.Conv2DOptionsStart(b)
		schema.Conv2DOptionsAddPadding(b, schema.PaddingSAME)
		schema.Conv2DOptionsAddStrideW(b, int32(stride))
		schema.Conv2DOptionsAddStrideH(b, int32(stride))
		schema.Conv2DOptionsAddFusedActivationFunction(b, act)
		schema.Conv2DOptionsAddDilationWFactor(b, 1)
		schema.Conv2DOptionsAddDilationHFactor(b, 1)
		return schema.BuiltinOptionsConv2DOptions, schema.Conv2DOptionsEnd(b)
	}
}

func depthwiseOptions(stride int, act schema.ActivationFunctionType) optionsFunc {
	return func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
		schema.DepthwiseConv2DOptionsStart(b)
		schema.DepthwiseConv2DOptionsAddPadding(b, schema.PaddingSAME)
		schema.DepthwiseConv2DOptionsAddStrideW(b, int32(stride))
		schema.DepthwiseConv2DOptionsAddStrideH(b, int32(stride))
		schema.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
		schema.DepthwiseConv2DOptionsAddFusedActivationFunction(b, act)
		schema.DepthwiseConv2DOptionsAddDilationWFactor(b, 1)
		schema.DepthwiseConv2DOptionsAddDilationHFactor(b, 1)
		return schema.BuiltinOptionsDepthwiseConv2DOptions, schema.DepthwiseConv2DOptionsEnd(b)
	}
}

func mulOptions() optionsFunc {
	return func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT) {
		schema.MulOptionsStart(b)
		schema.MulOptionsAddFusedActivationFunction(b, schema.ActivationFunctionTypeNONE)
		return schema.BuiltinOptionsMulOptions, schema.MulOptionsEnd(b)
	}
}
