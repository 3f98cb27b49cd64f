package net

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Recalibration pools the batch-norm statistics of several batches, as
// ApplyWithStatistics returns them, into population statistics that replace
// the running averages. Training from scratch moves the weights faster than
// a running average with momentum BNMomentum follows, so a network
// normalised with those averages behaves unlike the one trained; statistics
// measured with the final weights close that gap ("precise BN", Wu and
// Johnson, "Rethinking Batch in BatchNorm", 2021).
type Recalibration struct {
	net *Net
	bn  []int
	// mean and square sum, per layer and channel, the batches' means and
	// their second moments (variance + mean²).
	mean, square [][]float64
	batches      int
}

// NewRecalibration starts pooling statistics for n's batch-norm layers.
func (n *Net) NewRecalibration() *Recalibration {
	r := &Recalibration{net: n, bn: n.BatchNormLayers()}
	for _, i := range r.bn {
		c := n.Layers[i].Channels
		r.mean = append(r.mean, make([]float64, c))
		r.square = append(r.square, make([]float64, c))
	}
	return r
}

// Batches is the number of batches added.
func (r *Recalibration) Batches() int { return r.batches }

// Add pools one batch's statistics, as ApplyWithStatistics returns them.
// Every batch weighs the same, so batches should be of one size.
func (r *Recalibration) Add(statistics *tensors.Tensor) error {
	values, err := tensors.CopyFlatData[float32](statistics)
	if err != nil {
		return fmt.Errorf("net: batch statistics: %w", err)
	}
	total := 0
	for _, m := range r.mean {
		total += len(m)
	}
	if len(values) != 2*total {
		return fmt.Errorf("net: %d batch statistics, want 2 x %d channels of %d batch-norm "+
			"layers", len(values), total, len(r.bn))
	}
	at := 0
	for k := range r.mean {
		for j := range r.mean[k] {
			m, v := float64(values[at+j]), float64(values[total+at+j])
			r.mean[k][j] += m
			r.square[k][j] += v + m*m
		}
		at += len(r.mean[k])
	}
	r.batches++
	return nil
}

// Apply sets the running mean and variance of every batch-norm layer in ctx
// (the network's scope) to the pooled statistics.
func (r *Recalibration) Apply(ctx *context.Context) error {
	if r.batches == 0 {
		return fmt.Errorf("net: no batches to recalibrate batch norm with")
	}
	ctx = ctx.Reuse()
	n := float64(r.batches)
	for k, i := range r.bn {
		name := r.net.Layers[i].Name
		c := len(r.mean[k])
		mean, variance := make([]float32, c), make([]float32, c)
		for j := range c {
			m := r.mean[k][j] / n
			mean[j] = float32(m)
			variance[j] = float32(max(r.square[k][j]/n-m*m, 0))
		}
		scope := In(ctx, name)
		for varName, values := range map[string][]float32{VarMean: mean, VarVariance: variance} {
			v := scope.InspectVariableInScope(varName)
			if v == nil {
				return fmt.Errorf("net: layer %q has no %s", name, varName)
			}
			if err := v.SetValue(tensors.FromFlatDataAndDimensions(values, c)); err != nil {
				return fmt.Errorf("net: layer %q: %s: %w", name, varName, err)
			}
		}
	}
	return nil
}
