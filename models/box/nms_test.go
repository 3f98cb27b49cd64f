package box

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// Four boxes for hand-computed NMS:
//
//	A [0,0,10,10] 0.9;  B [5,0,15,10] 0.8;  C [1,0,11,10] 0.7;  D [20,20,30,30] 0.95
//	IoU(A,B) = 50/(100+100-50) = 1/3; IoU(A,C) = 90/110 = 0.818;
//	IoU(B,C) = 60/140 = 0.429; D overlaps nothing.
var (
	handBoxes  = []Box{{0, 0, 10, 10}, {5, 0, 15, 10}, {1, 0, 11, 10}, {20, 20, 30, 30}}
	handScores = []float64{0.9, 0.8, 0.7, 0.95}
)

func TestNMSByHand(t *testing.T) {
	cases := []struct {
		threshold float64
		want      []int
	}{
		// D first; A removes C (0.818); B survives A (1/3) and is not
		// compared with C, which is gone already.
		{0.5, []int{3, 0, 1}},
		// At 0.3 A also removes B.
		{0.3, []int{3, 0}},
		// IoU equal to the threshold survives: 50/150 is exactly 1/3.
		{1.0 / 3, []int{3, 0, 1}},
		// At 0.9 nothing overlaps enough.
		{0.9, []int{3, 0, 1, 2}},
	}
	for _, c := range cases {
		got := NMS(nil, handBoxes, handScores, c.threshold)
		if !slices.Equal(got, c.want) {
			t.Errorf("NMS at %v = %v, want %v", c.threshold, got, c.want)
		}
	}
}

func TestNMSEdges(t *testing.T) {
	if got := NMS([]int{7}, nil, []float64(nil), 0.5); !slices.Equal(got, []int{7}) {
		t.Errorf("NMS of nothing = %v, want the prefix [7] alone", got)
	}

	// Equal scores: the lower index comes first and wins.
	same := []Box{{0, 0, 10, 10}, {0, 0, 10, 10}}
	if got := NMS(nil, same, []float32{0.5, 0.5}, 0.5); !slices.Equal(got, []int{0}) {
		t.Errorf("NMS of a tie = %v, want [0]", got)
	}

	// Boxes that only touch have IoU 0 and survive even a threshold of 0,
	// while any overlap at threshold 0 suppresses.
	touching := []Box{{0, 0, 10, 10}, {10, 0, 20, 10}, {19, 0, 29, 10}}
	if got := NMS(nil, touching, []float64{3, 2, 1}, 0); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("NMS of touching boxes = %v, want [0 1]", got)
	}

	// Zero-area boxes have IoU 0 with everything: never suppressed.
	flat := []Box{{5, 5, 5, 5}, {5, 5, 5, 5}, {0, 0, 10, 0}}
	if got := NMS(nil, flat, []float64{1, 2, 3}, 0); !slices.Equal(got, []int{2, 1, 0}) {
		t.Errorf("NMS of empty boxes = %v, want [2 1 0]", got)
	}

	// NaN scores rank last: the NaN box overlapping box 1 is removed, the
	// lone NaN box comes after every scored box.
	boxes := []Box{{0, 0, 10, 10}, {0, 0, 10, 10}, {50, 50, 60, 60}, {80, 80, 90, 90}}
	scores := []float64{math.NaN(), 0.2, math.NaN(), 0.1}
	if got := NMS(nil, boxes, scores, 0.5); !slices.Equal(got, []int{1, 3, 2}) {
		t.Errorf("NMS with NaN scores = %v, want [1 3 2]", got)
	}

	mustPanic(t, "NMS with more scores than boxes", func() {
		NMS(nil, boxes, []float64{1, 2, 3, 4, 5}, 0.5)
	})
}

func TestNMSMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		n := rng.IntN(60)
		boxes, scores, classes := randomDetections(rng, n, 3)
		threshold := []float64{0, 0.3, 0.5, 0.7, 1}[trial%5]

		got := NMS(nil, boxes, scores, threshold)
		if want := bruteNMS(boxes, scores, threshold); !slices.Equal(got, want) {
			t.Fatalf("trial %d: NMS = %v, brute force = %v", trial, got, want)
		}

		got = BatchedNMS(nil, boxes, scores, classes, threshold)
		if want := bruteBatchedNMS(boxes, scores, classes, threshold); !slices.Equal(got, want) {
			t.Fatalf("trial %d: BatchedNMS = %v, per-class brute force = %v", trial, got, want)
		}
	}
}

