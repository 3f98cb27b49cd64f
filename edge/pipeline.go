// Package edge is maskwatch's live pipeline: the newest camera frame goes
// through the detector, faces are tracked into events, boxes and labels are
// drawn, and the annotated frame goes to the outputs (HTTP stream, window,
// recording, snapshots). Nothing an output does can slow detection: each
// takes a copy and works on its own goroutine, dropping what it cannot keep
// up with. The subpackages hold each part; this package wires them.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/edge/draw"
	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/edge/stats"
	"github.com/maskwatch/maskwatch/edge/track"
)

// FrameSink receives annotated frames. Implementations copy what they keep
// and never wait (the HTTP hub, the window, the recorder).
type FrameSink interface {
	Show(f *camera.Frame)
}

// SinkFunc adapts a function to FrameSink.
type SinkFunc func(f *camera.Frame)

// Show calls the function.
func (s SinkFunc) Show(f *camera.Frame) { s(f) }

// SnapshotSink stores the frame of an event (violation snapshots).
type SnapshotSink interface {
	Save(f *camera.Frame, e events.Event)
}

// Config wires a Pipeline.
type Config struct {
	Capture  *camera.Capture
	Detector detect.Detector
	// Bus receives face events; nil makes a private one.
	Bus *events.Bus
	// Stream gets the annotated frame as it leaves the device (blurred with
	// Blur); Window the local view (with the kiosk banner when Kiosk); Record
	// the same frames as Stream.
	Stream, Window, Record FrameSink
	// Snapshots, when set, receive the stream's frame when a face without a
	// proper mask enters or changes to that.
	Snapshots SnapshotSink

	Texts draw.Texts
	// Blur hides faces in every frame that leaves the device (Stream,
	// Record, Snapshots); the local Window shows them.
	Blur  bool
	Kiosk bool
	// NoOverlay leaves out the FPS and latency line.
	NoOverlay bool
	// MinScore drops faces scored lower, on top of the model's own threshold.
	MinScore float64
	// FaceOverlap merges faces of different labels: of two boxes whose IoU
	// is above it, only the higher-scored is kept, so a face unsure between
	// the classes shows one box, not a green and a red one (0: keep both).
	FaceOverlap float64
	// MaxFrames ends Run after that many frames (0: no limit).
	MaxFrames int
	// Device names this device in events.
	Device  string
	Version string
	Log     *slog.Logger
}

// Stage names of the per-stage latencies.
const (
	StageWait       = "wait"       // capture to detection start (time in the newest-frame slot)
	StagePreprocess = "preprocess" // detector: resize, letterbox, normalise
	StageStage1     = "stage1"     // detector: backbone, neck, RPN
	StageStage2     = "stage2"     // detector: box head on RoIs
	StagePost       = "post"       // detector: proposals, decoding, NMS
	StageDetect     = "detect"     // the whole Detect call
	StageDraw       = "draw"       // tracking, events, blur, boxes, overlay
	StageOutput     = "output"     // handing copies to the outputs
)

// Stages lists the stage names in pipeline order.
var Stages = []string{StageWait, StagePreprocess, StageStage1, StageStage2, StagePost,
	StageDetect, StageDraw, StageOutput}

// Pipeline runs detection on a Capture. Run it once; Status, Swap and the
// HTTP provider methods are safe from other goroutines.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	bus     *events.Bus
	started time.Time

	swapc chan detect.Detector

	frames    atomic.Uint64
	lastLoop  atomic.Int64 // unix ns of the last loop turn
	detErrors atomic.Uint64
	rate      stats.Rate
	latency   stats.Latency
	merge     faceMerger // used by the loop goroutine only
	stages    map[string]*stats.Latency

	mu                              sync.Mutex
	det                             detect.Info
	detections                      map[string]uint64 // faces detected, per label, every frame
	entered                         map[string]uint64 // faces that entered, per label
	enteredProper, enteredNotProper uint64
	extras                          Extras
	current                         []track.Track
	first                           time.Time
	last                            time.Time
	sample                          camera.Frame // a recent raw frame, for model self-checks
	failing                         bool
	ended                           bool
}

