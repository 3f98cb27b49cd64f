package detect

import (
	"errors"
	"fmt"
	"time"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/input"
)

// engine runs the two stage graphs; the pipeline does everything else.
type engine interface {
	name() string
	// setInput loads stage 1's input from RGB pixels, h x w x 3.
	setInput(rgb []uint8, h, w int) error
	// stage1 runs stage 1 and returns its outputs as float32: the feature
	// map [gh*gw*C], objectness [gh*gw*A] and deltas [gh*gw*4A], and the grid.
	stage1() (feature, objectness, deltas []float32, gh, gw int, err error)
	// stage2 runs stage 2 on pooled RoIs [r, OutH, OutW, C], of which the
	// first n are real (the rest padding), and returns n RoIs' class
	// logits [n*K] and deltas [n*4K].
	stage2(pooled []float32, r, n int) (logits, deltas []float32, err error)
	// bucket is what the number of RoIs stage 2 runs on is rounded up to a
	// multiple of, so the engine resizes or compiles for few batch sizes.
	bucket() int
	close() error
}

// pipeline is the Detector both engines share: letterbox and resize in
// package input, stage 1, proposals and RoIAlign in package box, stage 2,
// box decoding and NMS in package box, boxes mapped back to the frame.
type pipeline struct {
	engine engine
	cfg    frcnn.Config
	spec   input.Spec
	info   Info
	labels []bundle.Class

	resizer  input.Resizer
	rgb      []uint8
	proposer *box.Proposer
	post     *box.Postprocessor
	anchors  map[[2]int][]box.Box
	props    []box.Box
	pooled   []float32
	dets     []box.Detection
	timings  Timings
	closed   bool
}

func newPipeline(b *bundle.Bundle, path string) (*pipeline, error) {
	cfg := b.Meta.Model
	classes := make([]string, len(b.Meta.Classes))
	for i, c := range b.Meta.Classes {
		classes[i] = c.Name
	}
	return &pipeline{
		cfg: cfg, spec: b.Meta.Input, labels: b.Meta.Classes,
		info: Info{Backbone: b.Meta.Backbone, Precision: b.Meta.Precision,
			Version: b.ShortVersion(), Classes: classes, Path: path},
		proposer: box.NewProposer(cfg.EvalProposals),
		post:     box.NewPostprocessor(cfg.Detection),
		anchors:  map[[2]int][]box.Box{},
	}, nil
}

var errClosed = errors.New("detect: detector is closed")

// Detect finds the faces in f.
func (p *pipeline) Detect(f Frame) ([]Face, error) {
	dets, lb, err := p.detect(f)
	if err != nil {
		return nil, err
	}
	faces := make([]Face, 0, len(dets))
	for _, d := range dets {
		k := d.Class - 1
		if k < 0 || k >= len(p.labels) {
			continue
		}
		faces = append(faces, Face{
			Box:   lb.ToImage(d.Box).Clip(float64(f.Width), float64(f.Height)),
			Class: k, Label: p.labels[k].Name, Proper: p.labels[k].Proper, Score: d.Score,
		})
	}
	return faces, nil
}

// DetectBoxes is Detect returning box.Detections in frame pixels, with
// classes in the model's numbering (1 = Info.Classes[0]), as evaluation
// scores them.
func (p *pipeline) DetectBoxes(f Frame) ([]box.Detection, error) {
	dets, lb, err := p.detect(f)
	if err != nil {
		return nil, err
	}
	out := make([]box.Detection, len(dets))
	for i, d := range dets {
		d.Box = lb.ToImage(d.Box).Clip(float64(f.Width), float64(f.Height))
		out[i] = d
	}
	return out, nil
}

// detect runs the whole pipeline; the detections are in input pixels and
// valid until the next call.
func (p *pipeline) detect(f Frame) ([]box.Detection, box.Letterbox, error) {
	if p.closed {
		return nil, box.Letterbox{}, errClosed
	}
	p.timings = Timings{}
	start := time.Now()
	src := input.Source{Pix: f.Pix, Width: f.Width, Height: f.Height, Stride: f.Stride, BGR: true}
	plan, err := p.spec.Plan(f.Width, f.Height)
	if err != nil {
		return nil, box.Letterbox{}, fmt.Errorf("detect: %w", err)
	}
	if p.rgb, err = p.resizer.Resize(p.rgb, src, plan, p.spec.PadColour()); err != nil {
		return nil, box.Letterbox{}, fmt.Errorf("detect: %w", err)
	}
	if err := p.engine.setInput(p.rgb, plan.Height, plan.Width); err != nil {
		return nil, box.Letterbox{}, fmt.Errorf("detect: %w", err)
	}
	t1 := time.Now()
	p.timings.Preprocess = t1.Sub(start)

	feature, objectness, deltas, gh, gw, err := p.engine.stage1()
	if err != nil {
		return nil, box.Letterbox{}, fmt.Errorf("detect: stage 1: %w", err)
	}
	t2 := time.Now()
	p.timings.Stage1 = t2.Sub(t1)

	anchors, ok := p.anchors[[2]int{gh, gw}]
	if !ok {
		anchors = box.Anchors(nil, p.cfg.Anchors, gh, gw)
		p.anchors[[2]int{gh, gw}] = anchors
	}
	w, h := float64(plan.ContentWidth), float64(plan.ContentHeight)
	p.props, err = p.proposer.Propose(p.props[:0], anchors, objectness, deltas, nil, w, h)
	proposals := p.props
	if err != nil {
		return nil, box.Letterbox{}, fmt.Errorf("detect: proposals: %w", err)
	}
	t3 := time.Now()
	p.timings.Post = t3.Sub(t2)
	p.dets = p.dets[:0]
	if len(proposals) == 0 {
		return p.dets, plan.Letterbox, nil
	}

	ra, c := p.cfg.RoIAlign, p.cfg.NeckChannels
	n := len(proposals)
	bucket := p.engine.bucket()
	r := (n + bucket - 1) / bucket * bucket
	per := ra.OutH * ra.OutW * c
	if cap(p.pooled) < r*per {
		p.pooled = make([]float32, r*per)
	}
	pooled := p.pooled[:r*per]
	if err := ra.Pool(pooled[:n*per], feature, gh, gw, c, proposals); err != nil {
		return nil, box.Letterbox{}, fmt.Errorf("detect: RoIAlign: %w", err)
	}
	clear(pooled[n*per:])
	logits, boxDeltas, err := p.engine.stage2(pooled, r, n)
	if err != nil {
		return nil, box.Letterbox{}, fmt.Errorf("detect: stage 2: %w", err)
	}
	t4 := time.Now()
	p.timings.Stage2 = t4.Sub(t3)

	p.dets, err = p.post.Detect(p.dets, proposals, logits, boxDeltas, p.cfg.NumClasses(), w, h)
	if err != nil {
		return nil, box.Letterbox{}, fmt.Errorf("detect: %w", err)
	}
	p.timings.Post += time.Since(t4)
	return p.dets, plan.Letterbox, nil
}

// LastTimings returns the stage timings of the last Detect.
func (p *pipeline) LastTimings() Timings { return p.timings }

// Info describes the model.
func (p *pipeline) Info() Info { return p.info }

// Close releases the engine. A second Close does nothing.
func (p *pipeline) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	return p.engine.close()
}
