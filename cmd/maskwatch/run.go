package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/edge/display"
	"github.com/maskwatch/maskwatch/edge/draw"
	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/edge/jpegenc"
	"github.com/maskwatch/maskwatch/edge/mqtt"
	"github.com/maskwatch/maskwatch/edge/record"
	"github.com/maskwatch/maskwatch/edge/reload"
	"github.com/maskwatch/maskwatch/edge/server"
	"github.com/maskwatch/maskwatch/edge/snapshot"
	"github.com/maskwatch/maskwatch/edge/stream"
	"github.com/maskwatch/maskwatch/edge/webhook"
	"github.com/maskwatch/maskwatch/models/safefile"
)

// sourceStopWait is how long a stop waits for the source's last read.
const sourceStopWait = 3 * time.Second

// runLive is the run command.
func runLive(ctx context.Context, args []string, stdout, stderr io.Writer,
	environ []string) int {
	fs, o, err := parseRun(args, environ)
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, runUsage+"\nFlags:\n"+fs.FlagUsages())
			return exitOK
		}
		return usageError(stderr, err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return usageError(stderr, fmt.Errorf("--log-level %q: use debug, info, warn or error",
			o.logLevel))
	}
	s, err := o.check()
	if err != nil {
		return usageError(stderr, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if s.window {
		if err := display.Check(); err != nil {
			return usageError(stderr, err)
		}
	}
	if err := live(ctx, s, stdout, log); err != nil {
		log.Error("maskwatch failed", "err", err)
		return exitFailed
	}
	return exitOK
}

func usageError(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s run: %v\nRun '%s help run' for the flags.\n", programName, err,
		programName)
	return exitUsage
}

// group runs goroutines and keeps the first error.
type group struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	cancel context.CancelFunc
}

func (g *group) go_(name string, f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

func (g *group) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
	g.cancel()
}

