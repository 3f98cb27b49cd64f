package box

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Score is the type of a detection score or logit: float32 as models
// output them, or float64.
type Score interface {
	~float32 | ~float64
}

// byScore orders indices by score, highest first; equal scores keep index
// order, and NaN scores come last.
func byScore[S Score](scores []S) func(i, j int) int {
	return func(i, j int) int {
		a, b := scores[i], scores[j]
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		if aNaN, bNaN := a != a, b != b; aNaN != bNaN {
			if aNaN {
				return 1
			}
			return -1
		}
		return cmp.Compare(i, j)
	}
}

// TopK appends to dst the indices of the k highest scores, highest first,
// and returns the extended slice. Equal scores keep index order and NaN
// scores rank below all others. k beyond len(scores) takes them all; k <= 0
// takes none. It allocates only when dst lacks room for len(scores) indices,
// which it uses as scratch.
func TopK[S Score](dst []int, scores []S, k int) []int {
	if k <= 0 {
		return dst
	}
	start := len(dst)
	for i := range scores {
		dst = append(dst, i)
	}
	slices.SortFunc(dst[start:], byScore(scores))
	return dst[:start+min(k, len(scores))]
}

// NMS appends to keep the indices of the boxes that survive greedy
// non-maximum suppression, highest score first, and returns the extended
// slice. Walking the boxes by score (equal scores in index order, NaN last),
// each box kept removes every later box whose IoU with it is greater than
// iouThreshold; a box equal to the threshold survives, as in torchvision.
// Boxes with no area have IoU 0 with everything and are never removed. It
// allocates only when keep lacks room for len(boxes) indices, which it uses
// as scratch. It panics if scores and boxes differ in length.
func NMS[S Score](keep []int, boxes []Box, scores []S, iouThreshold float64) []int {
	if len(scores) != len(boxes) {
		panic("box: NMS: boxes and scores differ in length")
	}
	start := len(keep)
	keep = TopK(keep, scores, len(scores))
	return keep[:start+suppress(keep[start:], boxes, nil, iouThreshold)]
}

// BatchedNMS is NMS within each class: a box only removes boxes of its own
// class, so the result is that of NMS run class by class, merged by score.
// It panics if boxes, scores and classes differ in length.
func BatchedNMS[S Score](keep []int, boxes []Box, scores []S, classes []int,
	iouThreshold float64) []int {
	if len(scores) != len(boxes) || len(classes) != len(boxes) {
		panic("box: BatchedNMS: boxes, scores and classes differ in length")
	}
	start := len(keep)
	keep = TopK(keep, scores, len(scores))
	return keep[:start+suppress(keep[start:], boxes, classes, iouThreshold)]
}

// suppress runs greedy NMS over order, which lists box indices by score; it
// moves the kept indices to the front of order, in order, and returns how
// many there are. With classes, only boxes of one class suppress each other.
func suppress(order []int, boxes []Box, classes []int, iouThreshold float64) int {
	kept, live := 0, len(order)
	for kept < live {
		i := order[kept]
		kept++
		bi := boxes[i]
		area := bi.Area()
		n := kept
		for _, j := range order[kept:live] {
			if (classes == nil || classes[i] == classes[j]) &&
				overlapsMore(bi, area, boxes[j], iouThreshold) {
				continue
			}
			order[n] = j
			n++
		}
		live = n
	}
	return kept
}

// overlapsMore reports IoU(a, b) > threshold, given a's area; it is IoU's
// arithmetic with an early exit for boxes that do not overlap, the common
// case in NMS.
func overlapsMore(a Box, areaA float64, b Box, threshold float64) bool {
	w := min(a.X2, b.X2) - max(a.X1, b.X1)
	if !(w > 0) {
		return false
	}
	h := min(a.Y2, b.Y2) - max(a.Y1, b.Y1)
	if !(h > 0) {
		return false
	}
	inter := w * h
	return inter/(areaA+b.Area()-inter) > threshold
}

// FilterMinSize appends to dst the indices of the boxes whose width and
// height are both at least minSize pixels, in index order. Boxes with NaN
// coordinates fail the test.
func FilterMinSize(dst []int, boxes []Box, minSize float64) []int {
	for i, b := range boxes {
		if b.Width() >= minSize && b.Height() >= minSize {
			dst = append(dst, i)
		}
	}
	return dst
}

// ClipAll clips every box, in place, to an image of width x height pixels.
// A box wholly outside the image becomes Empty.
func ClipAll(boxes []Box, width, height float64) {
	for i := range boxes {
		boxes[i] = boxes[i].Clip(width, height)
	}
}

