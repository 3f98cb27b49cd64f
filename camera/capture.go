package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Pace says how a Capture hands frames to its consumer.
type Pace int

// The paces.
const (
	// PaceLive reads as fast as the source delivers and keeps only the newest
	// frame: latency stays bounded when the consumer is slower.
	PaceLive Pace = iota
	// PaceNative plays finite sources at their own frame rate (as a camera
	// would deliver them) and keeps only the newest frame.
	PaceNative
	// PaceAll hands over every frame: the capture waits for the consumer.
	// For benchmarks and offline runs over files. The next frame is read
	// while the consumer works, and its Time is set when Next hands it over.
	PaceAll
)

// ParsePace reads "live", "native" or "all".
func ParsePace(s string) (Pace, error) {
	switch s {
	case "live":
		return PaceLive, nil
	case "native":
		return PaceNative, nil
	case "all":
		return PaceAll, nil
	}
	return 0, fmt.Errorf("pace %q: want live, native or all", s)
}

// String is the name ParsePace reads.
func (p Pace) String() string {
	switch p {
	case PaceLive:
		return "live"
	case PaceNative:
		return "native"
	case PaceAll:
		return "all"
	}
	return fmt.Sprintf("pace(%d)", int(p))
}

// ErrEnded is returned by Capture.Next and Capture.Run once a finite source
// has delivered its last frame and is not looped.
var ErrEnded = errors.New("source ended")

// ErrNoFrame is returned by Capture.Next when no new frame came in time.
var ErrNoFrame = errors.New("no new frame")

// CaptureOptions configure a Capture.
type CaptureOptions struct {
	// Spec names the source (see Classify).
	Spec   string
	Source Options
	Pace   Pace
	// Loop starts a finite source over at its end (stdin cannot loop).
	Loop bool
	// MinBackoff and MaxBackoff bound the wait between attempts to reopen a
	// lost source; 0 means 250 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// Open opens the source; nil means the package's Open.
	Open func(spec string, opt Options) (Source, error)
	// Log receives one line per change of state; nil means slog.Default().
	Log *slog.Logger
}

// Status is a Capture's state, for status pages and metrics.
type Status struct {
	Source string // the spec, without credentials
	Kind   string
	// Signal is true while the source delivers frames.
	Signal bool
	// Ended is true once a finite source has ended for good.
	Ended bool
	// Since is when Signal last changed.
	Since time.Time
	// Reopens counts the times a lost source was opened again.
	Reopens int
	// Captured counts frames read; Dropped those replaced by a newer frame
	// before the consumer took them; BadFrames those that did not decode.
	Captured, Dropped, BadFrames uint64
	// Width and Height are the size of the last frame.
	Width, Height int
	// FrameRate is the source's own rate where it reports one, else 0.
	FrameRate float64
	// LastError is why the source was last lost or refused, if it was.
	LastError string
}

// Capture reads a source on its own goroutine (Run) and hands the newest
// frame to one consumer (Next). A lost source is reopened with exponential
// backoff, and each change between signal and no signal is logged once.
type Capture struct {
	opt  CaptureOptions
	kind Kind
	log  *slog.Logger

	mu      sync.Mutex
	latest  Frame
	seq     uint64 // Seq of latest
	taken   uint64 // Seq last handed to the consumer
	changed chan struct{}
	status  Status
	warned  bool // the current lack of signal has been logged
}

// NewCapture prepares a Capture; nothing is opened before Run.
func NewCapture(opt CaptureOptions) *Capture {
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = 250 * time.Millisecond
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = max(10*time.Second, opt.MinBackoff)
	}
	if opt.Open == nil {
		opt.Open = Open
	}
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	k := Classify(opt.Spec)
	c := &Capture{opt: opt, kind: k, log: log, changed: make(chan struct{})}
	c.status = Status{Source: Describe(opt.Spec), Kind: k.String(), Since: time.Now()}
	c.log = log.With("source", c.status.Source)
	return c
}

// Kind is the kind of the source.
func (c *Capture) Kind() Kind { return c.kind }

// Status returns a copy of the current state.
func (c *Capture) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// notify wakes every waiter; c.mu must be held.
func (c *Capture) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Next waits up to wait for a frame newer than the last one handed over and
// swaps it into dst: dst's old pixels go back to the Capture for reuse, so a
// consumer must not keep slices of a frame across calls. It returns
// ErrNoFrame after wait, ErrEnded after the last frame of a finite source,
// or the context's error.
func (c *Capture) Next(ctx context.Context, dst *Frame, wait time.Duration) error {
	var timeout <-chan time.Time
	c.mu.Lock()
	for c.seq == c.taken {
		if c.status.Ended {
			c.mu.Unlock()
			return ErrEnded
		}
		ch := c.changed
		c.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return ErrNoFrame
		}
		c.mu.Lock()
	}
	*dst, c.latest = c.latest, *dst
	if c.opt.Pace == PaceAll {
		// Read ahead while the consumer was busy, the frame arrives, as from
		// a camera that keeps pace with the consumer, now.
		dst.Time = time.Now()
	}
	c.taken = c.seq
	c.notify()
	c.mu.Unlock()
	return nil
}

