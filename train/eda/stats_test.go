package eda

import (
	"math"
	"slices"
	"testing"
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []float64
		want   Stats
	}{
		{
			// positions 0.75, 1.5, 2.25 between 1, 2, 3, 4
			name: "four", values: []float64{4, 1, 3, 2},
			want: Stats{Count: 4, Min: 1, Q1: 1.75, Median: 2.5, Q3: 3.25, Max: 4, Mean: 2.5},
		},
		{
			// sorted 1, 3, 7: q1 halfway from 1 to 3, q3 halfway from 3 to 7
			name: "three", values: []float64{7, 1, 3},
			want: Stats{Count: 3, Min: 1, Q1: 2, Median: 3, Q3: 5, Max: 7, Mean: 11.0 / 3},
		},
		{
			name: "five", values: []float64{50, 10, 40, 20, 30},
			want: Stats{Count: 5, Min: 10, Q1: 20, Median: 30, Q3: 40, Max: 50, Mean: 30},
		},
		{
			// sorted 2, 4, 4, 5, 9, 12: q1 at 1.25 -> 4, median at 2.5 -> 4.5, q3 at 3.75 -> 8
			name: "six", values: []float64{9, 4, 12, 2, 5, 4},
			want: Stats{Count: 6, Min: 2, Q1: 4, Median: 4.5, Q3: 8, Max: 12, Mean: 6},
		},
		{
			name: "one", values: []float64{5},
			want: Stats{Count: 1, Min: 5, Q1: 5, Median: 5, Q3: 5, Max: 5, Mean: 5},
		},
		{name: "empty", values: nil, want: Stats{}},
		{
			name: "skips NaN and Inf", values: []float64{math.NaN(), 2, math.Inf(1), 6},
			want: Stats{Count: 2, Min: 2, Q1: 3, Median: 4, Q3: 5, Max: 6, Mean: 4},
		},
		{name: "only NaN", values: []float64{math.NaN()}, want: Stats{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.values)
			got := Describe(tc.values)
			if !statsClose(got, tc.want) {
				t.Errorf("Describe(%v) = %+v, want %+v", before, got, tc.want)
			}
			if !slices.EqualFunc(before, tc.values, func(a, b float64) bool {
				return a == b || math.IsNaN(a) && math.IsNaN(b)
			}) {
				t.Errorf("Describe changed its input: %v, was %v", tc.values, before)
			}
		})
	}
}

func statsClose(a, b Stats) bool {
	close := func(x, y float64) bool { return math.Abs(x-y) <= 1e-12*math.Max(1, math.Abs(y)) }
	return a.Count == b.Count && close(a.Min, b.Min) && close(a.Q1, b.Q1) &&
		close(a.Median, b.Median) && close(a.Q3, b.Q3) && close(a.Max, b.Max) &&
		close(a.Mean, b.Mean)
}
