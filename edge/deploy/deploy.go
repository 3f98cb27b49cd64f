// Package deploy takes new model bundles on a device: from a desktop
// (masktrain deploy, over POST /api/model) or from the device's own
// fine-tuning. A bundle is checked whole before anything changes (size,
// sha256, format version, signature), written beside the model file,
// loaded and self-checked on frames the device stored, then renamed over
// the model file (the one it replaces kept as the previous good bundle) and
// swapped into the running pipeline. If detection fails once it serves, the
// previous bundle is put back. A device that restarts at any point starts
// with a good model: the model file is only ever replaced by a rename, and a
// model file that does not load at start is set aside for the previous one.
package deploy

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/bundle"
)

// DefaultMaxBytes is the largest bundle a device takes unless told
// otherwise: four times the largest bundle maskwatch exports (ResNet50 with
// float32 weights).
const DefaultMaxBytes = 256 << 20

// historyLength is how many outcomes /api/model lists and the history file keeps.
const historyLength = 16

// Config wires a Deployer to the device.
type Config struct {
	// Path is the model file.
	Path string
	// MaxBytes bounds an upload (DefaultMaxBytes when 0).
	MaxBytes int64
	Loader   Loader
	// Tap holds the stored frames the self-check runs on; nil checks on a
	// grey frame only.
	Tap *Tap
	// MinScore is the score above which a face counts (the pipeline's).
	MinScore float64
	// Swap hands an accepted detector to the pipeline, which owns it from
	// then on.
	Swap func(detect.Detector)
	// Settle tells the model file's watcher that the file it sees now is
	// the one running (reload.Watcher.Settle); nil when nothing watches.
	Settle func()
	// Serving reports the version the pipeline runs and its frame and
	// detection-error counters, for the probation after a swap; nil skips
	// the probation.
	Serving func() (version string, frames, errors uint64)
	// Probation is how long the new model is watched once it serves (3 s
	// when 0), or until it has detected 3 frames.
	Probation time.Duration
	Log       *slog.Logger
}

// Model describes a bundle a device runs or ran.
type Model struct {
	Version   string    `json:"version"`
	SHA256    string    `json:"sha256"`
	Backbone  string    `json:"backbone"`
	Precision string    `json:"precision"`
	Created   time.Time `json:"created"`
	Exporter  string    `json:"exporter,omitempty"`
	// Signer is the fingerprint of the trusted key that signed it.
	Signer string `json:"signer,omitempty"`
	// Source is how it came: "start", "deploy", "finetune", "rollback" or
	// "file" (a file put on the model path by hand).
	Source string    `json:"source"`
	Since  time.Time `json:"since"`
}

func describe(b *bundle.Bundle, signer, source string) *Model {
	return &Model{Version: b.ShortVersion(), SHA256: hex.EncodeToString(b.Digest[:]),
		Backbone: b.Meta.Backbone, Precision: b.Meta.Precision, Created: b.Meta.Created,
		Exporter: b.Meta.Exporter, Signer: signer, Source: source, Since: time.Now()}
}

// Outcome is one deployment attempt.
type Outcome struct {
	Time   time.Time `json:"time"`
	OK     bool      `json:"ok"`
	Source string    `json:"source"`
	From   string    `json:"from,omitempty"`
	// Version and SHA256 are the bundle's, when it could be read.
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Bytes   int    `json:"bytes"`
	Signer  string `json:"signer,omitempty"`
	// Previous is the version that ran before (and still runs after a refusal).
	Previous string `json:"previous,omitempty"`
	// Code is the HTTP status that reports the outcome; Stage where a
	// refusal happened.
	Code       int          `json:"code"`
	Stage      string       `json:"stage,omitempty"`
	Error      string       `json:"error,omitempty"`
	RolledBack bool         `json:"rolled_back,omitempty"`
	Check      *CheckReport `json:"check,omitempty"`
	Seconds    float64      `json:"seconds"`
}

// Doc is the GET /api/model document.
type Doc struct {
	Path    string `json:"path"`
	Running *Model `json:"running"`
	// Previous is the bundle kept to roll back to.
	Previous *Model `json:"previous,omitempty"`
	// History lists the last deployments, newest first.
	History  []Outcome `json:"history"`
	MaxBytes int64     `json:"max_bytes"`
	// Trust lists the fingerprints of the keys bundles must be signed by;
	// empty when unsigned bundles are accepted.
	Trust []string `json:"trust"`
}

// Deployer installs bundles on one device. Deploy calls are serialised:
// one runs at a time and the others are refused as busy.
type Deployer struct {
	cfg   Config
	store store
	log   *slog.Logger
	busy  sync.Mutex

	mu       sync.Mutex
	history  []Outcome
	running  *Model
	previous *Model
	current  func() detect.Info
}

