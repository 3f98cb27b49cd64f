package deploy

import (
	"slices"
	"sync"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
)

// Observer sees every frame the running model detects on, with its faces.
// It is called on the pipeline's goroutine: it copies what it keeps and
// never waits.
type Observer interface {
	Observe(f detect.Frame, faces []detect.Face, info detect.Info)
}

// CheckFrame is a stored frame and the faces the model running then found
// on it: what a new model's self-check runs on.
type CheckFrame struct {
	Frame detect.Frame
	Faces []detect.Face
	Time  time.Time
	// Version is the model that found Faces.
	Version string
}

// Tap wraps the pipeline's detectors: it keeps a few recent frames, spaced
// out in time, with the faces found on them, and hands every frame to its
// observers. It costs a frame copy every Every, nothing otherwise.
type Tap struct {
	// Keep is how many frames are stored (4 when 0); Every is how far apart
	// they are taken (2 s when 0).
	Keep  int
	Every time.Duration

	mu        sync.Mutex
	frames    []CheckFrame
	next      int
	last      time.Time
	observers []Observer
}

// AddObserver adds o; call it before frames flow.
func (t *Tap) AddObserver(o Observer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observers = append(t.observers, o)
}

// Wrap returns d with the tap on it; closing the result closes d.
func (t *Tap) Wrap(d detect.Detector) detect.Detector {
	if d == nil {
		return nil
	}
	return &tapped{Detector: d, tap: t}
}

// Frames returns copies of the stored frames, oldest first.
func (t *Tap) Frames() []CheckFrame {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]CheckFrame, 0, len(t.frames))
	for i := range t.frames {
		c := t.frames[(t.next+i)%len(t.frames)]
		c.Frame.Pix = slices.Clone(c.Frame.Pix)
		c.Faces = slices.Clone(c.Faces)
		out = append(out, c)
	}
	return out
}

func (t *Tap) observe(f detect.Frame, faces []detect.Face, info detect.Info) {
	t.mu.Lock()
	observers := t.observers
	keep, every := t.Keep, t.Every
	if keep <= 0 {
		keep = 4
	}
	if every <= 0 {
		every = 2 * time.Second
	}
	now := time.Now()
	if now.Sub(t.last) >= every && f.Width > 0 && f.Height > 0 {
		t.last = now
		c := CheckFrame{Faces: slices.Clone(faces), Time: now, Version: info.Version}
		if len(t.frames) < keep {
			c.Frame = copyFrame(f, nil)
			t.frames = append(t.frames, c)
		} else {
			c.Frame = copyFrame(f, t.frames[t.next].Frame.Pix)
			t.frames[t.next] = c
			t.next = (t.next + 1) % len(t.frames)
		}
	}
	t.mu.Unlock()
	for _, o := range observers {
		o.Observe(f, faces, info)
	}
}

// copyFrame copies f into packed rows, in buf when it is large enough.
func copyFrame(f detect.Frame, buf []byte) detect.Frame {
	n := f.Width * f.Height * 3
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	for y := range f.Height {
		copy(buf[y*f.Width*3:(y+1)*f.Width*3], f.Pix[y*f.Stride:])
	}
	return detect.Frame{Pix: buf, Width: f.Width, Height: f.Height, Stride: f.Width * 3}
}

// tapped is a Detector with a Tap on it.
type tapped struct {
	detect.Detector
	tap *Tap
}

// Detect detects on f and hands the frame and its faces to the tap.
func (d *tapped) Detect(f detect.Frame) ([]detect.Face, error) {
	faces, err := d.Detector.Detect(f)
	if err == nil {
		d.tap.observe(f, faces, d.Detector.Info())
	}
	return faces, err
}
