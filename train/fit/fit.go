// Package fit trains maskwatch's detector on data sets: epochs of augmented
// batches, validation after each, metrics as JSON lines and curves, and
// checkpoints written atomically so that a stopped run resumes.
package fit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/evaluate"
	"github.com/maskwatch/maskwatch/train/history"
	"github.com/maskwatch/maskwatch/train/loader"
	"github.com/maskwatch/maskwatch/train/progress"
)

// File names in the output folder.
const (
	LastCheckpoint = "last.ckpt"     // the end of the latest epoch, optimizer included
	BestCheckpoint = "best.ckpt"     // the best epoch so far, weights only
	HistoryFile    = "history.jsonl" // one line of metrics an epoch
)

// Options configure a training run.
type Options struct {
	Backbone net.Backbone
	// Train and Val are data sets; Val may be empty (no validation).
	Train, Val []*dataset.Set
	Out        string

	Epochs       int
	Batch        int
	LearningRate float64
	// Schedule is how the learning rate changes over the epochs.
	Schedule Schedule
	Clip     float64
	Size     int
	Workers  int
	Seed     uint64
	// Augment is applied to training images.
	Augment loader.Augment
	// Resume continues from Out's last checkpoint; without it a folder that
	// holds one is refused rather than overwritten.
	Resume bool
	// RecalibrationImages is how many training images (augmented as in
	// training) measure the batch-norm statistics after each epoch, before
	// validation and saving (see frcnn.Model.RecalibrateBatchNorm); 0 keeps
	// the running averages.
	RecalibrationImages int
	// TrainEvalImages is how many training images (a fixed spread) the
	// training accuracy and IoU are measured on after each epoch; 0 skips it.
	TrainEvalImages int

	// Progress receives the progress bars; Results one JSON line an epoch.
	Progress, Results io.Writer
	Log               *slog.Logger
	Backend           backends.Backend
}

// Schedule names a learning-rate schedule.
type Schedule string

// The schedules: the study's constant rate, or a cosine decay from the rate
// to a hundredth of it over the run's epochs, which ends training at a
// lower loss for the same epochs.
const (
	Constant Schedule = "constant"
	Cosine   Schedule = "cosine"
)

// ParseSchedule checks a schedule name.
func ParseSchedule(name string) (Schedule, error) {
	switch Schedule(name) {
	case Constant, Cosine:
		return Schedule(name), nil
	}
	return "", fmt.Errorf("schedule %q: use %s or %s", name, Constant, Cosine)
}

// Rate is the learning rate of epoch (1-based) of epochs, from base.
func (s Schedule) Rate(base float64, epoch, epochs int) float64 {
	if s != Cosine || epochs <= 1 {
		return base
	}
	const floor = 0.01
	t := float64(epoch-1) / float64(epochs-1)
	return base * (floor + (1-floor)*0.5*(1+math.Cos(math.Pi*t)))
}

// Study returns the study's settings for a backbone: Adam at 1e-3, batch 32,
// images of 224 px, gradient norm clipped at 10.
func Study(backbone net.Backbone) Options {
	return Options{
		Backbone: backbone, Epochs: 30, Batch: 32, LearningRate: 1e-3, Schedule: Constant,
		Clip: 10, Size: 224,
		Seed: 1, Augment: loader.DefaultAugment(), RecalibrationImages: 256, TrainEvalImages: 256,
	}
}

func (o Options) validate() error {
	switch {
	case len(o.Train) == 0:
		return errors.New("train: no training data: pass --data DIR")
	case o.Out == "":
		return errors.New("train: no output folder: pass --out DIR")
	case o.Epochs <= 0:
		return fmt.Errorf("train: --epochs %d: must be at least 1", o.Epochs)
	case o.Batch <= 0:
		return fmt.Errorf("train: --batch %d: must be at least 1", o.Batch)
	case o.Backend == nil:
		return errors.New("train: no GoMLX backend")
	}
	if _, err := ParseSchedule(string(o.Schedule)); err != nil {
		return fmt.Errorf("train: --schedule: %w", err)
	}
	if _, err := net.ParseBackbone(string(o.Backbone)); err != nil {
		return fmt.Errorf("train: --backbone: %w", err)
	}
	classes := o.Train[0].Classes.Names
	for _, s := range append(o.Train[1:], o.Val...) {
		if fmt.Sprint(s.Classes.Names) != fmt.Sprint(classes) {
			return fmt.Errorf("train: %s has classes %v, %s has %v: use one --classes for all",
				s.Source, s.Classes.Names, o.Train[0].Source, classes)
		}
	}
	return nil
}

