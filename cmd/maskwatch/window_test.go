//go:build cgo

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/edge/draw"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// sharedXvfb starts, once for the test process, a virtual X server without
// a window manager (Debian's xvfb, from make deps) and returns its DISPLAY.
// Qt binds a process to the first display it opens, so every window test
// of the process must use this one; TestMain stops it.
func sharedXvfb(t *testing.T) string {
	t.Helper()
	xvfbOnce.Do(func() {
		r, wr, err := os.Pipe()
		if err != nil {
			xvfbErr = err
			return
		}
		cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "800x600x24",
			"-nolisten", "tcp", "-noreset")
		cmd.ExtraFiles = []*os.File{wr}
		if err := cmd.Start(); err != nil {
			xvfbErr = fmt.Errorf("start Xvfb (make deps installs xvfb): %w", err)
			return
		}
		wr.Close()
		stopXvfb = func() {
			cmd.Process.Kill()
			cmd.Wait()
		}
		line, err := bufio.NewReader(r).ReadString('\n')
		r.Close()
		if err != nil {
			xvfbErr = fmt.Errorf("Xvfb gave no display number: %w", err)
			return
		}
		xvfbDisplay = ":" + strings.TrimSpace(line)
		// Xvfb names its display a moment before it serves it, and Qt
		// aborts the process if it cannot connect: wait for a client.
		deadline := time.Now().Add(30 * time.Second)
		for exec.Command("xdpyinfo", "-display", xvfbDisplay).Run() != nil {
			if time.Now().After(deadline) {
				xvfbErr = fmt.Errorf("Xvfb on %s accepts no client (xdpyinfo, from "+
					"x11-utils)", xvfbDisplay)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	if xvfbErr != nil {
		t.Fatal(xvfbErr)
	}
	return xvfbDisplay
}

var (
	xvfbOnce    sync.Once
	xvfbDisplay string
	xvfbErr     error
)

// screenshot grabs the virtual screen with ImageMagick's import.
func screenshot(t *testing.T, display string) image.Image {
	t.Helper()
	cmd := exec.Command("import", "-display", display, "-window", "root", "png:-")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("import: %v %s", err, errb.String())
	}
	img, err := png.Decode(&out)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// photoWithFaces finds a val photograph, small enough for the screen, in
// which the default model finds faces scored 0.7 or more, and returns a
// folder holding only it.
func photoWithFaces(t *testing.T) string {
	t.Helper()
	d, err := detect.Open(detect.DefaultModel, detect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dir := fixture.Path(t, "facemask", "val", "images")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, err := camera.Open(filepath.Join(dir, e.Name()), camera.Options{})
		if err != nil {
			continue
		}
		var f camera.Frame
		err = src.Read(&f)
		src.Close()
		if err != nil || f.Width > 780 || f.Height > 580 {
			continue
		}
		faces, err := d.Detect(detect.Frame{Pix: f.Pix, Width: f.Width, Height: f.Height,
			Stride: f.Stride})
		if err != nil {
			t.Fatal(err)
		}
		if len(faces) > 0 && faces[0].Score >= 0.7 {
			one := t.TempDir()
			if err := os.Symlink(filepath.Join(dir, e.Name()), filepath.Join(one,
				e.Name())); err != nil {
				t.Fatal(err)
			}
			return one
		}
	}
	t.Fatal("no val photograph with a face the default model scores 0.7")
	return ""
}

// TestE2EWindowUnderXvfb runs maskwatch with a window on a virtual screen
// and checks, in a screenshot, that the boxes the status reports are drawn
// in the right colours where they must be.
func TestE2EWindowUnderXvfb(t *testing.T) {
	folder := photoWithFaces(t)
	disp := sharedXvfb(t)
	t.Setenv("DISPLAY", disp)
	runtimeDir := t.TempDir()
	os.Chmod(runtimeDir, 0o700)
	t.Setenv("XDG_RUNTIME_DIR", runtimeDir)

	l := startLive(t, "--source", folder, "--fps", "5", "--display", "window",
		"--no-overlay", "--listen", "127.0.0.1:0")
	s := l.waitStatus("faces", func(s edge.Status) bool { return len(s.Faces) > 0 })

	// The window has no manager to move it: it sits at the top-left, at
	// the frame's size. Sample each box's left edge below its label.
	type check struct {
		face edge.FaceNow
		want draw.BGR
	}
	var checks []check
	for _, f := range s.Faces {
		want := draw.Red
		if f.Proper {
			want = draw.Green
		}
		checks = append(checks, check{f, want})
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i].face.Score > checks[j].face.Score })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		img := screenshot(t, disp)
		bad := ""
		for _, c := range checks {
			x := int(math.Floor(c.face.Box[0])) + 1
			y1, y2 := int(c.face.Box[1])+30, int(c.face.Box[3])-2
			hits, n := 0, 0
			for y := y1; y < y2; y += 2 {
				r, g, b, _ := img.At(x, y).RGBA()
				n++
				if (draw.BGR{B: uint8(b >> 8), G: uint8(g >> 8), R: uint8(r >> 8)}) == c.want {
					hits++
				}
			}
			if n > 0 && hits*2 < n {
				bad = fmt.Sprintf("box %v (%s): %d of %d edge pixels in its colour",
					c.face.Box, c.face.Label, hits, n)
				break
			}
		}
		if bad == "" {
			break
		}
		if time.Now().After(deadline) {
			f, _ := os.CreateTemp("", "maskwatch-window-*.png")
			png.Encode(f, img)
			f.Close()
			t.Fatalf("%s; screenshot in %s", bad, f.Name())
		}
	}
	if code := l.stop(); code != exitOK {
		t.Errorf("exit %d:\n%s", code, l.stderr.String())
	}
}

