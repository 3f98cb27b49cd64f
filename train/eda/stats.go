package eda

import (
	"math"
	"slices"
)

// Stats describes a sample of numbers by its size, extremes, quartiles and mean.
// The quartiles interpolate linearly between the two nearest order statistics
// (position p·(n−1) in the sorted sample, the default of R and NumPy).
// An empty sample gives Count 0 and every other field 0, since JSON has no NaN.
type Stats struct {
	Count  int     `json:"count"`
	Min    float64 `json:"min"`
	Q1     float64 `json:"q1"`
	Median float64 `json:"median"`
	Q3     float64 `json:"q3"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
}

// Describe computes the Stats of values; it leaves values unchanged.
// NaN and infinite values are skipped.
func Describe(values []float64) Stats {
	sorted := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			sorted = append(sorted, v)
		}
	}
	if len(sorted) == 0 {
		return Stats{}
	}
	slices.Sort(sorted)

	sum := 0.0
	for _, v := range sorted {
		sum += v
	}
	return Stats{
		Count:  len(sorted),
		Min:    sorted[0],
		Q1:     quantile(sorted, 0.25),
		Median: quantile(sorted, 0.5),
		Q3:     quantile(sorted, 0.75),
		Max:    sorted[len(sorted)-1],
		Mean:   sum / float64(len(sorted)),
	}
}

// quantile reads the p-quantile of a sorted, non-empty sample.
func quantile(sorted []float64, p float64) float64 {
	pos := p * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(lo)
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}