func TestBatchedNMSByHand(t *testing.T) {
	// A and C overlap at 0.818 but are of different classes: both stay.
	// B is of A's class and overlaps A at 1/3, under 0.5: it stays too.
	classes := []int{1, 1, 2, 1}
	got := BatchedNMS(nil, handBoxes, handScores, classes, 0.5)
	if want := []int{3, 0, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("BatchedNMS = %v, want %v", got, want)
	}
	// Put C in class 1: A removes it.
	classes[2] = 1
	got = BatchedNMS(nil, handBoxes, handScores, classes, 0.5)
	if want := []int{3, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("BatchedNMS, one class = %v, want %v", got, want)
	}
}

func TestNMSDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	boxes, scores, classes := randomDetections(rng, 300, 2)
	keep := make([]int, 0, len(boxes))
	allocs := testing.AllocsPerRun(20, func() {
		keep = NMS(keep[:0], boxes, scores, 0.5)
		keep = BatchedNMS(keep[:0], boxes, scores, classes, 0.5)
		keep = TopK(keep[:0], scores, 10)
	})
	if allocs != 0 {
		t.Errorf("NMS, BatchedNMS and TopK with room allocated %v times, want 0", allocs)
	}
}

func TestTopK(t *testing.T) {
	scores := []float32{0.1, 0.5, 0.5, float32(math.NaN()), 0.9}
	cases := []struct {
		k    int
		want []int
	}{
		{3, []int{4, 1, 2}},        // ties in index order
		{10, []int{4, 1, 2, 0, 3}}, // all, NaN last
		{0, nil},                   // none
		{-1, nil},                  // none
		{1, []int{4}},              // the best
		{5, []int{4, 1, 2, 0, 3}},  // exactly all
		{4, []int{4, 1, 2, 0}},     // all but the NaN
		{2, []int{4, 1}},           // first of the tie
		{len(scores) + 100, []int{4, 1, 2, 0, 3}},
	}
	for _, c := range cases {
		got := TopK([]int{-1}, scores, c.k)
		if !slices.Equal(got[1:], c.want) || got[0] != -1 {
			t.Errorf("TopK(%d) = %v, want [-1] then %v", c.k, got, c.want)
		}
	}
	if got := TopK(nil, []float64{}, 3); len(got) != 0 {
		t.Errorf("TopK of nothing = %v", got)
	}
}

func TestFilterMinSize(t *testing.T) {
	boxes := []Box{
		{0, 0, 2, 2},          // 2 x 2: kept at min 2
		{0, 0, 1.99, 5},       // too narrow
		{0, 0, 5, 1.5},        // too short
		{0, 0, math.NaN(), 5}, // NaN fails
		{3, 3, 1, 1},          // inverted: negative size
		{10, 10, 20, 20},      // kept
	}
	got := FilterMinSize([]int{9}, boxes, 2)
	if want := []int{9, 0, 5}; !slices.Equal(got, want) {
		t.Errorf("FilterMinSize = %v, want %v", got, want)
	}
}

func TestClipAll(t *testing.T) {
	boxes := []Box{{-5, -5, 10, 10}, {90, 40, 120, 60}, {150, 150, 160, 160}, {1, 2, 3, 4}}
	ClipAll(boxes, 100, 50)
	want := []Box{{0, 0, 10, 10}, {90, 40, 100, 50}, {150, 150, 100, 50}, {1, 2, 3, 4}}
	if !slices.Equal(boxes, want) {
		t.Errorf("ClipAll = %v, want %v", boxes, want)
	}
	if !boxes[2].Empty() {
		t.Errorf("box wholly outside clipped to %v, want it Empty", boxes[2])
	}
}

