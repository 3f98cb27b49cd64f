package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/edge/jpegenc"
	"github.com/maskwatch/maskwatch/edge/stream"
)

type fakeProvider struct{ healthy bool }

func (p *fakeProvider) Status() any { return map[string]any{"frames": 3} }
func (p *fakeProvider) WriteMetrics(w io.Writer) {
	fmt.Fprintln(w, "maskwatch_frames_total 3")
}
func (p *fakeProvider) Healthy() (bool, string) {
	if p.healthy {
		return true, ""
	}
	return false, "no frame for 30 s"
}

type rig struct {
	srv  *Server
	hub  *stream.Hub
	bus  *events.Bus
	prov *fakeProvider
	url  string
}

// start runs a server on a free loopback port with a hub fed by feed.
func start(t *testing.T, cfg Config) *rig {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	hub := stream.NewHub(jpegenc.New(), 80)
	bus := events.NewBus()
	prov := &fakeProvider{healthy: true}
	s := New(cfg, hub, bus, prov)
	s.HandleAdmin("POST /api/reload", http.HandlerFunc(func(w http.ResponseWriter,
		r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprintf(w, "reloaded %d", len(b))
	}), 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go hub.Run(ctx)
	go func() { done <- s.ListenAndServe(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	})
	select {
	case <-s.Listening():
	case err := <-done:
		t.Fatal(err)
	}
	return &rig{srv: s, hub: hub, bus: bus, prov: prov, url: "http://" + s.Addr()}
}

func frame(v byte) *camera.Frame {
	var f camera.Frame
	f.Reset(64, 48)
	for i := range f.Pix {
		f.Pix[i] = v
	}
	return &f
}

func TestAdminToken(t *testing.T) {
	r := start(t, Config{AdminToken: "let-me-in"})
	post := func(auth, body string) (int, string) {
		req, _ := http.NewRequest("POST", r.url+"/api/reload", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, auth := range []string{"", "Bearer nope", "let-me-in", "Basic bGV0LW1lLWlu",
		"Bearer let-me-in2"} {
		if code, _ := post(auth, ""); code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, code)
		}
	}
	if code, body := post("Bearer let-me-in", "abc"); code != 200 || body != "reloaded 3" {
		t.Errorf("right token: %d %q", code, body)
	}
	if code, _ := post("Bearer let-me-in", strings.Repeat("x", 101)); code != 413 {
		t.Errorf("body over the limit: %d, want 413", code)
	}
	resp, err := http.Get(r.url + "/api/reload")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET on an admin endpoint: %d, want 405", resp.StatusCode)
	}

	off := start(t, Config{})
	req, _ := http.NewRequest("POST", off.url+"/api/reload", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("admin with no token configured: %d, want 403", resp.StatusCode)
	}
}

func TestStreamDeliversJPEGs(t *testing.T) {
	r := start(t, Config{MaxViewers: 1})
	resp, err := http.Get(r.url + "/stream.mjpg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/x-mixed-replace" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	// A second viewer is one too many.
	resp2, err := http.Get(r.url + "/stream.mjpg")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("viewer over the limit: %d, want 503", resp2.StatusCode)
	}

	mr := multipart.NewReader(resp.Body, params["boundary"])
	for _, v := range []byte{40, 200} {
		r.hub.Publish(frame(v))
		for {
			part, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(part)
			if err != nil {
				t.Fatalf("part is not a JPEG: %v", err)
			}
			g, _, _, _ := img.At(3, 3).RGBA()
			if int(g>>8) > int(v)-8 && int(g>>8) < int(v)+8 {
				break
			}
		}
	}
	mresp, err := http.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{"maskwatch_frames_total 3", "maskwatch_http_viewers 1"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestEventsAndHealth(t *testing.T) {
	r := start(t, Config{MaxEventClients: 1})
	resp, err := http.Get(r.url + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	// The greeting comes once the subscription exists.
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, ": maskwatch") {
			break
		}
	}
	r.bus.Publish(events.Event{Type: "enter", Track: 4, Label: "not_proper", Score: 0.7})
	var got []string
	for len(got) < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line = strings.TrimSpace(line); line != "" {
			got = append(got, line)
		}
	}
	if got[1] != "event: enter" || !strings.Contains(got[2], `"label":"not_proper"`) {
		t.Errorf("event lines %q", got)
	}
	over, err := http.Get(r.url + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	over.Body.Close()
	if over.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("event client over the limit: %d", over.StatusCode)
	}

	for _, healthy := range []bool{true, false} {
		r.prov.healthy = healthy
		h, err := http.Get(r.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		h.Body.Close()
		if want := map[bool]int{true: 200, false: 503}[healthy]; h.StatusCode != want {
			t.Errorf("healthz with healthy=%v: %d", healthy, h.StatusCode)
		}
	}
}

func TestPageAndLimits(t *testing.T) {
	r := start(t, Config{})
	resp, err := http.Get(r.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(page, []byte(`src="/stream.mjpg"`)) ||
		resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("page or its headers wrong: %d bytes", len(page))
	}
	if resp, _ := http.Get(r.url + "/nothing"); resp.StatusCode != 404 {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}

	// Headers over 16 KiB are refused.
	req, _ := http.NewRequest("GET", r.url+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("64 KiB header: %d, want 431", resp.StatusCode)
		}
	}
}

func TestConnectionLimit(t *testing.T) {
	r := start(t, Config{MaxConns: 2})
	// Two connections are the limit: a third is closed without an answer.
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", r.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	c, err := net.Dial("tcp", r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		t.Error("a third connection was served with MaxConns 2")
	}
	if r.srv.Rejected() == 0 {
		t.Error("no rejected connection counted")
	}
	conns[0].Close()
}

// noisy is a frame of noise, whose JPEG is large enough to fill a socket's
// buffers in a few frames.
func noisy(seed byte) *camera.Frame {
	var f camera.Frame
	f.Reset(640, 480)
	x := uint32(seed) + 1
	for i := range f.Pix {
		x = x*1664525 + 1013904223
		f.Pix[i] = byte(x >> 24)
	}
	return &f
}

// TestSlowViewerDoesNotSlowOthers: a viewer that stops reading fills its
// socket and is left behind; publishing never waits and another viewer
// keeps getting new frames.
func TestSlowViewerDoesNotSlowOthers(t *testing.T) {
	r := start(t, Config{WriteTimeout: time.Second})
	stuck, err := net.Dial("tcp", r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
	// It never reads. Wait until the hub counts it.
	for r.hub.Viewers() < 1 {
		time.Sleep(time.Millisecond)
	}
	resp, err := http.Get(r.url + "/stream.mjpg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	mr := multipart.NewReader(resp.Body, params["boundary"])
	// A camera: new frames keep coming, whoever reads them.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			r.hub.Publish(noisy(byte(i)))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	got := 0
	for got < 40 {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("reading viewer after %d frames: %v", got, err)
		}
		if _, err := io.Copy(io.Discard, part); err != nil {
			t.Fatal(err)
		}
		got++
	}
	// The stuck viewer is dropped once a write has waited WriteTimeout.
	for deadline := time.Now().Add(30 * time.Second); r.srv.Viewers() > 1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers: the stuck one was never dropped", r.srv.Viewers())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