// New checks cfg and makes a Pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Capture == nil || cfg.Detector == nil {
		return nil, errors.New("edge: a pipeline needs a capture and a detector")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	bus := cfg.Bus
	if bus == nil {
		bus = events.NewBus()
	}
	p := &Pipeline{cfg: cfg, log: cfg.Log, bus: bus, started: time.Now(),
		swapc:  make(chan detect.Detector, 1),
		stages: map[string]*stats.Latency{}, det: cfg.Detector.Info(),
		detections: map[string]uint64{}, entered: map[string]uint64{}}
	for _, s := range Stages {
		p.stages[s] = &stats.Latency{}
	}
	p.lastLoop.Store(time.Now().UnixNano())
	return p, nil
}

// Bus is where face events are published.
func (p *Pipeline) Bus() *events.Bus { return p.bus }

// Swap hands a new detector to the pipeline, which starts using it at the
// next frame and closes the one it replaces. A detector handed over but not
// yet taken is closed when a newer one comes.
func (p *Pipeline) Swap(d detect.Detector) {
	for {
		select {
		case p.swapc <- d:
			return
		default:
		}
		select {
		case old := <-p.swapc:
			old.Close()
		default:
		}
	}
}

// Sample copies a recent raw frame into dst, for self-checks of a new
// model; false when no frame came yet.
func (p *Pipeline) Sample(dst *camera.Frame) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sample.Width == 0 {
		return false
	}
	dst.CopyFrom(&p.sample)
	return true
}

// Run processes frames until ctx is done, MaxFrames is reached or a finite
// source ends (all return nil), and then closes the detector it holds.
func (p *Pipeline) Run(ctx context.Context) error {
	det := p.cfg.Detector
	defer func() { det.Close() }()
	var (
		raw, out, win camera.Frame
		evs           []track.Event
		lastCard      time.Time
	)
	tracker := track.New()
	ann := draw.NewAnnotator(p.cfg.Texts)
	for {
		p.lastLoop.Store(time.Now().UnixNano())
		if p.cfg.MaxFrames > 0 && p.frames.Load() >= uint64(p.cfg.MaxFrames) {
			p.publish(tracker.Flush(evs[:0]), &out, 0)
			return nil
		}
		select {
		case d := <-p.swapc:
			det.Close()
			det = d
			p.mu.Lock()
			p.det = d.Info()
			p.mu.Unlock()
		default:
		}

		err := p.cfg.Capture.Next(ctx, &raw, time.Second)
		switch {
		case errors.Is(err, camera.ErrNoFrame):
			st := p.cfg.Capture.Status()
			if !st.Signal {
				evs = tracker.Flush(evs[:0])
				p.publish(evs, &out, 0)
				p.setCurrent(nil)
				if time.Since(lastCard) >= time.Second {
					p.noSignal(ann, &out, &win, st)
					lastCard = time.Now()
				}
			}
			continue
		case ctx.Err() != nil:
			p.publish(tracker.Flush(evs[:0]), &out, 0)
			return nil
		case errors.Is(err, camera.ErrEnded):
			p.publish(tracker.Flush(evs[:0]), &out, 0)
			p.mu.Lock()
			p.ended = true
			p.mu.Unlock()
			return nil
		case err != nil:
			return fmt.Errorf("edge: %w", err)
		}
		p.process(det, tracker, ann, &raw, &out, &win, &evs)
	}
}

// process runs one frame through detection, tracking, drawing and outputs.
func (p *Pipeline) process(det detect.Detector, tracker *track.Tracker, ann *draw.Annotator,
	raw, out, win *camera.Frame, evs *[]track.Event) {
	t0 := time.Now()
	faces, err := det.Detect(detect.Frame{Pix: raw.Pix, Width: raw.Width,
		Height: raw.Height, Stride: raw.Stride})
	t1 := time.Now()
	p.detectFailed(err)
	if err != nil {
		faces = nil
	}
	if p.cfg.MinScore > 0 {
		kept := faces[:0]
		for _, f := range faces {
			if f.Score >= p.cfg.MinScore {
				kept = append(kept, f)
			}
		}
		faces = kept
	}
	if p.cfg.FaceOverlap > 0 {
		faces = p.merge.faces(faces, p.cfg.FaceOverlap)
	}

	*evs = tracker.Update(faces, raw.Time, (*evs)[:0])
	overlay := draw.Overlay{FPS: p.rate.PerSecond(t1), Model: p.modelLine()}
	if r := p.latency.Recent(0.5); len(r) > 0 {
		overlay.Latency = r[0]
	}
	out.CopyFrom(raw)
	if p.cfg.Blur {
		ann.Blur(out, faces)
	}
	ann.Faces(out, faces)
	if !p.cfg.NoOverlay {
		ann.Overlay(out, overlay)
	}
	p.publish(*evs, out, raw.Seq)
	t2 := time.Now()

	if p.cfg.Stream != nil {
		p.cfg.Stream.Show(out)
	}
	if p.cfg.Record != nil {
		p.cfg.Record.Show(out)
	}
	if p.cfg.Window != nil {
		view := out
		if p.cfg.Blur || p.cfg.Kiosk {
			win.CopyFrom(raw)
			ann.Faces(win, faces)
			if !p.cfg.NoOverlay {
				ann.Overlay(win, overlay)
			}
			if p.cfg.Kiosk {
				ann.Banner(win, faces)
			}
			view = win
		}
		p.cfg.Window.Show(view)
	}
	t3 := time.Now()

	p.account(det, raw, faces, tracker, t0, t1, t2, t3)
}

