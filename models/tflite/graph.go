// Package tflite writes maskwatch's networks (package net) as TensorFlow Lite
// flatbuffers with builtin operators only, so that the TFLite runtime, its
// delegates and other readers (Arm NN) run the model that was trained.
//
// Batch normalisation is folded into the convolution before it; ReLU and
// the hard sigmoid of squeeze-excite are fused into the operator before
// them; nearest-neighbour upsampling is written as CONCATENATION and
// DEPTH_TO_SPACE so that the graph stays valid when the runtime resizes its
// input. Three precisions: fp32; fp16 (weights and biases stored as
// float16, each followed by a DEQUANTIZE that the runtime evaluates once);
// int8 (full integer: int8 weights per output channel, int8 activations per
// tensor from calibrated ranges, int32 biases, int8 inputs and outputs).
//
// Only the patterns maskwatch's networks use are supported: a batch norm
// must follow a convolution, and a hard sigmoid a convolution with a bias;
// grouped convolutions must be depthwise. Write returns an error naming the
// layer otherwise.
package tflite

import (
	"encoding/binary"
	"fmt"
	"math"

	flatbuffers "github.com/google/flatbuffers/go"
	"github.com/maskwatch/maskwatch/models/tflite/schema"
)

// Precision is how a graph stores weights and computes.
type Precision string

// The precisions Write supports.
const (
	FP32 Precision = "fp32"
	FP16 Precision = "fp16"
	INT8 Precision = "int8"
)

// ParsePrecision checks a precision name.
func ParsePrecision(s string) (Precision, error) {
	switch p := Precision(s); p {
	case FP32, FP16, INT8:
		return p, nil
	}
	return "", fmt.Errorf("precision %q: use fp32, fp16 or int8", s)
}

// TensorInfo describes an input or output of a graph.
type TensorInfo struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	// Type is "float32" or "int8".
	Type string `json:"type"`
	// Scale and ZeroPoint quantise an int8 tensor: real = Scale * (q - ZeroPoint).
	Scale     float32 `json:"scale,omitempty"`
	ZeroPoint int32   `json:"zero_point,omitempty"`
}

// graph is a TFLite subgraph being built: tensors (constants carry data) and
// operators in execution order.
type graph struct {
	tensors   []*tensor
	ops       []*operator
	inputs    []int32
	outputs   []int32
	codes     []opCode
	codeIndex map[opCode]int
}

type tensor struct {
	name  string
	shape []int
	typ   schema.TensorType
	data  []byte // nil for activations
	quant *quantization
}

type quantization struct {
	scales     []float32
	zeroPoints []int64
	dim        int32
}

type opCode struct {
	op      schema.BuiltinOperator
	version int32
}

type operator struct {
	code    int
	inputs  []int32
	outputs []int32
	// options writes the builtin options table; nil for operators without.
	options func(b *flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT)
}

func newGraph() *graph { return &graph{codeIndex: map[opCode]int{}} }

func (g *graph) addTensor(t *tensor) int32 {
	g.tensors = append(g.tensors, t)
	return int32(len(g.tensors) - 1)
}

func (g *graph) addOp(op schema.BuiltinOperator, version int32, inputs, outputs []int32,
	options func(*flatbuffers.Builder) (schema.BuiltinOptions, flatbuffers.UOffsetT)) {
	code := opCode{op, version}
	i, ok := g.codeIndex[code]
	if !ok {
		i = len(g.codes)
		g.codes = append(g.codes, code)
		g.codeIndex[code] = i
	}
	g.ops = append(g.ops, &operator{code: i, inputs: inputs, outputs: outputs, options: options})
}

// info describes tensor i for callers.
func (g *graph) info(i int32) TensorInfo {
	t := g.tensors[i]
	ti := TensorInfo{Name: t.name, Shape: append([]int(nil), t.shape...), Type: "float32"}
	if t.typ == schema.TensorTypeINT8 {
		ti.Type = "int8"
		ti.Scale = t.quant.scales[0]
		ti.ZeroPoint = int32(t.quant.zeroPoints[0])
	}
	return ti
}

