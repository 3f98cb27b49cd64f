package edge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/edge/draw"
	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/models/box"
)

// numbered is a source of n grey 160×120 frames with a textured square
// (for the blur check); the first byte holds the frame's number from 1.
type numbered struct{ n, i int }

func (s *numbered) Read(f *camera.Frame) error {
	if s.i >= s.n {
		return io.EOF
	}
	s.i++
	f.Reset(160, 120)
	for i := range f.Pix {
		f.Pix[i] = 128
	}
	for y := 40; y < 80; y++ {
		for x := 40; x < 80; x++ {
			v := byte(0)
			if (x+y)%2 == 0 {
				v = 255
			}
			o := y*f.Stride + 3*x
			f.Pix[o], f.Pix[o+1], f.Pix[o+2] = v, v, v
		}
	}
	f.Pix[0] = byte(s.i)
	f.Time = time.Now()
	return nil
}

func (s *numbered) Close() error { return nil }

// scripted is a test double for the detector: a face without a mask over
// the textured square in frames from..to (by the frame's number), none
// otherwise; it can be told to fail.
type scripted struct {
	from, to byte
	version  string
	fail     bool
	closed   bool
	mu       sync.Mutex
}

func (d *scripted) Detect(f detect.Frame) ([]detect.Face, error) {
	if d.fail {
		return nil, errors.New("engine exploded")
	}
	if n := f.Pix[0]; n < d.from || n > d.to {
		return nil, nil
	}
	return []detect.Face{{Box: box.Box{X1: 40, Y1: 40, X2: 80, Y2: 80}, Class: 1,
		Label: "not_proper", Score: 0.9}}, nil
}

func (d *scripted) LastTimings() detect.Timings {
	return detect.Timings{Stage1: time.Millisecond}
}

func (d *scripted) Info() detect.Info {
	return detect.Info{Engine: "fake", Precision: "int8", Version: d.version,
		Classes: []string{"proper", "not_proper"}}
}

func (d *scripted) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

func (d *scripted) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// keep is a sink that keeps copies of what it is shown.
type keep struct {
	mu     sync.Mutex
	frames []camera.Frame
}

func (k *keep) Show(f *camera.Frame) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var c camera.Frame
	c.CopyFrom(f)
	k.frames = append(k.frames, c)
}

