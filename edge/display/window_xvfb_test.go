//go:build cgo

package display

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/draw"
)

// xDisplay is the virtual X server all tests of this package share: Qt
// binds a process to the first display it opens.
var xDisplay string

func TestMain(m *testing.M) {
	disp, stop, err := startXvfb(800, 600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	xDisplay = disp
	runtime, err := os.MkdirTemp("", "xdg")
	if err == nil {
		os.Chmod(runtime, 0o700)
		os.Setenv("XDG_RUNTIME_DIR", runtime)
	}
	code := m.Run()
	stop()
	os.RemoveAll(runtime)
	os.Exit(code)
}

// startXvfb runs a virtual X server (Debian's xvfb, from make deps) of the
// given size and returns its DISPLAY.
func startXvfb(w, h int) (string, func(), error) {
	r, wr, err := os.Pipe()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0",
		fmt.Sprintf("%dx%dx24", w, h), "-nolisten", "tcp", "-noreset")
	cmd.ExtraFiles = []*os.File{wr}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start Xvfb (make deps installs xvfb): %w", err)
	}
	wr.Close()
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("Xvfb gave no display number: %w", err)
	}
	disp := ":" + strings.TrimSpace(line)
	if err := waitX(disp); err != nil {
		stop()
		return "", nil, err
	}
	return disp, stop, nil
}

// waitX polls until an X client can connect to disp: Xvfb names its display
// a moment before it serves it, and Qt aborts the process if it cannot
// connect.
func waitX(disp string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := exec.Command("xdpyinfo", "-display", disp).Run()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Xvfb on %s accepts no client (xdpyinfo, from x11-utils): %w",
				disp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// screenshot grabs the whole virtual screen with ImageMagick's import.
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

// rgbAt is the screen colour at (x, y) as 8-bit RGB.
func rgbAt(img image.Image, x, y int) [3]uint8 {
	r, g, b, _ := img.At(x, y).RGBA()
	return [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
}

// waitScreen takes screenshots until ok accepts one (the window manager-less
// X server draws asynchronously), and returns it.
func waitScreen(t *testing.T, display string, ok func(image.Image) bool) image.Image {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		img := screenshot(t, display)
		if ok(img) {
			return img
		}
		if time.Now().After(deadline) {
			f, err := os.CreateTemp("", "maskwatch-screen-*.png")
			if err == nil {
				png.Encode(f, img)
				f.Close()
			}
			t.Fatalf("the screen never showed the frame; last screenshot in %s", f.Name())
		}
	}
}

var (
	green = [3]uint8{draw.Green.R, draw.Green.G, draw.Green.B}
	blue  = [3]uint8{0, 0, 200}
)

// testFrame is blue with a green box from (100, 80) to (200, 180).
func testFrame() *camera.Frame {
	var f camera.Frame
	f.Reset(320, 240)
	draw.FillRect(&f, image.Rect(0, 0, 320, 240), draw.BGR{B: 200})
	draw.Rect(&f, image.Rect(100, 80, 200, 180), draw.Green, 4)
	return &f
}

func runWindow(t *testing.T, w *Window) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// TestWindowShowsFrames: a plain window shows the frame at its own size,
// without toolbar, at the top-left of a screen with no window manager.
func TestWindowShowsFrames(t *testing.T) {
	disp := xDisplay
	t.Setenv("DISPLAY", disp)
	w := New(Options{Title: "maskwatch test"})
	w.Show(testFrame())
	stop := runWindow(t, w)
	defer stop()
	img := waitScreen(t, disp, func(img image.Image) bool { return rgbAt(img, 150, 30) == blue })
	for _, p := range []image.Point{{101, 130}, {150, 81}, {198, 178}} {
		if got := rgbAt(img, p.X, p.Y); got != green {
			t.Errorf("screen at %v is %v, want the box's green %v", p, got, green)
		}
	}
	if got := rgbAt(img, 150, 130); got != blue {
		t.Errorf("inside the box the screen is %v, want blue", got)
	}
	if got := rgbAt(img, 400, 300); got == blue {
		t.Error("the window is larger than the frame")
	}
}

// TestKioskFillsScreen: full screen scales the 4:3 frame to the 4:3 screen.
// Full screen is the window manager's job, so the test runs one, as a
// kiosk's X session does (Debian's matchbox-window-manager, from make deps).
func TestKioskFillsScreen(t *testing.T) {
	disp := xDisplay
	t.Setenv("DISPLAY", disp)
	wm := exec.Command("matchbox-window-manager", "-use_titlebar", "no")
	wm.Env = append(os.Environ(), "DISPLAY="+disp)
	if err := wm.Start(); err != nil {
		t.Fatalf("start matchbox-window-manager (make deps installs it): %v", err)
	}
	defer func() {
		wm.Process.Kill()
		wm.Wait()
	}()
	w := New(Options{Title: "maskwatch kiosk", Kiosk: true})
	w.Show(testFrame())
	stop := runWindow(t, w)
	defer stop()
	// 2.5 times the size: the box's left edge from x=250 to 260, inside blue.
	img := waitScreen(t, disp, func(img image.Image) bool {
		return rgbAt(img, 790, 590) == blue && rgbAt(img, 255, 325) == green
	})
	if got := rgbAt(img, 375, 325); got != blue {
		t.Errorf("inside the scaled box: %v", got)
	}
}

func TestNoDisplay(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	if err := New(Options{}).Run(context.Background()); !errors.Is(err, ErrNoDisplay) {
		t.Errorf("Run without a display: %v, want ErrNoDisplay", err)
	}
}

// waitShown polls until the window has drawn n frames.
func waitShown(t *testing.T, w *Window, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for w.Shown() < n {
		if time.Now().After(deadline) {
			t.Fatalf("window drew %d frames, want %d", w.Shown(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