// ProposalConfig is how the region proposal network's outputs become
// proposals, with torchvision's meaning of each figure.
type ProposalConfig struct {
	// PreNMSTopN is how many anchors of each pyramid level, by objectness,
	// are decoded at all.
	PreNMSTopN int
	// PostNMSTopN is how many proposals, by objectness, survive NMS.
	PostNMSTopN int
	// NMSThreshold is the IoU above which a proposal removes a weaker one
	// of its own level.
	NMSThreshold float64
	// MinSize drops proposals narrower or shorter than this, in pixels,
	// after clipping to the image.
	MinSize float64
	// ScoreThreshold drops proposals whose objectness probability
	// (sigmoid of the logit) is below it; 0 keeps them all.
	ScoreThreshold float64
}

// TrainProposalConfig is torchvision's training setting: 2000 before NMS,
// 2000 after, NMS at 0.7. With the default anchors a 224 px image has
// only 1568 anchors, so training sees every anchor that survives NMS.
func TrainProposalConfig() ProposalConfig {
	return ProposalConfig{PreNMSTopN: 2000, PostNMSTopN: 2000, NMSThreshold: 0.7, MinSize: 1e-3}
}

// EvalProposalConfig is the setting for evaluation and the edge: 600 before
// NMS and 100 after, fewer than torchvision's 1000 and 1000 because an image
// of the study holds one face and the RoI head's cost on the edge grows with
// each proposal.
func EvalProposalConfig() ProposalConfig {
	return ProposalConfig{PreNMSTopN: 600, PostNMSTopN: 100, NMSThreshold: 0.7, MinSize: 1e-3}
}

// Proposer filters one image's RPN outputs into proposals, as torchvision's
// RegionProposalNetwork.filter_proposals does. It keeps its scratch buffers
// between calls, so a Proposer reused frame after frame allocates nothing
// once warm; it is not safe for concurrent use.
type Proposer struct {
	Config ProposalConfig
	// Coder decodes the RPN deltas; NewProposer sets RPNCoder.
	Coder Coder

	order  []int
	boxes  []Box
	scores []float32
	levels []int
}

// NewProposer returns a Proposer with cfg and the RPN coder.
func NewProposer(cfg ProposalConfig) *Proposer {
	return &Proposer{Config: cfg, Coder: RPNCoder()}
}

// Propose appends to dst one image's proposals, highest objectness first,
// and returns the extended slice.
//
// anchors are those of PyramidAnchors (or Anchors, for one level);
// objectness holds one logit an anchor and deltas four numbers an anchor
// (dx, dy, dw, dh), in the anchors' order. levels holds the number of
// anchors of each pyramid level, in order; nil means a single level. The
// steps: the PreNMSTopN anchors of each level by objectness are decoded,
// clipped to the width x height image, filtered by MinSize and
// ScoreThreshold, suppressed by NMS within their level, and the best
// PostNMSTopN of all levels are kept. The error reports inputs whose
// lengths do not agree.
func (p *Proposer) Propose(dst []Box, anchors []Box, objectness, deltas []float32,
	levels []int, width, height float64) ([]Box, error) {
	if len(objectness) != len(anchors) || len(deltas) != 4*len(anchors) {
		return dst, fmt.Errorf("proposals: %d anchors, %d objectness logits and %d deltas: "+
			"want one logit and 4 deltas an anchor", len(anchors), len(objectness), len(deltas))
	}
	total := 0
	for _, n := range levels {
		if n < 0 {
			return dst, fmt.Errorf("proposals: level of %d anchors: must not be negative", n)
		}
		total += n
	}
	if levels != nil && total != len(anchors) {
		return dst, fmt.Errorf("proposals: levels hold %d anchors, not the %d given",
			total, len(anchors))
	}
	if levels == nil {
		total = len(anchors)
	}

	p.boxes, p.scores, p.levels = p.boxes[:0], p.scores[:0], p.levels[:0]
	cfg := p.Config
	start := 0
	for level := 0; start < total; level++ {
		n := total
		if levels != nil {
			n = levels[level]
		}
		p.order = TopK(p.order[:0], objectness[start:start+n], cfg.PreNMSTopN)
		for _, k := range p.order {
			i := start + k
			d := deltas[4*i : 4*i+4]
			b := p.Coder.Decode(anchors[i], Deltas{
				DX: float64(d[0]), DY: float64(d[1]), DW: float64(d[2]), DH: float64(d[3]),
			}).Clip(width, height)
			score := sigmoid(objectness[i])
			if !(b.Width() >= cfg.MinSize && b.Height() >= cfg.MinSize) ||
				!(float64(score) >= cfg.ScoreThreshold) {
				continue
			}
			p.boxes = append(p.boxes, b)
			p.scores = append(p.scores, score)
			p.levels = append(p.levels, level)
		}
		start += n
	}

	p.order = BatchedNMS(p.order[:0], p.boxes, p.scores, p.levels, cfg.NMSThreshold)
	for _, i := range p.order[:min(len(p.order), max(cfg.PostNMSTopN, 0))] {
		dst = append(dst, p.boxes[i])
	}
	return dst, nil
}

