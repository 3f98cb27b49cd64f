package input

import (
	"fmt"
	"math"
)

// Source is 8-bit pixels, three bytes a pixel, row by row, Stride bytes from
// one row to the next.
type Source struct {
	Pix           []byte
	Width, Height int
	Stride        int
	// BGR is true for OpenCV's blue-green-red byte order, false for RGB.
	BGR bool
}

// Check reports a Source whose bytes do not hold its pixels.
func (s Source) Check() error {
	if s.Width <= 0 || s.Height <= 0 || s.Stride < 3*s.Width {
		return fmt.Errorf("input: frame of %dx%d with stride %d: want a positive size and "+
			"a stride of at least 3 x width", s.Width, s.Height, s.Stride)
	}
	if need := (s.Height-1)*s.Stride + 3*s.Width; len(s.Pix) < need {
		return fmt.Errorf("input: frame of %dx%d with stride %d needs %d bytes, has %d",
			s.Width, s.Height, s.Stride, need, len(s.Pix))
	}
	return nil
}

// Resizer scales frames into inputs: an area-averaging tent filter when
// shrinking (every frame pixel counts, as training's resize does), a copy at
// scale 1. It keeps its filters and buffers from one call to the next, so
// frames of one size cost no allocation once warm. It is not safe for
// concurrent use.
type Resizer struct {
	key    [4]int
	fx, fy filter
	tmp    []float32
	acc    []float32
}

// filter is, for each output pixel along one axis, the source pixels it
// averages (first and weights).
type filter struct {
	first   []int
	weights [][]float32
}

// newFilter maps n source pixels onto out pixels at scale (output pixels
// per source pixel). When shrinking, the tent is 1/scale source pixels
// wide on each side of the centre, so every source pixel contributes; pixels
// past the edge repeat the edge. Zero weights are trimmed.
func newFilter(n, out int, scale float64) filter {
	radius := max(1, 1/scale)
	f := filter{first: make([]int, out), weights: make([][]float32, out)}
	for i := range out {
		centre := (float64(i)+0.5)/scale - 0.5
		lo := int(math.Floor(centre - radius))
		hi := int(math.Ceil(centre + radius))
		weights := map[int]float64{}
		sum := 0.0
		for q := lo; q <= hi; q++ {
			wt := 1 - math.Abs(float64(q)-centre)/radius
			if wt <= 0 {
				continue
			}
			p := min(max(q, 0), n-1)
			weights[p] += wt
			sum += wt
		}
		first, last := n, -1
		for p := range weights {
			first, last = min(first, p), max(last, p)
		}
		w := make([]float32, last-first+1)
		for p, wt := range weights {
			w[p-first] = float32(wt / sum)
		}
		f.first[i], f.weights[i] = first, w
	}
	return f
}

// Resize writes the frame, scaled by plan.Letterbox.Scale into the top-left
// corner of a plan.Width x plan.Height RGB image padded with pad, into dst
// (plan.Width*plan.Height*3 bytes, reused when large enough) and returns it.
func (r *Resizer) Resize(dst []uint8, src Source, plan Plan, pad [3]uint8) ([]uint8, error) {
	if err := src.Check(); err != nil {
		return dst, err
	}
	n := plan.Width * plan.Height * 3
	if plan.ContentWidth > plan.Width || plan.ContentHeight > plan.Height || n <= 0 {
		return dst, fmt.Errorf("input: plan %+v does not fit its content", plan)
	}
	if cap(dst) < n {
		dst = make([]uint8, n)
	}
	dst = dst[:n]
	cw, ch := plan.ContentWidth, plan.ContentHeight
	for y := range plan.Height {
		row := dst[y*plan.Width*3 : (y+1)*plan.Width*3]
		from := 0
		if y < ch {
			from = cw * 3
		}
		for i := from; i < len(row); i += 3 {
			row[i], row[i+1], row[i+2] = pad[0], pad[1], pad[2]
		}
	}
	r0, b0 := 0, 2
	if src.BGR {
		r0, b0 = 2, 0
	}
	if cw == src.Width && ch == src.Height {
		for y := range ch {
			in := src.Pix[y*src.Stride : y*src.Stride+3*cw]
			out := dst[y*plan.Width*3:]
			for i := 0; i < len(in); i += 3 {
				out[i], out[i+1], out[i+2] = in[i+r0], in[i+1], in[i+b0]
			}
		}
		return dst, nil
	}

	scale := plan.Letterbox.Scale
	if key := [4]int{src.Width, src.Height, cw, ch}; key != r.key || r.fx.first == nil {
		r.fx = newFilter(src.Width, cw, scale)
		r.fy = newFilter(src.Height, ch, scale)
		r.key = key
	}
	if cap(r.tmp) < src.Height*cw*3 {
		r.tmp = make([]float32, src.Height*cw*3)
	}
	tmp := r.tmp[:src.Height*cw*3]
	// Only the source rows some output row reads need the horizontal pass.
	rowLo, rowHi := r.fy.first[0], r.fy.first[ch-1]+len(r.fy.weights[ch-1])
	for y := rowLo; y < rowHi; y++ {
		in := src.Pix[y*src.Stride:]
		out := tmp[y*cw*3 : (y+1)*cw*3]
		for x := range cw {
			s := in[r.fx.first[x]*3:]
			var cr, cg, cb float32
			for j, wt := range r.fx.weights[x] {
				cr += wt * float32(s[j*3+r0])
				cg += wt * float32(s[j*3+1])
				cb += wt * float32(s[j*3+b0])
			}
			out[x*3], out[x*3+1], out[x*3+2] = cr, cg, cb
		}
	}
	if cap(r.acc) < cw*3 {
		r.acc = make([]float32, cw*3)
	}
	acc := r.acc[:cw*3]
	for y := range ch {
		clear(acc)
		first := r.fy.first[y]
		for j, wt := range r.fy.weights[y] {
			row := tmp[(first+j)*cw*3 : (first+j+1)*cw*3]
			for i, v := range row {
				acc[i] += wt * v
			}
		}
		out := dst[y*plan.Width*3:]
		for i, v := range acc {
			out[i] = uint8(min(max(v+0.5, 0), 255))
		}
	}
	return dst, nil
}