// New makes a Deployer; Start opens the model the device starts with.
func New(cfg Config) *Deployer {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Probation <= 0 {
		cfg.Probation = 3 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	d := &Deployer{cfg: cfg, store: store{path: cfg.Path}, log: cfg.Log}
	d.history = d.store.readHistory()
	return d
}

// SetCurrent tells the Deployer how to ask the pipeline which model it
// runs, so that a bundle loaded behind its back (by the file watcher) shows
// as running.
func (d *Deployer) SetCurrent(f func() detect.Info) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.current = f
}

// SetSwap sets Config.Swap, Settle and Serving once the pipeline exists
// (it needs the detector Start returns first).
func (d *Deployer) SetSwap(swap func(detect.Detector), settle func(),
	serving func() (string, uint64, uint64)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg.Swap, d.cfg.Settle, d.cfg.Serving = swap, settle, serving
}

// Start opens the model file as the device starts: the file when it loads
// (checked and, with Trust, signed), or else the previous good bundle,
// which then becomes the model file again while the one that failed is
// set aside as PATH.rejected. Uploads an earlier process left half written
// are removed.
func (d *Deployer) Start() (detect.Detector, error) {
	if n := d.store.cleanup(); n > 0 {
		d.log.Info("deploy: removed unfinished uploads", "files", n)
	}
	det, b, err := d.cfg.Loader.openFile(d.cfg.Path)
	if err == nil {
		d.started(b, "start")
		return det, nil
	}
	if _, serr := os.Stat(d.store.prev()); serr != nil {
		return nil, err
	}
	det, b, perr := d.cfg.Loader.openFile(d.store.prev())
	if perr != nil {
		return nil, fmt.Errorf("%w; the previous bundle does not load either: %w", err, perr)
	}
	d.log.Warn("deploy: the model file does not load; starting with the previous good "+
		"bundle", "err", err, "set_aside", d.store.rejected(), "version", b.ShortVersion())
	if rerr := os.Rename(d.cfg.Path, d.store.rejected()); rerr != nil &&
		!errors.Is(rerr, os.ErrNotExist) {
		d.log.Warn("deploy: cannot set the bad model file aside", "err", rerr)
	}
	if rerr := d.store.restore(); rerr != nil {
		d.log.Warn("deploy: cannot restore the model file from the previous bundle",
			"err", rerr)
	}
	d.started(b, "rollback")
	return det, nil
}

