package tflite

import (
	"errors"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/maskwatch/maskwatch/models/tflite/schema"
)

// Summary is what Inspect found in a model.
type Summary struct {
	Description string
	// Operators counts operators by builtin name ("CONV_2D": 52).
	Operators map[string]int
	// Tensors and Constants count all tensors and those with data.
	Tensors, Constants int
	// ConstantBytes is the size of the constants' data.
	ConstantBytes   int
	Inputs, Outputs []TensorInfo
}

// allowed are the builtin operators Write emits: a model with any other
// (or a custom operator) did not come from this package.
var allowed = map[schema.BuiltinOperator]bool{
	schema.BuiltinOperatorCONV_2D: true, schema.BuiltinOperatorDEPTHWISE_CONV_2D: true,
	schema.BuiltinOperatorFULLY_CONNECTED: true, schema.BuiltinOperatorADD: true,
	schema.BuiltinOperatorMUL: true, schema.BuiltinOperatorRELU: true,
	schema.BuiltinOperatorHARD_SWISH: true, schema.BuiltinOperatorMEAN: true,
	schema.BuiltinOperatorMAX_POOL_2D: true, schema.BuiltinOperatorCONCATENATION: true,
	schema.BuiltinOperatorDEPTH_TO_SPACE: true, schema.BuiltinOperatorRESHAPE: true,
	schema.BuiltinOperatorDEQUANTIZE: true, schema.BuiltinOperatorQUANTIZE: true,
	schema.BuiltinOperatorLOGISTIC: true, schema.BuiltinOperatorRESIZE_NEAREST_NEIGHBOR: true,
}

var errMalformed = errors.New("malformed TFLite model")

