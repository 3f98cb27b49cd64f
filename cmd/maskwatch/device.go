package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/edge/deploy"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/edge/finetune"
	"github.com/maskwatch/maskwatch/edge/reload"
	"github.com/maskwatch/maskwatch/edge/server"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/bundle/sign"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
)

// deviceOptions are run's flags for taking new models: deployments from a
// desktop and the device's own fine-tuning.
type deviceOptions struct {
	trust           []string
	maxModelSize    string
	collect         string
	collectQuota    string
	collectMargin   float64
	finetuneKey     string
	finetuneNice    int
	finetuneThreads int

	// Checked values.
	trustKeys  []ed25519.PublicKey
	maxBytes   int64
	quotaBytes int64
}

func addDeviceFlags(fs *pflag.FlagSet, o *deviceOptions) {
	fs.StringArrayVar(&o.trust, "trust", nil, "accept only model bundles signed by the "+
		"ed25519 public `KEY` (masktrain keygen); repeat for more keys. Applies to "+
		"deployments and to the watched model file")
	fs.StringVar(&o.maxModelSize, "max-model-size", "256MiB", "largest bundle `SIZE` "+
		"POST /api/model takes")
	fs.StringVar(&o.collect, "collect", "", "keep frames to label in `DIR`: those the model "+
		"was unsure of and those flagged on /admin (nothing is kept without it)")
	fs.StringVar(&o.collectQuota, "collect-quota", "500MB", "disk `SIZE` the collection may "+
		"use; the oldest unlabelled frames go first")
	fs.Float64Var(&o.collectMargin, "collect-margin", 0.15, "a face scored within `M` of "+
		"--min-score makes its frame one to label")
	fs.StringVar(&o.finetuneKey, "finetune-key", "", "sign fine-tuned bundles with the "+
		"private `KEY`; its public half is trusted (needed with --trust)")
	fs.IntVar(&o.finetuneNice, "finetune-nice", 19, "nice `N` of fine-tunes started from "+
		"/admin (0 to 19; 19 also uses the idle scheduling class)")
	fs.IntVar(&o.finetuneThreads, "finetune-threads", 0, "training threads `N` of "+
		"fine-tunes started from /admin (0: one fewer than the cores, at least 1)")
}

func (o *deviceOptions) check() error {
	o.trustKeys = nil
	for _, path := range o.trust {
		k, err := sign.ReadPublicKey(path)
		if err != nil {
			return fmt.Errorf("--trust: %w", err)
		}
		o.trustKeys = append(o.trustKeys, k)
	}
	n, err := parseSize(o.maxModelSize)
	if err != nil {
		return fmt.Errorf("--max-model-size: %w", err)
	}
	o.maxBytes = n
	if o.quotaBytes, err = parseSize(o.collectQuota); err != nil {
		return fmt.Errorf("--collect-quota: %w", err)
	}
	if !(o.collectMargin > 0 && o.collectMargin < 1) {
		return fmt.Errorf("--collect-margin %g: give a score margin between 0 and 1",
			o.collectMargin)
	}
	if o.finetuneNice < 0 || o.finetuneNice > 19 {
		return fmt.Errorf("--finetune-nice %d: give 0 to 19", o.finetuneNice)
	}
	if o.finetuneThreads < 0 {
		return fmt.Errorf("--finetune-threads %d: give 0 or more", o.finetuneThreads)
	}
	if o.finetuneThreads == 0 {
		o.finetuneThreads = max(runtime.NumCPU()-1, 1)
	}
	if o.finetuneKey != "" {
		key, err := sign.ReadPrivateKey(o.finetuneKey)
		if err != nil {
			return fmt.Errorf("--finetune-key: %w", err)
		}
		if len(o.trustKeys) > 0 {
			o.trustKeys = append(o.trustKeys, key.Public().(ed25519.PublicKey))
		}
	}
	return nil
}

// device is how run takes new models: the loader that checks bundles
// (signature included), the deployer behind /api/model, and the tap that
// keeps the frames a new model is self-checked on.
type device struct {
	s        *settings
	log      *slog.Logger
	loader   deploy.Loader
	tap      *deploy.Tap
	deployer *deploy.Deployer // nil for the built-in model
}

func newDevice(s *settings, log *slog.Logger) *device {
	d := &device{s: s, log: log, tap: &deploy.Tap{}}
	d.loader = deploy.Loader{Trust: s.dev.trustKeys,
		Open: func(b *bundle.Bundle, path string) (detect.Detector, error) {
			return detect.OpenBundle(b, path, s.detect)
		}}
	if s.model != detect.DefaultModel {
		d.deployer = deploy.New(deploy.Config{Path: s.model, MaxBytes: s.dev.maxBytes,
			Loader: d.loader, Tap: d.tap, MinScore: s.minScore, Log: log})
	}
	return d
}

