package net

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Runner runs a network in inference mode on a backend, with weights given
// as Weights rather than a training context: what the GoMLX detector engine
// and the int8 calibration use. It compiles once per distinct input shape.
// It is not safe for concurrent use.
type Runner struct {
	net  *Net
	exec *context.Exec
	// Layers are the indices of the layers Run returns, in order.
	Layers []int
}

// NewRunner prepares n with weights w on backend, returning the outputs of
// the layers given (indices into n.Layers); nil means n.Outputs.
func NewRunner(backend backends.Backend, n *Net, w Weights, layers []int) (*Runner, error) {
	if layers == nil {
		layers = n.Outputs
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("net: runner without outputs")
	}
	for _, i := range layers {
		if i < 0 || i >= len(n.Layers) {
			return nil, fmt.Errorf("net: runner output %d: no such layer", i)
		}
	}
	ctx := context.New()
	if err := n.SetWeights(ctx, w); err != nil {
		return nil, err
	}
	// The graph must hold no dead node: GoMLX v0.26.0's pure-Go backend
	// fails ("index out of range") executing graphs whose unused nodes it
	// prunes. Layers after the last output are left out, and any layer
	// nothing reads is made an output too and dropped by Run.
	view := *n
	last := slices.Max(layers)
	view.Layers = n.Layers[:last+1]
	view.Outputs = slices.Clone(layers)
	read := make([]bool, last+1)
	for _, l := range view.Layers {
		for _, in := range l.Inputs {
			read[in] = true
		}
	}
	for _, i := range layers {
		read[i] = true
	}
	for i := range view.Layers {
		if !read[i] {
			view.Outputs = append(view.Outputs, i)
		}
	}
	exec, err := context.NewExecAny(backend, ctx, func(ctx *context.Context,
		in []*graph.Node) []*graph.Node {
		outputs := view.Apply(ctx, Inference, in...)
		for i, at := range view.Outputs {
			if view.Layers[at].Op == Input {
				// An input asked back is copied, so the graph has an op for it.
				outputs[i] = graph.Identity(outputs[i])
			}
		}
		return outputs
	})
	if err != nil {
		return nil, fmt.Errorf("net: building the runner: %w", err)
	}
	exec.SetMaxCache(16)
	return &Runner{net: n, exec: exec, Layers: slices.Clone(layers)}, nil
}

// Run applies the network to inputs (one a Net.Inputs, NHWC) and returns
// the chosen layers' outputs.
func (r *Runner) Run(inputs ...Tensor) ([]Tensor, error) {
	if len(inputs) != len(r.net.Inputs) {
		return nil, fmt.Errorf("net: %d inputs given, the network takes %d", len(inputs),
			len(r.net.Inputs))
	}
	args := make([]any, len(inputs))
	for i, in := range inputs {
		if len(in.Values) != product(in.Shape) || len(in.Shape) == 0 {
			return nil, fmt.Errorf("net: input %d: %d values for shape %v", i, len(in.Values),
				in.Shape)
		}
		args[i] = tensors.FromFlatDataAndDimensions(in.Values, in.Shape...)
	}
	out, err := r.exec.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("net: run: %w", err)
	}
	result := make([]Tensor, len(r.Layers))
	for i, t := range out {
		if i >= len(result) {
			t.MustFinalizeAll()
			continue
		}
		values, err := tensors.CopyFlatData[float32](t)
		shape := slices.Clone(t.Shape().Dimensions)
		t.MustFinalizeAll()
		if err != nil {
			return nil, fmt.Errorf("net: run: output %d: %w", i, err)
		}
		result[i] = Tensor{Shape: shape, Values: values}
	}
	return result, nil
}

// Close releases the compiled graphs.
func (r *Runner) Close() {
	if r.exec != nil {
		r.exec.Finalize()
		r.exec = nil
	}
}
