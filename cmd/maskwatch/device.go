package main

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/edge/deploy"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/edge/reload"
	"github.com/maskwatch/maskwatch/edge/server"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/bundle/sign"
)

// deviceOptions are run's flags for taking new models: deployments from a
// desktop and the device's own fine-tuning.
type deviceOptions struct {
	trust        []string
	maxModelSize string

	// Checked values.
	trustKeys []ed25519.PublicKey
	maxBytes  int64
}

func addDeviceFlags(fs *pflag.FlagSet, o *deviceOptions) {
	fs.StringArrayVar(&o.trust, "trust", nil, "accept only model bundles signed by the "+
		"ed25519 public `KEY` (masktrain keygen); repeat for more keys. Applies to "+
		"deployments and to the watched model file")
	fs.StringVar(&o.maxModelSize, "max-model-size", "256MiB", "largest bundle `SIZE` "+
		"POST /api/model takes")
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

// attach connects the deployer to the pipeline, the watcher and the page.
func (d *device) attach(p *edge.Pipeline, w *reload.Watcher, srv *server.Server) {
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
		return
	}
	if d.deployer == nil {
		srv.HandleAdmin("/api/model", deploy.Refuse("this device runs its built-in model, "+
			"which has no file to replace: start maskwatch with --model PATH to take "+
			"deployments"), 0)
		return
	}
	srv.HandleAdmin("/api/model", d.deployer.Handler(), d.deployer.MaxBytes())
}