// open opens the model the run starts with: the built-in one, or the model
// file (or, when that does not load, the previous good bundle beside it).
func (d *device) open() (detect.Detector, error) {
	if d.deployer == nil {
		det, err := detect.Open(d.s.model, d.s.detect)
		return d.tap.Wrap(det), err
	}
	det, err := d.deployer.Start()
	return d.tap.Wrap(det), err
}

// openFile is the model watcher's opener: the file checked as a
// deployment is (signature included).
func (d *device) openFile(path string) (detect.Detector, error) {
	det, err := d.loader.OpenFile(path)
	return d.tap.Wrap(det), err
}

// attach connects the deployer to the pipeline, the watcher and the page,
// and sets up collection and fine-tuning; runners it adds run for the
// length of the live run.
func (d *device) attach(ctx context.Context, p *edge.Pipeline, w *reload.Watcher,
	srv *server.Server, extras *edge.Extras, runners *[]func()) error {
	if err := d.attachFinetune(ctx, srv, extras, runners); err != nil {
		return err
	}
	if d.deployer != nil {
		settle := func() {}
		if w != nil {
			settle = w.Settle
		}
		d.deployer.SetSwap(func(det detect.Detector) { p.Swap(d.tap.Wrap(det)) }, settle,
			func() (string, uint64, uint64) {
				st := p.StatusDoc()
				return st.Model.Version, st.Frames, st.Detection.Errors
			})
		d.deployer.SetCurrent(func() detect.Info {
			st := p.StatusDoc()
			return detect.Info{Version: st.Model.Version, Backbone: st.Model.Backbone,
				Precision: st.Model.Precision}
		})
	}
	if srv == nil {
		return nil
	}
	if d.deployer == nil {
		srv.HandleAdmin("/api/model", deploy.Refuse("this device runs its built-in model, "+
			"which has no file to replace: start maskwatch with --model PATH to take "+
			"deployments"), 0)
		return nil
	}
	srv.HandleAdmin("/api/model", d.deployer.Handler(), d.deployer.MaxBytes())
	return nil
}

// attachFinetune starts the collection (with --collect) and serves the
// admin page with labelling and fine-tuning.
func (d *device) attachFinetune(ctx context.Context, srv *server.Server, extras *edge.Extras,
	runners *[]func()) error {
	o := d.s.dev
	var c *finetune.Collector
	if o.collect != "" {
		b, err := d.bundleMeta()
		if err != nil {
			return err
		}
		c, err = finetune.NewCollector(finetune.CollectConfig{Dir: o.collect,
			Quota: o.quotaBytes, MinScore: d.s.minScore, Margin: o.collectMargin,
			Classes: b.Meta.Model.Classes, Log: d.log,
			VOCName: func(k int) string { return finetune.VOCName(b, k) }})
		if err != nil {
			return err
		}
		d.tap.AddObserver(c)
		*runners = append(*runners, func() { c.Run(ctx) })
		extras.More["collect"] = func() any { return c.Stats() }
	}
	var m *finetune.Manager
	if c != nil && d.deployer != nil {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("fine-tuning: %w", err)
		}
		mc := finetune.ManagerConfig{Model: d.s.model, Collect: o.collect,
			Engine: d.s.engine, Threads: o.finetuneThreads, Nice: o.finetuneNice,
			SignKey: o.finetuneKey, Log: d.log,
			Command: func(ctx context.Context, args []string) *exec.Cmd {
				return exec.CommandContext(ctx, self, args...)
			},
			Install: func(ctx context.Context, data []byte) deploy.Outcome {
				return d.deployer.Deploy(ctx, deploy.Request{Data: data, Source: "finetune",
					From: "this device"})
			}}
		if len(o.trustKeys) > 0 && o.finetuneKey == "" {
			mc.Unavailable = "this device takes only signed bundles (--trust): give " +
				"--finetune-key KEY to sign what it fine-tunes"
		}
		m = finetune.NewManager(mc)
		extras.More["finetune"] = func() any { return m.Status() }
	}
	if srv == nil {
		return nil
	}
	routes := finetune.NewRoutes(ctx, c, m)
	srv.Handle("GET /admin", routes.Page)
	srv.Handle("GET /admin.js", routes.Script)
	for pattern, h := range routes.Admin {
		srv.HandleAdmin(pattern, h, 0)
	}
	return nil
}

// bundleMeta reads the running model's bundle for its classes.
func (d *device) bundleMeta() (*bundle.Bundle, error) {
	if d.s.model == detect.DefaultModel {
		return defaultmodel.Load()
	}
	return bundle.Read(d.s.model)
}