// Run trains until Options.Epochs epochs are done or ctx is cancelled. It
// returns the metrics of every epoch of the run's history (earlier ones
// included when resuming). Cancelling loses at most the epoch under way:
// the last checkpoint stays as the previous epoch wrote it.
func Run(ctx context.Context, o Options) ([]history.Epoch, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, meta, err := start(o, log)
	if err != nil {
		return nil, err
	}
	historyPath := filepath.Join(o.Out, HistoryFile)
	if err := history.Truncate(historyPath, meta.Epoch); err != nil &&
		!errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	past, err := history.Read(historyPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}

	tr, err := m.NewTrainer(frcnn.TrainOptions{
		Batch: o.Batch, LearningRate: o.LearningRate, Clip: o.Clip, Seed: o.Seed,
	})
	if err != nil {
		return nil, err
	}
	train, err := loader.New(records(o.Train), loader.Config{
		Size: m.Config.Size, Batch: o.Batch, Workers: o.Workers, Seed: o.Seed, Shuffle: true,
		Augment: o.Augment, Normalize: normalize(m.Config),
	})
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if err := train.Preload(ctx); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}

	best := bestScore(past)
	for epoch := meta.Epoch + 1; epoch <= o.Epochs; epoch++ {
		tr.SetLearningRate(o.Schedule.Rate(o.LearningRate, epoch, o.Epochs))
		e, err := runEpoch(ctx, o, m, tr, train, epoch)
		if err != nil {
			return past, err
		}
		past = append(past, e)
		if err := history.Append(historyPath, e); err != nil {
			return past, err
		}
		if err := history.Plot(past, o.Out); err != nil {
			return past, err
		}
		values := map[string]any{"val_accuracy": e.ValAccuracy, "val_iou": e.ValIoU,
			"val_map50": e.ValMAP50, "train_loss": e.Train.Total}
		for k, v := range values {
			if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
				delete(values, k)
			}
		}
		epochMeta := frcnn.Meta{Epoch: epoch, Step: tr.GlobalStep(), Values: values}
		if score := epochScore(e); score > best || math.IsNaN(best) {
			best = score
			if err := m.Save(filepath.Join(o.Out, BestCheckpoint), epochMeta, false); err != nil {
				return past, err
			}
		}
		if err := m.Save(filepath.Join(o.Out, LastCheckpoint), epochMeta, true); err != nil {
			return past, err
		}
		if o.Results != nil {
			line, _ := json.Marshal(e)
			fmt.Fprintf(o.Results, "%s\n", line)
		}
		log.Info("train: epoch done", "epoch", epoch, "loss", e.Train.Total,
			"val_accuracy", e.ValAccuracy, "val_iou", e.ValIoU, "seconds", e.Seconds)
	}
	return past, nil
}

// start loads the run's last checkpoint, or makes a new model.
func start(o Options, log *slog.Logger) (*frcnn.Model, frcnn.Meta, error) {
	last := filepath.Join(o.Out, LastCheckpoint)
	_, statErr := os.Stat(last)
	switch {
	case statErr == nil && o.Resume:
		m, meta, err := frcnn.Load(last, o.Backend)
		if err != nil {
			return nil, meta, fmt.Errorf("train: --resume: %w", err)
		}
		if m.Config.Backbone != o.Backbone {
			return nil, meta, fmt.Errorf("train: --resume: %s holds a %s model, not %s",
				last, m.Config.Backbone, o.Backbone)
		}
		log.Info("train: resuming", "checkpoint", last, "epoch", meta.Epoch, "step", meta.Step)
		return m, meta, nil
	case statErr == nil:
		return nil, frcnn.Meta{}, fmt.Errorf("train: %s already holds a training run: "+
			"pass --resume to continue it, or choose another --out", o.Out)
	case !errors.Is(statErr, os.ErrNotExist):
		return nil, frcnn.Meta{}, fmt.Errorf("train: %w", statErr)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, frcnn.Meta{}, fmt.Errorf("train: %w", err)
	}
	cfg := frcnn.DefaultConfig(o.Backbone)
	if o.Size > 0 {
		cfg.Size = o.Size
	}
	cfg.Classes = o.Train[0].Classes.Names
	cfg.Proper = o.Train[0].Classes.Proper
	m, err := frcnn.New(cfg, o.Backend, o.Seed)
	if err != nil {
		return nil, frcnn.Meta{}, fmt.Errorf("train: %w", err)
	}
	log.Info("train: new model", "backbone", cfg.Backbone, "weights", m.Params())
	return m, frcnn.Meta{}, nil
}