// Run reads frames until ctx is done (it then returns nil) or a finite,
// unlooped source ends (ErrEnded). A file, folder or stdin that cannot be
// opened at all is an error; cameras and streams are retried with backoff
// until they come.
func (c *Capture) Run(ctx context.Context) error {
	backoff := c.opt.MinBackoff
	opened := false
	var back Frame
	for ctx.Err() == nil {
		src, err := c.opt.Open(c.opt.Spec, c.opt.Source)
		if err != nil {
			if !opened && c.kind.Finite() {
				return err
			}
			c.lost(err)
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, c.opt.MaxBackoff)
			continue
		}
		if opened {
			c.mu.Lock()
			c.status.Reopens++
			c.mu.Unlock()
		}
		opened = true
		err = c.read(ctx, src, &back, &backoff)
		src.Close()
		switch {
		case ctx.Err() != nil:
		case err == io.EOF && (!c.opt.Loop || c.kind == KindStdin):
			c.end()
			return ErrEnded
		case err == io.EOF:
			c.log.Debug("source looped")
		default:
			c.lost(err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, c.opt.MaxBackoff)
		}
	}
	return nil
}

// read delivers frames from an open source until it fails or ctx is done.
func (c *Capture) read(ctx context.Context, src Source, back *Frame,
	backoff *time.Duration) error {
	var rate float64
	if r, ok := src.(Rater); ok {
		rate = r.FrameRate()
	}
	if rate == 0 {
		rate = c.opt.Source.FPS
	}
	c.mu.Lock()
	c.status.FrameRate = rate
	c.mu.Unlock()
	var (
		start   time.Time
		n       int
		badRun  uint64
		badFrom error
	)
	for ctx.Err() == nil {
		err := src.Read(back)
		if errors.Is(err, ErrBadFrame) {
			c.mu.Lock()
			c.status.BadFrames++
			c.mu.Unlock()
			if badRun == 0 {
				c.log.Warn("skipping frames that do not decode", "err", err)
				badFrom = err
			}
			badRun++
			continue
		}
		if err != nil {
			return err
		}
		if badRun > 0 {
			c.log.Info("frames decode again", "skipped", badRun, "first_error", badFrom)
			badRun = 0
		}
		*backoff = c.opt.MinBackoff
		if c.opt.Pace == PaceNative && rate > 0 {
			now := time.Now()
			if start.IsZero() || now.Sub(start.Add(frameTime(n, rate))) > time.Second {
				start, n = now, 0
			}
			if !sleep(ctx, time.Until(start.Add(frameTime(n, rate)))) {
				return nil
			}
			n++
		}
		if !c.publish(ctx, back) {
			return nil
		}
	}
	return nil
}

func frameTime(n int, rate float64) time.Duration {
	return time.Duration(float64(n) / rate * float64(time.Second))
}

// publish makes back the newest frame and takes the replaced buffer back.
// With PaceAll it first waits for the consumer to take the previous frame.
func (c *Capture) publish(ctx context.Context, back *Frame) bool {
	c.mu.Lock()
	for c.opt.Pace == PaceAll && c.seq != c.taken {
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if c.seq != c.taken {
		c.status.Dropped++
	}
	c.seq++
	back.Seq = c.seq
	*back, c.latest = c.latest, *back
	c.status.Captured++
	c.status.Width, c.status.Height = c.latest.Width, c.latest.Height
	if !c.status.Signal {
		c.status.Signal = true
		c.warned = false
		down := time.Since(c.status.Since)
		c.status.Since = time.Now()
		if c.status.Captured == 1 {
			c.log.Info("source open", "kind", c.kind, "width", c.latest.Width,
				"height", c.latest.Height, "fps", c.status.FrameRate)
		} else {
			c.log.Info("source back", "down", down.Round(time.Millisecond),
				"reopens", c.status.Reopens)
		}
	}
	c.notify()
	return true
}

// lost records a failed open or read; only a change of state is logged.
func (c *Capture) lost(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.LastError = err.Error()
	switch {
	case c.status.Signal:
		c.status.Signal = false
		c.status.Since = time.Now()
		c.log.Warn("source lost; reopening with backoff", "err", err)
	case !c.warned:
		c.log.Warn("source not available; retrying with backoff", "err", err)
	default:
		c.log.Debug("source still not available", "err", err)
	}
	c.warned = true
	c.notify()
}

// end marks a finite source as ended.
func (c *Capture) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.Ended = true
	c.status.Signal = false
	c.status.Since = time.Now()
	c.log.Info("source ended", "frames", c.status.Captured)
	c.notify()
}

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