// Inspect checks that model is a well-formed TFLite flatbuffer of the kind
// Write produces (one subgraph, builtin operators only, every index in
// range, every constant as large as its shape) and summarises it. It never
// panics: damage of any kind is an error.
func Inspect(model []byte) (s *Summary, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%w: %v", errMalformed, r)
		}
	}()
	if len(model) < 8 || string(model[4:8]) != "TFL3" {
		return nil, fmt.Errorf("%w: no TFL3 identifier", errMalformed)
	}
	root := flatbuffers.GetUOffsetT(model)
	if int(root)+4 > len(model) {
		return nil, fmt.Errorf("%w: root offset %d past the end", errMalformed, root)
	}
	m := schema.GetRootAsModel(model, 0)
	if m.Version() != 3 {
		return nil, fmt.Errorf("%w: schema version %d, want 3", errMalformed, m.Version())
	}
	if m.SubgraphsLength() != 1 {
		return nil, fmt.Errorf("%w: %d subgraphs, want 1", errMalformed, m.SubgraphsLength())
	}
	s = &Summary{Description: string(m.Description()), Operators: map[string]int{}}

	// Lengths read from damaged data can be huge: bound them by the file.
	if m.OperatorCodesLength() > len(model)/4 || m.BuffersLength() > len(model)/4 {
		return nil, fmt.Errorf("%w: vector lengths past the end", errMalformed)
	}
	codes := make([]schema.BuiltinOperator, m.OperatorCodesLength())
	for i := range codes {
		var oc schema.OperatorCode
		m.OperatorCodes(&oc, i)
		code := max(oc.BuiltinCode(), schema.BuiltinOperator(oc.DeprecatedBuiltinCode()))
		if !allowed[code] {
			return nil, fmt.Errorf("%w: operator %s (code %d) is not one this writer emits",
				errMalformed, code, code)
		}
		codes[i] = code
	}
	buffers := m.BuffersLength()
	var sg schema.SubGraph
	m.Subgraphs(&sg, 0)
	n := sg.TensorsLength()
	if n > len(model)/4 || sg.OperatorsLength() > len(model)/4 {
		return nil, fmt.Errorf("%w: vector lengths past the end", errMalformed)
	}
	s.Tensors = n
	shapes := make([][]int, n)
	for i := range n {
		var t schema.Tensor
		sg.Tensors(&t, i)
		if t.ShapeLength() > 8 {
			return nil, fmt.Errorf("%w: tensor %d of rank %d", errMalformed, i, t.ShapeLength())
		}
		shape := make([]int, t.ShapeLength())
		elems := 1
		for d := range shape {
			shape[d] = int(t.Shape(d))
			if shape[d] < 0 {
				return nil, fmt.Errorf("%w: tensor %d has shape %v", errMalformed, i, shape)
			}
			elems *= shape[d]
		}
		shapes[i] = shape
		b := int(t.Buffer())
		if b >= buffers {
			return nil, fmt.Errorf("%w: tensor %d reads buffer %d of %d", errMalformed, i, b,
				buffers)
		}
		var buf schema.Buffer
		m.Buffers(&buf, b)
		if size := buf.DataLength(); size > 0 {
			width := map[schema.TensorType]int{schema.TensorTypeFLOAT32: 4,
				schema.TensorTypeFLOAT16: 2, schema.TensorTypeINT32: 4,
				schema.TensorTypeINT8: 1}[t.Type()]
			if width == 0 || size != elems*width {
				return nil, fmt.Errorf("%w: tensor %q of %s %v has %d bytes", errMalformed,
					t.Name(), t.Type(), shape, size)
			}
			s.Constants++
			s.ConstantBytes += size
		}
	}
	checkIndex := func(what string, k int32) error {
		if k < -1 || int(k) >= n {
			return fmt.Errorf("%w: %s reads tensor %d of %d", errMalformed, what, k, n)
		}
		return nil
	}
	for i := range sg.OperatorsLength() {
		var op schema.Operator
		sg.Operators(&op, i)
		c := int(op.OpcodeIndex())
		if c >= len(codes) {
			return nil, fmt.Errorf("%w: operator %d has code %d of %d", errMalformed, i, c,
				len(codes))
		}
		s.Operators[codes[c].String()]++
		for j := range op.InputsLength() {
			if err := checkIndex(fmt.Sprintf("operator %d", i), op.Inputs(j)); err != nil {
				return nil, err
			}
		}
		for j := range op.OutputsLength() {
			if err := checkIndex(fmt.Sprintf("operator %d", i), op.Outputs(j)); err != nil {
				return nil, err
			}
		}
	}
	io := func(k int32) (TensorInfo, error) {
		if k < 0 || int(k) >= n {
			return TensorInfo{}, fmt.Errorf("%w: graph reads tensor %d of %d", errMalformed, k, n)
		}
		var t schema.Tensor
		sg.Tensors(&t, int(k))
		ti := TensorInfo{Name: string(t.Name()), Shape: shapes[k], Type: "float32"}
		switch t.Type() {
		case schema.TensorTypeFLOAT32:
		case schema.TensorTypeINT8:
			ti.Type = "int8"
			q := t.Quantization(nil)
			if q == nil || q.ScaleLength() != 1 || q.ZeroPointLength() != 1 {
				return ti, fmt.Errorf("%w: int8 tensor %q without one scale and zero point",
					errMalformed, ti.Name)
			}
			ti.Scale, ti.ZeroPoint = q.Scale(0), int32(q.ZeroPoint(0))
		default:
			return ti, fmt.Errorf("%w: graph tensor %q of type %s", errMalformed, ti.Name,
				t.Type())
		}
		return ti, nil
	}
	for j := range sg.InputsLength() {
		ti, err := io(sg.Inputs(j))
		if err != nil {
			return nil, err
		}
		s.Inputs = append(s.Inputs, ti)
	}
	for j := range sg.OutputsLength() {
		ti, err := io(sg.Outputs(j))
		if err != nil {
			return nil, err
		}
		s.Outputs = append(s.Outputs, ti)
	}
	return s, nil
}
