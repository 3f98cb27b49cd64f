package loader

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
)

// interior returns the canvas without its border, as packed RGB.
func interior(canvas []uint8, size int) []uint8 {
	stride := (size + 2) * 3
	out := make([]uint8, 0, size*size*3)
	for y := range size {
		out = append(out, canvas[(y+1)*stride+3:(y+1)*stride+3+size*3]...)
	}
	return out
}

// noise fills an image with a fixed pseudo-random pattern.
func noise(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	var s uint32 = 12345
	for i := range img.Pix {
		s = s*1664525 + 1013904223
		img.Pix[i] = uint8(s >> 24)
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	return img
}

func TestToRGBFastPathsMatchAt(t *testing.T) {
	src := noise(37, 23)
	ycc := image.NewYCbCr(src.Rect, image.YCbCrSubsampleRatio420)
	for y := range 23 {
		for x := range 37 {
			r, g, b, _ := src.At(x, y).RGBA()
			yy, cb, cr := color.RGBToYCbCr(uint8(r>>8), uint8(g>>8), uint8(b>>8))
			ycc.Y[ycc.YOffset(x, y)] = yy
			ycc.Cb[ycc.COffset(x, y)] = cb
			ycc.Cr[ycc.COffset(x, y)] = cr
		}
	}
	nrgba := image.NewNRGBA(src.Rect)
	draw.Draw(nrgba, src.Rect, src, image.Point{}, draw.Src)
	gray := image.NewGray(src.Rect)
	draw.Draw(gray, src.Rect, src, image.Point{}, draw.Src)
	sub := src.SubImage(image.Rect(5, 3, 30, 20))
	cmyk := image.NewCMYK(src.Rect) // no fast path: goes through At
	draw.Draw(cmyk, src.Rect, src, image.Point{}, draw.Src)

	for _, img := range []image.Image{src, ycc, nrgba, gray, sub, cmyk} {
		pix, w, h := toRGB(img)
		r := img.Bounds()
		if w != r.Dx() || h != r.Dy() {
			t.Fatalf("%T: size %dx%d, want %dx%d", img, w, h, r.Dx(), r.Dy())
		}
		for y := range h {
			for x := range w {
				cr, cg, cb, _ := img.At(r.Min.X+x, r.Min.Y+y).RGBA()
				want := [3]uint8{uint8(cr >> 8), uint8(cg >> 8), uint8(cb >> 8)}
				got := [3]uint8(pix[(y*w+x)*3:])
				if got != want {
					t.Fatalf("%T: pixel %d,%d is %v, At says %v", img, x, y, got, want)
				}
			}
		}
	}
}

func TestFitCanvasIdentityAtSize(t *testing.T) {
	src := noise(224, 224)
	pix, w, h := toRGB(src)
	canvas := make([]uint8, canvasLen(224))
	fitCanvas(canvas, pix, w, h, 224, 1, [3]uint8{1, 2, 3})
	got := interior(canvas, 224)
	for i := range got {
		if got[i] != pix[i] {
			t.Fatalf("value %d is %d, want %d unchanged", i, got[i], pix[i])
		}
	}
	// The border is padding.
	if p := [3]uint8(canvas[:3]); p != [3]uint8{1, 2, 3} {
		t.Errorf("border is %v, want the pad colour", p)
	}
}

func TestFitCanvasPadsBelowAndRight(t *testing.T) {
	// 400 x 100 at 100: scale 0.25, content 100 x 25, the rest padding.
	src := image.NewRGBA(image.Rect(0, 0, 400, 100))
	draw.Draw(src, src.Rect, image.NewUniform(color.RGBA{200, 10, 50, 255}), image.Point{}, draw.Src)
	pix, w, h := toRGB(src)
	lb := box.FitLetterbox(w, h, 100)
	canvas := make([]uint8, canvasLen(100))
	pad := [3]uint8{7, 8, 9}
	fitCanvas(canvas, pix, w, h, 100, lb.Scale, pad)
	in := interior(canvas, 100)
	for y := range 100 {
		for x := range 100 {
			got := [3]uint8(in[(y*100+x)*3:])
			want := [3]uint8{200, 10, 50}
			if y >= 25 {
				want = pad
			}
			if got != want {
				t.Fatalf("pixel %d,%d is %v, want %v", x, y, got, want)
			}
		}
	}
}

func TestFitCanvasAveragesWhenShrinking(t *testing.T) {
	// A one-pixel checkerboard of 0 and 255 shrunk 4 times must come out mid grey:
	// plain bilinear would pick up two pixels and alias.
	src := image.NewGray(image.Rect(0, 0, 448, 448))
	for y := range 448 {
		for x := range 448 {
			if (x+y)%2 == 0 {
				src.Pix[y*src.Stride+x] = 255
			}
		}
	}
	pix, w, h := toRGB(src)
	canvas := make([]uint8, canvasLen(112))
	fitCanvas(canvas, pix, w, h, 112, 0.25, [3]uint8{})
	for i, v := range interior(canvas, 112) {
		if math.Abs(float64(v)-127.5) > 8 {
			t.Fatalf("value %d is %d, want about 128", i, v)
		}
	}
}

func TestFitCanvasUpscaleIsSmooth(t *testing.T) {
	// A horizontal ramp doubled in size stays a monotone ramp.
	src := image.NewGray(image.Rect(0, 0, 50, 10))
	for y := range 10 {
		for x := range 50 {
			src.Pix[y*src.Stride+x] = uint8(x * 5)
		}
	}
	pix, w, h := toRGB(src)
	canvas := make([]uint8, canvasLen(100))
	fitCanvas(canvas, pix, w, h, 100, 2, [3]uint8{})
	in := interior(canvas, 100)
	for x := 1; x < 100; x++ {
		if in[x*3] < in[(x-1)*3] {
			t.Fatalf("ramp falls at x=%d: %d after %d", x, in[x*3], in[(x-1)*3])
		}
	}
	if in[0] != 0 || in[99*3] != 245 {
		t.Errorf("ramp runs %d..%d, want 0..245 (edges repeat)", in[0], in[99*3])
	}
}

func TestNewFilterWeightsSumToOne(t *testing.T) {
	for _, c := range []struct {
		n, out int
		scale  float64
	}{{600, 224, 224.0 / 600}, {224, 224, 1}, {50, 100, 2}, {3, 224, 224.0 / 3}, {1, 5, 5}} {
		f := newFilter(c.n, c.out, c.scale)
		for i := range c.out {
			var sum float64
			for j, w := range f.weights[i*f.taps : (i+1)*f.taps] {
				if w != 0 && (f.start[i]+j < 0 || f.start[i]+j >= c.n) {
					t.Fatalf("%+v: output %d weighs pixel %d outside the image", c, i, f.start[i]+j)
				}
				sum += float64(w)
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Fatalf("%+v: output %d weights sum to %v", c, i, sum)
			}
		}
	}
}