func (d *Deployer) started(b *bundle.Bundle, source string) {
	m := describe(b, d.signer(b), source)
	var prev *Model
	if data, err := os.ReadFile(d.store.prev()); err == nil {
		if pb, err := bundle.Decode(data); err == nil && pb.Digest != b.Digest {
			prev = describe(pb, d.signer(pb), "previous")
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running, d.previous = m, prev
}

func (d *Deployer) signer(b *bundle.Bundle) string { return d.cfg.Loader.signerOf(b) }

// Doc returns the GET /api/model document.
func (d *Deployer) Doc() Doc {
	d.mu.Lock()
	defer d.mu.Unlock()
	doc := Doc{Path: d.cfg.Path, Running: d.runningLocked(), Previous: d.previous,
		History: append([]Outcome{}, d.history...), MaxBytes: d.cfg.MaxBytes,
		Trust: fingerprints(d.cfg.Loader.Trust)}
	return doc
}

// runningLocked is the recorded running model, or what the pipeline says
// it runs when that differs (a bundle the watcher loaded).
func (d *Deployer) runningLocked() *Model {
	if d.current == nil {
		return d.running
	}
	info := d.current()
	if d.running != nil && info.Version == d.running.Version {
		return d.running
	}
	return &Model{Version: info.Version, Backbone: info.Backbone, Precision: info.Precision,
		Source: "file"}
}

// Request is one bundle offered to the device.
type Request struct {
	Data []byte
	// SHA256 is the sha256 (hex) the sender computed over Data; "" when it
	// sent none.
	SHA256 string
	// Source is "deploy" or "finetune"; From says who sent it.
	Source, From string
}

// Deploy checks, installs and swaps in one bundle, or refuses it and
// leaves the running model as it was. The outcome carries the HTTP status
// that reports it and is kept in the history.
func (d *Deployer) Deploy(ctx context.Context, req Request) Outcome {
	start := time.Now()
	out := Outcome{Time: start, Source: req.Source, From: req.From, Bytes: len(req.Data)}
	if !d.busy.TryLock() {
		out.Code, out.Stage = http.StatusConflict, StageBusy
		out.Error = "another deployment is under way: try again when it is done"
		return d.finish(out, start, false)
	}
	defer d.busy.Unlock()
	d.mu.Lock()
	if d.running != nil {
		out.Previous = d.runningLocked().Version
	}
	d.mu.Unlock()

	refusal := d.deploy(ctx, req, &out)
	if refusal != nil {
		out.Code, out.Stage, out.Error = refusal.Code, refusal.Stage, refusal.Err.Error()
		d.log.Warn("deploy: bundle refused; the running model stays", "source", req.Source,
			"from", req.From, "version", out.Version, "stage", refusal.Stage,
			"err", refusal.Err, "rolled_back", out.RolledBack)
		return d.finish(out, start, true)
	}
	out.OK, out.Code = true, http.StatusOK
	d.log.Info("deploy: model installed", "source", req.Source, "from", req.From,
		"version", out.Version, "previous", out.Previous, "signer", out.Signer,
		"took", time.Since(start).Round(time.Millisecond))
	return d.finish(out, start, true)
}

func (d *Deployer) finish(out Outcome, start time.Time, keep bool) Outcome {
	out.Seconds = time.Since(start).Seconds()
	if !keep {
		return out
	}
	d.mu.Lock()
	d.history = append([]Outcome{out}, d.history...)
	if len(d.history) > historyLength {
		d.history = d.history[:historyLength]
	}
	h := append([]Outcome(nil), d.history...)
	d.mu.Unlock()
	if err := d.store.writeHistory(h); err != nil {
		d.log.Warn("deploy: cannot save the history", "err", err)
	}
	return out
}

func (d *Deployer) deploy(ctx context.Context, req Request, out *Outcome) *Refusal {
	if int64(len(req.Data)) > d.cfg.MaxBytes {
		return refuse(StageSize, http.StatusRequestEntityTooLarge, fmt.Errorf("%d bytes, "+
			"over this device's limit of %d (--max-model-size)", len(req.Data), d.cfg.MaxBytes))
	}
	b, signer, refusal := d.cfg.Loader.Check(req.Data, req.SHA256)
	if b != nil {
		out.Version, out.SHA256 = b.ShortVersion(), hex.EncodeToString(b.Digest[:])
		out.Signer = signer
	}
	if refusal != nil {
		return refusal
	}
	d.mu.Lock()
	same := d.running != nil && d.runningLocked().SHA256 == out.SHA256
	d.mu.Unlock()
	if same {
		return nil // already running: nothing to change
	}
	if err := ctx.Err(); err != nil {
		return refuse(StageRequest, http.StatusServiceUnavailable, err)
	}

	staged, err := d.store.stage(req.Data)
	if err != nil {
		return writeRefusal(err)
	}
	defer os.Remove(staged) // a no-op once renamed into place
	det, err := d.cfg.Loader.Open(b, d.cfg.Path)
	if err != nil {
		return refuse(StageLoad, http.StatusUnprocessableEntity, err)
	}
	var frames []CheckFrame
	if d.cfg.Tap != nil {
		frames = d.cfg.Tap.Frames()
	}
	rep, err := SelfCheck(det, frames, d.cfg.MinScore)
	out.Check = &rep
	if err != nil {
		det.Close()
		return refuse(StageSelfCheck, http.StatusUnprocessableEntity, err)
	}
	if err := d.store.install(staged); err != nil {
		det.Close()
		return writeRefusal(err)
	}
	d.mu.Lock()
	swap, settle, serving := d.cfg.Swap, d.cfg.Settle, d.cfg.Serving
	old := d.running
	d.running = describe(b, signer, req.Source)
	if old != nil {
		d.previous = old
	}
	d.mu.Unlock()
	if settle != nil {
		settle()
	}
	if swap == nil {
		det.Close()
		return nil
	}
	swap(det)

	if serving == nil {
		return nil
	}
	if err := d.probation(ctx, out.Version, serving); err != nil {
		out.RolledBack = d.rollback(old, swap, settle)
		return refuse(StageServing, http.StatusUnprocessableEntity, err)
	}
	return nil
}

// probation watches the pipeline once the new model is handed over: the
// detection errors must not grow while it serves.
func (d *Deployer) probation(ctx context.Context, version string,
	serving func() (string, uint64, uint64)) error {
	deadline := time.Now().Add(d.cfg.Probation)
	var startFrames, startErrors uint64
	took := false
	for time.Now().Before(deadline) {
		v, frames, errs := serving()
		if v == version {
			if !took {
				took, startFrames, startErrors = true, frames, errs
			} else {
				if errs > startErrors {
					return fmt.Errorf("detection failed on %d of the first frames with the "+
						"new model", errs-startErrors)
				}
				if frames >= startFrames+3 {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// rollback puts the previous bundle back as the model file and in the
// pipeline; it reports whether that worked.
func (d *Deployer) rollback(old *Model, swap func(detect.Detector), settle func()) bool {
	if err := d.store.restore(); err != nil {
		d.log.Error("deploy: cannot restore the previous bundle", "err", err)
		return false
	}
	if settle != nil {
		settle()
	}
	det, b, err := d.cfg.Loader.openFile(d.cfg.Path)
	if err != nil {
		d.log.Error("deploy: the previous bundle does not load", "err", err)
		return false
	}
	swap(det)
	m := describe(b, d.signer(b), "rollback")
	if old != nil {
		m.Source = old.Source
	}
	d.mu.Lock()
	d.running = m
	d.mu.Unlock()
	return true
}

func writeRefusal(err error) *Refusal {
	if errors.Is(err, syscall.ENOSPC) {
		return refuse(StageWrite, http.StatusInsufficientStorage,
			fmt.Errorf("no space left to write the bundle: %w", err))
	}
	return refuse(StageWrite, http.StatusInternalServerError, err)
}