// TestE2EKioskBanner runs the kiosk full screen under a window manager (as a
// kiosk's X session has one; Debian's matchbox-window-manager from make
// deps) and checks that the screen shows the banner for the nearest face in
// its colour, across most of the frame's width.
func TestE2EKioskBanner(t *testing.T) {
	folder := photoWithFaces(t)
	disp := sharedXvfb(t)
	t.Setenv("DISPLAY", disp)
	runtimeDir := t.TempDir()
	os.Chmod(runtimeDir, 0o700)
	t.Setenv("XDG_RUNTIME_DIR", runtimeDir)
	wm := exec.Command("matchbox-window-manager", "-use_titlebar", "no")
	wm.Env = append(os.Environ(), "DISPLAY="+disp)
	if err := wm.Start(); err != nil {
		t.Fatalf("start matchbox-window-manager (make deps installs it): %v", err)
	}
	defer func() {
		wm.Process.Kill()
		wm.Wait()
	}()

	l := startLive(t, "--source", folder, "--fps", "5", "--kiosk",
		"--listen", "127.0.0.1:0")
	s := l.waitStatus("faces", func(s edge.Status) bool { return len(s.Faces) > 0 })
	nearest, area := s.Faces[0], 0.0
	for _, f := range s.Faces {
		if a := (f.Box[2] - f.Box[0]) * (f.Box[3] - f.Box[1]); a > area {
			nearest, area = f, a
		}
	}
	want := draw.Red
	if nearest.Proper {
		want = draw.Green
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		img := screenshot(t, disp)
		if longestRun(img, want) >= 400 { // the frame fills the 800 px screen's width
			break
		}
		if time.Now().After(deadline) {
			f, _ := os.CreateTemp("", "maskwatch-kiosk-*.png")
			png.Encode(f, img)
			f.Close()
			t.Fatalf("no banner in %v across the screen; screenshot in %s", want, f.Name())
		}
	}
	if code := l.stop(); code != exitOK {
		t.Errorf("exit %d:\n%s", code, l.stderr.String())
	}
}

// longestRun is the longest horizontal run of pixels of colour c.
func longestRun(img image.Image, c draw.BGR) int {
	b := img.Bounds()
	best := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		run := 0
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if (draw.BGR{B: uint8(bl >> 8), G: uint8(g >> 8), R: uint8(r >> 8)}) == c {
				run++
				best = max(best, run)
			} else {
				run = 0
			}
		}
	}
	return best
}
