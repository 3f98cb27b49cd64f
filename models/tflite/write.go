package tflite

import (
	"fmt"
	"math"
	"slices"

	"github.com/x448/float16"

	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite/schema"
)

// Range is the smallest and largest value a tensor took on the calibration
// images.
type Range struct {
	Min float32 `json:"min"`
	Max float32 `json:"max"`
}

// Ranges are calibrated value ranges by layer name: of each layer's output,
// and of each input layer (what the caller feeds it).
type Ranges map[string]Range

// Options configure Write.
type Options struct {
	Precision Precision
	// InputShapes are the NHWC shapes of the network's inputs, in the order
	// of Net.Inputs. A runtime may resize them later (the graph holds no
	// shape-dependent constant but RESHAPE's -1).
	InputShapes [][]int
	// Ranges are required for INT8: every layer whose output becomes a
	// tensor, inputs included. Extend them with Calibrate.
	Ranges Ranges
	// Description is stored in the model.
	Description string
}

// Graph is one network written as a TFLite model.
type Graph struct {
	// Model is the flatbuffer.
	Model []byte
	// Inputs and Outputs describe the model's inputs and outputs, in the
	// order of Net.Inputs and Net.Outputs.
	Inputs, Outputs []TensorInfo
}

// Write turns n with weights w into a TFLite model of opt.Precision. The
// error names the layer that cannot be written, or the missing weight or
// range.
func Write(n *net.Net, w net.Weights, opt Options) (*Graph, error) {
	if _, err := ParsePrecision(string(opt.Precision)); err != nil {
		return nil, fmt.Errorf("tflite: %w", err)
	}
	if err := w.Check(n); err != nil {
		return nil, fmt.Errorf("tflite: %w", err)
	}
	if len(opt.InputShapes) != len(n.Inputs) {
		return nil, fmt.Errorf("tflite: %d input shapes for %d inputs", len(opt.InputShapes),
			len(n.Inputs))
	}
	l := &lowering{
		n: n, w: w, opt: opt, g: newGraph(),
		value:     make([]int32, len(n.Layers)),
		shape:     make([][]int, len(n.Layers)),
		consumers: make([][]int, len(n.Layers)),
		output:    make([]bool, len(n.Layers)),
		done:      make([]bool, len(n.Layers)),
	}
	for i := range l.value {
		l.value[i] = -1
	}
	for i, layer := range n.Layers {
		for _, in := range layer.Inputs {
			l.consumers[in] = append(l.consumers[in], i)
		}
	}
	for _, o := range n.Outputs {
		l.output[o] = true
	}
	for k, i := range n.Inputs {
		shape := opt.InputShapes[k]
		if len(shape) < 2 || shape[len(shape)-1] != n.Layers[i].Channels || slices.Min(shape) < 1 {
			return nil, fmt.Errorf("tflite: input %q: shape %v: want positive sizes ending "+
				"in its %d channels", n.Layers[i].Name, shape, n.Layers[i].Channels)
		}
		t, err := l.activation(n.Layers[i].Name, slices.Clone(shape), nil)
		if err != nil {
			return nil, err
		}
		l.value[i], l.shape[i] = t, slices.Clone(shape)
		l.g.inputs = append(l.g.inputs, t)
		l.done[i] = true
	}
	for i := range n.Layers {
		if l.done[i] {
			continue
		}
		if err := l.layer(i); err != nil {
			return nil, fmt.Errorf("tflite: layer %q: %w", n.Layers[i].Name, err)
		}
	}
	gr := &Graph{}
	for _, i := range n.Inputs {
		gr.Inputs = append(gr.Inputs, l.g.info(l.value[i]))
	}
	for _, o := range n.Outputs {
		if l.value[o] < 0 {
			return nil, fmt.Errorf("tflite: output layer %q was not written", n.Layers[o].Name)
		}
		l.g.outputs = append(l.g.outputs, l.value[o])
		gr.Outputs = append(gr.Outputs, l.g.info(l.value[o]))
	}
	gr.Model = l.g.serialize(opt.Description)
	return gr, nil
}