func TestProposerByHand(t *testing.T) {
	// Three anchors: A0 and A1 overlap at 90/110 = 0.818, A2 stands apart.
	// Logits 2, 1, -1: sigmoid 0.881, 0.731, 0.269. Zero deltas decode each
	// anchor to itself, except A2's dx = 0.1, which moves it 0.1*10 = 1 px
	// (to within float32's rounding of 0.1).
	anchors := []Box{{0, 0, 10, 10}, {1, 0, 11, 10}, {50, 50, 60, 60}}
	logits := []float32{2, 1, -1}
	deltas := make([]float32, 12)
	deltas[8] = 0.1
	moved := Box{51, 50, 61, 60}

	cases := []struct {
		name   string
		cfg    ProposalConfig
		levels []int
		want   []Box
	}{
		{"A0 removes A1", cfg(3, 10, 0.7, 0), nil, []Box{anchors[0], moved}},
		{"pre-NMS top 2 leaves A2 out", cfg(2, 10, 0.7, 0), nil, []Box{anchors[0]}},
		{"post-NMS top 1", cfg(3, 1, 0.7, 0), nil, []Box{anchors[0]}},
		{"NMS at 0.9 keeps A1", cfg(3, 10, 0.9, 0), nil, []Box{anchors[0], anchors[1], moved}},
		{"score threshold 0.5 drops A2", cfg(3, 10, 0.7, 0.5), nil, []Box{anchors[0]}},
		// Levels [1, 2]: A0 alone on level 0, A1 and A2 on level 1, so A0
		// cannot remove A1; with pre-NMS top 1 each level offers its best.
		{"levels", cfg(3, 10, 0.7, 0), []int{1, 2}, []Box{anchors[0], anchors[1], moved}},
		{"levels, top 1 each", cfg(1, 10, 0.7, 0), []int{1, 2}, []Box{anchors[0], anchors[1]}},
		{"pre-NMS top 0", cfg(0, 10, 0.7, 0), nil, nil},
	}
	for _, c := range cases {
		p := NewProposer(c.cfg)
		got, err := p.Propose(nil, anchors, logits, deltas, c.levels, 100, 100)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.EqualFunc(got, c.want, func(a, b Box) bool { return near(a, b, 1e-6) }) {
			t.Errorf("%s: proposals %v, want %v", c.name, got, c.want)
		}
	}
}

func TestProposerClipsAndFiltersSize(t *testing.T) {
	// In a 40 x 30 image: [-5,-5,5,5] clips to [0,0,5,5]; [45,0,55,10] lies
	// wholly right of the image and clips to nothing, so MinSize drops it.
	anchors := []Box{{-5, -5, 5, 5}, {45, 0, 55, 10}}
	p := NewProposer(EvalProposalConfig())
	got, err := p.Propose(nil, anchors, []float32{1, 2}, make([]float32, 8), nil, 40, 30)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Box{{0, 0, 5, 5}}; !slices.Equal(got, want) {
		t.Errorf("proposals %v, want %v", got, want)
	}
}

func TestProposerErrorsAndAllocations(t *testing.T) {
	p := NewProposer(EvalProposalConfig())
	anchors := []Box{{0, 0, 10, 10}, {1, 0, 11, 10}}
	bad := []struct {
		name   string
		logits []float32
		deltas []float32
		levels []int
	}{
		{"one logit short", []float32{1}, make([]float32, 8), nil},
		{"deltas short", []float32{1, 2}, make([]float32, 7), nil},
		{"levels sum 3", []float32{1, 2}, make([]float32, 8), []int{1, 2}},
		{"negative level", []float32{1, 2}, make([]float32, 8), []int{3, -1}},
	}
	for _, c := range bad {
		if _, err := p.Propose(nil, anchors, c.logits, c.deltas, c.levels, 50, 50); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}

	rng := rand.New(rand.NewPCG(7, 8))
	all := Anchors(nil, DefaultAnchorConfig(), 14, 14)
	logits := make([]float32, len(all))
	deltas := make([]float32, 4*len(all))
	for i := range logits {
		logits[i] = float32(rng.NormFloat64())
	}
	for i := range deltas {
		deltas[i] = float32(0.1 * rng.NormFloat64())
	}
	dst := make([]Box, 0, 100)
	allocs := testing.AllocsPerRun(10, func() {
		dst, _ = p.Propose(dst[:0], all, logits, deltas, nil, 224, 224)
	})
	if allocs != 0 {
		t.Errorf("warm Propose allocated %v times, want 0", allocs)
	}
	if len(dst) != 100 {
		t.Errorf("got %d proposals from 1568 random anchors, want the cap of 100", len(dst))
	}
}

