//go:build cgo

package display

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"gocv.io/x/gocv"

	"github.com/maskwatch/maskwatch/camera"
)

const available = true

// ErrNeedsCgo is returned by Run in a build without cgo.
var ErrNeedsCgo = errors.New("this build has no window (built without cgo): use --listen " +
	"for the page")

// guiCalls runs functions on the one OS thread that makes every HighGUI
// call of the process: OpenCV's Qt backend binds itself to the thread that
// first opens a window and deadlocks when another thread opens the next.
var (
	guiOnce  sync.Once
	guiCalls chan func()
)

func onGUIThread(f func()) {
	guiOnce.Do(func() {
		guiCalls = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: this thread stays the GUI's
			for call := range guiCalls {
				call()
			}
		}()
	})
	done := make(chan struct{})
	guiCalls <- func() {
		defer close(done)
		f()
	}
	<-done
}

// Run opens the window and shows frames until ctx is done (nil) or the
// viewer closes it (ErrQuit). The HighGUI work runs on a thread of its own
// that the package keeps for the life of the process, so Run may be called
// from any goroutine, one window at a time. The window and each frame's Mat
// are closed before Run returns.
func (w *Window) Run(ctx context.Context) error {
	if err := checkDisplay(); err != nil {
		return err
	}
	var err error
	onGUIThread(func() { err = w.loop(ctx) })
	return err
}

func (w *Window) loop(ctx context.Context) error {
	// No toolbar or status bar; a plain window is the frame's size, a kiosk
	// fills the screen keeping the frame's aspect ratio.
	flags := cvWindowAutosize | cvWindowGUINormal
	if w.opt.Kiosk {
		flags = cvWindowNormal | cvWindowKeepRatio | cvWindowGUINormal
	}
	namedWindow(w.opt.Title, flags)
	win := gocv.NewWindow(w.opt.Title)
	defer win.Close()
	var f camera.Frame
	shown := false
	for ctx.Err() == nil {
		if w.take(&f) {
			if err := show(win, &f); err != nil {
				return err
			}
			if !shown && w.opt.Kiosk {
				// Asked once the window exists on screen; before, Qt drops it.
				win.SetWindowProperty(gocv.WindowPropertyFullscreen, gocv.WindowFullscreen)
			}
			shown = true
		}
		switch key := win.WaitKey(10); key {
		case 'q', 'Q', 27:
			return ErrQuit
		}
		if shown && win.GetWindowProperty(gocv.WindowPropertyVisible) < 1 {
			return ErrQuit
		}
	}
	return nil
}

func show(win *gocv.Window, f *camera.Frame) error {
	m, err := gocv.NewMatFromBytes(f.Height, f.Width, gocv.MatTypeCV8UC3,
		f.Pix[:f.Stride*f.Height])
	if err != nil {
		return fmt.Errorf("window: %w", err)
	}
	defer m.Close()
	win.IMShow(m)
	return nil
}
