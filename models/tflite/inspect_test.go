package tflite

import (
	"testing"

	"github.com/maskwatch/maskwatch/models/net"
)

// tinyGraph is a small int8 graph of most operators Write emits.
func tinyGraph(t testing.TB) []byte {
	t.Helper()
	b := net.NewBuilder()
	x := b.Input("image", 3)
	y := b.Act("hs", b.BN("bn", b.Conv("conv", x, 8, 3, 2, 1, false)), net.HardSwish)
	g := b.Act("gate", b.Conv("se", b.GlobalAvgPool("pool", y), 8, 1, 1, 1, true),
		net.HardSigmoid)
	y = b.Add("add", b.Scale("scale", y, g), b.Depthwise("dw", y, 3, 1))
	y = b.Upsample2x("up", b.MaxPool("max", y, 3, 2))
	b.Output(b.Dense("fc", b.Flatten("flat", y, 4*4*8), 2, ""))
	n, err := b.Net()
	if err != nil {
		t.Fatal(err)
	}
	w := net.Weights{}
	ranges := Ranges{}
	for i, v := range n.Vars() {
		size := 1
		for _, d := range v.Shape {
			size *= d
		}
		values := make([]float32, size)
		for j := range values {
			values[j] = float32((i+j)%5) / 5
		}
		w[v.FullName()] = net.Tensor{Shape: v.Shape, Values: values}
	}
	for _, l := range n.Layers {
		ranges[l.Name] = Range{-1, 2}
	}
	gr, err := Write(n, w, Options{Precision: INT8, InputShapes: [][]int{{1, 8, 8, 3}},
		Ranges: ranges})
	if err != nil {
		t.Fatal(err)
	}
	return gr.Model
}

func TestInspectTiny(t *testing.T) {
	s, err := Inspect(tinyGraph(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"CONV_2D", "HARD_SWISH", "MEAN", "MUL", "ADD",
		"DEPTHWISE_CONV_2D", "MAX_POOL_2D", "CONCATENATION", "DEPTH_TO_SPACE", "RESHAPE",
		"FULLY_CONNECTED"} {
		if s.Operators[op] == 0 {
			t.Errorf("no %s in %v", op, s.Operators)
		}
	}
	if len(s.Inputs) != 1 || s.Inputs[0].Type != "int8" || len(s.Outputs) != 1 {
		t.Errorf("inputs %+v outputs %+v", s.Inputs, s.Outputs)
	}
}

// FuzzInspect: damaged flatbuffers give an error, never a panic.
func FuzzInspect(f *testing.F) {
	f.Add(tinyGraph(f))
	f.Fuzz(func(t *testing.T, model []byte) {
		if s, err := Inspect(model); (s == nil) == (err == nil) {
			t.Fatalf("summary %v and error %v", s != nil, err)
		}
	})
}
