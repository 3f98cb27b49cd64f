package frcnn

import (
	"fmt"
	"math/rand/v2"

	"github.com/maskwatch/maskwatch/models/box"
)

// Truth is one image's ground truth in model-input pixels; Classes are the
// model's (1..NumClasses-1).
type Truth struct {
	Boxes   []box.Box
	Classes []int
}

// rpnTargets are one batch's RPN training targets, flat in the RPN's order.
type rpnTargets struct {
	labels []float32 // per anchor: 1 positive, 0 negative, -1 not sampled
	deltas []float32 // 4 per anchor; zero unless positive
}

// roiTargets are one batch's box-head training inputs and targets.
type roiTargets struct {
	wy, wx  []float32 // RoIAlign weights [N, R*OutH, G] and [N*R, OutW, G]
	labels  []int32   // per RoI: its class, 0 for background
	weights []float32 // per RoI: 1 sampled, 0 padding
	deltas  []float32 // 4 per RoI: RoI-coded target; zero unless positive
}

// targetBuilder assigns training targets with package box, keeping its
// scratch buffers between batches.
type targetBuilder struct {
	cfg      Config
	anchors  []box.Box
	rpnMatch box.Matcher
	roiMatch box.Matcher
	proposer *box.Proposer
	rpnCoder box.Coder
	roiCoder box.Coder

	matches, pos, neg []int
	rois              []box.Box
}

func newTargetBuilder(cfg Config, anchors []box.Box) *targetBuilder {
	return &targetBuilder{
		cfg: cfg, anchors: anchors,
		rpnMatch: box.RPNMatcher(), roiMatch: box.RoIMatcher(),
		proposer: box.NewProposer(cfg.TrainProposals),
		rpnCoder: box.RPNCoder(), roiCoder: box.RoICoder(),
	}
}

// rpn assigns anchors to the truths of n images.
func (t *targetBuilder) rpn(truths []Truth, n int, rng *rand.Rand) rpnTargets {
	a := len(t.anchors)
	out := rpnTargets{labels: make([]float32, n*a), deltas: make([]float32, 4*n*a)}
	sampler := box.Sampler{BatchSize: t.cfg.RPNBatch, PositiveFraction: 0.5}
	for i := range n {
		labels := out.labels[i*a : (i+1)*a]
		for k := range labels {
			labels[k] = -1
		}
		var gts []box.Box
		if i < len(truths) {
			gts = truths[i].Boxes
		}
		t.matches = t.rpnMatch.Match(t.matches[:0], t.anchors, gts)
		t.pos, t.neg = sampler.Sample(t.pos[:0], t.neg[:0], t.matches, rng)
		for _, k := range t.neg {
			labels[k] = 0
		}
		for _, k := range t.pos {
			labels[k] = 1
			d := t.rpnCoder.Encode(t.anchors[k], gts[t.matches[k]])
			copy(out.deltas[4*(i*a+k):], []float32{
				float32(d.DX), float32(d.DY), float32(d.DW), float32(d.DH)})
		}
	}
	return out
}

// roi proposes regions from each image's RPN outputs, adds the truths,
// samples RoIBatch of them and lays out their RoIAlign weights and targets.
func (t *targetBuilder) roi(truths []Truth, n int, objectness, deltas []float32,
	rng *rand.Rand) (roiTargets, error) {
	cfg := t.cfg
	a, r, g := len(t.anchors), cfg.RoIBatch, cfg.Grid()
	outH, outW := cfg.RoIAlign.OutH, cfg.RoIAlign.OutW
	out := roiTargets{
		wy: make([]float32, n*r*outH*g), wx: make([]float32, n*r*outW*g),
		labels: make([]int32, n*r), weights: make([]float32, n*r),
		deltas: make([]float32, 4*n*r),
	}
	sampler := box.Sampler{BatchSize: r, PositiveFraction: 0.25}
	size := float64(cfg.Size)
	for i := range n {
		var truth Truth
		if i < len(truths) {
			truth = truths[i]
		}
		var err error
		t.rois, err = t.proposer.Propose(t.rois[:0], t.anchors, objectness[i*a:(i+1)*a],
			deltas[4*i*a:4*(i+1)*a], nil, size, size)
		if err != nil {
			return out, err
		}
		t.rois = append(t.rois, truth.Boxes...)
		t.matches = t.roiMatch.Match(t.matches[:0], t.rois, truth.Boxes)
		t.pos, t.neg = sampler.Sample(t.pos[:0], t.neg[:0], t.matches, rng)

		slot := i * r
		for _, k := range append(t.pos, t.neg...) {
			roi := t.rois[k]
			if err := cfg.RoIAlign.AxisWeights(out.wy[slot*outH*g:(slot+1)*outH*g],
				out.wx[slot*outW*g:(slot+1)*outW*g], g, g, roi); err != nil {
				return out, err
			}
			out.weights[slot] = 1
			if m := t.matches[k]; m >= 0 {
				out.labels[slot] = int32(truth.Classes[m])
				d := t.roiCoder.Encode(roi, truth.Boxes[m])
				copy(out.deltas[4*slot:], []float32{
					float32(d.DX), float32(d.DY), float32(d.DW), float32(d.DH)})
			}
			slot++
		}
	}
	return out, nil
}

// checkTruths rejects classes the model does not have and mismatched slices.
func checkTruths(truths []Truth, numClasses int) error {
	for i, tr := range truths {
		if len(tr.Boxes) != len(tr.Classes) {
			return fmt.Errorf("detector: image %d has %d boxes and %d classes", i,
				len(tr.Boxes), len(tr.Classes))
		}
		for _, c := range tr.Classes {
			if c < 1 || c >= numClasses {
				return fmt.Errorf("detector: image %d: class %d is not a foreground class "+
					"of this model (1..%d)", i, c, numClasses-1)
			}
		}
	}
	return nil
}
