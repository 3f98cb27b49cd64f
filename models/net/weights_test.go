package net

import (
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/maskwatch/maskwatch/models/backend"
)

func TestWeightsRoundTrip(t *testing.T) {
	n := small(t)
	ctx := context.New()
	if err := n.Init(ctx, 3); err != nil {
		t.Fatal(err)
	}
	w, err := n.Weights(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != len(n.Vars()) || !slices.IsSorted(w.Names()) {
		t.Fatalf("%d weights for %d variables", len(w), len(n.Vars()))
	}
	if got := w["conv/weights"].Shape; !slices.Equal(got, []int{3, 3, 3, 8}) {
		t.Errorf("conv weights of shape %v", got)
	}
	w["bn/mean"].Values[0] = 42
	other := context.New()
	if err := n.SetWeights(other, w); err != nil {
		t.Fatal(err)
	}
	back, err := n.Weights(other)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range w {
		if !slices.Equal(back[name].Values, v.Values) {
			t.Errorf("%s changed in the round trip", name)
		}
	}
	if v := In(other, "bn").InspectVariableInScope(VarMean); v == nil || v.Trainable {
		t.Error("batch-norm running mean is trainable after SetWeights")
	}
	delete(w, "dw/weights")
	if err := w.Check(n); err == nil || !strings.Contains(err.Error(), "dw/weights") {
		t.Errorf("missing weight: %v", err)
	}
}

// The runner returns any layers asked for, including ones inside the
// network, and agrees with Apply.
func TestRunner(t *testing.T) {
	n := small(t)
	ctx := context.New()
	if err := n.Init(ctx, 1); err != nil {
		t.Fatal(err)
	}
	w, err := n.Weights(ctx)
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.New("")
	if err != nil {
		t.Fatal(err)
	}
	in := Tensor{Shape: []int{1, 8, 8, 3}, Values: make([]float32, 8*8*3)}
	for i := range in.Values {
		in.Values[i] = float32(i%13) / 13
	}
	all, err := NewRunner(be, n, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	out, err := all.Run(in)
	if err != nil || len(out) != 1 || !slices.Equal(out[0].Shape, []int{1, 4, 4, 8}) {
		t.Fatalf("outputs %v, %v", out, err)
	}
	// "act" (layer 3) and the input, with layers after them unused.
	part, err := NewRunner(be, n, w, []int{3, 0})
	if err != nil {
		t.Fatal(err)
	}
	defer part.Close()
	got, err := part.Run(in)
	if err != nil || len(got) != 2 {
		t.Fatalf("outputs %v, %v", got, err)
	}
	if !slices.Equal(got[1].Values, in.Values) {
		t.Error("the input layer asked back differs from the input")
	}
	if _, err := part.Run(Tensor{Shape: []int{1, 8, 8, 3}}); err == nil {
		t.Error("an input without values ran")
	}
	if _, err := NewRunner(be, n, w, []int{99}); err == nil {
		t.Error("a runner of layer 99 built")
	}
}
