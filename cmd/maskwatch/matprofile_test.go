//go:build cgo && matprofile

package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// TestMatProfileRun runs the whole pipeline on demo.mp4 with a viewer and a
// recording, and checks that no GoCV Mat is left open afterwards. Run with
// go test -tags matprofile (make test does).
func TestMatProfileRun(t *testing.T) {
	before := gocv.MatProfile.Count()
	l := startLive(t, "--source", fixture.Path(t, "video", "demo.mp4"), "--headless",
		"--listen", "127.0.0.1:0", "--pace", "all", "--max-frames", "12",
		"--record", filepath.Join(t.TempDir(), "out.mp4"))
	readStream(t, l.url+"/stream.mjpg", 2)
	if code := l.wait(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, l.stderr.String())
	}
	if n := gocv.MatProfile.Count() - before; n != 0 {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mats left open:\n%s", n, b.String())
	}
}
