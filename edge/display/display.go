// Package display shows the annotated frames in a GoCV (OpenCV HighGUI)
// window, or full screen for a kiosk. It needs cgo; a build without it
// reports ErrNeedsCgo.
package display

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/maskwatch/maskwatch/camera"
)

// ErrQuit is returned by Run when the viewer closes the window or presses
// q or Esc.
var ErrQuit = errors.New("window closed by the viewer")

// ErrNoDisplay is returned by Run when there is no display to open a window
// on (DISPLAY and WAYLAND_DISPLAY unset): OpenCV would abort the process.
var ErrNoDisplay = errors.New("no display (DISPLAY is not set): run with --display none " +
	"and --listen for the page, or start under X11 or Wayland")

// Options configure the window.
type Options struct {
	Title string
	// Kiosk opens the window full screen.
	Kiosk bool
}

// Window receives frames from any goroutine (Show) and draws the newest on
// the main thread (Run).
type Window struct {
	opt Options

	mu     sync.Mutex
	latest camera.Frame
	seq    uint64
	shown  uint64
	wake   chan struct{}
}

// New prepares a window; nothing native is made before Run.
func New(opt Options) *Window {
	if opt.Title == "" {
		opt.Title = "maskwatch"
	}
	return &Window{opt: opt, wake: make(chan struct{}, 1)}
}

// Show hands over a copy of f; it never waits for the window.
func (w *Window) Show(f *camera.Frame) {
	w.mu.Lock()
	w.latest.CopyFrom(f)
	w.seq++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Shown is the number of frames drawn so far.
func (w *Window) Shown() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.shown
}

// take copies the newest frame into dst if it is newer than the last shown.
func (w *Window) take(dst *camera.Frame) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seq == w.shown {
		return false
	}
	dst.CopyFrom(&w.latest)
	w.shown = w.seq
	return true
}

// Check reports, before anything starts, whether Run can open a window:
// ErrNeedsCgo in a build without cgo, ErrNoDisplay without a display.
func Check() error {
	if !available {
		return fmt.Errorf("window: %w", ErrNeedsCgo)
	}
	return checkDisplay()
}

// checkDisplay refuses to start without a display server.
func checkDisplay() error {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return fmt.Errorf("window: %w", ErrNoDisplay)
	}
	return nil
}
