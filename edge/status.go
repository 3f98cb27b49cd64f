package edge

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/edge/reload"
	"github.com/maskwatch/maskwatch/edge/stats"
)

// Quantiles are a latency's p50 and p99 in milliseconds.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// FaceNow is a face in view, for the status document.
type FaceNow struct {
	Track  uint64     `json:"track"`
	Label  string     `json:"label"`
	Proper bool       `json:"proper"`
	Score  float64    `json:"score"`
	Box    [4]float64 `json:"box"`
}

// Counts are the face counts the page shows.
type Counts struct {
	NowProper        int               `json:"now_proper"`
	NowNotProper     int               `json:"now_not_proper"`
	EnteredProper    uint64            `json:"entered_proper"`
	EnteredNotProper uint64            `json:"entered_not_proper"`
	Entered          map[string]uint64 `json:"entered"`
	Detections       map[string]uint64 `json:"detections"`
}

// ModelStatus describes the running model and its reloads.
type ModelStatus struct {
	Engine    string         `json:"engine"`
	Backbone  string         `json:"backbone"`
	Precision string         `json:"precision"`
	Version   string         `json:"version"`
	Classes   []string       `json:"classes"`
	Path      string         `json:"path"`
	Reload    *reload.Status `json:"reload,omitempty"`
}

func modelStatus(i detect.Info) ModelStatus {
	return ModelStatus{Engine: i.Engine, Backbone: i.Backbone, Precision: i.Precision,
		Version: i.Version, Classes: i.Classes, Path: i.Path}
}

// Status is the /api/status document.
type Status struct {
	Version   string               `json:"version"`
	Device    string               `json:"device,omitempty"`
	Uptime    float64              `json:"uptime_s"`
	Model     ModelStatus          `json:"model"`
	Source    SourceStatus         `json:"source"`
	Frames    uint64               `json:"frames"`
	FPS       float64              `json:"fps"`
	Latency   Quantiles            `json:"latency_ms"`
	Stages    map[string]Quantiles `json:"stages_ms"`
	Faces     []FaceNow            `json:"faces"`
	Counts    Counts               `json:"counts"`
	Detection struct {
		Errors  uint64 `json:"errors"`
		Failing bool   `json:"failing"`
	} `json:"detection"`
	Events   EventStatus    `json:"events"`
	MemoryMB float64        `json:"rss_mb"`
	Extra    map[string]any `json:"extra,omitempty"`
}

// SourceStatus is the capture's state in JSON form.
type SourceStatus struct {
	Spec      string    `json:"spec"`
	Kind      string    `json:"kind"`
	Signal    bool      `json:"signal"`
	Ended     bool      `json:"ended"`
	Since     time.Time `json:"since"`
	Reopens   int       `json:"reopens"`
	Captured  uint64    `json:"captured"`
	Dropped   uint64    `json:"dropped"`
	BadFrames uint64    `json:"bad_frames"`
	Width     int       `json:"width"`
	Height    int       `json:"height"`
	FrameRate float64   `json:"frame_rate"`
	LastError string    `json:"last_error,omitempty"`
}

func sourceStatus(s camera.Status) SourceStatus {
	return SourceStatus{Spec: s.Source, Kind: s.Kind, Signal: s.Signal, Ended: s.Ended,
		Since: s.Since, Reopens: s.Reopens, Captured: s.Captured, Dropped: s.Dropped,
		BadFrames: s.BadFrames, Width: s.Width, Height: s.Height, FrameRate: s.FrameRate,
		LastError: s.LastError}
}

// EventStatus counts events and their deliveries.
type EventStatus struct {
	Published  uint64            `json:"published"`
	Dropped    uint64            `json:"dropped"`
	Deliveries []events.Delivery `json:"deliveries,omitempty"`
}

// Extras add sections to the status (reload, deliveries, HTTP, snapshots);
// set them before serving.
type Extras struct {
	Reload     func() reload.Status
	Deliveries []func() events.Delivery
	More       map[string]func() any
}

// SetExtras installs the providers of the extra status sections.
func (p *Pipeline) SetExtras(e Extras) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.extras = e
}

// Status returns the current state; it implements the server's Provider.
func (p *Pipeline) Status() any { return p.StatusDoc() }

