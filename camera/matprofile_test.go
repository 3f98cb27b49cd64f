//go:build cgo && matprofile

package camera

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// TestMatProfileCapture runs a capture over demo.mp4 (and a GStreamer source)
// and checks that every Mat the sources made was closed. Run with
// go test -tags matprofile.
func TestMatProfileCapture(t *testing.T) {
	before := gocv.MatProfile.Count()
	for _, spec := range []string{
		fixture.Path(t, "video", "demo.mp4"),
		"videotestsrc num-buffers=5 ! videoconvert ! video/x-raw,format=BGRx ! appsink",
	} {
		c := NewCapture(CaptureOptions{Spec: spec, Pace: PaceAll,
			MinBackoff: time.Millisecond, Log: testLogger(&lockedBuffer{})})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		var f Frame
		for i := 0; i < 40; i++ {
			err := c.Next(ctx, &f, 10*time.Second)
			if errors.Is(err, ErrEnded) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", spec, err)
			}
		}
		cancel()
		<-done
	}
	if n := gocv.MatProfile.Count(); n != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mats left open:\n%s", n-before, b.String())
	}
}
