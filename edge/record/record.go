// Package record writes the annotated video to a file from its own
// goroutine. With cgo it uses OpenCV's VideoWriter (.mp4 as H.264 where
// the FFmpeg build has an encoder for it, else MPEG-4 part 2; .avi as
// Motion JPEG; .mkv as H.264 or MPEG-4); every build can write .mjpeg,
// JPEG images back to back, which ffmpeg and VLC play and maskwatch reads
// back as a source.
package record

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/maskwatch/maskwatch/camera"
)

// sink is one open output file.
type sink interface {
	write(f *camera.Frame) error
	close() error
}

// ErrNeedsCgo is returned for containers only OpenCV writes, in a build
// without cgo.
var ErrNeedsCgo = errors.New("this build writes only .mjpeg (no cgo, no OpenCV)")

// Recorder queues frames for the file. By default Write never waits:
// frames that arrive while eight are queued are lost (counted), so a slow
// disk never slows detection. Offline runs that must keep every frame set
// Wait.
type Recorder struct {
	// Wait makes Write wait for room in the queue instead of dropping.
	Wait bool
	// RateFrom, when set and New was given no rate, is asked for the frame
	// rate when the file is created (the source's own rate, known by then);
	// a rate of 0 means 15.
	RateFrom func() float64

	path string
	fps  float64
	log  *slog.Logger
	jobs chan *camera.Frame
	free chan *camera.Frame

	mu      sync.Mutex
	written uint64
	dropped uint64
	skipped uint64
	err     error
}

// New checks that path's extension can be written; the file is created at
// the first frame, whose size it keeps. fps is the rate the file plays at
// (0: see RateFrom).
func New(path string, fps float64, log *slog.Logger) (*Recorder, error) {
	if _, err := codecFor(path); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Recorder{path: path, fps: fps, log: log.With("record", path),
		jobs: make(chan *camera.Frame, 8), free: make(chan *camera.Frame, 8)}
	for i := 0; i < 8; i++ {
		r.free <- &camera.Frame{}
	}
	return r, nil
}

// codecFor says how path is written: "mjpeg" (pure Go) or an OpenCV codec.
func codecFor(path string) (string, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".mjpeg", ".mjpg":
		return "mjpeg", nil
	case ".mp4", ".avi", ".mkv", ".mov":
		if !haveOpenCV {
			return "", fmt.Errorf("record %s: %w", path, ErrNeedsCgo)
		}
		return ext, nil
	default:
		return "", fmt.Errorf("record %s: unknown extension %q: use .mp4, .avi, .mkv or .mjpeg",
			path, ext)
	}
}

// Write queues a copy of f.
func (r *Recorder) Write(f *camera.Frame) {
	if r.Wait {
		j := <-r.free
		j.CopyFrom(f)
		r.jobs <- j
		return
	}
	select {
	case j := <-r.free:
		j.CopyFrom(f)
		r.jobs <- j
	default:
		r.mu.Lock()
		r.dropped++
		r.mu.Unlock()
	}
}

// Run writes queued frames until ctx is done, then writes what is still
// queued and closes the file.
func (r *Recorder) Run(ctx context.Context) error {
	var out sink
	var w, h int
	defer func() {
		if out != nil {
			if err := out.close(); err != nil {
				r.fail(err)
			}
			r.log.Info("recording closed", "frames", r.Stats().Written)
		}
	}()
	handle := func(f *camera.Frame) {
		defer func() { r.free <- f }()
		if out == nil {
			if r.fps <= 0 && r.RateFrom != nil {
				r.fps = r.RateFrom()
			}
			if r.fps <= 0 {
				r.fps = 15
			}
			var err error
			if out, err = open(r.path, r.fps, f.Width, f.Height); err != nil {
				r.fail(err)
				return
			}
			w, h = f.Width, f.Height
			r.log.Info("recording", "width", w, "height", h, "fps", r.fps)
		}
		if f.Width != w || f.Height != h {
			r.mu.Lock()
			r.skipped++
			r.mu.Unlock()
			return
		}
		if err := out.write(f); err != nil {
			r.fail(err)
			return
		}
		r.mu.Lock()
		r.written++
		r.mu.Unlock()
	}
	for {
		select {
		case f := <-r.jobs:
			handle(f)
		case <-ctx.Done():
			for {
				select {
				case f := <-r.jobs:
					handle(f)
				default:
					return r.Err()
				}
			}
		}
	}
}

func (r *Recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.log.Error("recording failed", "err", err)
		r.err = err
	}
}

// Err is the first error writing the file, if any.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Stats counts frames written, lost to a full queue, and skipped because
// their size differed from the first frame's.
type Stats struct{ Written, Dropped, Skipped uint64 }

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{r.written, r.dropped, r.skipped}
}
