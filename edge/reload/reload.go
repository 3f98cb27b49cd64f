// Package reload watches the model bundle file and swaps a new bundle into
// the running pipeline without stopping the stream. A new file must load and
// pass a self-check (one detection on a recent frame) before it replaces the
// running model; a file that fails is refused, logged, and the running model
// keeps going. The file is polled, which works on every file system and
// needs no cgo.
package reload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
)

// Opener loads a bundle file into a Detector.
type Opener func(path string) (detect.Detector, error)

// Checker runs a loaded Detector once before it is accepted.
type Checker func(d detect.Detector) error

// Swapper takes an accepted Detector; from then on it owns it.
type Swapper func(d detect.Detector)

// Outcome is the result of one attempt to load the file.
type Outcome struct {
	Time    time.Time `json:"time"`
	OK      bool      `json:"ok"`
	Version string    `json:"version,omitempty"`
	Error   string    `json:"error,omitempty"`
	// Trigger is "file" (the file changed) or "request" (asked for).
	Trigger string `json:"trigger"`
}

// Status is what the watcher has done.
type Status struct {
	Path     string    `json:"path"`
	Reloads  int       `json:"reloads"`
	Refused  int       `json:"refused"`
	Last     *Outcome  `json:"last,omitempty"`
	History  []Outcome `json:"history,omitempty"` // newest first, at most 8
	Watching bool      `json:"watching"`
}

// Watcher polls one file.
type Watcher struct {
	path     string
	interval time.Duration
	open     Opener
	check    Checker
	swap     Swapper
	log      *slog.Logger

	mu     sync.Mutex // serialises loads
	smu    sync.Mutex // guards status and seen
	status Status
	seen   fileState
}

type fileState struct {
	size  int64
	mtime time.Time
	ino   uint64
	ok    bool
}

// New makes a watcher of path polling every interval (0: one second). The
// file as it is now is taken as the one already running.
func New(path string, interval time.Duration, open Opener, check Checker, swap Swapper,
	log *slog.Logger) *Watcher {
	if interval <= 0 {
		interval = time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{path: path, interval: interval, open: open, check: check, swap: swap,
		log: log.With("model", path)}
	w.status.Path = path
	w.seen = stat(path)
	return w
}

func stat(path string) fileState {
	st, err := os.Stat(path)
	if err != nil {
		return fileState{}
	}
	return fileState{size: st.Size(), mtime: st.ModTime(), ino: inode(st), ok: true}
}

// Status returns a copy of what happened so far.
func (w *Watcher) Status() Status {
	w.smu.Lock()
	defer w.smu.Unlock()
	s := w.status
	s.History = append([]Outcome(nil), s.History...)
	return s
}

// Run polls until ctx is done. A change is loaded once the file has stayed
// the same for one interval, so a file being copied is not read half way.
func (w *Watcher) Run(ctx context.Context) {
	w.smu.Lock()
	w.status.Watching = true
	w.smu.Unlock()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var pending fileState
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := stat(w.path)
		w.smu.Lock()
		seen := w.seen
		w.smu.Unlock()
		if !now.ok || now == seen {
			pending = fileState{}
			continue
		}
		if now != pending {
			pending = now // changed: wait one interval for it to settle
			continue
		}
		w.smu.Lock()
		w.seen = now
		w.smu.Unlock()
		pending = fileState{}
		w.Reload("file")
	}
}

// Settle takes the file as it is now for the one running, so that a change
// its caller made and swapped in itself (a deployment, a rollback) is not
// loaded a second time.
func (w *Watcher) Settle() {
	now := stat(w.path)
	w.smu.Lock()
	w.seen = now
	w.smu.Unlock()
}

// ErrRefused wraps the reason a new bundle was not taken.
var ErrRefused = errors.New("model refused; the running model stays")

// Reload loads the file now and swaps it in if it loads and passes the
// self-check; trigger says why, for the status.
func (w *Watcher) Reload(trigger string) (detect.Info, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	out := Outcome{Time: start, Trigger: trigger}
	d, err := w.open(w.path)
	if err == nil {
		if cerr := w.check(d); cerr != nil {
			d.Close()
			d, err = nil, fmt.Errorf("self-check: %w", cerr)
		}
	}
	if err != nil {
		w.log.Warn("model refused; the running model stays", "err", err, "trigger", trigger)
		err = fmt.Errorf("%w: %w", ErrRefused, err)
		out.Error = err.Error()
		w.record(out)
		return detect.Info{}, err
	}
	info := d.Info()
	out.OK, out.Version = true, info.Version
	w.record(out)
	w.swap(d)
	w.log.Info("model reloaded", "version", info.Version, "engine", info.Engine,
		"precision", info.Precision, "took", time.Since(start).Round(time.Millisecond),
		"trigger", trigger)
	return info, nil
}

func (w *Watcher) record(o Outcome) {
	w.smu.Lock()
	defer w.smu.Unlock()
	if o.OK {
		w.status.Reloads++
	} else {
		w.status.Refused++
	}
	w.status.Last = &o
	w.status.History = append([]Outcome{o}, w.status.History...)
	if len(w.status.History) > 8 {
		w.status.History = w.status.History[:8]
	}
}
