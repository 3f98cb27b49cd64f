package net

import (
	"fmt"
	"slices"
	"sort"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Tensor is an array of float32 values in row-major order.
type Tensor struct {
	Shape  []int
	Values []float32
}

// Weights are a network's variables outside GoMLX, by full name
// "LAYER/VARIABLE" ("backbone/stem/conv/weights"): what the TFLite writer
// folds and the model bundle carries.
type Weights map[string]Tensor

// Var is one variable a network needs.
type Var struct {
	Layer string // the layer's name
	Name  string // VarWeights, VarBias, VarGamma, ...
	Shape []int
	// Trainable is false for batch-norm running statistics.
	Trainable bool
}

// FullName is the variable's key in Weights.
func (v Var) FullName() string { return v.Layer + "/" + v.Name }

// Vars lists the variables the network needs, layer by layer.
func (n *Net) Vars() []Var {
	var vars []Var
	for _, l := range n.Layers {
		switch l.Op {
		case Conv, Dense:
			vars = append(vars, Var{l.Name, VarWeights, n.WeightShape(l), true})
			if l.Bias || l.Op == Dense {
				vars = append(vars, Var{l.Name, VarBias, []int{l.Channels}, true})
			}
		case BatchNorm:
			for _, name := range []string{VarGamma, VarBeta, VarMean, VarVariance} {
				trainable := name == VarGamma || name == VarBeta
				vars = append(vars, Var{l.Name, name, []int{l.Channels}, trainable})
			}
		}
	}
	return vars
}

// Weights copies the network's variables out of ctx (the scope the network
// was initialised in). It fails, naming the variable, when one is missing
// or of another shape or dtype.
func (n *Net) Weights(ctx *context.Context) (Weights, error) {
	w := Weights{}
	for _, v := range n.Vars() {
		cv := In(ctx, v.Layer).InspectVariableInScope(v.Name)
		if cv == nil {
			return nil, fmt.Errorf("net: layer %q has no %s", v.Layer, v.Name)
		}
		value, err := cv.Value()
		if err != nil {
			return nil, fmt.Errorf("net: %s: %w", v.FullName(), err)
		}
		if got := value.Shape().Dimensions; !slices.Equal(got, v.Shape) {
			return nil, fmt.Errorf("net: %s of shape %v, want %v", v.FullName(), got, v.Shape)
		}
		values, err := tensors.CopyFlatData[float32](value)
		if err != nil {
			return nil, fmt.Errorf("net: %s: %w", v.FullName(), err)
		}
		w[v.FullName()] = Tensor{Shape: slices.Clone(v.Shape), Values: values}
	}
	return w, nil
}

// Check reports a variable the network needs that w lacks or holds with
// another shape or size.
func (w Weights) Check(n *Net) error {
	for _, v := range n.Vars() {
		t, ok := w[v.FullName()]
		if !ok {
			return fmt.Errorf("net: weights lack %s", v.FullName())
		}
		if !slices.Equal(t.Shape, v.Shape) || len(t.Values) != product(v.Shape) {
			return fmt.Errorf("net: %s has shape %v and %d values, want shape %v",
				v.FullName(), t.Shape, len(t.Values), v.Shape)
		}
	}
	return nil
}

// SetWeights creates the network's variables in ctx with the values of w,
// or overwrites those that exist. w must pass Check.
func (n *Net) SetWeights(ctx *context.Context, w Weights) error {
	if err := w.Check(n); err != nil {
		return err
	}
	for _, v := range n.Vars() {
		t := w[v.FullName()]
		value := tensors.FromFlatDataAndDimensions(slices.Clone(t.Values), t.Shape...)
		scope := In(ctx, v.Layer)
		if cv := scope.InspectVariableInScope(v.Name); cv != nil {
			if err := cv.SetValue(value); err != nil {
				return fmt.Errorf("net: %s: %w", v.FullName(), err)
			}
			continue
		}
		scope.VariableWithValue(v.Name, value).SetTrainable(v.Trainable)
	}
	return nil
}

// Names returns the weights' names, sorted.
func (w Weights) Names() []string {
	names := make([]string, 0, len(w))
	for name := range w {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
