//go:build !cgo

package detect

import (
	"errors"
	"testing"

	"github.com/maskwatch/maskwatch/models/tflite"
)

// Without cgo there is no TFLite: the tflite engine says so, and the gomlx
// engine detects.
func TestWithoutCgo(t *testing.T) {
	cfg, w := randomDetector(t, 1)
	b := exportBundle(t, cfg, w, tflite.FP16, nil)
	if _, err := OpenBundle(b, "m", Options{}); !errors.Is(err, ErrNoTFLite) {
		t.Errorf("tflite engine without cgo: %v", err)
	}
	d, err := OpenBundle(b, "m", Options{Engine: EngineGoMLX})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	faces, err := d.Detect(loadFrame(t, testImages(t, 1)[0]))
	if err != nil || len(faces) == 0 {
		t.Errorf("gomlx engine: %d faces, %v", len(faces), err)
	}
}