// serialize writes the graph as a TFLite model with one subgraph.
func (g *graph) serialize(description string) []byte {
	b := flatbuffers.NewBuilder(1 << 20)

	// Buffers: 0 is the empty buffer every activation refers to.
	bufferOf := make([]uint32, len(g.tensors))
	var buffers []flatbuffers.UOffsetT
	schema.BufferStart(b)
	buffers = append(buffers, schema.BufferEnd(b))
	for i, t := range g.tensors {
		if t.data == nil {
			continue
		}
		// 16-byte aligned data, as TFLite's converter writes it, so that
		// kernels may read it in place from a mapped file.
		b.Prep(16, len(t.data))
		data := b.CreateByteVector(t.data)
		schema.BufferStart(b)
		schema.BufferAddData(b, data)
		bufferOf[i] = uint32(len(buffers))
		buffers = append(buffers, schema.BufferEnd(b))
	}

	tensorOffsets := make([]flatbuffers.UOffsetT, len(g.tensors))
	for i, t := range g.tensors {
		name := b.CreateString(t.name)
		shape := int32Vector(b, t.shape, schema.TensorStartShapeVector)
		var quant flatbuffers.UOffsetT
		if t.quant != nil {
			quant = t.quant.write(b)
		}
		schema.TensorStart(b)
		schema.TensorAddShape(b, shape)
		schema.TensorAddType(b, t.typ)
		schema.TensorAddBuffer(b, bufferOf[i])
		schema.TensorAddName(b, name)
		if t.quant != nil {
			schema.TensorAddQuantization(b, quant)
		}
		tensorOffsets[i] = schema.TensorEnd(b)
	}

	opOffsets := make([]flatbuffers.UOffsetT, len(g.ops))
	for i, op := range g.ops {
		inputs := int32Vector(b, op.inputs, schema.OperatorStartInputsVector)
		outputs := int32Vector(b, op.outputs, schema.OperatorStartOutputsVector)
		var kind schema.BuiltinOptions
		var options flatbuffers.UOffsetT
		if op.options != nil {
			kind, options = op.options(b)
		}
		schema.OperatorStart(b)
		schema.OperatorAddOpcodeIndex(b, uint32(op.code))
		schema.OperatorAddInputs(b, inputs)
		schema.OperatorAddOutputs(b, outputs)
		if op.options != nil {
			schema.OperatorAddBuiltinOptionsType(b, kind)
			schema.OperatorAddBuiltinOptions(b, options)
		}
		opOffsets[i] = schema.OperatorEnd(b)
	}

	tensorsVec := offsetVector(b, tensorOffsets, schema.SubGraphStartTensorsVector)
	inputsVec := int32Vector(b, g.inputs, schema.SubGraphStartInputsVector)
	outputsVec := int32Vector(b, g.outputs, schema.SubGraphStartOutputsVector)
	opsVec := offsetVector(b, opOffsets, schema.SubGraphStartOperatorsVector)
	subName := b.CreateString("main")
	schema.SubGraphStart(b)
	schema.SubGraphAddTensors(b, tensorsVec)
	schema.SubGraphAddInputs(b, inputsVec)
	schema.SubGraphAddOutputs(b, outputsVec)
	schema.SubGraphAddOperators(b, opsVec)
	schema.SubGraphAddName(b, subName)
	subgraph := schema.SubGraphEnd(b)

	codeOffsets := make([]flatbuffers.UOffsetT, len(g.codes))
	for i, c := range g.codes {
		schema.OperatorCodeStart(b)
		// Readers take the larger of the two fields; codes from 127 on
		// exist only in builtin_code, and the deprecated byte holds 127
		// (PLACEHOLDER_FOR_GREATER_OP_CODES) for them.
		schema.OperatorCodeAddDeprecatedBuiltinCode(b, int8(min(int(c.op), 127)))
		schema.OperatorCodeAddBuiltinCode(b, c.op)
		schema.OperatorCodeAddVersion(b, c.version)
		codeOffsets[i] = schema.OperatorCodeEnd(b)
	}
	codesVec := offsetVector(b, codeOffsets, schema.ModelStartOperatorCodesVector)
	subgraphsVec := offsetVector(b, []flatbuffers.UOffsetT{subgraph},
		schema.ModelStartSubgraphsVector)
	buffersVec := offsetVector(b, buffers, schema.ModelStartBuffersVector)
	desc := b.CreateString(description)
	schema.ModelStart(b)
	schema.ModelAddVersion(b, 3)
	schema.ModelAddOperatorCodes(b, codesVec)
	schema.ModelAddSubgraphs(b, subgraphsVec)
	schema.ModelAddDescription(b, desc)
	schema.ModelAddBuffers(b, buffersVec)
	model := schema.ModelEnd(b)
	b.FinishWithFileIdentifier(model, []byte("TFL3"))
	return b.FinishedBytes()
}

func (q *quantization) write(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	schema.QuantizationParametersStartScaleVector(b, len(q.scales))
	for i := len(q.scales) - 1; i >= 0; i-- {
		b.PrependFloat32(q.scales[i])
	}
	scales := b.EndVector(len(q.scales))
	schema.QuantizationParametersStartZeroPointVector(b, len(q.zeroPoints))
	for i := len(q.zeroPoints) - 1; i >= 0; i-- {
		b.PrependInt64(q.zeroPoints[i])
	}
	zeros := b.EndVector(len(q.zeroPoints))
	schema.QuantizationParametersStart(b)
	schema.QuantizationParametersAddScale(b, scales)
	schema.QuantizationParametersAddZeroPoint(b, zeros)
	schema.QuantizationParametersAddQuantizedDimension(b, q.dim)
	return schema.QuantizationParametersEnd(b)
}

func int32Vector[T int | int32](b *flatbuffers.Builder, values []T,
	start func(*flatbuffers.Builder, int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	start(b, len(values))
	for i := len(values) - 1; i >= 0; i-- {
		b.PrependInt32(int32(values[i]))
	}
	return b.EndVector(len(values))
}

func offsetVector(b *flatbuffers.Builder, offsets []flatbuffers.UOffsetT,
	start func(*flatbuffers.Builder, int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	start(b, len(offsets))
	for i := len(offsets) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offsets[i])
	}
	return b.EndVector(len(offsets))
}

func float32Bytes(values []float32) []byte {
	out := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

func int32Bytes(values []int32) []byte {
	out := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
	}
	return out
}

func int8Bytes(values []int8) []byte {
	out := make([]byte, len(values))
	for i, v := range values {
		out[i] = byte(v)
	}
	return out
}
