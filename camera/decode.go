package camera

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	_ "image/png" // folders may hold PNG images
)

// DecodeJPEG decodes one JPEG image into f as BGR.
func DecodeJPEG(data []byte, f *Frame) error {
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("decode jpeg: %w", err)
	}
	ToBGR(img, f)
	return nil
}

// ToBGR converts any image into f as BGR, reusing f.Pix. YCbCr (what JPEG
// decodes to), gray and RGBA images take fast paths.
func ToBGR(img image.Image, f *Frame) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	f.Reset(w, h)
	switch m := img.(type) {
	case *image.YCbCr:
		ycbcrToBGR(m, f)
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := f.Pix[y*f.Stride:]
			src := m.Pix[y*m.Stride:]
			for x := 0; x < w; x++ {
				v := src[x]
				row[3*x], row[3*x+1], row[3*x+2] = v, v, v
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := f.Pix[y*f.Stride:]
			src := m.Pix[y*m.Stride:]
			for x := 0; x < w; x++ {
				row[3*x], row[3*x+1], row[3*x+2] = src[4*x+2], src[4*x+1], src[4*x]
			}
		}
	default:
		for y := 0; y < h; y++ {
			row := f.Pix[y*f.Stride:]
			for x := 0; x < w; x++ {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				row[3*x], row[3*x+1], row[3*x+2] = c.B, c.G, c.R
			}
		}
	}
}

// ycbcrToBGR converts with the JFIF full-range formulas in 16.16 fixed point,
// the same arithmetic as image/color.YCbCrToRGB.
func ycbcrToBGR(m *image.YCbCr, f *Frame) {
	b := m.Rect
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := f.Pix[(y-b.Min.Y)*f.Stride:]
		yi := m.YOffset(b.Min.X, y)
		for x := b.Min.X; x < b.Max.X; x, yi = x+1, yi+1 {
			ci := m.COffset(x, y)
			yy := int32(m.Y[yi]) * 0x10101
			cb := int32(m.Cb[ci]) - 128
			cr := int32(m.Cr[ci]) - 128
			r := yy + 91881*cr
			g := yy - 22554*cb - 46802*cr
			bb := yy + 116130*cb
			o := 3 * (x - b.Min.X)
			row[o] = clamp8(bb)
			row[o+1] = clamp8(g)
			row[o+2] = clamp8(r)
		}
	}
}

func clamp8(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// Image wraps f as an image.Image (for encoders and tests); it shares Pix.
func (f *Frame) Image() image.Image { return bgrImage{f} }

type bgrImage struct{ f *Frame }

func (b bgrImage) ColorModel() color.Model { return color.RGBAModel }
func (b bgrImage) Bounds() image.Rectangle { return image.Rect(0, 0, b.f.Width, b.f.Height) }
func (b bgrImage) At(x, y int) color.Color {
	if !(image.Point{x, y}.In(b.Bounds())) {
		return color.RGBA{}
	}
	i := y*b.f.Stride + 3*x
	return color.RGBA{R: b.f.Pix[i+2], G: b.f.Pix[i+1], B: b.f.Pix[i], A: 255}
}

// ToRGBA converts f into dst (allocated when nil or the wrong size).
func (f *Frame) ToRGBA(dst *image.RGBA) *image.RGBA {
	if dst == nil || dst.Rect.Dx() != f.Width || dst.Rect.Dy() != f.Height {
		dst = image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	}
	for y := 0; y < f.Height; y++ {
		src := f.Pix[y*f.Stride:]
		row := dst.Pix[y*dst.Stride:]
		for x := 0; x < f.Width; x++ {
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = src[3*x+2], src[3*x+1], src[3*x], 255
		}
	}
	return dst
}