func records(sets []*dataset.Set) []dataset.Record {
	var all []dataset.Record
	for _, s := range sets {
		all = append(all, s.Records...)
	}
	return all
}

// epochScore ranks epochs by validation accuracy plus IoU (training loss
// when there is no validation).
func epochScore(e history.Epoch) float64 {
	if !math.IsNaN(e.ValAccuracy) {
		return e.ValAccuracy + e.ValIoU
	}
	return -e.Train.Total
}

func bestScore(past []history.Epoch) float64 {
	best := math.NaN()
	for _, e := range past {
		if s := epochScore(e); math.IsNaN(best) || s > best {
			best = s
		}
	}
	return best
}

// runEpoch trains one epoch and measures it.
func runEpoch(ctx context.Context, o Options, m *frcnn.Model, tr *frcnn.Trainer,
	train *loader.Loader, epoch int) (history.Epoch, error) {
	start := time.Now()
	e := history.Epoch{Epoch: epoch, LR: o.Schedule.Rate(o.LearningRate, epoch, o.Epochs),
		Val:           history.NoLosses(),
		TrainAccuracy: math.NaN(), TrainIoU: math.NaN(), ValAccuracy: math.NaN(),
		ValIoU: math.NaN(), ValMAP50: math.NaN()}

	steps := train.Len() / o.Batch
	if steps == 0 {
		return e, fmt.Errorf("train: %d training images, fewer than one batch of %d: "+
			"lower --batch", train.Len(), o.Batch)
	}
	bar := progress.New(progressWriter(o), fmt.Sprintf("epoch %d/%d", epoch, o.Epochs),
		steps*o.Batch, "img")
	var sum frcnn.Losses
	done := 0
	for b, err := range train.Batches(ctx, epoch) {
		if err != nil {
			return e, err
		}
		if b.N < o.Batch {
			break // a short last batch would skew batch norm; the next epoch reshuffles
		}
		l, err := tr.Step(b.Images, truths(b))
		if err != nil {
			return e, fmt.Errorf("train: epoch %d step %d: %w", epoch, b.Step, err)
		}
		sum = addLosses(sum, l)
		done++
		bar.Add(o.Batch)
	}
	if err := ctx.Err(); err != nil {
		return e, err
	}
	bar.Finish()
	trainSeconds := time.Since(start).Seconds()
	e.ImagesPerSecond = float64(done*o.Batch) / trainSeconds
	e.Train = meanLosses(sum, done)
	e.Step = tr.GlobalStep()
	if err := recalibrate(ctx, o, m, train, epoch); err != nil {
		return e, err
	}

	if len(o.Val) > 0 {
		valLosses, err := validationLosses(ctx, o, m, tr)
		if err != nil {
			return e, err
		}
		e.Val = valLosses
		report, err := evaluateSets(ctx, o, m, o.Val, 0)
		if err != nil {
			return e, err
		}
		e.ValAccuracy, e.ValIoU, e.ValMAP50 = report.Accuracy, report.IoU, report.MAP50
	}
	if o.TrainEvalImages > 0 {
		report, err := evaluateSets(ctx, o, m, o.Train, o.TrainEvalImages)
		if err != nil {
			return e, err
		}
		e.TrainAccuracy, e.TrainIoU = report.Accuracy, report.IoU
	}
	e.Seconds = time.Since(start).Seconds()
	return e, nil
}

