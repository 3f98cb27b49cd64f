package box

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMatchByHand(t *testing.T) {
	// Ground truths G0 [0,0,10,10] and G1 [20,0,30,10], 100 px^2 each.
	gts := []Box{{0, 0, 10, 10}, {20, 0, 30, 10}}
	boxes := []Box{
		{0, 0, 10, 10},     // IoU G0 = 1                    -> 0
		{0, 0, 10, 5},      // IoU G0 = 50/100 = 0.5, in [0.3, 0.7) -> ignored
		{0, 0, 10, 2},      // IoU G0 = 20/100 = 0.2 < 0.3  -> negative
		{20, 0, 30, 7},     // IoU G1 = 70/100 = 0.7 = high -> 1
		{50, 50, 60, 60},   // overlaps nothing             -> negative
		{5, 0, 25, 10},     // 50/250 = 0.2 with both       -> negative
		{0, 0, 10, 3},      // IoU G0 = 0.3 = low           -> ignored
		{22, 0, 30, 10.25}, // G1: 80/(100+82-80) = 0.78    -> 1
	}
	m := RPNMatcher()
	m.AllowLowQuality = false
	got := m.Match([]int{99}, boxes, gts)
	want := []int{99, 0, BetweenThresholds, BelowLow, 1, BelowLow, BelowLow, BetweenThresholds, 1}
	if !slices.Equal(got, want) {
		t.Errorf("Match = %v, want %v", got, want)
	}

	// Each ground truth's best box already matches it, so allowing
	// low-quality matches changes nothing here.
	m.AllowLowQuality = true
	if got := m.Match([]int{99}, boxes, gts); !slices.Equal(got, want) {
		t.Errorf("Match with low-quality matches = %v, want %v", got, want)
	}

	// The RoI head's matcher: positive from 0.5, negative below; nothing
	// ignored. IoU 0.5 is positive, 0.3 and 0.2 negative.
	roi := RoIMatcher()
	got = roi.Match(nil, boxes, gts)
	want = []int{0, 0, BelowLow, 1, BelowLow, BelowLow, BelowLow, 1}
	if !slices.Equal(got, want) {
		t.Errorf("RoI Match = %v, want %v", got, want)
	}
}

func TestMatchLowQuality(t *testing.T) {
	// G [100,100,200,200], 10000 px^2. Its best boxes, tied at IoU
	// 1500/10000 = 0.15, are B0 [100,100,150,130] and B2 [150,170,200,200];
	// B1 [100,100,130,130] has 900/10000 = 0.09.
	gts := []Box{{100, 100, 200, 200}}
	boxes := []Box{{100, 100, 150, 130}, {100, 100, 130, 130}, {150, 170, 200, 200}}
	m := RPNMatcher()
	if got, want := m.Match(nil, boxes, gts), []int{0, BelowLow, 0}; !slices.Equal(got, want) {
		t.Errorf("low-quality Match = %v, want %v (both tied best boxes)", got, want)
	}
	m.AllowLowQuality = false
	if got, want := m.Match(nil, boxes, gts), []int{-1, -1, -1}; !slices.Equal(got, want) {
		t.Errorf("Match = %v, want all negative", got)
	}

	// A box that is the best of G1 but equally close to G0 goes back to its
	// own best match, G0 (the first of the tie), as in torchvision: G1 ends
	// up with no box. [5,0,25,10] has 50/250 = 0.2 with each.
	gts = []Box{{0, 0, 10, 10}, {20, 0, 30, 10}}
	boxes = []Box{{5, 0, 25, 10}, {100, 100, 110, 110}}
	m.AllowLowQuality = true
	if got, want := m.Match(nil, boxes, gts), []int{0, BelowLow}; !slices.Equal(got, want) {
		t.Errorf("tied low-quality Match = %v, want %v", got, want)
	}

	// A ground truth no box overlaps gives no box a match: torchvision
	// would match every box of IoU 0 to it.
	gts = []Box{{0, 0, 10, 10}}
	boxes = []Box{{50, 50, 60, 60}, {70, 70, 80, 80}}
	if got, want := m.Match(nil, boxes, gts), []int{-1, -1}; !slices.Equal(got, want) {
		t.Errorf("Match to an unreachable ground truth = %v, want %v", got, want)
	}
}

