//go:build !cgo

package detect

import (
	"fmt"

	"github.com/maskwatch/maskwatch/models/bundle"
)

// newTFLiteEngine fails: TFLite is a C library, and this build has no cgo.
func newTFLiteEngine(*bundle.Bundle, Options) (engine, error) {
	return nil, fmt.Errorf("%w: rebuild with cgo and libtensorflow-lite, or use the "+
		"gomlx engine (--engine gomlx)", ErrNoTFLite)
}

// tfliteAvailable says whether this build has the TFLite engine.
const tfliteAvailable = false
