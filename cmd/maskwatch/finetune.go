package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/edge/deploy"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/edge/finetune"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/bundle/sign"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/models/safefile"
	"github.com/maskwatch/maskwatch/train/progress"
)

const finetuneUsage = `Usage: maskwatch finetune --model PATH [--collect DIR] [--data DIR ...]
                          [flags]

Fine-tunes the model the device runs on labelled images of its own scene:
the frames collected with maskwatch run --collect DIR and labelled on the
admin page (DIR/labelled), and any folder given with --data in the study's
file-name format (ID__[x, y, w, h]__True.jpg), Pascal VOC or COCO. Training
starts from the bundle's float weights and opens the box head only, unless
--layers opens more; a fifth of the images is held out. The new bundle has
the running one's precision (int8 is calibrated on the same images) and is
deployed only when its held-out accuracy, measured with --engine, does not
fall: to the device at --device (POST /api/model, as masktrain deploy), or
else over the --model file (the previous one kept beside it), which a
running maskwatch swaps in.

It runs at a low priority (--nice) so that live detection keeps the CPU,
saves its state after every epoch, and resumes from it when run again with
the same model, images and settings (Ctrl-C stops it).
`

type finetuneOptions struct {
	model, collect, state, out string
	data                       []string
	layers                     string
	epochs, batch, maxSamples  int
	lr                         float64
	engine                     string
	threads, nice              int
	device, token, tokenFile   string
	signKey                    string
	noDeploy, json             bool
	progressJSON               string
	logLevel                   string
	memoryLimit                string
}

func finetuneFlags() (*pflag.FlagSet, *finetuneOptions) {
	o := &finetuneOptions{}
	fs := pflag.NewFlagSet("finetune", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringVar(&o.model, "model", "", "the running model bundle `PATH` (or default)")
	fs.StringVar(&o.collect, "collect", "", "collection `DIR` of maskwatch run --collect: "+
		"its labelled frames are used")
	fs.StringArrayVar(&o.data, "data", nil, "labelled image `DIR` (file-name format, VOC or "+
		"COCO); repeat for more")
	fs.StringVar(&o.layers, "layers", "head", "`LAYERS` to train: head, rpn, neck, backbone, "+
		"all, or layer names, comma-separated")
	fs.IntVar(&o.epochs, "epochs", 8, "`N` passes over the images")
	fs.IntVar(&o.batch, "batch", 4, "images a step `N`")
	fs.Float64Var(&o.lr, "lr", 3e-4, "Adam's learning `RATE`")
	fs.IntVar(&o.maxSamples, "max-samples", 400, "use at most `N` images, evenly spread")
	fs.StringVar(&o.state, "state", "", "`DIR` of the resumable state (default: "+
		"COLLECT/finetune, or beside --model)")
	fs.StringVar(&o.out, "out", "", "write the new bundle to `FILE` (default: "+
		"STATE/candidate.mwb)")
	fs.StringVar(&o.engine, "engine", defaultEngine, "`ENGINE` the bundles are measured with "+
		"(the device's: tflite or gomlx)")
	fs.IntVar(&o.threads, "threads", 0, "training threads `N` (0: every core)")
	fs.IntVar(&o.nice, "nice", 19, "run at nice `N` (0 to 19) so live detection keeps the CPU")
	fs.StringVar(&o.device, "device", "", "deploy to the maskwatch at `URL` instead of over "+
		"the --model file")
	fs.StringVar(&o.token, "token", "", "the device's admin `TOKEN` (with --device)")
	fs.StringVar(&o.tokenFile, "token-file", "", "read the token from `FILE`")
	fs.StringVar(&o.signKey, "sign", "", "sign the new bundle with the private `KEY` (needed "+
		"when the device runs with --trust)")
	fs.BoolVar(&o.noDeploy, "no-deploy", false, "only write the new bundle")
	fs.StringVar(&o.memoryLimit, "memory-limit", "400MiB", "soft limit of the Go heap "+
		"(`SIZE`, or off): the collector works harder near it, trading some speed for a "+
		"peak that fits small devices; GOMEMLIMIT overrides it")
	fs.StringVar(&o.progressJSON, "progress-json", "", "keep the progress in `FILE` as JSON")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.StringVar(&o.logLevel, "log-level", "info", "`LEVEL`: debug, info, warn or error")
	return fs, o
}

func runFinetune(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := finetuneFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, finetuneUsage+"\nFlags:\n"+fs.FlagUsages())
			return exitOK
		}
		return finetuneUsageError(stderr, err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return finetuneUsageError(stderr, fmt.Errorf("--log-level %q: use debug, info, warn "+
			"or error", o.logLevel))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	b, token, err := o.check(fs)
	if err != nil {
		return finetuneUsageError(stderr, err)
	}
	if o.memoryLimit != "off" && os.Getenv("GOMEMLIMIT") == "" {
		limit, err := parseSize(o.memoryLimit)
		if err != nil {
			return finetuneUsageError(stderr, fmt.Errorf("--memory-limit: %w", err))
		}
		debug.SetMemoryLimit(limit)
	}
	if err := finetune.LowerPriority(o.nice); err != nil {
		log.Warn("finetune: running at the usual priority", "err", err)
	}

	var data []string
	if o.collect != "" {
		if n := finetune.Labelled(o.collect); n > 0 {
			data = append(data, finetune.LabelledDir(o.collect))
		} else if len(o.data) == 0 {
			return finetuneUsageError(stderr, fmt.Errorf("--collect %s holds no labelled "+
				"frames yet: label some on the admin page, or give --data DIR", o.collect))
		}
	}
	data = append(data, o.data...)
	pw := &progressWriter{path: o.progressJSON, stderr: stderr}
	res, err := finetune.Run(ctx, finetune.Options{Bundle: b, Data: data, Layers: o.layers,
		Epochs: o.epochs, Batch: o.batch, LearningRate: o.lr, MaxSamples: o.maxSamples,
		State: o.state, Engine: o.engine, Threads: o.threads,
		Exporter: programName + " " + version + " finetune", Progress: pw.update, Log: log})
	pw.finish()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			log.Info("finetune: stopped; run the same command again to resume", "state",
				o.state)
		} else {
			log.Error("finetune: failed", "err", err)
		}
		pw.fail(err)
		return exitFailed
	}
	deployed := ""
	if res.Bundle != nil {
		if err := o.write(res.Bundle); err != nil {
			log.Error("finetune: failed", "err", err)
			return exitFailed
		}
		if res.Accepted && !o.noDeploy {
			if deployed, err = o.deploy(ctx, token, log); err != nil {
				log.Error("finetune: the new bundle was not deployed", "err", err)
				return exitFailed
			}
		}
	}
	if o.json {
		line, _ := json.Marshal(map[string]any{"result": res, "bundle": o.out,
			"deployed": deployed})
		fmt.Fprintf(stdout, "%s\n", line)
		return exitOK
	}
	cand := "none"
	if res.Candidate != nil {
		cand = fmt.Sprintf("%.3f", res.Candidate.Accuracy)
	}
	fmt.Fprintf(stdout, "fine-tune of %s (%s, %s): %d images, %d held out; held-out accuracy "+
		"%.3f -> %s; %s\n", res.Running, res.Precision, res.Layers, res.Samples, res.HeldOut,
		res.Baseline.Accuracy, cand, res.Reason)
	if deployed != "" {
		fmt.Fprintf(stdout, "deployed %s: %s\n", res.Version, deployed)
	} else if res.Bundle != nil {
		fmt.Fprintf(stdout, "new bundle %s: %s (not deployed)\n", res.Version, o.out)
	}
	return exitOK
}

