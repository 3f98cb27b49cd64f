package tflite

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/backends"

	"github.com/maskwatch/maskwatch/models/net"
)

// Calibrator records the smallest and largest value of every layer's output
// on each of a series of real inputs, while the float network runs them:
// what int8 quantisation needs. Ranges pools them. It is not safe for
// concurrent use.
type Calibrator struct {
	n      *net.Net
	runner *net.Runner
	// lo and hi are each layer's extremes, one an input, by layer name.
	lo, hi map[string][]float32
	count  int
}

// NewCalibrator prepares calibration of n with weights w on backend.
func NewCalibrator(backend backends.Backend, n *net.Net, w net.Weights) (*Calibrator, error) {
	layers := make([]int, 0, len(n.Layers))
	for i := range n.Layers {
		layers = append(layers, i)
	}
	runner, err := net.NewRunner(backend, n, w, layers)
	if err != nil {
		return nil, fmt.Errorf("tflite: calibration: %w", err)
	}
	return &Calibrator{n: n, runner: runner, lo: map[string][]float32{},
		hi: map[string][]float32{}}, nil
}

// Add runs the network on inputs (one a Net.Inputs), records each layer's
// extremes, and returns the network's outputs.
func (c *Calibrator) Add(inputs ...net.Tensor) ([]net.Tensor, error) {
	all, err := c.runner.Run(inputs...)
	if err != nil {
		return nil, fmt.Errorf("tflite: calibration: %w", err)
	}
	for k, i := range c.runner.Layers {
		name := c.n.Layers[i].Name
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for _, v := range all[k].Values {
			lo, hi = min(lo, v), max(hi, v)
		}
		if math.IsNaN(float64(lo)) || math.IsNaN(float64(hi)) || len(all[k].Values) == 0 {
			return nil, fmt.Errorf("tflite: calibration: layer %q gave NaN or nothing: the "+
				"weights are broken", name)
		}
		c.lo[name] = append(c.lo[name], lo)
		c.hi[name] = append(c.hi[name], hi)
	}
	c.count++
	outputs := make([]net.Tensor, len(c.n.Outputs))
	for k, o := range c.n.Outputs {
		outputs[k] = all[o]
	}
	return outputs, nil
}

// Count is the number of Add calls so far.
func (c *Calibrator) Count() int { return c.count }

// Method is how Ranges pools the extremes of the calibration inputs:
//
//   - "minmax": the smallest minimum and the largest maximum, TFLite's own
//     post-training rule; one input with an outlier widens the range for all.
//   - "mean": the mean of the inputs' minima and of their maxima; inputs
//     beyond it saturate, the rest keep a finer scale.
//   - "percentile:P": the P-th percentile of the maxima and the (100-P)-th
//     of the minima, for P in [50, 100].
type Method string

// DefaultMethod is the rule exports use.
const DefaultMethod Method = "mean"

// ParseMethod checks a Method.
func ParseMethod(s string) (Method, error) {
	if s == "minmax" || s == "mean" {
		return Method(s), nil
	}
	if rest, ok := strings.CutPrefix(s, "percentile:"); ok {
		if p, err := strconv.ParseFloat(rest, 64); err == nil && p >= 50 && p <= 100 {
			return Method(s), nil
		}
	}
	return "", fmt.Errorf("calibration method %q: use minmax, mean or percentile:P "+
		"(P from 50 to 100)", s)
}

// Ranges pools the extremes recorded so far by method.
func (c *Calibrator) Ranges(method Method) (Ranges, error) {
	if _, err := ParseMethod(string(method)); err != nil {
		return nil, err
	}
	out := make(Ranges, len(c.lo))
	for name, los := range c.lo {
		out[name] = Range{Min: pool(los, method, false), Max: pool(c.hi[name], method, true)}
	}
	return out, nil
}

// pool pools one layer's extremes (maxima when upper, minima otherwise).
func pool(values []float32, method Method, upper bool) float32 {
	v := slices.Clone(values)
	slices.Sort(v)
	switch {
	case method == "minmax" && upper:
		return v[len(v)-1]
	case method == "minmax":
		return v[0]
	case method == "mean":
		var sum float64
		for _, x := range v {
			sum += float64(x)
		}
		return float32(sum / float64(len(v)))
	}
	p, _ := strconv.ParseFloat(strings.TrimPrefix(string(method), "percentile:"), 64)
	if !upper {
		p = 100 - p
	}
	at := int(math.Round(p / 100 * float64(len(v)-1)))
	return v[min(max(at, 0), len(v)-1)]
}

// Close releases the calibration graphs.
func (c *Calibrator) Close() { c.runner.Close() }