// lowering turns layers into TFLite tensors and operators.
type lowering struct {
	n   *net.Net
	w   net.Weights
	opt Options
	g   *graph
	// value is the tensor holding each layer's output (-1 before it is
	// written, and for layers fused into another's tensor), shape its shape.
	value     []int32
	shape     [][]int
	consumers [][]int
	output    []bool
	done      []bool
}

// next returns the layer that alone reads layer i, when it is of op and i
// is not an output: the layer to fuse into i's operator.
func (l *lowering) next(i int, op net.Op) (int, bool) {
	if l.output[i] || len(l.consumers[i]) != 1 {
		return 0, false
	}
	j := l.consumers[i][0]
	if l.n.Layers[j].Op != op || l.n.Layers[j].Inputs[0] != i {
		return 0, false
	}
	return j, true
}

func (l *lowering) int8() bool { return l.opt.Precision == INT8 }

// activation adds a non-constant tensor named name. For INT8 its
// quantisation is like's when like is given (operators that move values
// without changing them), else from the calibrated range of name.
func (l *lowering) activation(name string, shape []int, like *quantization) (int32, error) {
	t := &tensor{name: name, shape: shape, typ: schema.TensorTypeFLOAT32}
	if l.int8() {
		t.typ = schema.TensorTypeINT8
		if like != nil {
			t.quant = like
		} else {
			r, ok := l.opt.Ranges[name]
			if !ok {
				return 0, fmt.Errorf("no calibrated range for %q: int8 needs every "+
					"activation's range (run Calibrate)", name)
			}
			t.quant = activationQuant(r)
		}
	}
	return l.g.addTensor(t), nil
}

// rangeOf returns the calibrated range of layer name (INT8 only).
func (l *lowering) rangeOf(name string) (Range, error) {
	r, ok := l.opt.Ranges[name]
	if !ok {
		return r, fmt.Errorf("no calibrated range for %q: int8 needs every activation's "+
			"range (run Calibrate)", name)
	}
	return r, nil
}

// activationQuant is the asymmetric int8 quantisation of a range widened
// to hold 0 exactly.
func activationQuant(r Range) *quantization {
	lo, hi := math.Min(float64(r.Min), 0), math.Max(float64(r.Max), 0)
	if !(hi-lo > 1e-6) || math.IsInf(hi-lo, 0) {
		hi = lo + 1e-6
	}
	scale := (hi - lo) / 255
	zp := math.Round(-128 - lo/scale)
	zp = math.Min(math.Max(zp, -128), 127)
	return &quantization{scales: []float32{float32(scale)}, zeroPoints: []int64{int64(zp)}}
}

func (l *lowering) quantOf(t int32) *quantization { return l.g.tensors[t].quant }

// constant adds a float constant as the precision stores it: float32, or
// float16 behind a DEQUANTIZE for FP16. It returns the float32 tensor an
// operator reads.
func (l *lowering) constant(name string, shape []int, values []float32) int32 {
	if l.opt.Precision != FP16 {
		return l.g.addTensor(&tensor{name: name, shape: shape, typ: schema.TensorTypeFLOAT32,
			data: float32Bytes(values)})
	}
	half := make([]byte, 2*len(values))
	for i, v := range values {
		bits := float16.Fromfloat32(v).Bits()
		half[2*i], half[2*i+1] = byte(bits), byte(bits>>8)
	}
	h := l.g.addTensor(&tensor{name: name + "/fp16", shape: shape,
		typ: schema.TensorTypeFLOAT16, data: half})
	f := l.g.addTensor(&tensor{name: name, shape: shape, typ: schema.TensorTypeFLOAT32})
	l.g.addOp(schema.BuiltinOperatorDEQUANTIZE, 3, []int32{h}, []int32{f}, nil)
	return f
}

// int32Constant adds an int32 constant (axes, shapes).
func (l *lowering) int32Constant(name string, values []int32) int32 {
	return l.g.addTensor(&tensor{name: name, shape: []int{len(values)},
		typ: schema.TensorTypeINT32, data: int32Bytes(values)})
}

