package detect

import (
	"image"

	"github.com/maskwatch/maskwatch/models/box"
)

// BoxDetector is implemented by every Detector Open returns: detections as
// evaluation scores them, in frame pixels, with classes in the model's
// numbering (1 is Info.Classes[0], 0 the background, never returned). The
// slice is valid until the next call.
type BoxDetector interface {
	DetectBoxes(f Frame) ([]box.Detection, error)
}

// FrameFromImage converts an image to a BGR Frame, in buf when it is large
// enough, and returns the frame and the buffer for the next call.
func FrameFromImage(img image.Image, buf []byte) (Frame, []byte) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if cap(buf) < w*h*3 {
		buf = make([]byte, w*h*3)
	}
	pix := buf[:w*h*3]
	switch m := img.(type) {
	case *image.YCbCr:
		for y := range h {
			row := pix[y*w*3:]
			for x := range w {
				yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := ycc(m.Y[yi], m.Cb[ci], m.Cr[ci])
				row[3*x], row[3*x+1], row[3*x+2] = bl, g, r
			}
		}
	case *image.RGBA:
		for y := range h {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			row := pix[y*w*3:]
			for x := range w {
				row[3*x], row[3*x+1], row[3*x+2] = src[4*x+2], src[4*x+1], src[4*x]
			}
		}
	default:
		for y := range h {
			row := pix[y*w*3:]
			for x := range w {
				r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				row[3*x], row[3*x+1], row[3*x+2] = byte(bl>>8), byte(g>>8), byte(r>>8)
			}
		}
	}
	return Frame{Pix: pix, Width: w, Height: h, Stride: 3 * w}, buf
}

// ycc is JPEG's YCbCr to RGB conversion, as image/color computes it.
func ycc(y, cb, cr uint8) (r, g, b uint8) {
	yy := int32(y) * 0x10101
	cb1, cr1 := int32(cb)-128, int32(cr)-128
	clamp := func(v int32) uint8 {
		if uint32(v)&0xff000000 == 0 {
			return uint8(v >> 16)
		}
		if v < 0 {
			return 0
		}
		return 255
	}
	return clamp(yy + 91881*cr1), clamp(yy - 22554*cb1 - 46802*cr1), clamp(yy + 116130*cb1)
}
