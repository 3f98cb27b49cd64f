//go:build cgo && matprofile

package jpegenc

import (
	"testing"

	"gocv.io/x/gocv"
)

// TestMatProfileEncode encodes frames and checks that no Mat is left open.
func TestMatProfileEncode(t *testing.T) {
	f := photo(t)
	before := gocv.MatProfile.Count()
	e := New()
	var buf []byte
	var err error
	for i := 0; i < 10; i++ {
		if buf, err = e.Encode(buf, f, 80); err != nil {
			t.Fatal(err)
		}
	}
	if n := gocv.MatProfile.Count() - before; n != 0 {
		t.Fatalf("%d Mats left open", n)
	}
}
