package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/fit"
	"github.com/maskwatch/maskwatch/train/loader"
)

const trainUsage = `Usage: masktrain train --backbone resnet50|mobilenetv3 --data DIR [--val DIR] --out DIR [flags]

Trains the Faster R-CNN detector from scratch with GoMLX's pure-Go backend.
After each epoch it validates, prints a JSON line of metrics, appends it to
OUT/history.jsonl, draws OUT/losses.png and OUT/accuracy.png, and writes
OUT/last.ckpt (to resume) and OUT/best.ckpt (the best epoch so far) atomically.
Ctrl-C loses at most the epoch under way; --resume continues from last.ckpt.

Presets: study-resnet50 and study-mobilenetv3 are the study's settings (Adam
at 1e-3, batch 32, 224 px images, gradient norm clipped at 10); flags given
after them override them.
`

type trainOptions struct {
	preset, backbone, out, classes string
	schedule                       string
	data, val                      []string
	epochs, batch, size, workers   int
	trainEval, recalibrate         int
	lr, clip, memoryGiB            float64
	seed                           uint64
	resume, noAugment, strict      bool
}

func trainFlags() (*pflag.FlagSet, *trainOptions) {
	o := &trainOptions{}
	study := fit.Study(net.MobileNetV3Large)
	fs := pflag.NewFlagSet("train", pflag.ContinueOnError)
	fs.StringVar(&o.preset, "preset", "", "`NAME`: study-resnet50 or study-mobilenetv3")
	fs.StringVar(&o.backbone, "backbone", "", "`NAME`: resnet50 or mobilenetv3")
	fs.StringArrayVar(&o.data, "data", nil, "training data set `DIR`; repeat for more")
	fs.StringArrayVar(&o.val, "val", nil, "validation data set `DIR`; repeat for more")
	fs.StringVar(&o.out, "out", "", "`DIR` for checkpoints, metrics and curves")
	fs.IntVar(&o.epochs, "epochs", study.Epochs, "`N` epochs in all (a resumed run counts "+
		"those done)")
	fs.IntVar(&o.batch, "batch", study.Batch, "`N` images a step")
	fs.Float64Var(&o.lr, "lr", study.LearningRate, "Adam's learning `RATE`")
	fs.StringVar(&o.schedule, "schedule", string(study.Schedule),
		"learning-rate `SCHEDULE`: constant (the study's) or cosine (decays to 1%)")
	fs.Float64Var(&o.clip, "clip", study.Clip, "largest gradient `NORM` (0: no clipping)")
	fs.IntVar(&o.size, "size", study.Size, "model input side in `PIXELS` (multiple of 32)")
	fs.IntVar(&o.workers, "workers", 0, "`N` goroutines preparing batches (0: one a CPU)")
	fs.Uint64Var(&o.seed, "seed", study.Seed, "random `SEED` for weights, order and sampling")
	fs.IntVar(&o.trainEval, "train-eval", study.TrainEvalImages,
		"`N` training images measured after each epoch (0: none)")
	fs.IntVar(&o.recalibrate, "recalibrate", study.RecalibrationImages,
		"`N` training images re-measure batch-norm statistics after each epoch (0: none)")
	fs.BoolVar(&o.resume, "resume", false, "continue the run in --out")
	fs.BoolVar(&o.noAugment, "no-augment", false, "no flips, zoom or colour jitter")
	fs.BoolVar(&o.strict, "strict", false, "refuse data sets with any problem")
	fs.Float64Var(&o.memoryGiB, "memory-limit", -1, "soft limit of the Go heap in `GIB` "+
		"(0: none; default: half the machine's memory): the collector works harder near it "+
		"instead of letting the heap grow to twice what training holds; GOMEMLIMIT overrides it")
	fs.StringVar(&o.classes, "classes", "two", "class `MAP`: two, three, or label=class pairs")
	return fs, o
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := trainFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandUsage(stdout, fs, trainUsage)
			return exitOK
		}
		return commandUsageError(stderr, "train", err)
	}
	if fs.NArg() > 0 {
		return commandUsageError(stderr, "train", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	opt, err := o.options(fs)
	if err != nil {
		return commandUsageError(stderr, "train", err)
	}
	setMemoryLimit(o.memoryGiB)
	read := dataset.Options{Strict: o.strict, Workers: o.workers}
	if read.Classes, err = dataset.ParseClassMap(o.classes); err != nil {
		return commandUsageError(stderr, "train", fmt.Errorf("--classes: %w", err))
	}
	if opt.Train, err = openSets(o.data, "--data", read); err != nil {
		return commandUsageError(stderr, "train", err)
	}
	if opt.Val, err = openSets(o.val, "--val", read); err != nil {
		return commandUsageError(stderr, "train", err)
	}
	be, err := backend.New("")
	if err != nil {
		slog.Error("train: backend", "err", err)
		return exitFailed
	}
	opt.Backend, opt.Progress, opt.Results, opt.Log = be, stderr, stdout, slog.Default()

	start := time.Now()
	slog.Info("train: start", "backbone", opt.Backbone, "train_images", countRecords(opt.Train),
		"val_images", countRecords(opt.Val), "epochs", opt.Epochs, "batch", opt.Batch,
		"lr", opt.LearningRate, "out", opt.Out)
	epochs, err := fit.Run(ctx, opt)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			slog.Error("train: interrupted; the last finished epoch is saved, "+
				"continue with --resume", "out", opt.Out, "seconds", secondsSince(start))
			return exitFailed
		}
		slog.Error("train: failed", "err", err, "seconds", secondsSince(start))
		return exitFailed
	}
	slog.Info("train: done", "epochs", len(epochs), "best", filepath.Join(opt.Out,
		fit.BestCheckpoint), "seconds", secondsSince(start))
	return exitOK
}

