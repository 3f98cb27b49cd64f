package record

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// frames returns n frames of the seed samples, scaled into one size by
// painting them into a 320×240 frame.
func frames(t *testing.T, n int) []*camera.Frame {
	src, err := camera.Open(fixture.Path(t, "seed-samples"), camera.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out []*camera.Frame
	var img camera.Frame
	for len(out) < n {
		if err := src.Read(&img); errors.Is(err, io.EOF) {
			src.Close()
			src, _ = camera.Open(fixture.Path(t, "seed-samples"), camera.Options{})
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		f := &camera.Frame{}
		f.Reset(320, 240)
		for y := 0; y < min(240, img.Height); y++ {
			copy(f.Pix[y*f.Stride:], img.Pix[y*img.Stride:y*img.Stride+3*min(320, img.Width)])
		}
		out = append(out, f)
	}
	return out
}

func record(t *testing.T, path string, fs []*camera.Frame) *Recorder {
	r, err := New(path, 15, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Wait = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for _, f := range fs {
		r.Write(f)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return r
}

// countFrames reads a recording back as a maskwatch source.
func countFrames(t *testing.T, path string) (int, *camera.Frame) {
	src, err := camera.Open(path, camera.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f camera.Frame
	n := 0
	for {
		err := src.Read(&f)
		if err == io.EOF {
			return n, &f
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}

func TestRecordFormats(t *testing.T) {
	fs := frames(t, 30)
	exts := []string{".mjpeg"}
	if haveOpenCV {
		exts = append(exts, ".mp4", ".avi")
	}
	for _, ext := range exts {
		path := filepath.Join(t.TempDir(), "out"+ext)
		r := record(t, path, fs)
		if st := r.Stats(); st.Written != 30 || st.Dropped != 0 {
			t.Errorf("%s: stats %+v", ext, st)
		}
		n, last := countFrames(t, path)
		if n != 30 || last.Width != 320 || last.Height != 240 {
			t.Errorf("%s: read back %d frames of %dx%d", ext, n, last.Width, last.Height)
		}
	}
}

func TestRecordBadPath(t *testing.T) {
	if _, err := New("out.gif", 15, nil); err == nil {
		t.Error(".gif accepted")
	}
	r, err := New(filepath.Join(t.TempDir(), "no", "such", "dir", "x.mjpeg"), 15, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.Write(frames(t, 1)[0])
	cancel()
	if err := r.Run(ctx); err == nil {
		t.Error("recording into a missing folder reported no error")
	}
}

func TestRecordSkipsOtherSizes(t *testing.T) {
	fs := frames(t, 3)
	small := &camera.Frame{}
	small.Reset(32, 24)
	path := filepath.Join(t.TempDir(), "out.mjpeg")
	r := record(t, path, []*camera.Frame{fs[0], small, fs[1]})
	if st := r.Stats(); st.Written != 2 || st.Skipped != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestWriteNeverWaitsByDefault(t *testing.T) {
	r, err := New(filepath.Join(t.TempDir(), "x.mjpeg"), 15, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := frames(t, 1)[0]
	for i := 0; i < 20; i++ { // nobody runs the recorder
		r.Write(f)
	}
	if st := r.Stats(); st.Dropped != 12 {
		t.Errorf("%d dropped, want 12 beyond the queue of 8", st.Dropped)
	}
}