// StatusDoc returns the current state as a typed document.
func (p *Pipeline) StatusDoc() Status {
	now := time.Now()
	var s Status
	s.Version = p.cfg.Version
	s.Device = p.cfg.Device
	s.Uptime = now.Sub(p.started).Seconds()
	s.Source = sourceStatus(p.cfg.Capture.Status())
	s.Frames = p.frames.Load()
	s.FPS = p.rate.PerSecond(now)
	s.Latency = p.quantiles(&p.latency)
	s.Stages = map[string]Quantiles{}
	for _, name := range Stages {
		s.Stages[name] = p.quantiles(p.stages[name])
	}
	s.Detection.Errors = p.detErrors.Load()
	s.Events.Published = p.bus.Published()
	s.Events.Dropped = p.bus.Dropped()
	s.MemoryMB = float64(ResidentBytes()) / (1 << 20)

	p.mu.Lock()
	s.Model = modelStatus(p.det)
	s.Detection.Failing = p.failing
	s.Faces = []FaceNow{}
	for _, t := range p.current {
		s.Faces = append(s.Faces, FaceNow{Track: t.ID, Label: t.Label, Proper: t.Proper,
			Score: t.Score, Box: [4]float64{t.Box.X1, t.Box.Y1, t.Box.X2, t.Box.Y2}})
		if t.Proper {
			s.Counts.NowProper++
		} else {
			s.Counts.NowNotProper++
		}
	}
	s.Counts.Entered = maps.Clone(p.entered)
	s.Counts.EnteredProper, s.Counts.EnteredNotProper = p.enteredProper, p.enteredNotProper
	s.Counts.Detections = maps.Clone(p.detections)
	ex := p.extras
	p.mu.Unlock()

	if ex.Reload != nil {
		r := ex.Reload()
		s.Model.Reload = &r
	}
	for _, d := range ex.Deliveries {
		s.Events.Deliveries = append(s.Events.Deliveries, d())
	}
	if len(ex.More) > 0 {
		s.Extra = map[string]any{}
		for k, f := range ex.More {
			s.Extra[k] = f()
		}
	}
	return s
}

func (p *Pipeline) quantiles(l interface {
	Recent(...float64) []time.Duration
}) Quantiles {
	q := l.Recent(0.5, 0.99)
	return Quantiles{P50: ms(q[0]), P99: ms(q[1])}
}

// Healthy says whether the pipeline loop is turning (it turns at least once
// a second, frames or not) and detection is not failing.
func (p *Pipeline) Healthy() (bool, string) {
	if since := time.Since(time.Unix(0, p.lastLoop.Load())); since > 10*time.Second {
		return false, fmt.Sprintf("pipeline stuck for %s", since.Round(time.Second))
	}
	p.mu.Lock()
	failing, ended := p.failing, p.ended
	p.mu.Unlock()
	if failing {
		return false, "detection failing"
	}
	if ended {
		return true, "source ended"
	}
	if !p.cfg.Capture.Status().Signal {
		return true, "no signal"
	}
	return true, ""
}

