package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/jpeg"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/train/fixture"
)

const testToken = "e2e-admin-token-0123456789"

// e2eFrames is how many frames of demo.mp4 the headless test detects: six
// seconds of the clip, three of its photographs.
const e2eFrames = 90

// TestE2EHeadlessDemo runs maskwatch headless on demo.mp4 with the default
// model and every output on, and checks what each delivers.
func TestE2EHeadlessDemo(t *testing.T) {
	demo := fixture.Path(t, "video", "demo.mp4")
	b := startBroker(t)
	mqttMsgs := b.subscribe(t, "maskwatch/#")
	hooks := make(chan events.Event, 1000)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e events.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		hooks <- e
	}))
	defer hook.Close()
	dir := t.TempDir()
	statsPath := filepath.Join(dir, "stats.json")
	recPath := filepath.Join(dir, "annotated.mp4")
	snaps := filepath.Join(dir, "snapshots")

	l := startLive(t, "--source", demo, "--model", "default", "--headless",
		"--listen", "127.0.0.1:0", "--pace", "all", "--exit-at-end",
		"--max-frames", strconv.Itoa(e2eFrames), "--admin-token", testToken,
		"--mqtt-url", b.url, "--mqtt-topic", "maskwatch/e2e/events",
		"--webhook-url", hook.URL+"/events", "--snapshots", snaps,
		"--record", recPath, "--stats-json", statsPath, "--device", "door-1")

	sse := openSSE(t, l.url+"/api/events")
	jpegs := readStream(t, l.url+"/stream.mjpg", 3)
	for i, img := range jpegs {
		m, err := jpeg.Decode(bytes.NewReader(img))
		if err != nil {
			t.Fatalf("stream part %d is not a JPEG: %v", i, err)
		}
		if b := m.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
			t.Errorf("stream frame %d is %v, want 640x480", i, b)
		}
	}
	if bytes.Equal(jpegs[0], jpegs[2]) {
		t.Error("the stream sent the same image twice: not moving")
	}

	s := l.waitStatus("detections", func(s edge.Status) bool {
		return s.Counts.Detections["proper"]+s.Counts.Detections["not_proper"] > 0
	})
	if s.Source.Kind != "file" || !s.Source.Signal || s.Model.Precision == "" ||
		s.Model.Engine != "tflite" || s.FPS <= 0 || s.Latency.P50 <= 0 {
		t.Errorf("status %+v", s)
	}
	metrics := l.get("/metrics")
	for _, want := range []string{"maskwatch_frames_total ", "maskwatch_detections_total{label=",
		`maskwatch_frame_latency_seconds{quantile="0.99"}`, "maskwatch_source_up 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got := metricValue(metrics, "maskwatch_frames_total"); got < 1 {
		t.Errorf("maskwatch_frames_total %v", got)
	}

	// Changing endpoints need the token.
	for _, tok := range []string{"", "wrong-token-0123456789"} {
		if code, _ := l.post("/api/reload", tok); code != http.StatusUnauthorized {
			t.Errorf("POST /api/reload with token %q: %d, want 401", tok, code)
		}
	}
	if code, body := l.post("/api/reload", testToken); code != http.StatusConflict {
		t.Errorf("reload of the built-in model with the token: %d %s, want 409", code, body)
	}

	ev := sse.next(t)
	if ev.Type != "enter" && ev.Type != "leave" && ev.Type != "change" ||
		ev.Score < 0.5 || ev.Device != "door-1" || ev.Source == "" {
		t.Errorf("SSE event %+v", ev)
	}
	select {
	case msg := <-mqttMsgs:
		var e events.Event
		if err := json.Unmarshal([]byte(msg), &e); err != nil || e.Label == "" {
			t.Errorf("MQTT message %q: %v", msg, err)
		}
	case <-time.After(3 * time.Minute):
		t.Error("no MQTT message")
	}
	select {
	case e := <-hooks:
		if e.Label == "" || e.Track == 0 {
			t.Errorf("webhook event %+v", e)
		}
	case <-time.After(3 * time.Minute):
		t.Error("no webhook event")
	}

	if code := l.wait(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, l.stderr.String())
	}
	var st edge.RunStats
	raw, err := os.ReadFile(statsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.Frames != e2eFrames || st.FPS <= 0 || st.Latency.P99 < st.Latency.P50 ||
		len(st.Stages) != len(edge.Stages) || st.Stages[edge.StageStage1].P50 <= 0 {
		t.Errorf("stats %s", raw)
	}
	if st.Detections["proper"]+st.Detections["not_proper"] == 0 || st.Events == 0 {
		t.Errorf("no detections or events in the stats: %s", raw)
	}
	n, w, h := countVideo(t, recPath)
	if n != e2eFrames || w != 640 || h != 480 {
		t.Errorf("recording has %d frames of %dx%d, want %d of 640x480", n, w, h, e2eFrames)
	}
	if st.Entered["not_proper"] > 0 {
		files, _ := filepath.Glob(filepath.Join(snaps, "violation-*.jpg"))
		if len(files) == 0 {
			t.Errorf("%d faces without a mask entered, no snapshot saved",
				st.Entered["not_proper"])
		}
	}
}

// metricValue reads an unlabelled sample from Prometheus text.
func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return -1
}