func TestPostprocessorByHand(t *testing.T) {
	// Proposal 0 [10,10,50,50], proposal 1 [12,10,52,50]: IoU = 38*40 /
	// (2*1600 - 1520) = 1520/1680 = 0.905.
	// Logits 0: (0, ln 3, 0) -> softmax (1, 3, 1)/5 = (0.2, 0.6, 0.2).
	// Logits 1: (0, 0, 0) -> (1/3, 1/3, 1/3).
	// Candidates above 0.05: (p0, class 1, 0.6), (p0, 2, 0.2),
	// (p1, 1, 1/3), (p1, 2, 1/3). Class 1: p0 removes p1; class 2: p1
	// removes p0. Left, by score: (p0, 1, 0.6), (p1, 2, 1/3).
	proposals := []Box{{10, 10, 50, 50}, {12, 10, 52, 50}}
	logits := []float32{0, float32(math.Log(3)), 0, 0, 0, 0}
	deltas := make([]float32, 2*3*4)
	want := []Detection{
		{Box: proposals[0], Class: 1, Score: 0.6},
		{Box: proposals[1], Class: 2, Score: 1.0 / 3},
	}

	p := NewPostprocessor(DefaultDetectionConfig())
	got, err := p.Detect(nil, proposals, logits, deltas, 3, 224, 224)
	if err != nil {
		t.Fatal(err)
	}
	checkDetections(t, "default", got, want)

	p.Config.DetectionsPerImage = 1
	got, _ = p.Detect(nil, proposals, logits, deltas, 3, 224, 224)
	checkDetections(t, "one detection", got, want[:1])

	p.Config = DefaultDetectionConfig()
	p.Config.ScoreThreshold = 0.5
	got, _ = p.Detect(nil, proposals, logits, deltas, 3, 224, 224)
	checkDetections(t, "threshold 0.5", got, want[:1])

	// A score equal to the threshold is dropped: proposal 1's scores are
	// exactly exp(0)/3 = 1/3, so at 1/3 only (p0, 1, 0.6) is left.
	p.Config.ScoreThreshold = 1.0 / 3
	got, _ = p.Detect(nil, proposals, logits, deltas, 3, 224, 224)
	checkDetections(t, "threshold 1/3", got, want[:1])

	// Per-class deltas: class 2 of proposal 1 has dx = 1, which the RoI
	// coder reads as 1/10 of the 40 px width: 4 px right, [16,10,56,50].
	p.Config = DefaultDetectionConfig()
	deltas[(1*3+2)*4] = 1
	got, _ = p.Detect(nil, proposals, logits, deltas, 3, 224, 224)
	checkDetections(t, "per-class deltas", got, []Detection{
		want[0], {Box: Box{16, 10, 56, 50}, Class: 2, Score: 1.0 / 3},
	})

	// Class-agnostic deltas, 4 a proposal: dy = 1 moves proposal 1 down 4 px
	// for both classes; it is then [12,14,52,54], IoU with p0 = 38*36 /
	// (3200 - 1368) = 0.747, still removed in class 1.
	agnostic := []float32{0, 0, 0, 0, 0, 1, 0, 0}
	got, _ = p.Detect(nil, proposals, logits, agnostic, 3, 224, 224)
	checkDetections(t, "class-agnostic deltas", got, []Detection{
		want[0], {Box: Box{12, 14, 52, 54}, Class: 2, Score: 1.0 / 3},
	})

	// Clipped to a 30 x 30 image, proposal 0 becomes [10,10,30,30].
	got, _ = p.Detect(nil, proposals[:1], logits[:3], deltas[:12], 3, 30, 30)
	checkDetections(t, "clipped", got, []Detection{
		{Box: Box{10, 10, 30, 30}, Class: 1, Score: 0.6},
		{Box: Box{10, 10, 30, 30}, Class: 2, Score: 0.2},
	})
}

func TestPostprocessorEdges(t *testing.T) {
	p := NewPostprocessor(DefaultDetectionConfig())
	got, err := p.Detect(nil, nil, nil, nil, 3, 224, 224)
	if err != nil || len(got) != 0 {
		t.Errorf("no proposals: %v, %v; want nothing", got, err)
	}
	proposals := []Box{{0, 0, 10, 10}}
	if _, err := p.Detect(nil, proposals, make([]float32, 2), make([]float32, 12), 3, 9, 9); err == nil {
		t.Error("2 logits for 3 classes: no error")
	}
	if _, err := p.Detect(nil, proposals, make([]float32, 3), make([]float32, 8), 3, 9, 9); err == nil {
		t.Error("8 deltas for 3 classes: no error")
	}
	if _, err := p.Detect(nil, proposals, make([]float32, 1), make([]float32, 4), 1, 9, 9); err == nil {
		t.Error("background alone: no error")
	}

	// A proposal that decodes outside the image clips to nothing: dropped.
	outside := []Box{{100, 100, 110, 110}}
	got, _ = p.Detect(nil, outside, []float32{0, 5}, make([]float32, 8), 2, 50, 50)
	if len(got) != 0 {
		t.Errorf("box outside the image gave %v", got)
	}
}

