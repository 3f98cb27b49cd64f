//go:build cgo && matprofile

package record

import (
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// TestMatProfileRecord records a clip and checks that no Mat is left open.
func TestMatProfileRecord(t *testing.T) {
	before := gocv.MatProfile.Count()
	record(t, filepath.Join(t.TempDir(), "out.mp4"), frames(t, 10))
	if n := gocv.MatProfile.Count() - before; n != 0 {
		t.Fatalf("%d Mats left open", n)
	}
}
