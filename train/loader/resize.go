package loader

import (
	"image"
	"math"

	"github.com/maskwatch/maskwatch/models/box"
)

// Preprocess turns one image into a normalised size x size x 3 (HWC) model input,
// as training does without augmentation: the image is letterboxed by
// box.FitLetterbox (top-left, padding below and to the right, filled with
// norm's mean colour so it normalises to about 0), resized with an area-averaging
// bilinear filter to uint8 RGB, and normalised by norm. dst is reused when it
// holds size*size*3 values. It returns the input and the letterbox that maps
// model-input boxes back to the image.
//
// It panics when size is not positive or the image is empty; norm must pass
// Normalize.Validate.
func Preprocess(img image.Image, size int, norm Normalize, dst []float32) (
	[]float32, box.Letterbox,
) {
	if size <= 0 || img.Bounds().Empty() {
		panic("loader.Preprocess: size must be positive and the image not empty")
	}
	rgb, w, h := toRGB(img)
	lb := box.FitLetterbox(w, h, size)
	canvas := make([]uint8, canvasLen(size))
	fitCanvas(canvas, rgb, w, h, size, lb.Scale, padColour(norm))
	lut := norm.table()
	return normalizeCanvas(dst, canvas, size, &lut), lb
}

// canvasLen is the length of a size x size RGB canvas with a one-pixel border of
// padding all round; the border lets the augmenting resampler read past the
// edge without a branch.
func canvasLen(size int) int { return (size + 2) * (size + 2) * 3 }

// toRGB converts an image to packed 8-bit RGB rows, with fast paths for the
// types the standard decoders return. Alpha is composited over black.
func toRGB(img image.Image) (pix []uint8, w, h int) {
	r := img.Bounds()
	w, h = r.Dx(), r.Dy()
	pix = make([]uint8, w*h*3)
	switch m := img.(type) {
	case *image.YCbCr:
		for y := range h {
			row := pix[y*w*3:]
			for x := range w {
				yi := m.YOffset(r.Min.X+x, r.Min.Y+y)
				ci := m.COffset(r.Min.X+x, r.Min.Y+y)
				row[x*3], row[x*3+1], row[x*3+2] = yCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			}
		}
	case *image.RGBA: // premultiplied: already composited over black
		for y := range h {
			src := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
			row := pix[y*w*3:]
			for x := range w {
				row[x*3], row[x*3+1], row[x*3+2] = src[x*4], src[x*4+1], src[x*4+2]
			}
		}
	case *image.NRGBA:
		for y := range h {
			src := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
			row := pix[y*w*3:]
			for x := range w {
				a := uint32(src[x*4+3])
				for c := range 3 {
					row[x*3+c] = uint8((uint32(src[x*4+c])*a + 127) / 255)
				}
			}
		}
	case *image.Gray:
		for y := range h {
			src := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
			row := pix[y*w*3:]
			for x := range w {
				row[x*3], row[x*3+1], row[x*3+2] = src[x], src[x], src[x]
			}
		}
	default:
		for y := range h {
			row := pix[y*w*3:]
			for x := range w {
				cr, cg, cb, _ := img.At(r.Min.X+x, r.Min.Y+y).RGBA()
				row[x*3], row[x*3+1], row[x*3+2] = uint8(cr>>8), uint8(cg>>8), uint8(cb>>8)
			}
		}
	}
	return pix, w, h
}

// yCbCrToRGB is the JFIF conversion with 16.16 fixed point, as image/color does it.
func yCbCrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y) * 0x10101
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	r := yy + 91881*cr1
	g := yy - 22554*cb1 - 46802*cr1
	b := yy + 116130*cb1
	return clampFix(r), clampFix(g), clampFix(b)
}

