// Package defaultmodel carries maskwatch's default detector inside the
// binary, so that one file is all a device needs: the model bundle
// data/default.mwb (package bundle's format), embedded at build time.
//
// To change the default model, export a checkpoint and build again:
//
//	masktrain export --model runs/mobilenetv3/best.ckpt --precision int8 \
//	    --calib ../shared/data/proper-mask/train \
//	    --out models/defaultmodel/data/default.mwb
//
// A build without that file compiles, and Load reports the missing model.
package defaultmodel

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/maskwatch/maskwatch/models/bundle"
)

// File is the bundle's path inside this package.
const File = "data/default.mwb"

//go:embed data
var data embed.FS

// ErrMissing is returned, wrapped, by Load when the binary was built
// without a default model.
var ErrMissing = errors.New("this build carries no default model")

// Bytes returns the default bundle's file contents.
func Bytes() ([]byte, error) {
	raw, err := data.ReadFile(File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: export one to models/defaultmodel/%s and build again, "+
			"or name a bundle file instead of default", ErrMissing, File)
	}
	return raw, err
}

// Load reads and checks the default bundle.
func Load() (*bundle.Bundle, error) {
	raw, err := Bytes()
	if err != nil {
		return nil, err
	}
	b, err := bundle.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("default model: %w", err)
	}
	return b, nil
}
