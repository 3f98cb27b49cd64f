package net

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/maskwatch/maskwatch/models/backend"
)

// small is conv, batch norm, hard-swish and a residual: enough to see
// batch statistics and their recalibration.
func small(t *testing.T) *Net {
	t.Helper()
	b := NewBuilder()
	x := b.Input("image", 3)
	y := b.Conv("conv", x, 8, 3, 2, 1, false)
	y = b.BN("bn", y)
	y = b.Act("act", y, HardSwish)
	z := b.BN("bn2", b.Depthwise("dw", y, 3, 1))
	b.Output(b.Add("sum", y, z))
	n, err := b.Net()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBuilderKeepsTheFirstMistake(t *testing.T) {
	b := NewBuilder()
	x := b.Input("image", 3)
	b.Conv("conv", x, 8, 3, 1, 2, false) // 2 groups do not divide 3 inputs
	b.Act("act", x, Add)
	if _, err := b.Net(); err == nil || !strings.Contains(err.Error(), "groups") {
		t.Fatalf("got %v, want the group count error", err)
	}
	b = NewBuilder()
	x = b.Input("image", 3)
	b.Conv("same", x, 4, 1, 1, 1, false)
	b.Conv("same", x, 4, 1, 1, 1, false)
	if _, err := b.Net(); err == nil || !strings.Contains(err.Error(), "two layers named") {
		t.Fatalf("got %v, want the duplicate name error", err)
	}
}

// After a recalibration on a batch, inference (running statistics) gives
// what training mode (batch statistics) gives on that batch.
func TestRecalibrationMatchesBatchStatistics(t *testing.T) {
	be, err := backend.New("")
	if err != nil {
		t.Fatal(err)
	}
	n := small(t)
	ctx := context.New()
	if err := n.Init(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got := len(n.BatchNormLayers()); got != 2 {
		t.Fatalf("%d batch-norm layers, want 2", got)
	}
	const batch, side = 4, 8
	images := make([]float32, batch*side*side*3)
	for i := range images {
		images[i] = float32(math.Sin(float64(i)*0.37))*2 + 0.5
	}
	input := tensors.FromFlatDataAndDimensions(images, batch, side, side, 3)
	run := func(fn func(ctx *context.Context, x *graph.Node) []*graph.Node) []*tensors.Tensor {
		e, err := context.NewExec(be, ctx, fn)
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Exec(input)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	stats := run(func(ctx *context.Context, x *graph.Node) []*graph.Node {
		_, s := n.ApplyWithStatistics(ctx, x)
		return []*graph.Node{s}
	})
	if d := stats[0].Shape().Dimensions; len(d) != 2 || d[0] != 2 || d[1] != 16 {
		t.Fatalf("statistics of shape %v, want [2 16]", d)
	}
	r := n.NewRecalibration()
	if err := r.Add(stats[0]); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(tensors.FromFlatDataAndDimensions(make([]float32, 6), 2, 3)); err == nil {
		t.Error("statistics of the wrong size were accepted")
	}
	outputs := func(mode Mode) []float32 {
		out := run(func(ctx *context.Context, x *graph.Node) []*graph.Node {
			return n.Apply(ctx, mode, x)
		})
		v, err := tensors.CopyFlatData[float32](out[0])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := outputs(TrainingFrozen)
	before := outputs(Inference)
	if err := r.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	after := outputs(Inference)
	gap := func(a, b []float32) float64 {
		worst := 0.0
		for i := range a {
			worst = max(worst, math.Abs(float64(a[i]-b[i])))
		}
		return worst
	}
	if g := gap(before, want); g < 0.1 {
		t.Fatalf("initial running statistics already match the batch (gap %g): "+
			"the test shows nothing", g)
	}
	if g := gap(after, want); g > 1e-4 {
		t.Errorf("after recalibration inference differs from training mode by %g", g)
	}
}

// A stride-2 convolution of an even-sized input pads as TensorFlow's SAME:
// nothing before, one cell after, so TFLite computes the same cells.
func TestConvPadsLikeTensorFlowSame(t *testing.T) {
	be, err := backend.New("")
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder()
	x := b.Input("image", 1)
	b.Output(b.Conv("conv", x, 1, 3, 2, 1, false))
	n, err := b.Net()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if err := n.Init(ctx, 1); err != nil {
		t.Fatal(err)
	}
	ones := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}
	In(ctx, "conv").InspectVariableInScope(VarWeights).MustSetValue(
		tensors.FromFlatDataAndDimensions(ones, 3, 3, 1, 1))
	input := make([]float32, 16)
	for i := range input {
		input[i] = float32(i + 1) // row-major 4 x 4: 1..16
	}
	e, err := context.NewExec(be, ctx, func(ctx *context.Context, x *graph.Node) *graph.Node {
		return n.Apply(ctx, Inference, x)[0]
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(tensors.FromFlatDataAndDimensions(input, 1, 4, 4, 1))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := tensors.CopyFlatData[float32](out[0])
	// Windows start at rows/columns 0 and 2; the one past the edge is zero.
	want := []float32{
		1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11, 3 + 4 + 7 + 8 + 11 + 12,
		9 + 10 + 11 + 13 + 14 + 15, 11 + 12 + 15 + 16,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// The backbones cost what their papers say at 224 x 224: torchvision lists
// 4.09 GMACs for ResNet50 and 0.217 for MobileNetV3-Large, classifiers
// included (2.0M and 2.5M of them), which these backbones leave out.
func TestBackboneMACs(t *testing.T) {
	for _, c := range []struct {
		backbone Backbone
		want     float64
	}{{ResNet50, 4.09e9 - 2.0e6}, {MobileNetV3Large, 0.217e9 - 2.5e6}} {
		b := NewBuilder()
		x := b.Input("image", 3)
		features, err := c.backbone.Describe(b, x)
		if err != nil {
			t.Fatal(err)
		}
		b.Output(features.C5)
		n, err := b.Net()
		if err != nil {
			t.Fatal(err)
		}
		got := float64(n.MACs(224, 224))
		if math.Abs(got-c.want) > 0.03*c.want {
			t.Errorf("%s: %.4g MACs at 224 px, want %.4g within 3%%", c.backbone, got, c.want)
		}
	}
}