// recalibrate measures the batch-norm statistics of the epoch's weights on
// o.RecalibrationImages training images, in whole batches.
func recalibrate(ctx context.Context, o Options, m *frcnn.Model, train *loader.Loader,
	epoch int) error {
	batches := o.RecalibrationImages / o.Batch
	if o.RecalibrationImages > 0 {
		batches = max(batches, 1)
	}
	if batches == 0 {
		return nil
	}
	next, stop := iter.Pull2(train.Batches(ctx, recalibrationEpoch(epoch)))
	defer stop()
	done := 0
	err := m.RecalibrateBatchNorm(func() ([]float32, int, error) {
		if done == batches {
			return nil, 0, nil
		}
		b, err, ok := next()
		if !ok || (err == nil && b.N < o.Batch) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		done++
		return b.Images, b.N, nil
	})
	if err != nil {
		return fmt.Errorf("train: epoch %d: batch norm: %w", epoch, err)
	}
	return nil
}

// recalibrationEpoch keys the shuffle and augmentation of the images that
// recalibrate an epoch, apart from those of every training epoch.
func recalibrationEpoch(epoch int) int { return -epoch }

func progressWriter(o Options) io.Writer {
	if o.Progress == nil {
		return io.Discard
	}
	return o.Progress
}

// truths turns a batch's faces into the model's truths (class k+1).
func truths(b loader.Batch) []frcnn.Truth {
	out := make([]frcnn.Truth, b.N)
	for i := range b.N {
		out[i].Boxes = b.Boxes[i]
		for _, c := range b.Classes[i] {
			out[i].Classes = append(out[i].Classes, c+1)
		}
	}
	return out
}

func addLosses(a, b frcnn.Losses) frcnn.Losses {
	a.RPNObjectness += b.RPNObjectness
	a.RPNBox += b.RPNBox
	a.RoIClass += b.RoIClass
	a.RoIBox += b.RoIBox
	a.Total += b.Total
	return a
}

func meanLosses(sum frcnn.Losses, n int) history.Losses {
	if n == 0 {
		return history.NoLosses()
	}
	k := float64(n)
	return history.Losses{RPNObjectness: sum.RPNObjectness / k, RPNBox: sum.RPNBox / k,
		RoIClass: sum.RoIClass / k, RoIBox: sum.RoIBox / k, Total: sum.Total / k}
}

// validationLosses are the four losses over the validation sets, with the
// running batch-norm statistics.
func validationLosses(ctx context.Context, o Options, m *frcnn.Model,
	tr *frcnn.Trainer) (history.Losses, error) {
	val, err := loader.New(records(o.Val), loader.Config{
		Size: m.Config.Size, Batch: o.Batch, Workers: o.Workers, Seed: o.Seed,
		Normalize: normalize(m.Config), NoCache: true,
	})
	if err != nil {
		return history.NoLosses(), fmt.Errorf("validation: %w", err)
	}
	var sum frcnn.Losses
	n := 0
	for b, err := range val.Batches(ctx, 0) {
		if err != nil {
			return history.NoLosses(), err
		}
		l, err := tr.Losses(b.Images, truths(b))
		if err != nil {
			return history.NoLosses(), fmt.Errorf("validation: %w", err)
		}
		sum = addLosses(sum, l)
		n++
	}
	return meanLosses(sum, n), nil
}

// evaluateSets measures the study's metrics on sets, on at most limit
// images spread evenly over them (0: all).
func evaluateSets(ctx context.Context, o Options, m *frcnn.Model, sets []*dataset.Set,
	limit int) (*evaluate.Report, error) {
	merged := *sets[0]
	merged.Records = records(sets)
	if limit > 0 && len(merged.Records) > limit {
		picked := make([]dataset.Record, limit)
		for i := range picked {
			picked[i] = merged.Records[i*len(merged.Records)/limit]
		}
		merged.Records = picked
	}
	return evaluate.Run(ctx, NewDetector(m, o.Batch), &merged, evaluate.Options{
		Workers: o.Workers,
	})
}