// quantizeWeights quantises w symmetrically to int8 with one scale per
// slice along axis dim of shape (per output channel), or one scale for all
// when dim < 0. Values are in [-127, 127] with zero point 0, as TFLite's
// int8 kernels require.
func quantizeWeights(values []float32, shape []int, dim int) ([]int8, []float32) {
	channels, inner := 1, 1
	if dim >= 0 {
		channels = shape[dim]
		for _, d := range shape[dim+1:] {
			inner *= d
		}
	}
	channelOf := func(i int) int {
		if dim < 0 {
			return 0
		}
		return i / inner % channels
	}
	peak := make([]float64, channels)
	for i, v := range values {
		c := channelOf(i)
		peak[c] = math.Max(peak[c], math.Abs(float64(v)))
	}
	scales := make([]float32, channels)
	for c, p := range peak {
		scales[c] = float32(p / 127)
		if !(p > 0) {
			scales[c] = 1 // an all-zero channel: any positive scale
		}
	}
	q := make([]int8, len(values))
	for i, v := range values {
		r := math.Round(float64(v) / float64(scales[channelOf(i)]))
		q[i] = int8(math.Min(math.Max(r, -127), 127))
	}
	return q, scales
}

// quantizeBias quantises biases to int32 at scale inScale*weightScale[c].
func quantizeBias(bias []float32, inScale float32, weightScales []float32) ([]int32, []float32) {
	q := make([]int32, len(bias))
	scales := make([]float32, len(bias))
	for c, b := range bias {
		ws := weightScales[0]
		if len(weightScales) > 1 {
			ws = weightScales[c]
		}
		scales[c] = float32(float64(inScale) * float64(ws))
		r := math.Round(float64(b) / float64(scales[c]))
		q[c] = int32(math.Min(math.Max(r, math.MinInt32), math.MaxInt32))
	}
	return q, scales
}

func zeros(n int) []int64 { return make([]int64, n) }

// layer writes layer i, with whatever layers after it fuse into it.
func (l *lowering) layer(i int) error {
	layer := l.n.Layers[i]
	switch layer.Op {
	case net.Conv:
		return l.conv(i)
	case net.Dense:
		return l.dense(i)
	case net.ReLU:
		return l.unary(i, schema.BuiltinOperatorRELU, 1)
	case net.HardSwish:
		return l.unary(i, schema.BuiltinOperatorHARD_SWISH, 1)
	case net.Add:
		return l.add(i)
	case net.Scale:
		return l.scale(i)
	case net.GlobalAvgPool:
		return l.mean(i)
	case net.MaxPool:
		return l.maxPool(i)
	case net.Upsample2x:
		return l.upsample(i)
	case net.Flatten:
		return l.flatten(i)
	case net.BatchNorm:
		return fmt.Errorf("batch norm not after a convolution of its own: cannot fold it")
	case net.HardSigmoid:
		return fmt.Errorf("hard sigmoid not after a convolution with a bias: cannot fuse it")
	}
	return fmt.Errorf("operation %s has no TFLite form here", layer.Op)
}

func (l *lowering) in(i, k int) (int32, []int) {
	src := l.n.Layers[i].Inputs[k]
	return l.value[src], l.shape[src]
}

func (l *lowering) set(i int, t int32, shape []int) {
	l.value[i], l.shape[i], l.done[i] = t, shape, true
}

func (l *lowering) weights(name string) []float32 {
	return slices.Clone(l.w[name+"/"+net.VarWeights].Values)
}

func (l *lowering) bias(layer net.Layer) []float32 {
	if t, ok := l.w[layer.Name+"/"+net.VarBias]; ok {
		return slices.Clone(t.Values)
	}
	return make([]float32, layer.Channels)
}

// version picks the operator version TFLite's converter would: int8
// kernels are newer versions of most operators.
func (l *lowering) version(float, int8 int32) int32 {
	if l.int8() {
		return int8
	}
	return float
}
