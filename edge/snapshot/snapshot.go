// Package snapshot stores violation snapshots: the annotated frame, as JPEG,
// when a face without a proper mask appears. Nothing is stored unless asked
// for, and the folder is kept under a disk quota by deleting the oldest
// snapshots first.
package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/edge/jpegenc"
	"github.com/maskwatch/maskwatch/models/safefile"
)

// prefix starts every file this package writes; others in the folder are
// never touched.
const prefix = "violation-"

// Writer saves snapshots from its own goroutine (Run). Save never waits:
// when four snapshots are already waiting, the new one is lost (counted).
type Writer struct {
	dir   string
	quota int64
	log   *slog.Logger
	enc   jpegenc.Encoder
	jobs  chan *job
	free  chan *job

	mu      sync.Mutex
	used    int64
	files   []fileInfo // oldest first
	saved   uint64
	dropped uint64
	deleted uint64
}

type job struct {
	frame camera.Frame
	ev    events.Event
}

type fileInfo struct {
	name string
	size int64
}

// New prepares dir (created if missing) with a quota in bytes; the
// snapshots already there count against it.
func New(dir string, quota int64, log *slog.Logger) (*Writer, error) {
	if quota <= 0 {
		return nil, fmt.Errorf("snapshot quota %d bytes: give a positive size such as 100MB",
			quota)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("snapshot folder: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Writer{dir: dir, quota: quota, log: log.With("snapshots", dir), enc: jpegenc.New(),
		jobs: make(chan *job, 4), free: make(chan *job, 4)}
	for i := 0; i < 4; i++ {
		w.free <- &job{}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot folder: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil {
			w.files = append(w.files, fileInfo{e.Name(), info.Size()})
			w.used += info.Size()
		}
	}
	slices.SortFunc(w.files, func(a, b fileInfo) int { return strings.Compare(a.name, b.name) })
	return w, nil
}

// Save queues f (copied) as the snapshot of event e.
func (w *Writer) Save(f *camera.Frame, e events.Event) {
	select {
	case j := <-w.free:
		j.frame.CopyFrom(f)
		j.ev = e
		w.jobs <- j
	default:
		w.mu.Lock()
		w.dropped++
		w.mu.Unlock()
	}
}

// Run writes queued snapshots until ctx is done.
func (w *Writer) Run(ctx context.Context) {
	var buf []byte
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-w.jobs:
			var err error
			buf, err = w.write(buf, j)
			w.free <- j
			if err != nil && !failing {
				w.log.Error("snapshot not saved", "err", err)
			}
			failing = err != nil
		}
	}
}

func (w *Writer) write(buf []byte, j *job) ([]byte, error) {
	buf, err := w.enc.Encode(buf, &j.frame, 85)
	if err != nil {
		return buf, err
	}
	size := int64(len(buf))
	if size > w.quota {
		return buf, fmt.Errorf("one snapshot (%d bytes) is over the quota of %d bytes",
			size, w.quota)
	}
	label := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '-'
	}, j.ev.Label)
	name := fmt.Sprintf("%s%s-track%d-%s.jpg", prefix,
		j.ev.Time.UTC().Format("20060102T150405.000Z"), j.ev.Track, label)
	// 0600: snapshots show people's faces.
	if err := safefile.Write(filepath.Join(w.dir, name), buf, 0o600); err != nil {
		return buf, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.files = append(w.files, fileInfo{name, size})
	w.used += size
	w.saved++
	for w.used > w.quota && len(w.files) > 1 {
		old := w.files[0]
		if err := os.Remove(filepath.Join(w.dir, old.name)); err != nil &&
			!os.IsNotExist(err) {
			return buf, fmt.Errorf("quota: %w", err)
		}
		w.files = w.files[1:]
		w.used -= old.size
		w.deleted++
	}
	return buf, nil
}

// Stats are the writer's counters.
type Stats struct {
	Saved, Dropped, Deleted uint64
	Files                   int
	Bytes, Quota            int64
	Since                   time.Time
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Stats{Saved: w.saved, Dropped: w.dropped, Deleted: w.deleted, Files: len(w.files),
		Bytes: w.used, Quota: w.quota}
}