func clampFix(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// padColour is the uint8 colour of the letterbox padding: norm's mean, so that
// padding normalises to about zero, as the zero images of a short batch do.
func padColour(norm Normalize) [3]uint8 {
	var p [3]uint8
	for c := range 3 {
		p[c] = uint8(math.Round(min(max(float64(norm.Mean[c]), 0), 1) * 255))
	}
	return p
}

// contentSize is how many input pixels along one side the image covers when its
// n pixels are scaled by scale: the rest of the side is padding.
func contentSize(n int, scale float64, size int) int {
	return min(max(int(math.Round(float64(n)*scale)), 1), size)
}

// filter holds, for each output pixel along one axis, the source pixels it
// averages and their weights.
type filter struct {
	taps    int       // weights per output pixel
	start   []int     // first source pixel of each output pixel
	weights []float32 // taps weights for each output pixel
}

// newFilter builds a tent filter mapping n source pixels to out output pixels at
// scale (output pixels per source pixel). When shrinking, the tent widens to
// 1/scale source pixels, so every source pixel contributes (area averaging);
// otherwise it is plain bilinear. Source pixels past the edge repeat the edge.
// At scale 1 every output pixel is exactly its source pixel.
func newFilter(n, out int, scale float64) filter {
	radius := max(1, 1/scale)
	taps := int(math.Ceil(radius))*2 + 1
	f := filter{taps: taps, start: make([]int, out), weights: make([]float32, out*taps)}
	for i := range out {
		centre := (float64(i)+0.5)/scale - 0.5
		first := int(math.Ceil(centre - radius))
		first = min(max(first, 0), max(n-taps, 0))
		f.start[i] = first
		w := f.weights[i*taps : (i+1)*taps]
		var sum float64
		for j := range taps {
			wt := edgeWeight(first+j, n, centre, radius)
			w[j] = float32(wt)
			sum += wt
		}
		for j := range w {
			w[j] = float32(float64(w[j]) / sum)
		}
	}
	return f
}

// edgeWeight is the tent weight source pixel p carries: its own, and for the
// first and last pixel also that of the positions past the edge within reach, so
// the edge repeats. Pixels past n (when n < taps) carry none.
func edgeWeight(p, n int, centre, radius float64) float64 {
	tent := func(q int) float64 { return max(0, 1-math.Abs(float64(q)-centre)/radius) }
	if p >= n {
		return 0
	}
	wt := tent(p)
	if p == 0 {
		for q := -1; float64(q) > centre-radius; q-- {
			wt += tent(q)
		}
	}
	if p == n-1 {
		for q := n; float64(q) < centre+radius; q++ {
			wt += tent(q)
		}
	}
	return wt
}

// fitCanvas resizes the w x h RGB image by scale into the top-left corner of a
// size x size canvas with a one-pixel border, filling the rest with pad.
func fitCanvas(canvas, rgb []uint8, w, h, size int, scale float64, pad [3]uint8) {
	stride := (size + 2) * 3
	for i := 0; i < len(canvas); i += 3 {
		canvas[i], canvas[i+1], canvas[i+2] = pad[0], pad[1], pad[2]
	}
	cw, ch := contentSize(w, scale, size), contentSize(h, scale, size)
	fx, fy := newFilter(w, cw, scale), newFilter(h, ch, scale)

	// Horizontal pass: every source row to cw pixels.
	tmp := make([]float32, h*cw*3)
	for y := range h {
		src := rgb[y*w*3:]
		dst := tmp[y*cw*3:]
		for x := range cw {
			w := fx.weights[x*fx.taps : (x+1)*fx.taps]
			s := src[fx.start[x]*3:]
			var r, g, b float32
			for j, wt := range w {
				if wt != 0 {
					r += wt * float32(s[j*3])
					g += wt * float32(s[j*3+1])
					b += wt * float32(s[j*3+2])
				}
			}
			dst[x*3], dst[x*3+1], dst[x*3+2] = r, g, b
		}
	}

	// Vertical pass into the canvas interior.
	acc := make([]float32, cw*3)
	for y := range ch {
		clear(acc)
		w := fy.weights[y*fy.taps : (y+1)*fy.taps]
		for j, wt := range w {
			if wt == 0 {
				continue
			}
			src := tmp[(fy.start[y]+j)*cw*3 : (fy.start[y]+j+1)*cw*3]
			for i, v := range src {
				acc[i] += wt * v
			}
		}
		dst := canvas[(y+1)*stride+3:]
		for i, v := range acc {
			dst[i] = uint8(min(max(v+0.5, 0), 255))
		}
	}
}

// normalizeCanvas writes the canvas interior, normalised by lut, into dst as
// size x size x 3 float32, reusing dst when it is large enough.
func normalizeCanvas(dst []float32, canvas []uint8, size int, lut *[3][256]float32) []float32 {
	n := size * size * 3
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	stride := (size + 2) * 3
	for y := range size {
		src := canvas[(y+1)*stride+3 : (y+1)*stride+3+size*3]
		out := dst[y*size*3 : (y+1)*size*3]
		for i := 0; i < len(src); i += 3 {
			out[i] = lut[0][src[i]]
			out[i+1] = lut[1][src[i+1]]
			out[i+2] = lut[2][src[i+2]]
		}
	}
	return dst
}
