package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/evaluate"
)

const evalUsage = `Usage: masktrain eval --model PATH|default --data DIR [--engine E] [--json]
                      [--out DIR] [flags]

Runs a model on a data set and measures it as the study did: for each image
the top-scoring detection; accuracy is the share of images whose top label is
right, IoU the mean IoU of that detection with the true face (0 where nothing
is found). Also mAP@0.5 and COCO mAP@[.5:.95] per class, and the confusion
matrix. --json prints one line instead of the table. --out writes
prediction.csv in the study's format (filename,x,y,w,h,proper_mask) and sample
images with true and predicted boxes side by side.

--model is a checkpoint of masktrain train (run by GoMLX as trained, at its
training size), or a model bundle of masktrain export ("default": the model
built into masktrain), run as the edge runs it by --engine tflite (the
bundle's TFLite graphs) or gomlx (its float weights, pure Go).
`

type evalOptions struct {
	model, data, out, classes string
	engine, delegate          string
	threads                   int
	fallback                  bool
	json, strict              bool
	batch, samples, workers   int
}

func evalFlags() (*pflag.FlagSet, *evalOptions) {
	o := &evalOptions{}
	fs := pflag.NewFlagSet("eval", pflag.ContinueOnError)
	fs.StringVar(&o.model, "model", "", "checkpoint or bundle `PATH`, or default")
	fs.StringVar(&o.engine, "engine", "", "`ENGINE` running a bundle: tflite (default) or gomlx")
	fs.IntVar(&o.threads, "threads", 0, "`N` inference threads for a bundle (0: every core)")
	fs.StringVar(&o.delegate, "delegate", "cpu", "TFLite `DELEGATE` for a bundle: cpu, "+
		"xnnpack, gpu, nnapi, edgetpu or external:PATH")
	fs.BoolVar(&o.fallback, "delegate-fallback", false, "run on the CPU, with a warning, "+
		"when the delegate cannot load")
	fs.StringVar(&o.data, "data", "", "data set `DIR`")
	fs.StringVar(&o.out, "out", "", "`DIR` for prediction.csv and sample images")
	fs.BoolVar(&o.json, "json", false, "print one JSON line")
	fs.BoolVar(&o.strict, "strict", false, "refuse a data set with any problem")
	fs.StringVar(&o.classes, "classes", "", "class `MAP` of the data set (default: the "+
		"model's two classes, or three for a three-class model)")
	fs.IntVar(&o.batch, "batch", 8, "`N` images a detection call")
	fs.IntVar(&o.samples, "samples", 12, "`N` sample images written to --out")
	fs.IntVar(&o.workers, "workers", 0, "`N` images decoded in parallel (0: one a CPU)")
	return fs, o
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := evalFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandUsage(stdout, fs, evalUsage)
			return exitOK
		}
		return commandUsageError(stderr, "eval", err)
	}
	switch {
	case fs.NArg() > 0:
		return commandUsageError(stderr, "eval", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case o.model == "":
		return commandUsageError(stderr, "eval", errors.New("no --model given: name a "+
			"checkpoint such as runs/mobilenetv3/best.ckpt"))
	case o.data == "":
		return commandUsageError(stderr, "eval", errors.New("no --data given: name a data "+
			"set such as ../shared/data/proper-mask/test"))
	case o.batch < 1 || o.samples < 0 || o.workers < 0:
		return commandUsageError(stderr, "eval", errors.New("--batch must be 1 or more, "+
			"--samples and --workers 0 or more"))
	}
	if _, err := os.Stat(o.data); err != nil {
		return commandUsageError(stderr, "eval", fmt.Errorf("--data %s: %w", o.data, err))
	}

	if o.threads < 0 {
		return commandUsageError(stderr, "eval", errors.New("--threads must be 0 or more"))
	}
	model, err := openEvalModel(o)
	if err != nil {
		slog.Error("eval: cannot load --model", "err", err)
		return exitFailed
	}
	defer model.close()
	read := dataset.Options{Strict: o.strict, Workers: o.workers,
		Classes: defaultClasses(model.classes)}
	if o.classes != "" {
		if read.Classes, err = dataset.ParseClassMap(o.classes); err != nil {
			return commandUsageError(stderr, "eval", fmt.Errorf("--classes: %w", err))
		}
	}
	if len(read.Classes.Names) != len(model.classes) {
		return commandUsageError(stderr, "eval", fmt.Errorf("the model has classes %v, "+
			"the --classes map gives %v", model.classes, read.Classes.Names))
	}
	set, err := dataset.Open(o.data, read)
	if err != nil {
		slog.Error("eval: cannot read --data", "err", err)
		return exitFailed
	}

	start := time.Now()
	slog.Info("eval: start", "model", o.model, "engine", model.engine, "images",
		len(set.Records))
	report, err := evaluate.Run(ctx, model.detector, set,
		evaluate.Options{Progress: stderr, Workers: o.workers})
	if err != nil {
		slog.Error("eval: failed", "err", err, "seconds", secondsSince(start))
		return exitFailed
	}
	if o.json {
		line, err := report.JSON()
		if err != nil {
			slog.Error("eval: failed", "err", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "%s\n", line)
	} else if err := report.WriteText(stdout); err != nil {
		return exitFailed
	}
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			slog.Error("eval: --out", "err", err)
			return exitFailed
		}
		if err := report.WritePredictions(filepath.Join(o.out, "prediction.csv")); err != nil {
			slog.Error("eval: writing predictions", "err", err)
			return exitFailed
		}
		if err := report.WriteSamples(filepath.Join(o.out, "samples"), o.samples); err != nil {
			slog.Error("eval: writing samples", "err", err)
			return exitFailed
		}
	}
	slog.Info("eval: done", "accuracy", report.Accuracy, "iou", report.IoU,
		"map50", report.MAP50, "images_per_second", report.ImagesPerSecond)
	return exitOK
}

// defaultClasses reads a data set with the model's own class names: the
// two-class map for a two-class model, the three VOC classes for three.
func defaultClasses(classes []string) dataset.ClassMap {
	if len(classes) == 3 {
		return dataset.ThreeClass()
	}
	return dataset.TwoClass()
}
