//go:build cgo

package camera

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/train/fixture"
)

func TestGoCVFile(t *testing.T) {
	src, err := Open(fixture.Path(t, "video", "demo.mp4"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if r, ok := src.(Rater); !ok || r.FrameRate() != 15 {
		t.Errorf("frame rate of demo.mp4 not reported as 15")
	}
	var f Frame
	n := 0
	var sum uint64
	for {
		err := src.Read(&f)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		if f.Width != 640 || f.Height != 480 || f.Stride != 1920 {
			t.Fatalf("frame %d is %dx%d stride %d", n, f.Width, f.Height, f.Stride)
		}
		if n == 300 {
			for _, v := range f.Pix {
				sum += uint64(v)
			}
		}
		n++
	}
	if n != 600 {
		t.Errorf("%d frames, want 600", n)
	}
	if mean := float64(sum) / (640 * 480 * 3); mean < 20 || mean > 235 {
		t.Errorf("frame 300 has mean %.1f: not a photograph", mean)
	}
}

// TestGoCVPipeline reads a GStreamer pipeline, as CSI cameras are read
// (libcamerasrc, nvarguscamerasrc); here GStreamer's own test source.
func TestGoCVPipeline(t *testing.T) {
	spec := "videotestsrc num-buffers=12 ! video/x-raw,width=160,height=120 ! " +
		"videoconvert ! video/x-raw,format=BGR ! appsink"
	if Classify(spec) != KindPipeline {
		t.Fatalf("%q not classified as a pipeline", spec)
	}
	src, err := Open(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f Frame
	for i := 0; i < 12; i++ {
		if err := src.Read(&f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Width != 160 || f.Height != 120 {
			t.Fatalf("frame %d is %dx%d, want 160x120", i, f.Width, f.Height)
		}
	}
	// After its 12 buffers the pipeline delivers nothing: for a live source
	// that is a loss, not an end.
	if err := src.Read(&f); err == nil || err == io.EOF {
		t.Errorf("after the last buffer: %v, want a lost-source error", err)
	}
}

func TestGoCVCaptureEndsAtFileEnd(t *testing.T) {
	c := NewCapture(CaptureOptions{
		Spec: fixture.Path(t, "video", "demo.mp4"),
		Pace: PaceAll,
		Log:  testLogger(&lockedBuffer{}),
	})
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	var f Frame
	n := 0
	for {
		err := c.Next(context.Background(), &f, 10*time.Second)
		if errors.Is(err, ErrEnded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 600 {
		t.Errorf("%d frames handed over with PaceAll, want 600", n)
	}
	if err := <-done; !errors.Is(err, ErrEnded) {
		t.Errorf("Run: %v", err)
	}
	if st := c.Status(); st.FrameRate != 15 || st.Width != 640 {
		t.Errorf("status %+v", st)
	}
}

func TestGoCVMissingDevice(t *testing.T) {
	if _, err := Open("/dev/video63", Options{}); err == nil {
		t.Error("a missing camera opened")
	}
}
