package tflite

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"

	"github.com/maskwatch/maskwatch/models/net"
)

// Calibrator records the range of every layer's output while the float
// network runs on real inputs: what int8 quantisation needs. It keeps the
// smallest and largest value each layer output took over all inputs
// (TFLite's own min/max calibration). It is not safe for concurrent use.
type Calibrator struct {
	n      *net.Net
	runner *net.Runner
	ranges Ranges
	// outputs are the positions in runner.Layers of n.Outputs.
	outputs []int
	count   int
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
	return &Calibrator{n: n, runner: runner, ranges: Ranges{}, outputs: n.Outputs}, nil
}

// Add runs the network on inputs (one a Net.Inputs), widens the ranges,
// and returns the network's outputs.
func (c *Calibrator) Add(inputs ...net.Tensor) ([]net.Tensor, error) {
	all, err := c.runner.Run(inputs...)
	if err != nil {
		return nil, fmt.Errorf("tflite: calibration: %w", err)
	}
	for k, i := range c.runner.Layers {
		name := c.n.Layers[i].Name
		r, seen := c.ranges[name]
		if !seen {
			r = Range{Min: float32(math.Inf(1)), Max: float32(math.Inf(-1))}
		}
		for _, v := range all[k].Values {
			if v < r.Min {
				r.Min = v
			}
			if v > r.Max {
				r.Max = v
			}
		}
		if math.IsNaN(float64(r.Min)) || math.IsNaN(float64(r.Max)) {
			return nil, fmt.Errorf("tflite: calibration: layer %q gave NaN: the weights "+
				"are broken", name)
		}
		c.ranges[name] = r
	}
	c.count++
	outputs := make([]net.Tensor, len(c.outputs))
	for k, o := range c.outputs {
		outputs[k] = all[o]
	}
	return outputs, nil
}

// Count is the number of Add calls so far.
func (c *Calibrator) Count() int { return c.count }

// Ranges returns a copy of the ranges recorded so far.
func (c *Calibrator) Ranges() Ranges {
	out := make(Ranges, len(c.ranges))
	for k, v := range c.ranges {
		out[k] = v
	}
	return out
}

// Close releases the calibration graphs.
func (c *Calibrator) Close() { c.runner.Close() }
