// Package stats keeps the live figures of the pipeline: frame rate and
// latency quantiles, both for the last moments (status page, metrics) and
// for a whole run (the --stats-json report), in constant memory.
package stats

import (
	"math"
	"slices"
	"sync"
	"time"
)

// recent is how many of the last samples Latency keeps for its recent
// quantiles.
const recent = 512

// Histogram buckets grow by 2%, from 10 µs up to about 100 s: a quantile
// read from them is within 2% of the true value.
const (
	bucketBase   = 10 * time.Microsecond
	bucketGrowth = 1.02
	buckets      = 820
)

var logGrowth = math.Log(bucketGrowth)

// Latency records durations. It is safe for concurrent use.
type Latency struct {
	mu     sync.Mutex
	ring   [recent]time.Duration
	n      int // samples in ring
	next   int
	hist   [buckets]uint64
	count  uint64
	sum    time.Duration
	maxVal time.Duration
}

// Add records one duration.
func (l *Latency) Add(d time.Duration) {
	b := bucket(d)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = d
	l.next = (l.next + 1) % recent
	l.n = min(l.n+1, recent)
	l.hist[b]++
	l.count++
	l.sum += d
	l.maxVal = max(l.maxVal, d)
}

func bucket(d time.Duration) int {
	if d <= bucketBase {
		return 0
	}
	b := int(math.Ceil(math.Log(float64(d)/float64(bucketBase)) / logGrowth))
	return min(b, buckets-1)
}

func bucketUpper(b int) time.Duration {
	return time.Duration(float64(bucketBase) * math.Pow(bucketGrowth, float64(b)))
}

// Recent returns the quantiles qs (0 to 1) of the last 512 samples, exactly;
// zeros when there is none.
func (l *Latency) Recent(qs ...float64) []time.Duration {
	l.mu.Lock()
	s := slices.Clone(l.ring[:l.n])
	l.mu.Unlock()
	out := make([]time.Duration, len(qs))
	if len(s) == 0 {
		return out
	}
	slices.Sort(s)
	for i, q := range qs {
		out[i] = s[rank(q, len(s))]
	}
	return out
}

// rank is the index of quantile q among n sorted samples (nearest rank).
func rank(q float64, n int) int {
	r := int(math.Ceil(q*float64(n))) - 1
	return max(0, min(n-1, r))
}

// Total returns the quantiles qs over every sample since the start, within
// 2% (the upper edge of the sample's bucket, capped at the largest sample).
func (l *Latency) Total(qs ...float64) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]time.Duration, len(qs))
	if l.count == 0 {
		return out
	}
	for i, q := range qs {
		want := uint64(rank(q, int(l.count))) + 1
		var seen uint64
		for b, c := range l.hist {
			seen += c
			if seen >= want {
				out[i] = min(bucketUpper(b), l.maxVal)
				break
			}
		}
	}
	return out
}

// Count and Sum are over every sample since the start.
func (l *Latency) Count() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// Sum is the total of every sample since the start.
func (l *Latency) Sum() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sum
}

// Rate measures events per second over the last 64 events. It is safe for
// concurrent use.
type Rate struct {
	mu    sync.Mutex
	times [64]time.Time
	n     int
	next  int
}

// Tick records one event at t.
func (r *Rate) Tick(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times[r.next] = t
	r.next = (r.next + 1) % len(r.times)
	r.n = min(r.n+1, len(r.times))
}

// PerSecond is the rate over the recorded events, 0 with fewer than two, and
// falling towards 0 when events stop (the time since the last one counts).
func (r *Rate) PerSecond(now time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n < 2 {
		return 0
	}
	first := r.times[(r.next-r.n+len(r.times))%len(r.times)]
	last := r.times[(r.next-1+len(r.times))%len(r.times)]
	span := last.Sub(first)
	if gap := now.Sub(last); gap > span/time.Duration(r.n-1) {
		span += gap
	}
	if span <= 0 {
		return 0
	}
	return float64(r.n-1) / span.Seconds()
}
