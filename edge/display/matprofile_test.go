//go:build cgo && matprofile

package display

import (
	"testing"

	"gocv.io/x/gocv"
)

// TestMatProfileWindow shows frames and checks that every Mat made for them
// was closed. Run with go test -tags matprofile.
func TestMatProfileWindow(t *testing.T) {
	t.Setenv("DISPLAY", xDisplay)
	before := gocv.MatProfile.Count()
	w := New(Options{Title: "maskwatch matprofile"})
	stop := runWindow(t, w)
	for i := 0; i < 20; i++ {
		f := testFrame()
		f.Pix[0] = byte(i)
		w.Show(f)
		waitShown(t, w, uint64(i+1))
	}
	stop()
	if n := gocv.MatProfile.Count() - before; n != 0 {
		t.Fatalf("%d Mats left open", n)
	}
}
