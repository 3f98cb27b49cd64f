package box

import (
	"math/rand/v2"
	"slices"
)

// Match results other than a ground-truth index, as torchvision's Matcher
// writes them.
const (
	// BelowLow marks a box whose best IoU with any ground truth is below
	// the low threshold: a negative (background) example.
	BelowLow = -1
	// BetweenThresholds marks a box whose best IoU lies between the low and
	// the high threshold: neither positive nor negative, ignored in training.
	BetweenThresholds = -2
)

// Matcher assigns each anchor or proposal to the ground-truth box it
// overlaps most, by IoU, with torchvision's Matcher semantics. A Matcher
// keeps a scratch buffer and is not safe for concurrent use.
type Matcher struct {
	// High is the IoU from which a box is a positive match (IoU == High
	// matches).
	High float64
	// Low is the IoU below which a box is a negative; from Low to just
	// under High it is ignored. Low == High leaves no box ignored.
	Low float64
	// AllowLowQuality gives every ground truth its best-overlapping boxes
	// even when their IoU is under High: each box whose IoU with some ground
	// truth equals that ground truth's best IoU (ties included) is set back
	// to its own best match, which may be another ground truth.
	AllowLowQuality bool

	best []float64
}

// RPNMatcher is the region proposal network's: positive from 0.7, negative
// below 0.3, low-quality matches allowed.
func RPNMatcher() Matcher { return Matcher{High: 0.7, Low: 0.3, AllowLowQuality: true} }

// RoIMatcher is the RoI head's: positive from 0.5, negative below 0.5.
func RoIMatcher() Matcher { return Matcher{High: 0.5, Low: 0.5} }

// Match appends to dst, for each of boxes in order, the index in gts of
// its match, or BelowLow, or BetweenThresholds, and returns the extended
// slice. A box equally close to several ground truths matches the first.
// With no ground truth every box is BelowLow (an image of background only).
// A ground truth that overlaps no box at all gets no low-quality match:
// torchvision would then match every box of IoU 0 to it, which is a bug.
func (m *Matcher) Match(dst []int, boxes, gts []Box) []int {
	start := len(dst)
	if len(gts) == 0 {
		for range boxes {
			dst = append(dst, BelowLow)
		}
		return dst
	}

	m.best = append(m.best[:0], make([]float64, len(gts))...)
	for _, b := range boxes {
		g, iou := -1, -1.0
		for j, gt := range gts {
			v := IoU(b, gt)
			if v > iou {
				g, iou = j, v
			}
			if v > m.best[j] {
				m.best[j] = v
			}
		}
		switch {
		case g < 0 || iou < m.Low:
			dst = append(dst, BelowLow)
		case iou < m.High:
			dst = append(dst, BetweenThresholds)
		default:
			dst = append(dst, g)
		}
	}
	if !m.AllowLowQuality {
		return dst
	}

	for i, b := range boxes {
		for j, gt := range gts {
			if m.best[j] > 0 && IoU(b, gt) == m.best[j] {
				dst[start+i], _ = bestMatch(b, gts)
				break
			}
		}
	}
	return dst
}

// bestMatch is the index of the first ground truth of highest IoU with b,
// and that IoU; -1 when every IoU is NaN.
func bestMatch(b Box, gts []Box) (int, float64) {
	g, best := -1, -1.0
	for j, gt := range gts {
		if v := IoU(b, gt); v > best {
			g, best = j, v
		}
	}
	return g, best
}

// Sampler draws a balanced set of training examples from one image's
// matches, like torchvision's BalancedPositiveNegativeSampler.
type Sampler struct {
	// BatchSize is how many examples an image gives at most.
	BatchSize int
	// PositiveFraction is the share of BatchSize that positives may take;
	// negatives fill the rest.
	PositiveFraction float64
}

// RPNSampler is the region proposal network's: 256 anchors, half positive.
func RPNSampler() Sampler { return Sampler{BatchSize: 256, PositiveFraction: 0.5} }

// RoISampler is the RoI head's: 512 proposals, a quarter positive.
func RoISampler() Sampler { return Sampler{BatchSize: 512, PositiveFraction: 0.25} }

// Sample appends to pos the indices of sampled positives (matches >= 0)
// and to neg those of sampled negatives (BelowLow), each in ascending order,
// and returns both. It takes int(BatchSize*PositiveFraction) positives, or
// all there are, and fills the batch with negatives, or takes all there are;
// BetweenThresholds entries are never drawn. The draw, uniform without
// replacement, depends only on rng's state, so a seeded rng repeats it.
func (s Sampler) Sample(pos, neg []int, matches []int,
	rng *rand.Rand) (positives, negatives []int) {
	wantPos := max(int(float64(s.BatchSize)*s.PositiveFraction), 0)

	startPos := len(pos)
	for i, m := range matches {
		if m >= 0 {
			pos = append(pos, i)
		}
	}
	pos = pos[:startPos+drawInPlace(pos[startPos:], wantPos, rng)]

	startNeg := len(neg)
	for i, m := range matches {
		if m == BelowLow {
			neg = append(neg, i)
		}
	}
	wantNeg := max(s.BatchSize-(len(pos)-startPos), 0)
	neg = neg[:startNeg+drawInPlace(neg[startNeg:], wantNeg, rng)]
	return pos, neg
}

// drawInPlace moves a uniform draw of k of s's elements (all of them when
// k >= len(s)) to its front, sorted, and returns how many it drew.
func drawInPlace(s []int, k int, rng *rand.Rand) int {
	if k >= len(s) {
		return len(s)
	}
	for i := range k {
		j := i + rng.IntN(len(s)-i)
		s[i], s[j] = s[j], s[i]
	}
	slices.Sort(s[:k])
	return k
}