func sigmoid(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}

// DetectionConfig is how the RoI head's outputs become detections, with
// torchvision's meaning and defaults of each figure.
type DetectionConfig struct {
	// ScoreThreshold drops class scores (softmax probabilities) that are
	// not above it.
	ScoreThreshold float64
	// NMSThreshold is the IoU above which a detection removes a weaker
	// one of its own class.
	NMSThreshold float64
	// DetectionsPerImage is how many detections, by score, are kept.
	DetectionsPerImage int
	// MinSize drops boxes narrower or shorter than this, in pixels, after
	// clipping to the image.
	MinSize float64
}

// DefaultDetectionConfig is torchvision's: score above 0.05, NMS at 0.5
// within a class, at most 100 detections, boxes of at least 0.01 px.
func DefaultDetectionConfig() DetectionConfig {
	return DetectionConfig{
		ScoreThreshold: 0.05, NMSThreshold: 0.5, DetectionsPerImage: 100, MinSize: 1e-2,
	}
}

// Postprocessor turns one image's RoI-head outputs into detections, as
// torchvision's RoIHeads.postprocess_detections does. It keeps its scratch
// buffers between calls, so reused it allocates nothing once warm; it is not
// safe for concurrent use.
type Postprocessor struct {
	Config DetectionConfig
	// Coder decodes the box head's deltas; NewPostprocessor sets RoICoder.
	Coder Coder

	boxes   []Box
	scores  []float64
	classes []int
	keep    []int
}

// NewPostprocessor returns a Postprocessor with cfg and the RoI coder.
func NewPostprocessor(cfg DetectionConfig) *Postprocessor {
	return &Postprocessor{Config: cfg, Coder: RoICoder()}
}

// Detect appends to dst the detections of one image, highest score first,
// and returns the extended slice.
//
// classLogits holds numClasses logits a proposal, class 0 being the
// background; boxDeltas holds four numbers (dx, dy, dw, dh) a proposal and
// class, in that order (torchvision's layout), or four a proposal for a
// class-agnostic box head. Each proposal and foreground class with a softmax
// score above ScoreThreshold gives a candidate box, decoded from the proposal,
// clipped to the width x height image and filtered by MinSize; NMS runs
// within each class and the best DetectionsPerImage are kept. Detection.Class
// is the model's class index, 1..numClasses-1. The error reports inputs whose
// lengths do not agree.
func (p *Postprocessor) Detect(dst []Detection, proposals []Box, classLogits,
	boxDeltas []float32, numClasses int, width, height float64) ([]Detection, error) {
	n := len(proposals)
	if numClasses < 2 || len(classLogits) != n*numClasses {
		return dst, fmt.Errorf("detections: %d class logits for %d proposals and %d classes: "+
			"want one logit a proposal and class, background included",
			len(classLogits), n, numClasses)
	}
	agnostic := len(boxDeltas) == 4*n
	if !agnostic && len(boxDeltas) != 4*n*numClasses {
		return dst, fmt.Errorf("detections: %d box deltas for %d proposals and %d classes: "+
			"want 4 a proposal and class, or 4 a proposal", len(boxDeltas), n, numClasses)
	}

	p.boxes, p.scores, p.classes = p.boxes[:0], p.scores[:0], p.classes[:0]
	cfg := p.Config
	for i, proposal := range proposals {
		logits := classLogits[i*numClasses : (i+1)*numClasses]
		peak := float64(slices.Max(logits))
		sum := 0.0
		for _, l := range logits {
			sum += math.Exp(float64(l) - peak)
		}
		for k := 1; k < numClasses; k++ {
			score := math.Exp(float64(logits[k])-peak) / sum
			if !(score > cfg.ScoreThreshold) {
				continue
			}
			at := 4 * (i*numClasses + k)
			if agnostic {
				at = 4 * i
			}
			d := boxDeltas[at : at+4]
			b := p.Coder.Decode(proposal, Deltas{
				DX: float64(d[0]), DY: float64(d[1]), DW: float64(d[2]), DH: float64(d[3]),
			}).Clip(width, height)
			if !(b.Width() >= cfg.MinSize && b.Height() >= cfg.MinSize) {
				continue
			}
			p.boxes = append(p.boxes, b)
			p.scores = append(p.scores, score)
			p.classes = append(p.classes, k)
		}
	}

	p.keep = BatchedNMS(p.keep[:0], p.boxes, p.scores, p.classes, cfg.NMSThreshold)
	for _, i := range p.keep[:min(len(p.keep), max(cfg.DetectionsPerImage, 0))] {
		dst = append(dst, Detection{Box: p.boxes[i], Class: p.classes[i], Score: p.scores[i]})
	}
	return dst, nil
}