func checkDetections(t *testing.T, name string, got, want []Detection) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d detections %v, want %d %v", name, len(got), got, len(want), want)
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Class != w.Class || math.Abs(g.Score-w.Score) > 1e-6 || !near(g.Box, w.Box, 1e-4) {
			t.Errorf("%s: detection %d = %+v, want %+v", name, i, g, w)
		}
	}
}

func cfg(pre, post int, nms, score float64) ProposalConfig {
	return ProposalConfig{
		PreNMSTopN: pre, PostNMSTopN: post, NMSThreshold: nms, MinSize: 1e-3, ScoreThreshold: score,
	}
}

// randomDetections makes n boxes in a few clusters, so that NMS has work,
// with scores on a coarse grid, so that ties occur, and random classes.
func randomDetections(rng *rand.Rand, n, classes int) ([]Box, []float64, []int) {
	boxes := make([]Box, n)
	scores := make([]float64, n)
	labels := make([]int, n)
	for i := range boxes {
		cx, cy := float64(rng.IntN(4))*40+20, float64(rng.IntN(4))*40+20
		x := cx + rng.NormFloat64()*6
		y := cy + rng.NormFloat64()*6
		boxes[i] = FromXYWH(x, y, 5+rng.Float64()*30, 5+rng.Float64()*30)
		scores[i] = float64(rng.IntN(20)) / 20
		labels[i] = rng.IntN(classes)
	}
	return boxes, scores, labels
}

// bruteNMS is the textbook algorithm: sort by score (stable, so ties keep
// index order), then keep each box not suppressed by an earlier kept box.
func bruteNMS(boxes []Box, scores []float64, threshold float64) []int {
	order := make([]int, len(boxes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	removed := make([]bool, len(boxes))
	var keep []int
	for _, i := range order {
		if removed[i] {
			continue
		}
		keep = append(keep, i)
		for _, j := range order {
			if !removed[j] && j != i && IoU(boxes[i], boxes[j]) > threshold {
				removed[j] = true
			}
		}
	}
	return keep
}

// bruteBatchedNMS runs bruteNMS class by class and merges by score.
func bruteBatchedNMS(boxes []Box, scores []float64, classes []int, threshold float64) []int {
	var keep []int
	for c := range slices.Max(append([]int{0}, classes...)) + 1 {
		var idx []int
		var sub []Box
		var subScores []float64
		for i := range boxes {
			if classes[i] == c {
				idx = append(idx, i)
				sub = append(sub, boxes[i])
				subScores = append(subScores, scores[i])
			}
		}
		for _, k := range bruteNMS(sub, subScores, threshold) {
			keep = append(keep, idx[k])
		}
	}
	sort.SliceStable(keep, func(a, b int) bool {
		if scores[keep[a]] != scores[keep[b]] {
			return scores[keep[a]] > scores[keep[b]]
		}
		return keep[a] < keep[b]
	})
	return keep
}

func BenchmarkNMS(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	boxes, scores, _ := randomDetections(rng, 1000, 1)
	for i := range scores {
		scores[i] = rng.Float64()
	}
	keep := make([]int, 0, len(boxes))
	b.ReportAllocs()
	for b.Loop() {
		keep = NMS(keep[:0], boxes, scores, 0.7)
	}
}

func BenchmarkProposer(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	anchors := Anchors(nil, DefaultAnchorConfig(), 14, 14)
	logits := make([]float32, len(anchors))
	deltas := make([]float32, 4*len(anchors))
	for i := range logits {
		logits[i] = float32(rng.NormFloat64())
	}
	for i := range deltas {
		deltas[i] = float32(0.1 * rng.NormFloat64())
	}
	p := NewProposer(EvalProposalConfig())
	dst := make([]Box, 0, 100)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = p.Propose(dst[:0], anchors, logits, deltas, nil, 224, 224)
	}
}