// options turns the flags into fit.Options: the preset first, flags given
// explicitly over it.
func (o *trainOptions) options(fs *pflag.FlagSet) (fit.Options, error) {
	var opt fit.Options
	switch o.preset {
	case "":
		if o.backbone == "" {
			return opt, errors.New("no --backbone given: use resnet50 or mobilenetv3, " +
				"or a --preset")
		}
		backbone, err := net.ParseBackbone(o.backbone)
		if err != nil {
			return opt, fmt.Errorf("--backbone: %w", err)
		}
		opt = fit.Study(backbone)
	case "study-resnet50":
		opt = fit.Study(net.ResNet50)
	case "study-mobilenetv3":
		opt = fit.Study(net.MobileNetV3Large)
	default:
		return opt, fmt.Errorf("--preset %q: use study-resnet50 or study-mobilenetv3", o.preset)
	}
	if fs.Changed("backbone") {
		backbone, err := net.ParseBackbone(o.backbone)
		if err != nil {
			return opt, fmt.Errorf("--backbone: %w", err)
		}
		opt.Backbone = backbone
	}
	if fs.Changed("epochs") || o.preset == "" {
		opt.Epochs = o.epochs
	}
	if fs.Changed("batch") || o.preset == "" {
		opt.Batch = o.batch
	}
	if fs.Changed("lr") || o.preset == "" {
		opt.LearningRate = o.lr
	}
	if fs.Changed("schedule") || o.preset == "" {
		schedule, err := fit.ParseSchedule(o.schedule)
		if err != nil {
			return opt, fmt.Errorf("--schedule: %w", err)
		}
		opt.Schedule = schedule
	}
	if fs.Changed("clip") || o.preset == "" {
		opt.Clip = o.clip
	}
	if fs.Changed("size") || o.preset == "" {
		opt.Size = o.size
	}
	opt.Workers, opt.Seed, opt.Resume, opt.TrainEvalImages = o.workers, o.seed, o.resume,
		o.trainEval
	opt.RecalibrationImages = o.recalibrate
	opt.Out = o.out
	if o.noAugment {
		opt.Augment = loader.Augment{}
	}

	switch {
	case len(o.data) == 0:
		return opt, errors.New("no --data given: name the training set, such as " +
			"--data ../shared/data/proper-mask/train")
	case o.out == "":
		return opt, errors.New("no --out given: name the folder for checkpoints and metrics")
	case opt.Epochs < 1:
		return opt, fmt.Errorf("--epochs %d: give 1 or more", opt.Epochs)
	case opt.Batch < 1:
		return opt, fmt.Errorf("--batch %d: give 1 or more", opt.Batch)
	case !(opt.LearningRate > 0):
		return opt, fmt.Errorf("--lr %v: give a positive rate such as 1e-3", opt.LearningRate)
	case !(opt.Clip >= 0):
		return opt, fmt.Errorf("--clip %v: give 0 (off) or a positive norm", opt.Clip)
	case opt.Size < 64 || opt.Size%32 != 0:
		return opt, fmt.Errorf("--size %d: give a multiple of 32, at least 64", opt.Size)
	case o.workers < 0:
		return opt, fmt.Errorf("--workers %d: give 0 or more", o.workers)
	case o.trainEval < 0:
		return opt, fmt.Errorf("--train-eval %d: give 0 or more", o.trainEval)
	case o.recalibrate < 0:
		return opt, fmt.Errorf("--recalibrate %d: give 0 or more", o.recalibrate)
	}
	return opt, nil
}

// openSets reads every data set named by dirs (each a set or a folder of sets).
func openSets(dirs []string, flag string, read dataset.Options) ([]*dataset.Set, error) {
	var sets []*dataset.Set
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("%s %s: %w", flag, d, err)
		}
		found, err := dataset.OpenTree(d, read)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", flag, d, err)
		}
		for _, s := range found {
			if len(s.Problems) > 0 {
				slog.Warn("data: problems found; run masktrain eda to list them",
					"set", s.Source, "problems", len(s.Problems))
			}
		}
		sets = append(sets, found...)
	}
	return sets, nil
}

func countRecords(sets []*dataset.Set) int {
	n := 0
	for _, s := range sets {
		n += len(s.Records)
	}
	return n
}

// setMemoryLimit sets the Go heap's soft limit to gib GiB, or to half of the
// machine's memory when gib is negative; 0 or GOMEMLIMIT in the environment
// leave Go's own setting. Without a limit a ResNet50 batch of 16 let the heap
// grow past 22 GB on a 24 GB machine, though it held under 9 GB live.
func setMemoryLimit(gib float64) {
	if gib == 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(gib * (1 << 30))
	if gib < 0 {
		total, err := memTotal()
		if err != nil {
			return // not Linux, or no /proc: Go's default
		}
		limit = total / 2
	}
	debug.SetMemoryLimit(limit)
}

// memTotal reads the machine's memory in bytes from /proc/meminfo.
func memTotal() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("/proc/meminfo has no MemTotal")
}
