// Command masktrain is the desktop side of maskwatch: it explores the face-mask
// data sets, trains and evaluates the detector, and exports it for the edge.
//
// Usage:
//
//	masktrain eda --data DIR [--data DIR ...] --out DIR [flags]
//	masktrain train --backbone resnet50|mobilenetv3 --data DIR [--val DIR] --out DIR [flags]
//	masktrain eval --model PATH --data DIR [--json] [flags]
//	masktrain export --model CHECKPOINT --precision fp32|fp16|int8 --out FILE [flags]
//	masktrain keygen --out PREFIX
//	masktrain sign --key KEY BUNDLE
//	masktrain deploy --to URL [--to URL ...] --token TOKEN BUNDLE
//	masktrain help [COMMAND]
//	masktrain --version
//
// Exit status: 0 on success, 1 when the work fails, 2 for a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/eda"
)

// version is stamped at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const programName = "masktrain"

const usage = `masktrain prepares the maskwatch face-mask detector on a desktop.

Usage:
  masktrain COMMAND [flags]

Commands:
  eda      report on data sets: counts, box statistics, samples, problems (HTML)
  train    train the Faster R-CNN detector from scratch (ResNet50 or MobileNetV3)
  eval     measure a model on a data set: accuracy, IoU, mAP, predictions
  export   write a model bundle for the edge: TFLite graphs (fp32, fp16, int8)
  keygen   make an ed25519 key pair to sign bundles with
  sign     sign a bundle with a private key
  deploy   upload a bundle to devices and report what each did with it
  help     show this text, or a command's flags: masktrain help eda

Flags:
  -h, --help      show this text
      --version   print the version and exit

Exit status: 0 success, 1 failure, 2 usage error.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv("MASKTRAIN_CPUPROFILE"))
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile of the whole run to path (from the
// environment variable MASKTRAIN_CPUPROFILE), for finding where training
// spends its time; an empty path profiles nothing.
func startProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: MASKTRAIN_CPUPROFILE: %v\n", programName, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: MASKTRAIN_CPUPROFILE: %v\n", programName, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// run carries out one command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, nil)))
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}

	switch args[0] {
	case "eda":
		return runEDA(ctx, args[1:], stdout, stderr)
	case "train":
		return runTrain(ctx, args[1:], stdout, stderr)
	case "eval":
		return runEval(ctx, args[1:], stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], stdout, stderr)
	case "keygen":
		return runKeygen(args[1:], stdout, stderr)
	case "sign":
		return runSign(ctx, args[1:], stdout, stderr)
	case "deploy":
		return runDeploy(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		return runHelp(args[1:], stdout, stderr)
	case "--version", "version":
		fmt.Fprintln(stdout, programName, version)
		return exitOK
	}
	fmt.Fprintf(stderr, "%s: unknown command %q: run '%s help' for the list\n",
		programName, args[0], programName)
	return exitUsage
}

func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	switch args[0] {
	case "eda":
		fs, _ := edaFlags()
		printCommandUsage(stdout, fs, edaUsage)
		return exitOK
	case "train":
		fs, _ := trainFlags()
		printCommandUsage(stdout, fs, trainUsage)
		return exitOK
	case "eval":
		fs, _ := evalFlags()
		printCommandUsage(stdout, fs, evalUsage)
		return exitOK
	case "export":
		fs, _ := exportFlags()
		printCommandUsage(stdout, fs, exportUsage)
		return exitOK
	case "keygen":
		fs, _ := keygenFlags()
		printCommandUsage(stdout, fs, keygenUsage)
		return exitOK
	case "sign":
		fs, _ := signFlags()
		printCommandUsage(stdout, fs, signUsage)
		return exitOK
	case "deploy":
		fs, _ := deployFlags()
		printCommandUsage(stdout, fs, deployUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "%s help: unknown command %q: run '%s help' for the list\n",
		programName, args[0], programName)
	return exitUsage
}

const edaUsage = `Usage: masktrain eda --data DIR [--data DIR ...] --out DIR [flags]

