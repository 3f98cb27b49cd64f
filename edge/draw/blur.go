package draw

import (
	"image"

	"github.com/maskwatch/maskwatch/camera"
)

// Blurrer hides faces: three passes of a box blur whose radius is a fifth of
// the region's smaller side (at least 4 pixels), which leaves no feature a
// person could recognise. It keeps its scratch memory between calls and is
// not safe for concurrent use.
type Blurrer struct {
	line []int32
}

// Blur blurs r (clipped to the frame) in place; pixels outside r are
// neither read nor changed.
func (b *Blurrer) Blur(f *camera.Frame, r image.Rectangle) {
	r = r.Intersect(bounds(f))
	if r.Dx() < 2 || r.Dy() < 2 {
		return
	}
	radius := max(4, min(r.Dx(), r.Dy())/5)
	n := max(r.Dx(), r.Dy())
	if cap(b.line) < 3*n {
		b.line = make([]int32, 3*n)
	}
	line := b.line[:3*n]
	for pass := 0; pass < 3; pass++ {
		for y := r.Min.Y; y < r.Max.Y; y++ {
			off := y*f.Stride + 3*r.Min.X
			boxLine(f.Pix, off, 3, r.Dx(), radius, line)
		}
		for x := r.Min.X; x < r.Max.X; x++ {
			off := r.Min.Y*f.Stride + 3*x
			boxLine(f.Pix, off, f.Stride, r.Dy(), radius, line)
		}
	}
}

// boxLine replaces n pixels starting at pix[off], step bytes apart, by the
// mean of the pixels within radius (the line's ends repeat its edge pixels).
func boxLine(pix []byte, off, step, n, radius int, line []int32) {
	for i := 0; i < n; i++ {
		p := off + i*step
		line[3*i], line[3*i+1], line[3*i+2] = int32(pix[p]), int32(pix[p+1]), int32(pix[p+2])
	}
	at := func(i int) int { return 3 * max(0, min(n-1, i)) }
	var s0, s1, s2 int32
	for i := -radius; i <= radius; i++ {
		j := at(i)
		s0, s1, s2 = s0+line[j], s1+line[j+1], s2+line[j+2]
	}
	win := int32(2*radius + 1)
	for i := 0; i < n; i++ {
		p := off + i*step
		pix[p], pix[p+1], pix[p+2] = uint8(s0/win), uint8(s1/win), uint8(s2/win)
		in, out := at(i+radius+1), at(i-radius)
		s0 += line[in] - line[out]
		s1 += line[in+1] - line[out+1]
		s2 += line[in+2] - line[out+2]
	}
}
