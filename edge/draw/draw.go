// Package draw paints on BGR camera frames in pure Go: boxes, labels, the
// FPS and latency overlay, the kiosk banner, the "no signal" card, and the
// blur that hides faces. It needs no cgo, so static builds draw the same.
package draw

import (
	"image"

	"github.com/maskwatch/maskwatch/camera"
)

// BGR is a colour in the frames' byte order.
type BGR struct{ B, G, R uint8 }

// Colours the annotations use.
var (
	Green = BGR{B: 40, G: 200, R: 40}
	Red   = BGR{B: 40, G: 40, R: 230}
	White = BGR{B: 255, G: 255, R: 255}
	Black = BGR{}
	Gray  = BGR{B: 64, G: 64, R: 64}
)

// bounds is the frame's rectangle.
func bounds(f *camera.Frame) image.Rectangle { return image.Rect(0, 0, f.Width, f.Height) }

// FillRect paints r (clipped to the frame) in c.
func FillRect(f *camera.Frame, r image.Rectangle, c BGR) {
	r = r.Intersect(bounds(f))
	if r.Empty() {
		return
	}
	row := f.Pix[r.Min.Y*f.Stride+3*r.Min.X : r.Min.Y*f.Stride+3*r.Max.X]
	for i := 0; i < len(row); i += 3 {
		row[i], row[i+1], row[i+2] = c.B, c.G, c.R
	}
	for y := r.Min.Y + 1; y < r.Max.Y; y++ {
		copy(f.Pix[y*f.Stride+3*r.Min.X:], row)
	}
}

// BlendRect mixes c into r with the given opacity (0 to 256 for opaque).
func BlendRect(f *camera.Frame, r image.Rectangle, c BGR, opacity int) {
	r = r.Intersect(bounds(f))
	a, na := uint32(opacity), uint32(256-opacity)
	cb, cg, cr := uint32(c.B)*a, uint32(c.G)*a, uint32(c.R)*a
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := f.Pix[y*f.Stride+3*r.Min.X : y*f.Stride+3*r.Max.X]
		for i := 0; i < len(row); i += 3 {
			row[i] = uint8((uint32(row[i])*na + cb) >> 8)
			row[i+1] = uint8((uint32(row[i+1])*na + cg) >> 8)
			row[i+2] = uint8((uint32(row[i+2])*na + cr) >> 8)
		}
	}
}

// Rect outlines r with lines thick pixels wide, drawn inside r.
func Rect(f *camera.Frame, r image.Rectangle, c BGR, thick int) {
	r = r.Canon()
	t := min(thick, r.Dx()/2+1, r.Dy()/2+1)
	FillRect(f, image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+t), c)
	FillRect(f, image.Rect(r.Min.X, r.Max.Y-t, r.Max.X, r.Max.Y), c)
	FillRect(f, image.Rect(r.Min.X, r.Min.Y, r.Min.X+t, r.Max.Y), c)
	FillRect(f, image.Rect(r.Max.X-t, r.Min.Y, r.Max.X, r.Max.Y), c)
}