Reads each data set directory (or each data set just below it, such as
proper-mask's test and train) and writes OUT/report.html: images and faces per
directory and label, box area, aspect and relative size, image sizes, sample
images with their boxes, and every problem the readers found. The report opens
offline; its figures are also written as PNG files in OUT.
`

func printCommandUsage(w io.Writer, fs *pflag.FlagSet, text string) {
	fmt.Fprint(w, text+"\nFlags:\n"+fs.FlagUsages())
}

type edaOptions struct {
	data    []string
	out     string
	json    bool
	strict  bool
	classes string
	samples int
	workers int
}

func edaFlags() (*pflag.FlagSet, *edaOptions) {
	o := &edaOptions{}
	fs := pflag.NewFlagSet("eda", pflag.ContinueOnError)
	fs.StringArrayVar(&o.data, "data", nil,
		"data set `DIR`, or a folder of data sets; repeat for more")
	fs.StringVar(&o.out, "out", "",
		"`DIR` for report.html and the figures (created if missing)")
	fs.BoolVar(&o.json, "json", false, "also write summary.json")
	fs.BoolVar(&o.strict, "strict", false, "fail on the first problem instead of listing it")
	fs.StringVar(&o.classes, "classes", "two",
		"class `MAP`: two, three, or label=class pairs such as True=proper,False=not_proper")
	fs.IntVar(&o.samples, "samples", 8, "`N` sample images drawn a directory (0 for none)")
	fs.IntVar(&o.workers, "workers", 0, "`N` images decoded in parallel (0: one a CPU)")
	return fs, o
}

func runEDA(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := edaFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandUsage(stdout, fs, edaUsage)
			return exitOK
		}
		return usageError(stderr, err)
	}
	cfg, err := o.config()
	if err != nil {
		return usageError(stderr, err)
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fmt.Errorf("unexpected argument %q: name data sets "+
			"with --data", fs.Arg(0)))
	}

	start := time.Now()
	slog.Info("eda: start", "data", o.data, "out", o.out, "classes", o.classes)
	cfg.ProgressTo = stderr
	s, err := eda.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			slog.Error("eda: interrupted", "seconds", secondsSince(start))
			return exitFailed
		}
		slog.Error("eda: failed", "err", err, "seconds", secondsSince(start))
		return exitFailed
	}
	slog.Info("eda: done", "records", s.Records(), "boxes", s.Boxes(), "dirs", len(s.Dirs),
		"report", filepath.Join(o.out, eda.ReportFile), "seconds", secondsSince(start))
	return exitOK
}

// config checks the flags and turns them into the report's Config.
func (o *edaOptions) config() (eda.Config, error) {
	if len(o.data) == 0 {
		return eda.Config{}, errors.New("no --data given: name a data set directory, " +
			"such as --data ../shared/data/proper-mask")
	}
	for _, d := range o.data {
		info, err := os.Stat(d)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return eda.Config{}, fmt.Errorf("--data %s: no such directory", d)
		case err != nil:
			return eda.Config{}, fmt.Errorf("--data %s: %w", d, err)
		case !info.IsDir() && filepath.Ext(d) != ".json":
			return eda.Config{}, fmt.Errorf("--data %s: not a directory or COCO .json file", d)
		}
	}
	if o.out == "" {
		return eda.Config{}, errors.New("no --out given: name the folder for the report, " +
			"such as --out eda-report")
	}
	if o.samples < 0 {
		return eda.Config{}, fmt.Errorf("--samples %d: give 0 or more", o.samples)
	}
	if o.workers < 0 {
		return eda.Config{}, fmt.Errorf("--workers %d: give 0 or more", o.workers)
	}
	classes, err := dataset.ParseClassMap(o.classes)
	if err != nil {
		return eda.Config{}, fmt.Errorf("--classes: %w", err)
	}
	return eda.Config{
		Data:    o.data,
		Out:     o.out,
		Read:    dataset.Options{Classes: classes, Strict: o.strict, Workers: o.workers},
		Samples: o.samples,
		JSON:    o.json,
	}, nil
}

func usageError(stderr io.Writer, err error) int {
	return commandUsageError(stderr, "eda", err)
}

func commandUsageError(stderr io.Writer, command string, err error) int {
	fmt.Fprintf(stderr, "%s %s: %v\nRun '%s help %s' for the flags.\n",
		programName, command, err, programName, command)
	return exitUsage
}

func secondsSince(t time.Time) float64 {
	return time.Since(t).Round(10 * time.Millisecond).Seconds()
}
