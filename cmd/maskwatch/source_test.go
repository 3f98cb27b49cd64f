package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/edge/jpegenc"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// TestMain lets the tests run this test binary as maskwatch itself
// (MASKWATCH_TEST_MAIN=1), to send it signals.
func TestMain(m *testing.M) {
	if os.Getenv("MASKWATCH_TEST_MAIN") == "1" {
		main()
	}
	code := m.Run()
	if stopXvfb != nil {
		stopXvfb()
	}
	os.Exit(code)
}

// stopXvfb stops the X server the window tests share, if one was started.
var stopXvfb func()

// demoJPEGs returns the first n frames of demo.mp4 as JPEG images.
func demoJPEGs(t *testing.T, n int) [][]byte {
	t.Helper()
	src, err := camera.Open(fixture.Path(t, "video", "demo.mp4"), camera.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	enc := jpegenc.New()
	var out [][]byte
	var f camera.Frame
	for len(out) < n {
		if err := src.Read(&f); err != nil {
			t.Fatal(err)
		}
		b, err := enc.Encode(nil, &f, 85)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// ipCamera serves frames of demo.mp4 as an MJPEG camera would, at 15 fps,
// until it is told to go away.
type ipCamera struct {
	*httptest.Server
	frames [][]byte
	down   atomic.Bool
}

func newIPCamera(t *testing.T) *ipCamera {
	c := &ipCamera{frames: demoJPEGs(t, 30)}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.Close)
	return c
}

func (c *ipCamera) serve(w http.ResponseWriter, r *http.Request) {
	if c.down.Load() {
		http.Error(w, "rebooting", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=cam")
	tick := time.NewTicker(time.Second / 15)
	defer tick.Stop()
	for i := 0; !c.down.Load(); i++ {
		img := c.frames[i%len(c.frames)]
		fmt.Fprintf(w, "--cam\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(img))
		w.Write(img)
		io.WriteString(w, "\r\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// TestE2ESourceDropsAndComesBack: an IP camera goes away; the page's status
// and stream show no signal; it comes back and detection goes on.
func TestE2ESourceDropsAndComesBack(t *testing.T) {
	cam := newIPCamera(t)
	l := startLive(t, "--source", cam.URL+"/video.mjpg", "--headless",
		"--listen", "127.0.0.1:0")
	s := l.waitStatus("frames", func(s edge.Status) bool { return s.Frames >= 2 })
	if s.Source.Kind != "url" || !s.Source.Signal {
		t.Fatalf("source status %+v", s.Source)
	}
	viewer := openStream(t, l.url+"/stream.mjpg")
	viewer.next(t)

	cam.down.Store(true)
	cam.CloseClientConnections()
	s = l.waitStatus("no signal", func(s edge.Status) bool { return !s.Source.Signal })
	if s.Source.LastError == "" {
		t.Error("no reason given for the lost source")
	}
	// The stream shows the dark grey no-signal card.
	for i := 0; ; i++ {
		img, err := jpeg.Decode(bytes.NewReader(viewer.next(t)))
		if err != nil {
			t.Fatal(err)
		}
		r, g, b, _ := img.At(5, 240).RGBA()
		if near(r>>8, 64) && near(g>>8, 64) && near(b>>8, 64) {
			break
		}
		if i > 100 {
			t.Fatal("the stream never showed the no-signal card")
		}
	}
	if ok := l.get("/healthz"); !strings.Contains(ok, "no signal") {
		t.Errorf("/healthz while the camera is away: %s", ok)
	}

	frames := s.Frames
	cam.down.Store(false)
	s = l.waitStatus("signal again", func(s edge.Status) bool {
		return s.Source.Signal && s.Frames > frames+1
	})
	if s.Source.Reopens < 1 {
		t.Errorf("%d reopens after the camera came back", s.Source.Reopens)
	}
	if code := l.stop(); code != exitOK {
		t.Errorf("exit %d", code)
	}
	logs := l.stderr.String()
	if strings.Count(logs, "source lost") != 1 || strings.Count(logs, "source back") != 1 {
		t.Errorf("want one lost and one back line:\n%s", logs)
	}
}

func near(v uint32, want uint32) bool { return v+8 >= want && v <= want+8 }

// TestSIGTERMStopsCleanly runs maskwatch as a process, stops it with
// SIGTERM, and checks that it exits 0 after writing its statistics.
func TestSIGTERMStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	stats := filepath.Join(dir, "stats.json")
	rec := filepath.Join(dir, "out.mjpeg")
	cmd := exec.Command(os.Args[0], "run", "--source", fixture.Path(t, "video", "demo.mp4"),
		"--listen", "off", "--stats-json", stats, "--record", rec)
	cmd.Env = append(os.Environ(), "MASKWATCH_TEST_MAIN=1")
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(errPipe)
	var logs []string
	for sc.Scan() {
		logs = append(logs, sc.Text())
		if strings.Contains(sc.Text(), "recording") {
			break // a frame went through: stop now
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		logs = append(logs, sc.Text())
	}
	err = cmd.Wait()
	if err != nil {
		t.Fatalf("maskwatch after SIGTERM: %v\n%s", err, strings.Join(logs, "\n"))
	}
	var st edge.RunStats
	b, err := os.ReadFile(stats)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Frames == 0 {
		t.Errorf("stats after SIGTERM: %s (%v)", b, err)
	}
	if n, _, _ := countVideo(t, rec); n == 0 {
		t.Error("the recording is empty after SIGTERM")
	}
	if !strings.Contains(strings.Join(logs, "\n"), "maskwatch stopped") {
		t.Errorf("no stop line:\n%s", strings.Join(logs, "\n"))
	}
}

// TestSIGTERMWithIdleStdin: a stop is not held up by a source blocked in a
// read that nothing can interrupt: stdin a blocking FIFO that stays open
// with nothing coming, as from a stalled rpicam-vid.
func TestSIGTERMWithIdleStdin(t *testing.T) {
	frames := demoJPEGs(t, 3)
	fifo := filepath.Join(t.TempDir(), "camera.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A raw descriptor keeps the FIFO in blocking mode (os.OpenFile would
	// make it non-blocking), as a shell pipe is.
	fd, err := syscall.Open(fifo, syscall.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	pipe := os.NewFile(uintptr(fd), fifo)
	defer pipe.Close()
	cmd := exec.Command(os.Args[0], "run", "--source", "-", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "MASKWATCH_TEST_MAIN=1")
	cmd.Stdin = pipe
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for _, f := range frames {
			pipe.Write(f)
		}
	}()
	out := bufio.NewScanner(outPipe)
	if !out.Scan() || !strings.Contains(out.Text(), "page at ") {
		t.Fatalf("maskwatch printed %q, not its page", out.Text())
	}
	l := &liveRun{t: t, url: strings.TrimRight(out.Text()[strings.Index(out.Text(), "http"):],
		"/")}
	// Every frame read: the source now waits in a read of the idle FIFO.
	l.waitStatus("frames read", func(s edge.Status) bool { return s.Source.Captured == 3 })
	sc := bufio.NewScanner(errPipe)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var logs []string
	for sc.Scan() {
		logs = append(logs, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("maskwatch after SIGTERM with stdin idle: %v\n%s", err,
			strings.Join(logs, "\n"))
	}
	all := strings.Join(logs, "\n")
	if !strings.Contains(all, "maskwatch stopped") || !strings.Contains(all, "still blocked") {
		t.Errorf("want the stop line and the blocked-source warning:\n%s", all)
	}
}
