package draw

import (
	"fmt"
	"image"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/maskwatch/maskwatch/camera"
)

// Font draws text of one size with the Go fonts (embedded, so no font file
// is needed on a device). Glyphs are rendered once and kept. A Font is not
// safe for concurrent use.
type Font struct {
	face    font.Face
	glyphs  map[rune]*glyph
	ascent  int
	descent int
}

type glyph struct {
	off     image.Point // top-left of the mask relative to the dot
	mask    *image.Alpha
	advance fixed.Int26_6
}

// NewFont makes a font whose lines are about px pixels high.
func NewFont(px float64, bold bool) (*Font, error) {
	data := goregular.TTF
	if bold {
		data = gobold.TTF
	}
	ttf, err := opentype.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("font: %w", err)
	}
	face, err := opentype.NewFace(ttf, &opentype.FaceOptions{
		Size: px * 0.8, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, fmt.Errorf("font: %w", err)
	}
	m := face.Metrics()
	return &Font{face: face, glyphs: map[rune]*glyph{},
		ascent: m.Ascent.Ceil(), descent: m.Descent.Ceil()}, nil
}

// Height is the line height in pixels (ascent plus descent).
func (ft *Font) Height() int { return ft.ascent + ft.descent }

// Ascent is the distance from the top of a line to its baseline.
func (ft *Font) Ascent() int { return ft.ascent }

func (ft *Font) glyph(r rune) *glyph {
	if g, ok := ft.glyphs[r]; ok {
		return g
	}
	g := &glyph{mask: image.NewAlpha(image.Rectangle{})}
	dr, mask, mp, adv, ok := ft.face.Glyph(fixed.Point26_6{}, r)
	if !ok {
		dr, mask, mp, adv, _ = ft.face.Glyph(fixed.Point26_6{}, '?')
	}
	g.advance = adv
	g.off = dr.Min
	if mask != nil && !dr.Empty() {
		a := image.NewAlpha(image.Rect(0, 0, dr.Dx(), dr.Dy()))
		for y := 0; y < dr.Dy(); y++ {
			for x := 0; x < dr.Dx(); x++ {
				_, _, _, al := mask.At(mp.X+x, mp.Y+y).RGBA()
				a.Pix[y*a.Stride+x] = uint8(al >> 8)
			}
		}
		g.mask = a
	}
	ft.glyphs[r] = g
	return g
}

// Measure returns the width of s in pixels.
func (ft *Font) Measure(s string) int {
	var w fixed.Int26_6
	prev := rune(-1)
	for _, r := range s {
		if prev >= 0 {
			w += ft.face.Kern(prev, r)
		}
		w += ft.glyph(r).advance
		prev = r
	}
	return w.Ceil()
}

// Draw writes s with its top-left corner at (x, y) in colour c and returns
// the x just past the text.
func (ft *Font) Draw(f *camera.Frame, x, y int, s string, c BGR) int {
	dot := fixed.I(x)
	base := y + ft.ascent
	prev := rune(-1)
	fb := bounds(f)
	for _, r := range s {
		if prev >= 0 {
			dot += ft.face.Kern(prev, r)
		}
		g := ft.glyph(r)
		at := image.Pt(dot.Round()+g.off.X, base+g.off.Y)
		blendMask(f, fb, at, g.mask, c)
		dot += g.advance
		prev = r
	}
	return dot.Ceil()
}

// blendMask paints c through an alpha mask placed at `at`.
func blendMask(f *camera.Frame, fb image.Rectangle, at image.Point, m *image.Alpha, c BGR) {
	r := m.Rect.Add(at).Intersect(fb)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		mrow := m.Pix[(y-at.Y)*m.Stride:]
		prow := f.Pix[y*f.Stride:]
		for x := r.Min.X; x < r.Max.X; x++ {
			a := uint32(mrow[x-at.X])
			if a == 0 {
				continue
			}
			na := 255 - a
			i := 3 * x
			prow[i] = uint8((uint32(prow[i])*na + uint32(c.B)*a) / 255)
			prow[i+1] = uint8((uint32(prow[i+1])*na + uint32(c.G)*a) / 255)
			prow[i+2] = uint8((uint32(prow[i+2])*na + uint32(c.R)*a) / 255)
		}
	}
}

// Label draws s in c on a filled box of colour bg whose top-left is (x, y),
// kept inside the frame; it returns the box it filled.
func (ft *Font) Label(f *camera.Frame, x, y int, s string, c, bg BGR) image.Rectangle {
	pad := max(2, ft.Height()/8)
	w, h := ft.Measure(s)+2*pad, ft.Height()+pad
	x = max(0, min(x, f.Width-w))
	y = max(0, min(y, f.Height-h))
	r := image.Rect(x, y, x+w, y+h)
	FillRect(f, r, bg)
	ft.Draw(f, x+pad, y+pad/2, s, c)
	return r
}