func finetuneUsageError(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s finetune: %v\nRun '%s help finetune' for the flags.\n",
		programName, err, programName)
	return exitUsage
}

// check validates the flags, reads the running bundle and fills defaults.
func (o *finetuneOptions) check(fs *pflag.FlagSet) (*bundle.Bundle, string, error) {
	switch {
	case fs.NArg() > 0:
		return nil, "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.model == "":
		return nil, "", errors.New("no --model given: name the bundle the device runs")
	case o.collect == "" && len(o.data) == 0:
		return nil, "", errors.New("no images: give --collect DIR (frames labelled on the " +
			"page) or --data DIR (a labelled folder)")
	case o.engine != detect.EngineTFLite && o.engine != detect.EngineGoMLX:
		return nil, "", fmt.Errorf("--engine %q: use tflite or gomlx", o.engine)
	case o.epochs < 1 || o.batch < 1 || o.maxSamples < finetune.MinSamples:
		return nil, "", fmt.Errorf("--epochs and --batch take 1 or more, --max-samples %d or "+
			"more", finetune.MinSamples)
	case !(o.lr > 0):
		return nil, "", fmt.Errorf("--lr %v: give a positive rate", o.lr)
	case o.threads < 0:
		return nil, "", fmt.Errorf("--threads %d: give 0 (every core) or more", o.threads)
	case o.device != "" && o.noDeploy:
		return nil, "", errors.New("--device and --no-deploy: choose one")
	case o.model == detect.DefaultModel && o.device == "" && !o.noDeploy:
		return nil, "", errors.New("the built-in model has no file to replace: give " +
			"--device URL, --no-deploy, or a bundle file as --model")
	}
	for _, d := range o.data {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return nil, "", fmt.Errorf("--data %s: not a folder", d)
		}
	}
	if o.collect != "" {
		if st, err := os.Stat(o.collect); err != nil || !st.IsDir() {
			return nil, "", fmt.Errorf("--collect %s: not a folder", o.collect)
		}
	}
	if o.signKey != "" {
		if _, err := sign.ReadPrivateKey(o.signKey); err != nil {
			return nil, "", fmt.Errorf("--sign: %w", err)
		}
	}
	token := o.token
	if o.tokenFile != "" {
		raw, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, "", fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(raw))
	}
	if o.device != "" {
		if _, err := deploy.ModelURL(o.device); err != nil {
			return nil, "", fmt.Errorf("--device: %w", err)
		}
		if token == "" {
			return nil, "", errors.New("--device needs the device's admin --token")
		}
	}
	var b *bundle.Bundle
	var err error
	if o.model == detect.DefaultModel {
		b, err = defaultmodel.Load()
	} else {
		b, err = bundle.Read(o.model)
	}
	if err != nil {
		return nil, "", fmt.Errorf("--model: %w", err)
	}
	if err := finetune.CheckLayers(b, o.layers); err != nil {
		return nil, "", err
	}
	if o.state == "" {
		switch {
		case o.collect != "":
			o.state = filepath.Join(o.collect, "finetune")
		case o.model != detect.DefaultModel:
			o.state = o.model + ".finetune"
		default:
			o.state = "maskwatch-finetune"
		}
	}
	if o.out == "" {
		o.out = filepath.Join(o.state, "candidate.mwb")
	}
	return b, token, nil
}