// countVideo reads a video file back through maskwatch's own source.
func countVideo(t *testing.T, path string) (n, w, h int) {
	t.Helper()
	src, err := camera.Open(path, camera.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f camera.Frame
	for src.Read(&f) == nil {
		n++
	}
	return n, f.Width, f.Height
}

// sseClient reads server-sent events.
type sseClient struct {
	events chan events.Event
}

func openSSE(t *testing.T, url string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("/api/events content type %q", ct)
	}
	c := &sseClient{events: make(chan events.Event, 1000)}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var e events.Event
				if json.Unmarshal([]byte(data), &e) == nil {
					c.events <- e
				}
			}
		}
	}()
	return c
}

func (c *sseClient) next(t *testing.T) events.Event {
	t.Helper()
	select {
	case e := <-c.events:
		return e
	case <-time.After(3 * time.Minute):
		t.Fatal("no server-sent event")
	}
	return events.Event{}
}

// readStream reads n JPEG parts of an MJPEG stream.
func readStream(t *testing.T, url string, n int) [][]byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/x-mixed-replace" {
		t.Fatalf("stream content type %q", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var out [][]byte
	for len(out) < n {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("stream part %d: %v", len(out), err)
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(part); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Bytes())
	}
	return out
}

// writeAtomic replaces path with data by rename, as a deploy does.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".part"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// bundles returns the default bundle and a second valid bundle made from
// it with another creation time, so another version.
func bundles(t *testing.T) (v1, v2 []byte, ver1, ver2 string) {
	t.Helper()
	v1, err := defaultmodel.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Decode(v1)
	if err != nil {
		t.Fatal(err)
	}
	ver1 = b.ShortVersion()
	b.Meta.Created = b.Meta.Created.Add(time.Hour)
	if v2, err = bundle.Encode(b); err != nil {
		t.Fatal(err)
	}
	b2, err := bundle.Decode(v2)
	if err != nil {
		t.Fatal(err)
	}
	return v1, v2, ver1, b2.ShortVersion()
}

// TestE2EModelReload: bad bundles dropped onto the watched path change
// nothing; a good one is swapped in while a viewer keeps its stream.
func TestE2EModelReload(t *testing.T) {
	v1, v2, ver1, ver2 := bundles(t)
	if ver1 == ver2 {
		t.Fatal("the second bundle has the same version")
	}
	path := filepath.Join(t.TempDir(), "model.mwb")
	writeAtomic(t, path, v1)
	l := startLive(t, "--source", fixture.Path(t, "video", "demo.mp4"), "--model", path,
		"--headless", "--listen", "127.0.0.1:0", "--reload-interval", "20ms",
		"--admin-token", testToken)
	s := l.waitStatus("frames", func(s edge.Status) bool { return s.Frames >= 2 })
	if s.Model.Version != ver1 {
		t.Fatalf("running version %q, want %q", s.Model.Version, ver1)
	}

	viewer := openStream(t, l.url+"/stream.mjpg")
	viewer.next(t)

	bad := [][]byte{
		[]byte("this is not a model bundle"),
		v1[:len(v1)/2], // cut short in a copy
		append(append([]byte{}, v1[:100]...), make([]byte, len(v1)-100)...), // damaged
	}
	for i, b := range bad {
		writeAtomic(t, path, b)
		s = l.waitStatus("a refusal", func(s edge.Status) bool {
			return s.Model.Reload != nil && s.Model.Reload.Refused == i+1
		})
		if s.Model.Version != ver1 || s.Model.Reload.Last.OK {
			t.Fatalf("after bad bundle %d: version %q, outcome %+v", i, s.Model.Version,
				s.Model.Reload.Last)
		}
		frames := s.Frames
		l.waitStatus("frames after the refusal", func(s edge.Status) bool {
			return s.Frames > frames+1
		})
	}
	if code, body := l.post("/api/reload", testToken); code != http.StatusUnprocessableEntity {
		t.Errorf("reload of a bad file on request: %d %s, want 422", code, body)
	}

	writeAtomic(t, path, v2)
	s = l.waitStatus("the new version", func(s edge.Status) bool {
		return s.Model.Version == ver2
	})
	if s.Model.Reload.Reloads != 1 || !s.Model.Reload.Last.OK {
		t.Errorf("reload status %+v", s.Model.Reload)
	}
	frames := s.Frames
	l.waitStatus("frames with the new model", func(s edge.Status) bool {
		return s.Frames > frames+1
	})
	for i := 0; i < 2; i++ { // the same connection goes on
		viewer.next(t)
	}
	if code, body := l.post("/api/reload", testToken); code != http.StatusOK ||
		!strings.Contains(body, ver2) {
		t.Errorf("reload on request: %d %s", code, body)
	}
	if code := l.stop(); code != exitOK {
		t.Errorf("exit %d after cancel:\n%s", code, l.stderr.String())
	}
	if n := strings.Count(l.stderr.String(), "model refused"); n != 4 {
		t.Errorf("%d refusals logged, want 4 (three files, one request)", n)
	}
}

// streamReader reads an MJPEG stream part by part.
type streamReader struct {
	mr   *multipart.Reader
	body interface{ Close() error }
}

func openStream(t *testing.T, url string) *streamReader {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	return &streamReader{mr: multipart.NewReader(resp.Body, params["boundary"]), body: resp.Body}
}

func (s *streamReader) next(t *testing.T) []byte {
	t.Helper()
	part, err := s.mr.NextPart()
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(part); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(b.Bytes())); err != nil {
		t.Fatalf("stream part is not a JPEG: %v", err)
	}
	return b.Bytes()
}