// live wires the pipeline and its outputs and runs until the source ends,
// --max-frames is reached, the window is closed or ctx is done.
func live(parent context.Context, s *settings, stdout io.Writer, log *slog.Logger) error {
	start := time.Now()
	dev := newDevice(s, log)
	det, err := dev.open()
	if err != nil {
		return fmt.Errorf("model %s: %w", s.model, err)
	}
	// Loading a bundle leaves garbage as large as the model; hand it back
	// to the system now rather than at the collector's leisure.
	debug.FreeOSMemory()
	info := det.Info()
	log.Info("maskwatch starting", "version", version, "source", camera.Describe(s.source),
		"model", s.model, "model_version", info.Version, "engine", info.Engine,
		"backbone", info.Backbone, "precision", info.Precision, "pace", s.pace,
		"load", time.Since(start).Round(time.Millisecond))

	capture := camera.NewCapture(camera.CaptureOptions{
		Spec:   s.source,
		Source: camera.Options{Width: s.width, Height: s.height, FPS: s.fps},
		Pace:   s.pace,
		Loop:   !s.exitAtEnd,
		Log:    log,
	})
	bus := events.NewBus()
	cfg := edge.Config{Capture: capture, Detector: det, Bus: bus, Blur: s.blur,
		Kiosk: s.kiosk, NoOverlay: s.noOverlay, MinScore: s.minScore,
		FaceOverlap: s.faceOverlap, MaxFrames: s.maxFrames, Device: s.device, Version: version, Log: log,
		Texts: draw.Texts{KioskOK: s.kioskOK, KioskWarn: s.kioskBad}}

	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	g := &group{cancel: cancel}
	var runners []func()
	extras := edge.Extras{More: map[string]func() any{}}

	var hub *stream.Hub
	if s.listen != "off" && s.listen != "" {
		hub = stream.NewHub(jpegenc.New(), s.jpegQuality)
		cfg.Stream = edge.SinkFunc(hub.Publish)
	}
	var win *display.Window
	if s.window {
		win = display.New(display.Options{Title: "maskwatch", Kiosk: s.kiosk})
		cfg.Window = win
	}
	var rec *record.Recorder
	if s.record != "" {
		if rec, err = record.New(s.record, s.recordFPS, log); err != nil {
			det.Close()
			return err
		}
		rec.Wait = s.pace == camera.PaceAll
		rec.RateFrom = func() float64 { return capture.Status().FrameRate }
		cfg.Record = edge.SinkFunc(rec.Write)
		extras.More["record"] = func() any { return rec.Stats() }
	}
	if s.snapshots != "" {
		snaps, err := snapshot.New(s.snapshots, s.snapshotQuota, log)
		if err != nil {
			det.Close()
			return err
		}
		cfg.Snapshots = snaps
		extras.More["snapshots"] = func() any { return snaps.Stats() }
		runners = append(runners, func() { snaps.Run(ctx) })
	}
	if s.mqttURL != "" {
		pub, err := mqtt.NewPublisher(mqtt.Config{URL: s.mqttURL, ClientID: s.mqttClientID,
			QoS: byte(s.mqttQoS)}, s.mqttTopic, bus, log)
		if err != nil {
			det.Close()
			return err
		}
		extras.Deliveries = append(extras.Deliveries, pub.Status)
		runners = append(runners, func() { pub.Run(ctx) })
	}
	if s.webhookURL != "" {
		hook, err := webhook.New(webhook.Config{URL: s.webhookURL, Token: s.webhookToken},
			bus, log)
		if err != nil {
			det.Close()
			return err
		}
		extras.Deliveries = append(extras.Deliveries, hook.Status)
		runners = append(runners, func() { hook.Run(ctx) })
	}

	p, err := edge.New(cfg)
	if err != nil {
		det.Close()
		return err
	}
	var watcher *reload.Watcher
	if s.model != detect.DefaultModel {
		watcher = reload.New(s.model, s.reloadInterval,
			func(path string) (detect.Detector, error) {
				d, err := dev.openFile(path)
				debug.FreeOSMemory()
				return d, err
			},
			selfCheck(p), p.Swap, log)
		extras.Reload = watcher.Status
		runners = append(runners, func() { watcher.Run(ctx) })
	}
	var srv *server.Server
	if hub != nil {
		srv = server.New(server.Config{Addr: s.listen, AdminToken: s.adminToken,
			MaxConns: s.maxConns, MaxViewers: s.maxViewers, Log: log}, hub, bus, p)
		srv.HandleAdmin("POST /api/reload", reloadHandler(watcher), 0)
		extras.More["http"] = func() any {
			n, mean := hub.Stats()
			return map[string]any{"viewers": srv.Viewers(), "event_clients": srv.EventClients(),
				"rejected_connections": srv.Rejected(), "jpeg_encoded": n,
				"jpeg_encode_ms": float64(mean.Microseconds()) / 1000}
		}
	}
	if err := dev.attach(ctx, p, watcher, srv, &extras, &runners); err != nil {
		det.Close()
		return err
	}
	p.SetExtras(extras)

	// Start the outputs, then the capture, then the pipeline.
	if srv != nil {
		g.go_("http", func() error { return srv.ListenAndServe(ctx) })
		g.go_("stream", func() error { hub.Run(ctx); return nil })
		select {
		case <-srv.Listening():
			fmt.Fprintf(stdout, "maskwatch: page at http://%s/\n", pageAddr(s.listen,
				srv.Addr()))
		case <-ctx.Done():
		}
	}
	for _, r := range runners {
		g.go_("output", func() error { r(); return nil })
	}
	// The recorder outlives the pipeline by a little: it writes what is
	// queued and closes the file after the last frame.
	recCtx, stopRec := context.WithCancel(context.Background())
	defer stopRec()
	recDone := make(chan error, 1)
	if rec != nil {
		go func() { recDone <- rec.Run(recCtx) }()
	}
	// The source runs outside the group: a read blocked in a camera driver
	// or on an idle stdin cannot be interrupted, and must not hold up the
	// stop (see below).
	sourceDone := make(chan struct{})
	go func() {
		defer close(sourceDone)
		if err := capture.Run(ctx); err != nil && !errors.Is(err, camera.ErrEnded) {
			g.fail(fmt.Errorf("source: %w", err))
		}
	}()
	pipeDone := make(chan struct{})
	g.go_("pipeline", func() error {
		defer close(pipeDone)
		defer cancel()
		return p.Run(ctx)
	})
	if win != nil {
		if err := win.Run(ctx); err != nil && !errors.Is(err, display.ErrQuit) {
			g.fail(err)
		}
		cancel()
	}
	<-pipeDone
	cancel()
	g.wg.Wait()
	select {
	case <-sourceDone:
	case <-time.After(sourceStopWait):
		log.Warn("the source is still blocked in a read; stopping without it",
			"waited", sourceStopWait)
	}
	if rec != nil {
		stopRec()
		if err := <-recDone; err != nil {
			g.fail(fmt.Errorf("record: %w", err))
		}
	}

	st := p.RunStats()
	log.Info("maskwatch stopped", "frames", st.Frames, "fps", round1(st.FPS),
		"latency_p50_ms", round1(st.Latency.P50), "latency_p99_ms", round1(st.Latency.P99),
		"detections", st.Detections, "events", st.Events,
		"peak_rss_mb", round1(st.PeakRSSMB), "anon_rss_mb", round1(st.AnonRSSMB))
	if s.statsJSON != "" {
		if err := writeJSON(s.statsJSON, st); err != nil {
			g.fail(fmt.Errorf("--stats-json: %w", err))
		}
	}
	return g.err
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

// pageAddr is the address to print for the page: the listen address, with
// the port the server got when it asked for port 0, and loopback for a
// wildcard host.
func pageAddr(listen, bound string) string {
	host, _, _ := net.SplitHostPort(listen)
	_, port, _ := net.SplitHostPort(bound)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// selfCheck runs a new model once on a recent frame (or a grey one before
// any came) before it replaces the running one.
func selfCheck(p *edge.Pipeline) reload.Checker {
	return func(d detect.Detector) error {
		var f camera.Frame
		if !p.Sample(&f) {
			f.Reset(640, 480)
			for i := range f.Pix {
				f.Pix[i] = 128
			}
		}
		_, err := d.Detect(detect.Frame{Pix: f.Pix, Width: f.Width, Height: f.Height,
			Stride: f.Stride})
		return err
	}
}

// reloadHandler serves POST /api/reload: load the model file again now.
func reloadHandler(w *reload.Watcher) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		if w == nil {
			rw.WriteHeader(http.StatusConflict)
			json.NewEncoder(rw).Encode(map[string]any{"ok": false,
				"error": "the built-in default model has no file to reload: start with " +
					"--model PATH"})
			return
		}
		info, err := w.Reload("request")
		if err != nil {
			rw.WriteHeader(http.StatusUnprocessableEntity)
			json.NewEncoder(rw).Encode(map[string]any{"ok": false, "error": err.Error()})
			return
		}
		json.NewEncoder(rw).Encode(map[string]any{"ok": true, "model": info})
	})
}

// writeJSON writes v to path atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(path, append(b, '\n'), 0o644)
}
