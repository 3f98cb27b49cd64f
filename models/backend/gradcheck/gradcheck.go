// Package gradcheck compares the gradients GoMLX builds (graph.Gradient) with central finite
// differences computed in float64, so that tests of any package can check a VJP or a
// composed operation: build the function, call Check, assert on Report.WorstRelErr.
//
// Only float64 inputs are accepted: in float32 the differences drown in rounding.
// Functions with kinks (max pooling, ReLU, Abs) must be given inputs away from the kinks,
// or a probe that straddles one reports a large error.
package gradcheck

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Func builds the function under test from its input nodes. Its output may have any shape:
// a non-scalar output y is checked through the scalar sum(y * r), where r is a fixed
// pseudo-random tensor, so that every output element matters.
type Func func(inputs []*graph.Node) *graph.Node

// Options tune Check. The zero value gives the defaults.
type Options struct {
	// Step is the central-difference step h: (f(x+h) - f(x-h)) / 2h. Default 1e-5.
	Step float64

	// MaxProbes is the number of elements perturbed per input; inputs with more elements get
	// a fixed pseudo-random subset. Default 40.
	MaxProbes int

	// Floor sets the smallest denominator of the relative error, as a fraction of the largest
	// analytic gradient magnitude of the same input; it keeps gradients that are zero (or
	// nearly) from reporting huge relative errors. Default 1e-3.
	Floor float64

	// Seed chooses the probed elements and the output weights r. Default 1.
	Seed uint64
}

// Report is the outcome of Check: the worst probe, by relative error.
type Report struct {
	// WorstRelErr is |analytic - numeric| / max(|analytic|, |numeric|, floor) of the worst probe.
	WorstRelErr float64

	// Input and Index locate the worst probe: the input's position and the flat index in it.
	Input, Index int

	// Analytic and Numeric are the two gradient values at the worst probe.
	Analytic, Numeric float64

	// Probes is the number of elements perturbed over all inputs.
	Probes int
}

// String formats the report for a test failure message.
func (r Report) String() string {
	return fmt.Sprintf("worst relative error %.3g at input %d element %d "+
		"(analytic %.6g, numeric %.6g; %d probes)",
		r.WorstRelErr, r.Input, r.Index, r.Analytic, r.Numeric, r.Probes)
}

// Check builds fn on the backend, computes graph.Gradient of its (scalar-reduced) output with
// respect to every input, and compares it with central differences at up to
// Options.MaxProbes elements per input. Every input must be a float64 tensor.
// An error means the function or its gradient could not be built or run, not that the
// gradient is wrong: that is what the Report says.
func Check(backend backends.Backend, fn Func, inputs []*tensors.Tensor, opts Options) (
	report Report, err error) {
	opts = withDefaults(opts)
	if len(inputs) == 0 {
		return report, errors.New("gradcheck: no inputs given; pass at least one float64 tensor")
	}
	for i, t := range inputs {
		if t.DType() != dtypes.Float64 {
			return report, fmt.Errorf("gradcheck: input %d is %s; convert it to float64", i, t.Shape())
		}
	}

	lossFn := func(nodes []*graph.Node) *graph.Node { return scalarLoss(fn(nodes), opts.Seed) }
	gradFn := func(nodes []*graph.Node) []*graph.Node {
		loss := scalarLoss(fn(nodes), opts.Seed)
		return graph.Gradient(loss, nodes...)
	}
	lossExec, err := graph.NewExec(backend, lossFn)
	if err != nil {
		return report, fmt.Errorf("gradcheck: building the loss: %w", err)
	}
	defer lossExec.Finalize()
	gradExec, err := graph.NewExec(backend, gradFn)
	if err != nil {
		return report, fmt.Errorf("gradcheck: building the gradient: %w", err)
	}
	defer gradExec.Finalize()

	// Analytic gradients.
	flats := make([][]float64, len(inputs))
	args := make([]any, len(inputs))
	for i, t := range inputs {
		flats[i] = tensors.MustCopyFlatData[float64](t)
		args[i] = t
	}
	grads, err := gradExec.Exec(args...)
	if err != nil {
		return report, fmt.Errorf("gradcheck: running the gradient: %w", err)
	}
	analytic := make([][]float64, len(grads))
	for i, g := range grads {
		analytic[i] = tensors.MustCopyFlatData[float64](g)
	}

	// Numeric gradients at the probes.
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
	report.WorstRelErr = -1
	for i := range inputs {
		floor := opts.Floor * maxAbs(analytic[i])
		if floor == 0 {
			floor = opts.Floor
		}
		for _, idx := range probes(len(flats[i]), opts.MaxProbes, rng) {
			numeric, err := centralDifference(lossExec, inputs, flats[i], i, idx, opts.Step)
			if err != nil {
				return report, err
			}
			a := analytic[i][idx]
			rel := math.Abs(a-numeric) / math.Max(math.Max(math.Abs(a), math.Abs(numeric)), floor)
			report.Probes++
			if rel > report.WorstRelErr || math.IsNaN(rel) {
				report.WorstRelErr, report.Input, report.Index = rel, i, idx
				report.Analytic, report.Numeric = a, numeric
			}
		}
	}
	return report, nil
}