// WriteMetrics writes the Prometheus text exposition of the pipeline.
func (p *Pipeline) WriteMetrics(w io.Writer) {
	s := p.StatusDoc()
	m := metricWriter{w: w}
	m.help("maskwatch_build_info", "gauge", "Version and model of this process.")
	m.sample("maskwatch_build_info", 1, "version", s.Version, "engine", s.Model.Engine,
		"backbone", s.Model.Backbone, "precision", s.Model.Precision,
		"model_version", s.Model.Version)
	m.one("maskwatch_frames_total", "counter", "Frames detected.", float64(s.Frames))
	m.one("maskwatch_fps", "gauge", "Frames per second over the last 64 frames.", s.FPS)
	m.help("maskwatch_frame_latency_seconds", "summary",
		"Capture to output of the last 512 frames.")
	q := p.latency.Recent(0.5, 0.99)
	m.sample("maskwatch_frame_latency_seconds", q[0].Seconds(), "quantile", "0.5")
	m.sample("maskwatch_frame_latency_seconds", q[1].Seconds(), "quantile", "0.99")
	m.sample("maskwatch_frame_latency_seconds_sum", p.latency.Sum().Seconds())
	m.sample("maskwatch_frame_latency_seconds_count", float64(p.latency.Count()))
	m.help("maskwatch_stage_latency_seconds", "gauge",
		"Per-stage latency quantiles of the last 512 frames.")
	for _, name := range Stages {
		q := p.stages[name].Recent(0.5, 0.99)
		m.sample("maskwatch_stage_latency_seconds", q[0].Seconds(), "stage", name,
			"quantile", "0.5")
		m.sample("maskwatch_stage_latency_seconds", q[1].Seconds(), "stage", name,
			"quantile", "0.99")
	}
	m.help("maskwatch_detections_total", "counter", "Faces detected, per label, every frame.")
	for _, label := range slices.Sorted(maps.Keys(s.Counts.Detections)) {
		m.sample("maskwatch_detections_total", float64(s.Counts.Detections[label]),
			"label", label)
	}
	m.help("maskwatch_faces_entered_total", "counter", "Faces that entered the view.")
	for _, label := range slices.Sorted(maps.Keys(s.Counts.Entered)) {
		m.sample("maskwatch_faces_entered_total", float64(s.Counts.Entered[label]),
			"label", label)
	}
	m.help("maskwatch_faces", "gauge", "Faces in view now.")
	m.sample("maskwatch_faces", float64(s.Counts.NowProper), "proper", "true")
	m.sample("maskwatch_faces", float64(s.Counts.NowNotProper), "proper", "false")
	m.one("maskwatch_detection_errors_total", "counter", "Frames whose detection failed.",
		float64(s.Detection.Errors))
	m.one("maskwatch_source_up", "gauge", "1 while the source delivers frames.",
		b2f(s.Source.Signal))
	m.one("maskwatch_source_reopens_total", "counter", "Times the lost source was reopened.",
		float64(s.Source.Reopens))
	m.one("maskwatch_source_frames_total", "counter", "Frames read from the source.",
		float64(s.Source.Captured))
	m.one("maskwatch_source_dropped_total", "counter",
		"Frames replaced by a newer one before detection took them.", float64(s.Source.Dropped))
	m.one("maskwatch_events_total", "counter", "Face events published.",
		float64(s.Events.Published))
	m.one("maskwatch_events_dropped_total", "counter",
		"Face events lost by a listener that fell behind.", float64(s.Events.Dropped))
	m.one("process_resident_memory_bytes", "gauge", "Resident memory of the process.",
		float64(ResidentBytes()))
	m.one("maskwatch_anon_resident_memory_bytes", "gauge",
		"Resident memory without mapped executable and library pages.",
		float64(AnonResidentBytes()))
	if r := s.Model.Reload; r != nil {
		m.help("maskwatch_model_reloads_total", "counter", "Model reloads by outcome.")
		m.sample("maskwatch_model_reloads_total", float64(r.Reloads), "outcome", "ok")
		m.sample("maskwatch_model_reloads_total", float64(r.Refused), "outcome", "refused")
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type metricWriter struct{ w io.Writer }

func (m metricWriter) help(name, typ, help string) {
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (m metricWriter) one(name, typ, help string, v float64) {
	m.help(name, typ, help)
	m.sample(name, v)
}

// sample writes one line; labels come as name, value pairs.
func (m metricWriter) sample(name string, v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(escapeLabel(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	b.WriteByte('\n')
	io.WriteString(m.w, b.String())
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// ResidentBytes is the process's resident set size from /proc (0 where
// /proc is missing).
func ResidentBytes() int64 { return procStatus("VmRSS:") }

// PeakResidentBytes is the highest resident set size so far (VmHWM).
func PeakResidentBytes() int64 { return procStatus("VmHWM:") }

// AnonResidentBytes is the part of the resident set that is the process's
// own memory (heap, stacks, buffers), without the pages of the executable
// and shared libraries it maps (RssAnon).
func AnonResidentBytes() int64 { return procStatus("RssAnon:") }

func procStatus(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// RunStats is the --stats-json report of a whole run.
type RunStats struct {
	Frames  uint64  `json:"frames"`
	Seconds float64 `json:"seconds"`
	// FPS is frames over the time from the first to the last frame.
	FPS float64 `json:"fps"`
	// Latency and Stages are over every frame of the run (within 2%).
	Latency    Quantiles            `json:"latency_ms"`
	Stages     map[string]Quantiles `json:"stages_ms"`
	Detections map[string]uint64    `json:"detections"`
	Entered    map[string]uint64    `json:"faces_entered"`
	Events     uint64               `json:"events"`
	Errors     uint64               `json:"detection_errors"`
	Source     SourceStatus         `json:"source"`
	Model      ModelStatus          `json:"model"`
	RSSMB      float64              `json:"rss_mb"`
	PeakRSSMB  float64              `json:"peak_rss_mb"`
	// AnonRSSMB is RSSMB without the pages of mapped libraries.
	AnonRSSMB float64 `json:"anon_rss_mb"`
	Version   string  `json:"version"`
}

// RunStats summarises the run so far.
func (p *Pipeline) RunStats() RunStats {
	r := RunStats{Frames: p.frames.Load(), Version: p.cfg.Version,
		Source: sourceStatus(p.cfg.Capture.Status()), Events: p.bus.Published(),
		Errors: p.detErrors.Load(), Stages: map[string]Quantiles{},
		RSSMB:     float64(ResidentBytes()) / (1 << 20),
		PeakRSSMB: float64(PeakResidentBytes()) / (1 << 20),
		AnonRSSMB: float64(AnonResidentBytes()) / (1 << 20)}
	total := func(l *stats.Latency) Quantiles {
		q := l.Total(0.5, 0.99)
		return Quantiles{P50: ms(q[0]), P99: ms(q[1])}
	}
	r.Latency = total(&p.latency)
	for _, name := range Stages {
		r.Stages[name] = total(p.stages[name])
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r.Detections = maps.Clone(p.detections)
	r.Entered = maps.Clone(p.entered)
	r.Model = modelStatus(p.det)
	if !p.first.IsZero() {
		r.Seconds = p.last.Sub(p.first).Seconds()
		if r.Seconds > 0 {
			r.FPS = float64(r.Frames-1) / r.Seconds
		}
	}
	return r
}