// write signs the new bundle when asked and writes it to --out.
func (o *finetuneOptions) write(b *bundle.Bundle) error {
	if o.signKey != "" {
		key, err := sign.ReadPrivateKey(o.signKey)
		if err != nil {
			return err
		}
		if err := sign.Bundle(b, key); err != nil {
			return err
		}
	}
	return bundle.Write(o.out, b)
}

// deploy hands the new bundle to the device, or installs it over the model
// file; it says where it went.
func (o *finetuneOptions) deploy(ctx context.Context, token string, log *slog.Logger) (
	string, error) {
	data, err := os.ReadFile(o.out)
	if err != nil {
		return "", err
	}
	if o.device != "" {
		r := deploy.Upload(ctx, &http.Client{Timeout: 5 * time.Minute}, o.device, token, data)
		if !r.OK {
			return "", fmt.Errorf("%s refused it (HTTP %d, %s): %s", o.device, r.Code, r.Stage,
				r.Message)
		}
		return fmt.Sprintf("%s runs %s", o.device, r.Version), nil
	}
	if err := deploy.InstallFile(o.model, data); err != nil {
		return "", err
	}
	log.Info("finetune: installed over the model file; a running maskwatch swaps it in",
		"model", o.model, "previous", o.model+".prev")
	return o.model + " (previous kept as " + filepath.Base(o.model) + ".prev)", nil
}

// progressWriter shows a fine-tune's progress: a bar a phase on stderr and,
// when asked, the latest Progress as a JSON file (for the page).
type progressWriter struct {
	path   string
	stderr io.Writer

	mu      sync.Mutex
	phase   string
	bar     *progress.Bar
	written time.Time
	last    finetune.Progress
}

func (p *progressWriter) update(pr finetune.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := pr.Phase
	if pr.Phase == finetune.PhaseTraining {
		key = fmt.Sprintf("epoch %d/%d", pr.Epoch, pr.Epochs)
	}
	if key != p.phase {
		if p.bar != nil {
			p.bar.Finish()
		}
		p.bar, p.phase = nil, key
		if pr.Total > 0 {
			unit := "img"
			if pr.Phase == finetune.PhaseTraining {
				unit = "step"
			}
			p.bar = progress.New(p.stderr, key, pr.Total, unit)
		}
	}
	if p.bar != nil {
		p.bar.Set(pr.Done)
	}
	p.last = pr
	if p.path != "" && (time.Since(p.written) > 500*time.Millisecond || pr.Done == pr.Total) {
		p.written = time.Now()
		p.save(map[string]any{"running": true, "progress": pr})
	}
}

func (p *progressWriter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

func (p *progressWriter) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.save(map[string]any{"running": false, "progress": p.last, "error": err.Error()})
}

func (p *progressWriter) save(v any) {
	if p.path == "" {
		return
	}
	os.MkdirAll(filepath.Dir(p.path), 0o755)
	raw, err := json.Marshal(v)
	if err != nil {
		return
	}
	safefile.Write(p.path, raw, 0o644)
}