func TestMatchEdges(t *testing.T) {
	m := RPNMatcher()
	boxes := []Box{{0, 0, 10, 10}, {5, 5, 6, 6}}
	if got := m.Match(nil, boxes, nil); !slices.Equal(got, []int{BelowLow, BelowLow}) {
		t.Errorf("no ground truth: %v, want all BelowLow", got)
	}
	if got := m.Match([]int{3}, nil, []Box{{0, 0, 1, 1}}); !slices.Equal(got, []int{3}) {
		t.Errorf("no boxes: %v, want the prefix alone", got)
	}
	// A ground truth of NaN coordinates has NaN IoU: no match at all.
	nan := []Box{{math.NaN(), 0, 10, 10}}
	if got := m.Match(nil, boxes, nan); !slices.Equal(got, []int{BelowLow, BelowLow}) {
		t.Errorf("NaN ground truth: %v, want all BelowLow", got)
	}
	// A zero-area ground truth overlaps nothing either.
	flat := []Box{{0, 0, 10, 0}}
	if got := m.Match(nil, boxes, flat); !slices.Equal(got, []int{BelowLow, BelowLow}) {
		t.Errorf("zero-area ground truth: %v, want all BelowLow", got)
	}

	// Warm, Match allocates nothing.
	dst := make([]int, 0, 2)
	gts := []Box{{0, 0, 10, 10}, {1, 1, 9, 9}}
	m.Match(dst, boxes, gts)
	if allocs := testing.AllocsPerRun(10, func() { m.Match(dst[:0], boxes, gts) }); allocs != 0 {
		t.Errorf("warm Match allocated %v times", allocs)
	}
}

func TestSampleBalances(t *testing.T) {
	// 10 positives at 0..9 (matched to ground truth i%2), 5 ignored at
	// 10..14, 100 negatives at 15..114. Batch 20 at 0.25: int(20*0.25) = 5
	// positives and 20-5 = 15 negatives.
	matches := make([]int, 0, 115)
	for i := range 10 {
		matches = append(matches, i%2)
	}
	for range 5 {
		matches = append(matches, BetweenThresholds)
	}
	for range 100 {
		matches = append(matches, BelowLow)
	}
	s := Sampler{BatchSize: 20, PositiveFraction: 0.25}

	pos, neg := s.Sample([]int{-7}, nil, matches, rand.New(rand.NewPCG(1, 1)))
	if len(pos) != 1+5 || pos[0] != -7 || len(neg) != 15 {
		t.Fatalf("got %d positives %v and %d negatives, want the prefix, 5 and 15",
			len(pos)-1, pos, len(neg))
	}
	checkDrawn(t, "positives", pos[1:], matches, func(m int) bool { return m >= 0 })
	checkDrawn(t, "negatives", neg, matches, func(m int) bool { return m == BelowLow })

	// The same seed draws the same.
	pos2, neg2 := s.Sample([]int{-7}, nil, matches, rand.New(rand.NewPCG(1, 1)))
	if !slices.Equal(pos, pos2) || !slices.Equal(neg, neg2) {
		t.Errorf("same seed drew %v %v, then %v %v", pos, neg, pos2, neg2)
	}
}

func TestSampleShortOfExamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	// 2 positives for a quota of int(8*0.5) = 4: both, and 8-2 = 6 negatives
	// of the 7 there are.
	matches := []int{BelowLow, 0, BelowLow, BelowLow, BetweenThresholds, BelowLow,
		BelowLow, 0, BelowLow, BelowLow}
	pos, neg := Sampler{BatchSize: 8, PositiveFraction: 0.5}.Sample(nil, nil, matches, rng)
	if !slices.Equal(pos, []int{1, 7}) || len(neg) != 6 {
		t.Errorf("got %v and %v, want [1 7] and 6 negatives", pos, neg)
	}
	checkDrawn(t, "negatives", neg, matches, func(m int) bool { return m == BelowLow })

	// Few negatives for a big batch: all of them.
	pos, neg = RPNSampler().Sample(nil, nil, matches, rng)
	if !slices.Equal(pos, []int{1, 7}) || !slices.Equal(neg, []int{0, 2, 3, 5, 6, 8, 9}) {
		t.Errorf("RPN sampler got %v and %v, want everything", pos, neg)
	}

	// Nothing to draw from.
	pos, neg = RoISampler().Sample(nil, nil, nil, rng)
	if len(pos) != 0 || len(neg) != 0 {
		t.Errorf("no matches drew %v and %v", pos, neg)
	}
}

func TestSampleIsUniform(t *testing.T) {
	// Draw 3 of 6 positives 6000 times: each should come up about 3000
	// times. With the fixed seed the counts are fixed; a draw that favoured
	// some index would be far outside 3000 +- 10%.
	matches := []int{0, 0, 0, 0, 0, 0}
	s := Sampler{BatchSize: 6, PositiveFraction: 0.5}
	rng := rand.New(rand.NewPCG(3, 3))
	counts := make([]int, len(matches))
	pos := make([]int, 0, 6)
	for range 6000 {
		pos, _ = s.Sample(pos[:0], nil, matches, rng)
		for _, i := range pos {
			counts[i]++
		}
	}
	for i, c := range counts {
		if c < 2700 || c > 3300 {
			t.Errorf("positive %d drawn %d times of 6000, want about 3000", i, c)
		}
	}
}

// checkDrawn checks that drawn is sorted, without repeats, and only of
// entries of matches that want accepts.
func checkDrawn(t *testing.T, what string, drawn, matches []int, want func(int) bool) {
	t.Helper()
	for k, i := range drawn {
		if k > 0 && drawn[k-1] >= i {
			t.Errorf("%s %v: not strictly ascending", what, drawn)
			return
		}
		if !want(matches[i]) {
			t.Errorf("%s: drew index %d, whose match is %d", what, i, matches[i])
		}
	}
}