func withDefaults(opts Options) Options {
	if opts.Step <= 0 {
		opts.Step = 1e-5
	}
	if opts.MaxProbes <= 0 {
		opts.MaxProbes = 40
	}
	if opts.Floor <= 0 {
		opts.Floor = 1e-3
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	return opts
}

// scalarLoss reduces y to a scalar: y itself if scalar, else sum(y * r) with fixed weights r.
func scalarLoss(y *graph.Node, seed uint64) *graph.Node {
	if y.Shape().IsScalar() {
		return y
	}
	rng := rand.New(rand.NewPCG(seed, 0x2545f4914f6cdd1d))
	weights := make([]float64, y.Shape().Size())
	for i := range weights {
		weights[i] = 0.5 + rng.Float64()
	}
	r := graph.ConstTensor(y.Graph(),
		tensors.FromFlatDataAndDimensions(weights, y.Shape().Dimensions...))
	return graph.ReduceAllSum(graph.Mul(graph.ConvertDType(y, dtypes.Float64), r))
}

// probes returns the flat indices to perturb: all of them, or maxProbes distinct ones.
func probes(size, maxProbes int, rng *rand.Rand) []int {
	if size <= maxProbes {
		out := make([]int, size)
		for i := range out {
			out[i] = i
		}
		return out
	}
	return rng.Perm(size)[:maxProbes]
}

// centralDifference evaluates the loss with element idx of input i moved by +step and -step;
// the other inputs are passed unchanged.
func centralDifference(lossExec *graph.Exec, inputs []*tensors.Tensor, flat []float64,
	i, idx int, step float64) (float64, error) {
	eval := func(delta float64) (float64, error) {
		args := make([]any, len(inputs))
		for j, t := range inputs {
			args[j] = t
		}
		moved := append([]float64(nil), flat...)
		moved[idx] += delta
		args[i] = tensors.FromFlatDataAndDimensions(moved, inputs[i].Shape().Dimensions...)
		out, err := lossExec.Exec(args...)
		if err != nil {
			return 0, fmt.Errorf("gradcheck: running the loss: %w", err)
		}
		return tensors.ToScalar[float64](out[0]), nil
	}
	plus, err := eval(step)
	if err != nil {
		return 0, err
	}
	minus, err := eval(-step)
	if err != nil {
		return 0, err
	}
	return (plus - minus) / (2 * step), nil
}

func maxAbs(values []float64) float64 {
	m := 0.0
	for _, v := range values {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

// Uniform returns a float64 tensor of the given dimensions filled with values drawn uniformly
// from [-1, 1) by a generator seeded with seed: distinct values, as max pooling needs.
func Uniform(seed uint64, dims ...int) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 0xda942042e4dd58b5))
	size := 1
	for _, d := range dims {
		size *= d
	}
	values := make([]float64, size)
	for i := range values {
		values[i] = 2*rng.Float64() - 1
	}
	return tensors.FromFlatDataAndDimensions(values, dims...)
}
