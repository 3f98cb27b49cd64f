package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countSource delivers n 4×2 frames whose first byte is the frame's number
// (from 1), then fails with end (io.EOF for a finite source).
type countSource struct {
	n, i int
	end  error
}

func (s *countSource) Read(f *Frame) error {
	if s.i >= s.n {
		return s.end
	}
	s.i++
	f.Reset(4, 2)
	f.Pix[0] = byte(s.i)
	f.Time = time.Now()
	return nil
}

func (s *countSource) Close() error { return nil }

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(buf *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

func TestCaptureKeepsNewest(t *testing.T) {
	var logs lockedBuffer
	c := NewCapture(CaptureOptions{
		Spec: "clip.mp4",
		Open: func(string, Options) (Source, error) { return &countSource{n: 10, end: io.EOF}, nil },
		Log:  testLogger(&logs),
	})
	if err := c.Run(context.Background()); !errors.Is(err, ErrEnded) {
		t.Fatalf("Run: %v, want ErrEnded", err)
	}
	var f Frame
	if err := c.Next(context.Background(), &f, time.Second); err != nil {
		t.Fatal(err)
	}
	if f.Pix[0] != 10 || f.Seq != 10 {
		t.Errorf("got frame %d (seq %d), want the newest, 10", f.Pix[0], f.Seq)
	}
	if err := c.Next(context.Background(), &f, time.Second); !errors.Is(err, ErrEnded) {
		t.Errorf("after the end: %v, want ErrEnded", err)
	}
	st := c.Status()
	if st.Captured != 10 || st.Dropped != 9 || !st.Ended || st.Signal {
		t.Errorf("status %+v, want 10 captured, 9 dropped, ended", st)
	}
}

func TestCapturePaceAllHandsOverEveryFrame(t *testing.T) {
	c := NewCapture(CaptureOptions{
		Spec: "clip.mp4",
		Pace: PaceAll,
		Open: func(string, Options) (Source, error) { return &countSource{n: 50, end: io.EOF}, nil },
		Log:  testLogger(&lockedBuffer{}),
	})
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	var f Frame
	for want := 1; ; want++ {
		err := c.Next(context.Background(), &f, 10*time.Second)
		if errors.Is(err, ErrEnded) {
			if want != 51 {
				t.Fatalf("ended after %d frames, want 50", want-1)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if int(f.Pix[0]) != want {
			t.Fatalf("frame %d, want %d", f.Pix[0], want)
		}
	}
	if err := <-done; !errors.Is(err, ErrEnded) {
		t.Errorf("Run: %v", err)
	}
	if st := c.Status(); st.Dropped != 0 {
		t.Errorf("%d frames dropped with PaceAll", st.Dropped)
	}
}

func TestCaptureLoop(t *testing.T) {
	var opens atomic.Int32
	c := NewCapture(CaptureOptions{
		Spec: "clip.mp4",
		Pace: PaceAll,
		Loop: true,
		Open: func(string, Options) (Source, error) {
			opens.Add(1)
			return &countSource{n: 3, end: io.EOF}, nil
		},
		Log: testLogger(&lockedBuffer{}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var got []byte
	var f Frame
	for len(got) < 7 {
		if err := c.Next(ctx, &f, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		got = append(got, f.Pix[0])
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if !bytes.Equal(got, []byte{1, 2, 3, 1, 2, 3, 1}) {
		t.Errorf("looped frames %v", got)
	}
}

func TestCaptureFiniteSourceMissing(t *testing.T) {
	c := NewCapture(CaptureOptions{Spec: "/no/such/clip.mp4", Log: testLogger(&lockedBuffer{})})
	err := c.Run(context.Background())
	if err == nil || errors.Is(err, ErrEnded) {
		t.Fatalf("Run on a missing file: %v, want the open error", err)
	}
}

// TestCaptureReopensWithBackoff: a camera that is missing at first, then
// delivers, is unplugged and comes back. Each change is logged once.
func TestCaptureReopensWithBackoff(t *testing.T) {
	var logs lockedBuffer
	var opens atomic.Int32
	unplugged := errors.New("unplugged")
	c := NewCapture(CaptureOptions{
		Spec:       "/dev/video7",
		MinBackoff: time.Millisecond,
		MaxBackoff: 4 * time.Millisecond,
		Open: func(string, Options) (Source, error) {
			switch n := opens.Add(1); {
			case n <= 3:
				return nil, fmt.Errorf("no device (attempt %d)", n)
			case n == 4:
				return &countSource{n: 5, end: unplugged}, nil
			case n <= 6:
				return nil, errors.New("still unplugged")
			}
			return &countSource{n: 1 << 30, end: unplugged}, nil
		},
		Log: testLogger(&logs),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var f Frame
	for c.Status().Reopens == 0 || c.Status().Captured < 20 {
		if err := c.Next(ctx, &f, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	for line, want := range map[string]int{
		"source not available": 1, "source open": 1, "source lost": 1, "source back": 1,
	} {
		if got := logs.count(line); got != want {
			t.Errorf("%q logged %d times, want %d:\n%s", line, got, want, logs.String())
		}
	}
	if st := c.Status(); st.Reopens != 1 || !strings.Contains(st.LastError, "unplugged") {
		t.Errorf("status %+v", st)
	}
}

// mjpegServer serves the seed samples as multipart MJPEG until told to go
// down, when it answers 503 and cuts the open streams.
type mjpegServer struct {
	*httptest.Server
	imgs [][]byte
	down atomic.Bool
}

func newMJPEGServer(t *testing.T) *mjpegServer {
	s := &mjpegServer{imgs: seedJPEGs(t)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *mjpegServer) serve(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		http.Error(w, "camera rebooting", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if s.down.Load() {
			return
		}
		img := s.imgs[i%len(s.imgs)]
		fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n",
			len(img))
		w.Write(img)
		w.Write([]byte("\r\n"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// TestCaptureHTTPStreamDropsAndComesBack: an IP camera goes away (its stream
// is cut and it answers 503), the capture shows no signal, and frames flow
// again once the camera is back.
func TestCaptureHTTPStreamDropsAndComesBack(t *testing.T) {
	srv := newMJPEGServer(t)
	var logs lockedBuffer
	c := NewCapture(CaptureOptions{
		Spec:       srv.URL + "/video.mjpg",
		MinBackoff: 5 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
		Log:        testLogger(&logs),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	var f Frame
	for i := 0; i < 3; i++ {
		if err := c.Next(ctx, &f, 10*time.Second); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if f.Width == 0 {
		t.Fatal("empty frame from the stream")
	}

	srv.down.Store(true)
	srv.CloseClientConnections()
	for c.Status().Signal {
		if err := c.Next(ctx, &f, 20*time.Millisecond); err != nil &&
			!errors.Is(err, ErrNoFrame) {
			t.Fatal(err)
		}
	}
	lastSeq := f.Seq
	srv.down.Store(false)
	for f.Seq <= lastSeq+1 {
		if err := c.Next(ctx, &f, 10*time.Second); err != nil {
			t.Fatalf("after the camera came back: %v", err)
		}
	}
	st := c.Status()
	if !st.Signal || st.Reopens < 1 {
		t.Errorf("status after coming back: %+v", st)
	}
	if logs.count("source lost") != 1 || logs.count("source back") != 1 {
		t.Errorf("want one lost and one back line:\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestHTTPStreamStall: a camera that keeps the connection open but sends
// nothing is lost after the stall timeout.
func TestHTTPStreamStall(t *testing.T) {
	old := stallTimeout
	stallTimeout = 50 * time.Millisecond
	defer func() { stallTimeout = old }()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
		w.Write([]byte("--frame\r\n"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	src, err := Open(srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f Frame
	if err := src.Read(&f); err == nil || errors.Is(err, ErrBadFrame) {
		t.Fatalf("stalled stream: %v, want a lost-source error", err)
	}
}

func TestHTTPNotMJPEG(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>login</html>"))
	}))
	defer srv.Close()
	if _, err := OpenMJPEGURL(srv.URL, 0); !errors.Is(err, errNotMJPEG) {
		t.Errorf("HTML page: %v, want errNotMJPEG", err)
	}
}
