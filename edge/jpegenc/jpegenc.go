// Package jpegenc encodes BGR frames as JPEG for the MJPEG stream, snapshots
// and the page. With cgo it uses OpenCV's libjpeg through GoCV (several times
// faster); without cgo it uses the standard library's image/jpeg.
package jpegenc

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/maskwatch/maskwatch/camera"
)

// Encoder turns frames into JPEG images. An Encoder is not safe for
// concurrent use; make one per goroutine.
type Encoder interface {
	// Encode writes f as a JPEG of the given quality (1 to 100) into dst,
	// reusing its memory, and returns the image.
	Encode(dst []byte, f *camera.Frame, quality int) ([]byte, error)
	// Name says which encoder this is: "opencv" or "go".
	Name() string
}

// New returns the fastest encoder this build has.
func New() Encoder {
	if e := newNative(); e != nil {
		return e
	}
	return NewPure()
}

// NewPure returns the standard library encoder.
func NewPure() Encoder { return &pure{} }

type pure struct {
	rgba *image.RGBA
}

func (p *pure) Name() string { return "go" }

func (p *pure) Encode(dst []byte, f *camera.Frame, quality int) ([]byte, error) {
	p.rgba = f.ToRGBA(p.rgba)
	buf := bytes.NewBuffer(dst[:0])
	if err := jpeg.Encode(buf, p.rgba, &jpeg.Options{Quality: quality}); err != nil {
		return dst, fmt.Errorf("jpeg encode: %w", err)
	}
	return buf.Bytes(), nil
}
