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
// scale 1. It computes in 14-bit fixed point and keeps its filters and
// buffers from one call to the next, so frames of one size cost no
// allocation once warm. It is not safe for concurrent use.
type Resizer struct {
	key    [4]int
	fx, fy filter
	tmp    []int32
	acc    []int32
}

// filter is, for each output pixel along one axis, the first source pixel
// it reads and taps weights (14-bit fixed point, summing to 1<<14; unused
// taps weigh 0 and read an in-range pixel).
type filter struct {
	taps    int
	first   []int
	weights []int32
}

const fixedOne = 1 << 14

// newFilter maps n source pixels onto out pixels at scale (output pixels
// per source pixel). When shrinking, the tent is 1/scale source pixels
// wide on each side of the centre, so every source pixel contributes; pixels
// past the edge repeat the edge.
func newFilter(n, out int, scale float64) filter {
	radius := max(1, 1/scale)
	span := make([][]float64, out)
	first := make([]int, out)
	taps := 1
	for i := range out {
		centre := (float64(i)+0.5)/scale - 0.5
		lo := int(math.Floor(centre - radius))
		hi := int(math.Ceil(centre + radius))
		w := make([]float64, n)
		sum := 0.0
		for q := lo; q <= hi; q++ {
			wt := 1 - math.Abs(float64(q)-centre)/radius
			if wt <= 0 {
				continue
			}
			w[min(max(q, 0), n-1)] += wt
			sum += wt
		}
		a, b := n, -1
		for p, wt := range w {
			if wt > 0 {
				a, b = min(a, p), max(b, p)
			}
		}
		for p := a; p <= b; p++ {
			w[p] /= sum
		}
		first[i], span[i] = a, w[a:b+1]
		taps = max(taps, b-a+1)
	}
	f := filter{taps: taps, first: first, weights: make([]int32, out*taps)}
	for i, w := range span {
		// Keep taps in range: move the window left where it would run past n.
		f.first[i] = min(first[i], max(n-taps, 0))
		shift := first[i] - f.first[i]
		total := int32(0)
		for j, wt := range w {
			q := int32(math.Round(wt * fixedOne))
			f.weights[i*taps+shift+j] = q
			total += q
		}
		// Rounding leftovers go to the largest tap, so weights sum to one.
		best := i * taps
		for j := i * taps; j < (i+1)*taps; j++ {
			if f.weights[j] > f.weights[best] {
				best = j
			}
		}
		f.weights[best] += fixedOne - total
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
	cw, ch := plan.ContentWidth, plan.ContentHeight
	if cw > plan.Width || ch > plan.Height || cw <= 0 || ch <= 0 || n <= 0 {
		return dst, fmt.Errorf("input: plan %+v does not fit its content", plan)
	}
	if cap(dst) < n {
		dst = make([]uint8, n)
	}
	dst = dst[:n]
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
	fx, fy := &r.fx, &r.fy
	if cap(r.tmp) < src.Height*cw*3 {
		r.tmp = make([]int32, src.Height*cw*3)
	}
	tmp := r.tmp[:src.Height*cw*3]
	// Horizontal pass, in RGB order, over the rows the vertical pass reads.
	rowLo, rowHi := fy.first[0], min(fy.first[ch-1]+fy.taps, src.Height)
	tx := fx.taps
	for y := rowLo; y < rowHi; y++ {
		in := src.Pix[y*src.Stride : y*src.Stride+3*src.Width]
		out := tmp[y*cw*3 : (y+1)*cw*3]
		for x := range cw {
			s := in[fx.first[x]*3 : (fx.first[x]+tx)*3]
			w := fx.weights[x*tx : (x+1)*tx]
			var cr, cg, cb int32
			for j, wt := range w {
				p := s[j*3 : j*3+3]
				cr += wt * int32(p[r0])
				cg += wt * int32(p[1])
				cb += wt * int32(p[b0])
			}
			o := out[x*3 : x*3+3]
			o[0], o[1], o[2] = cr, cg, cb
		}
	}
	if cap(r.acc) < cw*3 {
		r.acc = make([]int32, cw*3)
	}
	acc := r.acc[:cw*3]
	ty := fy.taps
	for y := range ch {
		clear(acc)
		first := fy.first[y]
		for j, wt := range fy.weights[y*ty : (y+1)*ty] {
			if wt == 0 {
				continue
			}
			row := tmp[(first+j)*cw*3 : (first+j+1)*cw*3]
			// Horizontal sums carry 14 bits of fraction; drop 7 before
			// weighting again, so the products stay in int32.
			for i, v := range row {
				acc[i] += wt * (v >> 7)
			}
		}
		out := dst[y*plan.Width*3 : y*plan.Width*3+cw*3]
		for i, v := range acc {
			q := (v + 1<<20) >> 21
			out[i] = uint8(min(max(q, 0), 255))
		}
	}
	return dst, nil
}
