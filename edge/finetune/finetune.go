// Package finetune lets a device learn its own scene: it trains the
// running model's box head (or more layers) on labelled images, frames the
// device collected and the operator labelled, or a folder in the study's
// file-name format or Pascal VOC, with GoMLX's pure-Go backend, starting
// from the float weights the bundle carries. A fifth of the images is held
// out; the result is exported at the running bundle's precision and is
// worth deploying only when its held-out accuracy, measured with the
// device's own engine, does not fall below the running model's. Training
// state is saved atomically after each epoch, so an interrupted fine-tune
// resumes.
package finetune

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gomlx/gomlx/backends"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/export"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite"
)

// Options configure a fine-tune.
type Options struct {
	// Bundle is the running model; it must carry float weights.
	Bundle *bundle.Bundle
	// Data are labelled folders (the study's file names, Pascal VOC or COCO).
	Data []string
	// Layers is --layers (see ParseLayers); "" means head.
	Layers string
	// Epochs (8), Batch images a step (4), RoIs sampled an image (64) and
	// the learning rate of Adam (3e-4); zero values take these defaults.
	Epochs, Batch, RoIs int
	LearningRate        float64
	// MaxSamples keeps at most that many images, evenly spread (400 when 0).
	MaxSamples int
	// CalibrationImages is how many of the images calibrate an int8 export
	// (100 when 0).
	CalibrationImages int
	// State is the folder where training state is saved after each epoch;
	// a run with the same bundle, images and settings resumes from it.
	// Empty keeps no state.
	State string
	// Engine and Threads evaluate the running and the new bundle as the
	// device runs them (detect.Options).
	Engine  string
	Threads int
	Seed    uint64
	// Backend trains; nil makes one with Threads threads.
	Backend  backends.Backend
	Exporter string
	// Progress, when set, is told of every step and phase.
	Progress func(Progress)
	Log      *slog.Logger
}

