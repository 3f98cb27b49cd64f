package stats

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestLatencyQuantiles(t *testing.T) {
	var l Latency
	for i := 1; i <= 100; i++ {
		l.Add(time.Duration(i) * time.Millisecond)
	}
	r := l.Recent(0.5, 0.99, 1)
	if r[0] != 50*time.Millisecond || r[1] != 99*time.Millisecond || r[2] != 100*time.Millisecond {
		t.Errorf("recent p50/p99/max = %v", r)
	}
	tot := l.Total(0.5, 0.99)
	for i, want := range []time.Duration{50 * time.Millisecond, 99 * time.Millisecond} {
		if d := tot[i] - want; d < 0 || d > want/50 {
			t.Errorf("total quantile %d = %v, want %v within 2%%", i, tot[i], want)
		}
	}
	if l.Count() != 100 || l.Sum() != 5050*time.Millisecond {
		t.Errorf("count %d sum %v", l.Count(), l.Sum())
	}
}

// TestLatencyRecentForgets: the recent window holds only the last 512
// samples, the totals all of them.
func TestLatencyRecentForgets(t *testing.T) {
	var l Latency
	for i := 0; i < 1000; i++ {
		l.Add(time.Second)
	}
	for i := 0; i < recent; i++ {
		l.Add(time.Millisecond)
	}
	if r := l.Recent(0.99)[0]; r != time.Millisecond {
		t.Errorf("recent p99 %v after the slow samples left the window", r)
	}
	if tot := l.Total(0.5)[0]; tot < 990*time.Millisecond {
		t.Errorf("total p50 %v, want about 1s", tot)
	}
}

func TestLatencyTotalMatchesExact(t *testing.T) {
	var l Latency
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for i := 0; i < 5000; i++ {
		d := time.Duration(rng.ExpFloat64() * float64(20*time.Millisecond))
		all = append(all, d)
		l.Add(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		exact := all[rank(q, len(all))]
		got := l.Total(q)[0]
		if got < exact || float64(got) > float64(exact)*1.021 {
			t.Errorf("q%.2f: %v, exact %v", q, got, exact)
		}
	}
}

func TestRate(t *testing.T) {
	var r Rate
	t0 := time.Unix(1000, 0)
	if r.PerSecond(t0) != 0 {
		t.Error("rate before any tick")
	}
	for i := 0; i < 100; i++ {
		r.Tick(t0.Add(time.Duration(i) * 40 * time.Millisecond))
	}
	now := t0.Add(99 * 40 * time.Millisecond)
	if got := r.PerSecond(now); got < 24.9 || got > 25.1 {
		t.Errorf("rate %.2f/s, want 25", got)
	}
	if got := r.PerSecond(now.Add(10 * time.Second)); got > 6 {
		t.Errorf("rate %.2f/s ten seconds after the last tick", got)
	}
}