// account updates the counters and latencies of one frame.
func (p *Pipeline) account(det detect.Detector, raw *camera.Frame, faces []detect.Face,
	tracker *track.Tracker, t0, t1, t2, t3 time.Time) {
	n := p.frames.Add(1)
	p.rate.Tick(t3)
	p.latency.Add(t3.Sub(raw.Time))
	tm := det.LastTimings()
	p.stages[StageWait].Add(t0.Sub(raw.Time))
	p.stages[StagePreprocess].Add(tm.Preprocess)
	p.stages[StageStage1].Add(tm.Stage1)
	p.stages[StageStage2].Add(tm.Stage2)
	p.stages[StagePost].Add(tm.Post)
	p.stages[StageDetect].Add(t1.Sub(t0))
	p.stages[StageDraw].Add(t2.Sub(t1))
	p.stages[StageOutput].Add(t3.Sub(t2))

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range faces {
		p.detections[f.Label]++
	}
	p.current = tracker.Confirmed(p.current[:0])
	if p.first.IsZero() {
		p.first = t3
	}
	p.last = t3
	if n%15 == 1 {
		p.sample.CopyFrom(raw)
	}
}

func (p *Pipeline) setCurrent(ts []track.Track) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current = append(p.current[:0], ts...)
}

// detectFailed logs a change between working and failing detection once.
func (p *Pipeline) detectFailed(err error) {
	if err != nil {
		p.detErrors.Add(1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil && !p.failing:
		p.log.Error("detection failing; frames go out without boxes", "err", err)
		p.failing = true
	case err == nil && p.failing:
		p.log.Info("detection works again", "errors", p.detErrors.Load())
		p.failing = false
	}
}

// publish sends track events to the bus and violation frames to snapshots.
func (p *Pipeline) publish(evs []track.Event, frame *camera.Frame, seq uint64) {
	if len(evs) == 0 {
		return
	}
	src := p.cfg.Capture.Status().Source
	for _, te := range evs {
		tr := te.Track
		e := events.Event{Type: string(te.Kind), Track: tr.ID, Label: tr.Label,
			Proper: tr.Proper, Score: tr.Score,
			Box:  [4]float64{tr.Box.X1, tr.Box.Y1, tr.Box.X2, tr.Box.Y2},
			Time: time.Now(), Seen: tr.Last.Sub(tr.First).Seconds(), Frame: seq,
			Source: src, Device: p.cfg.Device}
		if te.Kind == track.Enter {
			p.mu.Lock()
			p.entered[tr.Label]++
			if tr.Proper {
				p.enteredProper++
			} else {
				p.enteredNotProper++
			}
			p.mu.Unlock()
		}
		p.bus.Publish(e)
		if p.cfg.Snapshots != nil && !tr.Proper && seq > 0 &&
			(te.Kind == track.Enter || te.Kind == track.Change) {
			p.cfg.Snapshots.Save(frame, e)
		}
	}
}

// noSignal sends the no-signal card to the outputs.
func (p *Pipeline) noSignal(ann *draw.Annotator, out, win *camera.Frame, st camera.Status) {
	w, h := st.Width, st.Height
	if w == 0 {
		w, h = 640, 480
	}
	if err := ann.NoSignal(out, w, h, time.Since(st.Since)); err != nil {
		return
	}
	if p.cfg.Stream != nil {
		p.cfg.Stream.Show(out)
	}
	if p.cfg.Window != nil {
		p.cfg.Window.Show(out)
	}
}

func (p *Pipeline) modelLine() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.det.Engine + " " + p.det.Precision
}