func (o *Options) defaults() {
	if o.Layers == "" {
		o.Layers = "head"
	}
	if o.Epochs <= 0 {
		o.Epochs = 8
	}
	if o.Batch <= 0 {
		o.Batch = 4
	}
	if o.RoIs <= 0 {
		o.RoIs = 64
	}
	if !(o.LearningRate > 0) {
		o.LearningRate = 3e-4
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = 400
	}
	if o.CalibrationImages <= 0 {
		o.CalibrationImages = 100
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// The phases a fine-tune goes through.
const (
	PhaseReading    = "reading"    // reading and resizing the images
	PhaseFeatures   = "features"   // running stage 1 once on every image
	PhaseBaseline   = "baseline"   // measuring the running model on the held-out images
	PhaseTraining   = "training"   // epochs
	PhaseExporting  = "exporting"  // writing the new bundle (int8: calibrating)
	PhaseEvaluating = "evaluating" // measuring the new bundle on the held-out images
	PhaseDone       = "done"
)

// Progress is where a fine-tune stands.
type Progress struct {
	Phase string `json:"phase"`
	// Done of Total items of the phase (images, or steps of the epoch).
	Done  int `json:"done"`
	Total int `json:"total"`
	// Epoch of Epochs; Loss is the running mean of the epoch's losses.
	Epoch  int     `json:"epoch"`
	Epochs int     `json:"epochs"`
	Loss   float64 `json:"loss"`
	// Samples train, HeldOut are held out.
	Samples int `json:"samples"`
	HeldOut int `json:"held_out"`
	// BaselineAccuracy is the running model's held-out accuracy, and
	// BestAccuracy the float model's best so far (its epoch BestEpoch).
	BaselineAccuracy float64   `json:"baseline_accuracy"`
	BestAccuracy     float64   `json:"best_accuracy"`
	BestEpoch        int       `json:"best_epoch"`
	ResumedFrom      int       `json:"resumed_from,omitempty"`
	Started          time.Time `json:"started"`
	// ETASeconds estimates the time left of the training phase.
	ETASeconds float64 `json:"eta_s"`
}

// Metrics are held-out figures: the study's accuracy and IoU of the top
// detection, and the mAP at IoU 0.5.
type Metrics struct {
	Images   int     `json:"images"`
	Accuracy float64 `json:"accuracy"`
	MeanIoU  float64 `json:"mean_iou"`
	MAP50    float64 `json:"map50"`
}

func metrics(r box.Results) Metrics {
	m := Metrics{Images: r.Images, Accuracy: r.Accuracy, MeanIoU: r.MeanIoU, MAP50: r.MAP50}
	for _, p := range []*float64{&m.Accuracy, &m.MeanIoU, &m.MAP50} {
		if math.IsNaN(*p) {
			*p = 0
		}
	}
	return m
}

// better says whether a beats b: accuracy first, then mAP.
func (a Metrics) better(b Metrics) bool {
	if a.Accuracy != b.Accuracy {
		return a.Accuracy > b.Accuracy
	}
	return a.MAP50 > b.MAP50
}

// Epoch is one epoch's figures.
type Epoch struct {
	Epoch   int     `json:"epoch"`
	Loss    float64 `json:"loss"`
	HeldOut Metrics `json:"held_out"`
	Seconds float64 `json:"seconds"`
}

// Result is what a fine-tune did.
type Result struct {
	Running   string `json:"running"` // the running bundle's version
	Precision string `json:"precision"`
	Layers    string `json:"layers"`
	Samples   int    `json:"samples"`
	HeldOut   int    `json:"held_out"`
	// Baseline and Candidate are the running and the new bundle on the
	// held-out images, measured with the device's engine.
	Baseline  Metrics  `json:"baseline"`
	Candidate *Metrics `json:"candidate,omitempty"`
	Epochs    []Epoch  `json:"epochs"`
	BestEpoch int      `json:"best_epoch"`
	// Accepted is true when the new bundle's held-out accuracy does not
	// fall below the running one's: Bundle is then worth deploying.
	Accepted bool           `json:"accepted"`
	Reason   string         `json:"reason"`
	Bundle   *bundle.Bundle `json:"-"`
	Version  string         `json:"version,omitempty"` // the new bundle's
	// ResumedFrom is the epoch training resumed after (0: from the start).
	ResumedFrom int `json:"resumed_from,omitempty"`
	// TrainSeconds is the time in training steps; PerSampleMs that time per
	// image and epoch.
	TrainSeconds float64 `json:"train_s"`
	PerSampleMs  float64 `json:"per_sample_ms"`
	Seconds      float64 `json:"seconds"`
}

// ErrTooFew is returned, wrapped, when there are too few labelled images.
var ErrTooFew = errors.New("too few labelled images to fine-tune")

// MinSamples is the fewest labelled images a fine-tune takes: four to
// train on and one held out.
const MinSamples = 5

// state is what the State folder records between runs.
type state struct {
	Key       string  `json:"key"`
	Epoch     int     `json:"epoch"`
	BestEpoch int     `json:"best_epoch"`
	Best      Metrics `json:"best"`
	Epochs    []Epoch `json:"epochs"`
	Done      bool    `json:"done"`
}

const (
	stateFile   = "state.json"
	trainFile   = "train.state"
	bestFile    = "best.state"
	resultFile  = "result.json"
	proposalTop = 300 // proposals an image offers for RoI sampling
)

// Run fine-tunes opt.Bundle. Cancelling ctx stops it between steps; the
// state of the last whole epoch stays in opt.State for the next run.
func Run(ctx context.Context, opt Options) (*Result, error) {
	opt.defaults()
	start := time.Now()
	b := opt.Bundle
	if b == nil {
		return nil, errors.New("finetune: no running bundle")
	}
	if b.Weights == nil {
		return nil, fmt.Errorf("finetune: bundle %s carries no float weights to start from: "+
			"export it with masktrain export --weights float16", b.ShortVersion())
	}
	cfg := b.Meta.Model
	stage1, stage2, err := cfg.Stages()
	if err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	prefixes, err := ParseLayers(opt.Layers, stage1, stage2)
	if err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	classes, err := ClassMap(b)
	if err != nil {
		return nil, err
	}
	samples, problems, err := ReadData(opt.Data, classes)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		opt.Log.Debug("finetune: data problem", "problem", p)
	}
	samples = Spread(samples, opt.MaxSamples)
	if len(samples) < MinSamples {
		return nil, fmt.Errorf("%w: %d, need %d: label more on the page, or give a labelled "+
			"folder with --data", ErrTooFew, len(samples), MinSamples)
	}
	trainSet, heldOut := Split(samples)
	res := &Result{Running: b.ShortVersion(), Precision: b.Meta.Precision, Layers: opt.Layers,
		Samples: len(trainSet), HeldOut: len(heldOut)}
	prog := Progress{Samples: len(trainSet), HeldOut: len(heldOut), Epochs: opt.Epochs,
		Started: start}
	report := func() {
		if opt.Progress != nil {
			opt.Progress(prog)
		}
	}

	be := opt.Backend
	if be == nil {
		threads := opt.Threads
		if threads <= 0 {
			threads = -1
		}
		if be, err = newBackend(threads); err != nil {
			return nil, err
		}
		defer be.Finalize()
	}

	key := stateKey(b, samples, opt)
	st := readState(opt.State)
	if st.Key != key || st.Done {
		st = state{Key: key}
	} else if st.Epoch > 0 {
		res.ResumedFrom, prog.ResumedFrom = st.Epoch, st.Epoch
		opt.Log.Info("finetune: resuming", "after_epoch", st.Epoch, "state", opt.State)
	}

	// Read the images, resized as the detector resizes frames, onto one canvas.
	prog.Phase, prog.Total = PhaseReading, len(samples)
	report()
	spec := b.Meta.Input
	var resizer input.Resizer
	preps := make([]prepared, len(samples))
	cw, ch := 0, 0
	all := append(slices.Clone(trainSet), heldOut...)
	for i, s := range all {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if preps[i], err = prepare(s, spec, &resizer); err != nil {
			return nil, fmt.Errorf("finetune: %w", err)
		}
		preps[i].frame = detect.Frame{} // decoded again when needed
		cw, ch = max(cw, preps[i].plan.Width), max(ch, preps[i].plan.Height)
		prog.Done = i + 1
		report()
	}
	pad := spec.PadColour()
	for i := range preps {
		preps[i].rgb = onCanvas(preps[i], cw, ch, pad)
	}

	tr, err := newTrainer(be, cfg, spec, b.Weights, prefixes, opt.Batch, opt.RoIs, ch, cw,
		opt.LearningRate, opt.Seed)
	if err != nil {
		return nil, err
	}
	defer tr.close()

	// Stage 1 once on every image: the running model's proposals (and, with
	// stage 1 frozen, the feature maps the head trains on).
	prog.Phase, prog.Done, prog.Total = PhaseFeatures, 0, len(preps)
	report()
	train := make([]*cached, len(trainSet))
	held := make([]*cached, len(heldOut))
	s1, err := net.NewRunner(be, stage1, b.Weights, nil)
	if err != nil {
		return nil, fmt.Errorf("finetune: stage 1: %w", err)
	}
	trainProposer := box.NewProposer(withTop(cfg.EvalProposals, proposalTop))
	evalProposer := box.NewProposer(cfg.EvalProposals)
	table := spec.FloatTable()
	for i, p := range preps {
		if err := ctx.Err(); err != nil {
			s1.Close()
			return nil, err
		}
		c, err := tr.cache(s1, p, table, i < len(trainSet), trainProposer, evalProposer)
		if err != nil {
			s1.Close()
			return nil, err
		}
		if !tr.stage1Open {
			preps[i].rgb = nil // the feature map is all the head needs
		}
		if i < len(trainSet) {
			train[i] = c
		} else {
			held[i-len(trainSet)] = c
		}
		prog.Done = i + 1
		report()
	}
	s1.Close()

	// The running model on the held-out images, as the device runs it.
	prog.Phase, prog.Done, prog.Total = PhaseBaseline, 0, len(heldOut)
	report()
	res.Baseline, err = evaluateBundle(ctx, b, heldOut, opt)
	if err != nil {
		return nil, fmt.Errorf("finetune: the running model: %w", err)
	}
	prog.BaselineAccuracy = res.Baseline.Accuracy
	floatBase, err := tr.evaluate(be, b.Weights, held, preps[len(trainSet):], evalProposer)
	if err != nil {
		return nil, err
	}
	if st.Epoch == 0 {
		st.Best, st.BestEpoch = floatBase, 0
	}
	opt.Log.Info("finetune: start", "running", b.ShortVersion(), "precision",
		b.Meta.Precision, "layers", opt.Layers, "train", len(trainSet), "held_out",
		len(heldOut), "held_out_accuracy", res.Baseline.Accuracy, "epochs", opt.Epochs)

	// Resume, then train the remaining epochs.
	best := b.Weights
	if st.Epoch > 0 {
		if err := tr.load(filepath.Join(opt.State, trainFile)); err != nil {
			opt.Log.Warn("finetune: cannot resume; starting over", "err", err)
			st = state{Key: key, Best: floatBase}
			res.ResumedFrom, prog.ResumedFrom = 0, 0
		}
	}
	if st.BestEpoch > 0 {
		if w, err := readWeights(filepath.Join(opt.State, bestFile), b.Weights); err == nil {
			best = w
		} else {
			st.BestEpoch, st.Best = 0, floatBase
		}
	}
	prog.BestAccuracy, prog.BestEpoch = st.Best.Accuracy, st.BestEpoch
	steps := (len(train) + opt.Batch - 1) / opt.Batch
	var trainTime time.Duration
	for epoch := st.Epoch + 1; epoch <= opt.Epochs; epoch++ {
		es := time.Now()
		prog.Phase, prog.Epoch, prog.Done, prog.Total, prog.Loss = PhaseTraining, epoch, 0,
			steps, 0
		report()
		order := rand.New(rand.NewPCG(opt.Seed, uint64(epoch))).Perm(len(train))
		var sum float64
		for s := range steps {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			batch := make([]*cached, opt.Batch)
			for i := range batch {
				batch[i] = train[order[(s*opt.Batch+i)%len(order)]]
			}
			l, err := tr.step(batch, uint64(epoch*steps+s))
			if err != nil {
				return nil, err
			}
			sum += l.Total
			prog.Done, prog.Loss = s+1, sum/float64(s+1)
			done := float64(epoch-st.Epoch-1)*float64(steps) + float64(s+1)
			left := float64(opt.Epochs-st.Epoch)*float64(steps) - done
			prog.ETASeconds = (trainTime.Seconds() + time.Since(es).Seconds()) / done * left
			report()
		}
		trainTime += time.Since(es)
		w, err := tr.weights(b.Weights)
		if err != nil {
			return nil, err
		}
		m, err := tr.evaluate(be, w, held, preps[len(trainSet):], evalProposer)
		if err != nil {
			return nil, err
		}
		e := Epoch{Epoch: epoch, Loss: sum / float64(steps), HeldOut: m,
			Seconds: time.Since(es).Seconds()}
		st.Epochs = append(st.Epochs, e)
		if m.better(st.Best) {
			st.Best, st.BestEpoch, best = m, epoch, w
			if opt.State != "" {
				path := filepath.Join(opt.State, bestFile)
				if err := writeWeights(path, w, tr.nets()); err != nil {
					return nil, err
				}
			}
		}
		st.Epoch = epoch
		if opt.State != "" {
			if err := tr.save(filepath.Join(opt.State, trainFile)); err != nil {
				return nil, err
			}
			if err := writeState(opt.State, st); err != nil {
				return nil, err
			}
		}
		prog.BestAccuracy, prog.BestEpoch = st.Best.Accuracy, st.BestEpoch
		opt.Log.Info("finetune: epoch done", "epoch", epoch, "loss", round(e.Loss, 4),
			"held_out_accuracy", round(m.Accuracy, 4), "map50", round(m.MAP50, 4),
			"seconds", round(e.Seconds, 1))
	}
	res.Epochs, res.BestEpoch = st.Epochs, st.BestEpoch
	res.TrainSeconds = trainTime.Seconds()
	if trained := (opt.Epochs - res.ResumedFrom) * len(train); trained > 0 {
		res.PerSampleMs = trainTime.Seconds() * 1000 / float64(trained)
	}

	if st.BestEpoch == 0 {
		res.Reason = "no epoch did better than the running model on the held-out images; " +
			"nothing to deploy"
		return finish(res, st, opt, start), nil
	}
	prog.Phase, prog.Done, prog.Total = PhaseExporting, 0, 0
	report()
	cand, err := exportLike(ctx, b, best, all, st, opt, be, func(done, total int) {
		prog.Done, prog.Total = done, total
		report()
	})
	if err != nil {
		return nil, err
	}
	prog.Phase, prog.Done, prog.Total = PhaseEvaluating, 0, len(heldOut)
	report()
	cm, err := evaluateBundle(ctx, cand, heldOut, opt)
	if err != nil {
		return nil, fmt.Errorf("finetune: the new model: %w", err)
	}
	res.Candidate, res.Bundle, res.Version = &cm, cand, cand.ShortVersion()
	res.Accepted = cm.Accuracy >= res.Baseline.Accuracy
	if res.Accepted {
		res.Reason = fmt.Sprintf("held-out accuracy %.3f, was %.3f", cm.Accuracy,
			res.Baseline.Accuracy)
	} else {
		res.Reason = fmt.Sprintf("held-out accuracy would fall from %.3f to %.3f; not "+
			"deployed", res.Baseline.Accuracy, cm.Accuracy)
	}
	return finish(res, st, opt, start), nil
}

func finish(res *Result, st state, opt Options, start time.Time) *Result {
	res.Seconds = time.Since(start).Seconds()
	if opt.Progress != nil {
		opt.Progress(Progress{Phase: PhaseDone, Epoch: st.Epoch, Epochs: opt.Epochs,
			Samples: res.Samples, HeldOut: res.HeldOut, BaselineAccuracy: res.Baseline.Accuracy,
			BestAccuracy: st.Best.Accuracy, BestEpoch: st.BestEpoch,
			ResumedFrom: res.ResumedFrom})
	}
	if opt.State != "" {
		st.Done = true
		if err := writeState(opt.State, st); err != nil {
			opt.Log.Warn("finetune: cannot save the state", "err", err)
		}
		if raw, err := json.MarshalIndent(res, "", "  "); err == nil {
			writeAtomic(filepath.Join(opt.State, resultFile), append(raw, '\n'))
		}
	}
	opt.Log.Info("finetune: done", "accepted", res.Accepted, "reason", res.Reason,
		"seconds", round(res.Seconds, 1))
	return res
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func withTop(c box.ProposalConfig, top int) box.ProposalConfig {
	c.PostNMSTopN = max(c.PostNMSTopN, top)
	c.PreNMSTopN = max(c.PreNMSTopN, 2*top)
	return c
}

// cache runs stage 1 on one image and keeps what training needs of it.
func (t *trainer) cache(s1 *net.Runner, p prepared, table *[3][256]float32, training bool,
	trainProposer, evalProposer *box.Proposer) (*cached, error) {
	out, err := s1.Run(net.Tensor{Shape: []int{1, t.h, t.w, 3},
		Values: input.Normalize(nil, p.rgb, table)})
	if err != nil {
		return nil, fmt.Errorf("finetune: stage 1 on %s: %w", p.sample.Path, err)
	}
	proposer := evalProposer
	if training {
		proposer = trainProposer
	}
	props, err := proposer.Propose(nil, t.anchors, out[1].Values, out[2].Values, nil,
		float64(p.plan.ContentWidth), float64(p.plan.ContentHeight))
	if err != nil {
		return nil, fmt.Errorf("finetune: proposals on %s: %w", p.sample.Path, err)
	}
	c := &cached{proposals: props, boxes: p.boxes}
	for _, k := range p.sample.Classes {
		c.classes = append(c.classes, k+1)
	}
	if t.stage1Open {
		c.rgb = p.rgb
	} else {
		c.feature = out[0].Values
	}
	return c, nil
}

// evaluate measures weights w on the held-out images with the float model,
// as the detector runs it: proposals, RoIAlign, the head, NMS.
func (t *trainer) evaluate(be backends.Backend, w net.Weights, held []*cached,
	preps []prepared, proposer *box.Proposer) (Metrics, error) {
	cfg := t.cfg
	top := cfg.EvalProposals.PostNMSTopN
	s2, err := net.NewRunner(be, t.stage2, w, nil)
	if err != nil {
		return Metrics{}, fmt.Errorf("finetune: evaluation: %w", err)
	}
	defer s2.Close()
	var s1 *net.Runner
	if t.stage1Open {
		if s1, err = net.NewRunner(be, t.stage1, w, nil); err != nil {
			return Metrics{}, fmt.Errorf("finetune: evaluation: %w", err)
		}
		defer s1.Close()
	}
	ev := box.NewEvaluator(cfg.NumClasses())
	post := box.NewPostprocessor(cfg.Detection)
	c := cfg.NeckChannels
	per := cfg.RoIAlign.OutH * cfg.RoIAlign.OutW * c
	pooled := make([]float32, top*per)
	for i, h := range held {
		p := preps[i]
		feature, props := h.feature, h.proposals
		if s1 != nil {
			out, err := s1.Run(net.Tensor{Shape: []int{1, t.h, t.w, 3},
				Values: input.Normalize(nil, p.rgb, t.table)})
			if err != nil {
				return Metrics{}, err
			}
			feature = out[0].Values
			if props, err = proposer.Propose(nil, t.anchors, out[1].Values, out[2].Values, nil,
				float64(p.plan.ContentWidth), float64(p.plan.ContentHeight)); err != nil {
				return Metrics{}, err
			}
		}
		var dets []box.Detection
		if len(props) > 0 {
			clear(pooled)
			if err := cfg.RoIAlign.Pool(pooled[:len(props)*per], feature, t.gh, t.gw, c,
				props); err != nil {
				return Metrics{}, err
			}
			out, err := s2.Run(net.Tensor{Shape: []int{top, cfg.RoIAlign.OutH,
				cfg.RoIAlign.OutW, c}, Values: pooled})
			if err != nil {
				return Metrics{}, err
			}
			k := cfg.NumClasses()
			dets, err = post.Detect(nil, props, out[0].Values[:len(props)*k],
				out[1].Values[:len(props)*4*k], k, float64(p.plan.ContentWidth),
				float64(p.plan.ContentHeight))
			if err != nil {
				return Metrics{}, err
			}
		}
		for j := range dets {
			dets[j].Box = p.plan.Letterbox.ToImage(dets[j].Box)
		}
		if err := ev.Add(dets, truths(p.sample)); err != nil {
			return Metrics{}, err
		}
	}
	return metrics(ev.Results()), nil
}

func truths(s Sample) []box.GroundTruth {
	gts := make([]box.GroundTruth, len(s.Boxes))
	for i, b := range s.Boxes {
		gts[i] = box.GroundTruth{Box: b, Class: s.Classes[i] + 1}
	}
	return gts
}

// evaluateBundle measures a bundle on the held-out images with the device's
// engine.
func evaluateBundle(ctx context.Context, b *bundle.Bundle, held []Sample,
	opt Options) (Metrics, error) {
	d, err := detect.OpenBundle(b, "fine-tune evaluation", detect.Options{Engine: opt.Engine,
		Threads: opt.Threads})
	if err != nil {
		return Metrics{}, err
	}
	defer d.Close()
	bd, ok := d.(detect.BoxDetector)
	if !ok {
		return Metrics{}, fmt.Errorf("the %s engine does not report boxes", opt.Engine)
	}
	ev := box.NewEvaluator(b.Meta.Model.NumClasses())
	for _, s := range held {
		if err := ctx.Err(); err != nil {
			return Metrics{}, err
		}
		f, err := decodeFrame(s.Path)
		if err != nil {
			return Metrics{}, err
		}
		dets, err := bd.DetectBoxes(f)
		if err != nil {
			return Metrics{}, err
		}
		if err := ev.Add(dets, truths(s)); err != nil {
			return Metrics{}, err
		}
	}
	return metrics(ev.Results()), nil
}

// exportLike writes weights w as a bundle like b: same precision, input,
// float weights type and calibration method; int8 is calibrated on the
// fine-tune's own images.
func exportLike(ctx context.Context, b *bundle.Bundle, w net.Weights, images []Sample,
	st state, opt Options, be backends.Backend, progress func(done, total int)) (
	*bundle.Bundle, error) {
	precision, err := tflite.ParsePrecision(b.Meta.Precision)
	if err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	weightsType := b.Meta.WeightsType
	if weightsType == "" {
		weightsType = "none"
	}
	metrics := map[string]any{"held_out_accuracy": st.Best.Accuracy,
		"held_out_map50": st.Best.MAP50, "layers": opt.Layers}
	if b.Meta.Source.Metrics != nil {
		for k, v := range b.Meta.Source.Metrics {
			metrics["base_"+k] = v
		}
	}
	eo := export.Options{Precision: precision, MaxSide: b.Meta.Input.MaxSide,
		WeightsType: weightsType, Exporter: opt.Exporter, Backend: be,
		Source: bundle.Source{Checkpoint: "fine-tune of " + b.ShortVersion(),
			SHA256: hex.EncodeToString(b.Digest[:]), Epoch: st.BestEpoch, Metrics: metrics}}
	if precision == tflite.INT8 {
		calib := Spread(images, opt.CalibrationImages)
		next := 0
		eo.Calibration = func() (input.Source, bool, error) {
			if next == len(calib) {
				return input.Source{}, false, nil
			}
			f, err := decodeFrame(calib[next].Path)
			next++
			if err != nil {
				return input.Source{}, false, err
			}
			return input.Source{Pix: f.Pix, Width: f.Width, Height: f.Height, Stride: f.Stride,
				BGR: true}, true, nil
		}
		eo.CalibrationImages = len(calib)
		eo.CalibrationSource = "fine-tune images"
		if b.Meta.Calibration != nil {
			eo.CalibrationMethod = tflite.Method(b.Meta.Calibration.Method)
		}
		eo.Progress = func(done int) { progress(done, len(calib)) }
	}
	cand, err := export.FromWeights(ctx, b.Meta.Model, w, eo)
	if err != nil {
		return nil, fmt.Errorf("finetune: export: %w", err)
	}
	cand.Meta.Classes = slices.Clone(b.Meta.Classes)
	if _, err := bundle.Encode(cand); err != nil {
		return nil, fmt.Errorf("finetune: export: %w", err)
	}
	return cand, nil
}

// stateKey identifies a fine-tune: the bundle, the images and the settings
// that shape training. A run resumes only a state of the same key.
func stateKey(b *bundle.Bundle, samples []Sample, opt Options) string {
	h := sha256.New()
	h.Write(b.Digest[:])
	fmt.Fprintf(h, "%s|%d|%d|%g|%d\n", opt.Layers, opt.Batch, opt.RoIs, opt.LearningRate,
		opt.Seed)
	for _, s := range samples {
		fmt.Fprintf(h, "%s|%v|%v\n", s.Path, s.Boxes, s.Classes)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func readState(dir string) state {
	var st state
	if dir == "" {
		return st
	}
	raw, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil || json.Unmarshal(raw, &st) != nil {
		return state{}
	}
	return st
}

func writeState(dir string, st state) error {
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, stateFile), append(raw, '\n'))
}

// writeWeights saves the networks' weights of w (the best epoch's).
func writeWeights(path string, w net.Weights, nets []*net.Net) error {
	out := net.Weights{}
	for _, n := range nets {
		for _, v := range n.Vars() {
			out[v.FullName()] = w[v.FullName()]
		}
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(out); err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	return writeAtomic(path, append(buf.Bytes(), sum[:]...))
}

// readWeights reads what writeWeights wrote, over base.
func readWeights(path string, base net.Weights) (net.Weights, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < sha256.Size {
		return nil, fmt.Errorf("finetune: %s is damaged", path)
	}
	body := raw[:len(raw)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], raw[len(body):]) {
		return nil, fmt.Errorf("finetune: %s is damaged (sha256)", path)
	}
	var in net.Weights
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&in); err != nil {
		return nil, fmt.Errorf("finetune: %s: %w", path, err)
	}
	out := maps.Clone(base)
	for name, t := range in {
		old, ok := base[name]
		if !ok || !slices.Equal(old.Shape, t.Shape) || len(t.Values) != len(old.Values) {
			return nil, fmt.Errorf("finetune: %s: weight %s does not fit the model", path, name)
		}
		out[name] = t
	}
	return out, nil
}

// newBackend is maskwatch's pure-Go GoMLX backend with threads workers
// (-1: no limit).
func newBackend(threads int) (backends.Backend, error) {
	be, err := backend.New(fmt.Sprintf("parallelism=%d", threads))
	if err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	return be, nil
}