func capture(n int, pace camera.Pace) *camera.Capture {
	return camera.NewCapture(camera.CaptureOptions{Spec: "test.mp4", Pace: pace,
		Open: func(string, camera.Options) (camera.Source, error) {
			return &numbered{n: n}, nil
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func runCapture(t *testing.T, c *camera.Capture) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func pixel(f *camera.Frame, x, y int) draw.BGR {
	o := y*f.Stride + 3*x
	return draw.BGR{B: f.Pix[o], G: f.Pix[o+1], R: f.Pix[o+2]}
}

func TestPipelineTracksDrawsAndCounts(t *testing.T) {
	c := capture(30, camera.PaceAll)
	runCapture(t, c)
	det := &scripted{from: 5, to: 20, version: "v1"}
	stream, window := &keep{}, &keep{}
	bus := events.NewBus()
	sub := bus.Subscribe(100)
	p, err := New(Config{Capture: c, Detector: det, Bus: bus, Stream: stream,
		Window: window, Blur: true, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !det.isClosed() {
		t.Error("the detector was not closed at the end")
	}

	var got []string
	for len(sub.C) > 0 {
		e := <-sub.C
		got = append(got, e.Type+":"+e.Label)
	}
	if strings.Join(got, ",") != "enter:not_proper,leave:not_proper" {
		t.Errorf("events %v", got)
	}

	st := p.RunStats()
	if st.Frames != 30 || st.Detections["not_proper"] != 16 || st.Entered["not_proper"] != 1 {
		t.Errorf("run stats %+v", st)
	}
	if st.Stages[StageStage1].P50 < 0.99 || st.Stages[StageStage1].P50 > 1.03 {
		t.Errorf("stage1 p50 %.3f ms, want the detector's 1 ms", st.Stages[StageStage1].P50)
	}
	doc := p.StatusDoc()
	if doc.Counts.EnteredNotProper != 1 || doc.Frames != 30 || doc.Model.Version != "v1" {
		t.Errorf("status %+v", doc)
	}

	// Frame 10 has a face: a red box on both outputs; the stream's face is
	// blurred, the window's is not.
	sf, wf := &stream.frames[9], &window.frames[9]
	if pixel(sf, 40, 60) != draw.Red || pixel(wf, 40, 60) != draw.Red {
		t.Errorf("box edge is %v / %v, want red", pixel(sf, 40, 60), pixel(wf, 40, 60))
	}
	if a, b := pixel(sf, 60, 60), pixel(sf, 61, 60); absDiff(a.G, b.G) > 40 {
		t.Errorf("stream face not blurred: neighbours %v %v", a, b)
	}
	if a, b := pixel(wf, 60, 60), pixel(wf, 61, 60); absDiff(a.G, b.G) < 200 {
		t.Errorf("window face blurred: neighbours %v %v", a, b)
	}
	// Frame 25 has none: no red anywhere near the square.
	if pixel(&stream.frames[24], 40, 60) == draw.Red {
		t.Error("a box drawn on a frame without faces")
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestPipelineMaxFramesAndSwap(t *testing.T) {
	c := capture(1000, camera.PaceAll)
	runCapture(t, c)
	first := &scripted{from: 255, to: 255, version: "v1"}
	p, err := New(Config{Capture: c, Detector: first, MaxFrames: 50})
	if err != nil {
		t.Fatal(err)
	}
	second := &scripted{from: 255, to: 255, version: "v2"}
	unused := &scripted{version: "v-unused"}
	p.Swap(unused)
	p.Swap(second) // replaces the one not yet taken, which is closed
	if !unused.isClosed() {
		t.Error("a detector replaced before use was not closed")
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := p.RunStats().Frames; n != 50 {
		t.Errorf("%d frames with MaxFrames 50", n)
	}
	if !first.isClosed() || !second.isClosed() {
		t.Error("detectors not closed")
	}
	if v := p.StatusDoc().Model.Version; v != "v2" {
		t.Errorf("model %q after the swap", v)
	}
	var sample camera.Frame
	if !p.Sample(&sample) || sample.Width != 160 {
		t.Error("no sample frame kept for self-checks")
	}
}

func TestPipelineDetectionFailureKeepsStreaming(t *testing.T) {
	c := capture(10, camera.PaceAll)
	runCapture(t, c)
	stream := &keep{}
	p, err := New(Config{Capture: c, Detector: &scripted{fail: true}, Stream: stream,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(stream.frames) != 10 {
		t.Errorf("%d frames streamed while detection failed, want 10", len(stream.frames))
	}
	if ok, why := p.Healthy(); ok || !strings.Contains(why, "detection") {
		t.Errorf("healthy %v %q while detection fails", ok, why)
	}
	if e := p.StatusDoc().Detection.Errors; e != 10 {
		t.Errorf("%d detection errors", e)
	}
}

// TestPipelineNoSignalCard: a camera that is not there gives the outputs
// the no-signal card.
func TestPipelineNoSignalCard(t *testing.T) {
	c := camera.NewCapture(camera.CaptureOptions{Spec: "/dev/video9",
		Open: func(string, camera.Options) (camera.Source, error) {
			return nil, errors.New("no such camera")
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	runCapture(t, c)
	stream := &keep{}
	p, err := New(Config{Capture: c, Detector: &scripted{}, Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for {
		stream.mu.Lock()
		n := len(stream.frames)
		stream.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ok, why := p.Healthy(); !ok || why != "no signal" {
		t.Errorf("healthy %v %q", ok, why)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	card := &stream.frames[0]
	if card.Width != 640 || pixel(card, 1, 1) != draw.Gray {
		t.Errorf("no-signal card %dx%d corner %v", card.Width, card.Height, pixel(card, 1, 1))
	}
}

func TestMetricsText(t *testing.T) {
	c := capture(20, camera.PaceAll)
	runCapture(t, c)
	p, err := New(Config{Capture: c, Detector: &scripted{from: 1, to: 20, version: "v7"},
		Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	p.WriteMetrics(&b)
	text := b.String()
	for _, want := range []string{
		"maskwatch_frames_total 20\n",
		`maskwatch_detections_total{label="not_proper"} 20` + "\n",
		`maskwatch_build_info{version="1.2.3",engine="fake"`,
		`maskwatch_stage_latency_seconds{stage="stage1",quantile="0.5"} 0.001`,
		"# TYPE maskwatch_frame_latency_seconds summary\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); len(f) != 2 {
			t.Errorf("malformed sample line %q", line)
		}
	}
}
