package loader

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/maskwatch/maskwatch/models/box"
)

// Augment sets the random changes made to each training image. The zero value
// changes nothing; DefaultAugment gives the training defaults.
//
// Geometry: the image is zoomed by a factor drawn from [ScaleMin, ScaleMax] and
// placed at a random offset, so that a zoom above 1 crops the image and one below
// 1 pads it (with the mean colour); then it is mirrored left to right with
// probability FlipProb. Boxes follow exactly and are clipped to the input. A box
// is kept in a sample's targets only while at least MinVisible of its area stays
// inside the input; otherwise it is dropped from that sample's targets (the face
// stays in the pixels, unlabelled).
//
// Colour: brightness, contrast and saturation factors are drawn from
// [1-x, 1+x] and the hue is turned by up to Hue of a full turn (in YIQ space).
// The four are applied in that fixed order as one linear map and the result is
// clipped to [0, 1] once, where torchvision clips after each and shuffles the
// order; contrast pulls towards the mean grey of the whole original image.
type Augment struct {
	FlipProb           float64 // probability of a left-right mirror, in [0, 1]
	ScaleMin, ScaleMax float64 // zoom range; both 0 for no zoom, else 0 < min <= max
	MinVisible         float64 // fraction of a box's area that must stay in view, in [0, 1]
	Brightness         float64 // in [0, 1]
	Contrast           float64 // in [0, 1]
	Saturation         float64 // in [0, 1]
	Hue                float64 // fraction of a full turn, in [0, 0.5]
}

// DefaultAugment is the training default: flips half the time, zoom 0.75 to 1.25,
// boxes kept while half their area stays in view, brightness, contrast and
// saturation jitter 0.2 and hue jitter 0.02 of a turn.
func DefaultAugment() Augment {
	return Augment{
		FlipProb: 0.5, ScaleMin: 0.75, ScaleMax: 1.25, MinVisible: 0.5,
		Brightness: 0.2, Contrast: 0.2, Saturation: 0.2, Hue: 0.02,
	}
}

// Enabled reports whether a changes anything.
func (a Augment) Enabled() bool {
	return a.FlipProb > 0 || a.geometric() || a.colour()
}

func (a Augment) geometric() bool { return a.ScaleMin != 0 || a.ScaleMax != 0 }

func (a Augment) colour() bool {
	return a.Brightness > 0 || a.Contrast > 0 || a.Saturation > 0 || a.Hue > 0
}

// Validate names the first field out of range and what it should be.
func (a Augment) Validate() error {
	unit := []struct {
		name string
		v    float64
	}{
		{"FlipProb", a.FlipProb}, {"MinVisible", a.MinVisible},
		{"Brightness", a.Brightness}, {"Contrast", a.Contrast}, {"Saturation", a.Saturation},
	}
	for _, f := range unit {
		if !(f.v >= 0 && f.v <= 1) {
			return fmt.Errorf("Augment.%s is %v: it must lie in [0, 1] (0 turns it off; "+
				"DefaultAugment uses %v)", f.name, f.v, defaultOf(f.name))
		}
	}
	if !(a.Hue >= 0 && a.Hue <= 0.5) {
		return fmt.Errorf("Augment.Hue is %v: it is a fraction of a full turn and must lie "+
			"in [0, 0.5] (0 turns it off; DefaultAugment uses 0.02)", a.Hue)
	}
	if a.geometric() && !(a.ScaleMin > 0 && a.ScaleMin <= a.ScaleMax && a.ScaleMax < 100) {
		return fmt.Errorf("Augment.ScaleMin, ScaleMax are %v, %v: set both to 0 for no zoom, "+
			"or 0 < ScaleMin <= ScaleMax (DefaultAugment uses 0.75, 1.25)", a.ScaleMin, a.ScaleMax)
	}
	return nil
}

func defaultOf(field string) float64 {
	d := DefaultAugment()
	return map[string]float64{
		"FlipProb": d.FlipProb, "MinVisible": d.MinVisible, "Brightness": d.Brightness,
		"Contrast": d.Contrast, "Saturation": d.Saturation,
	}[field]
}

// sampleAug is the augmentation drawn for one sample.
type sampleAug struct {
	flip   bool
	scale  float64 // zoom about the input's origin
	tx, ty float64 // then this shift, in input pixels
	// colour maps 0..255 RGB to [0, 1] RGB before clipping: m·rgb + offset.
	m      [9]float32
	offset float32
}

// geometry is the sample's zoom and shift as a letterbox from cached-input pixels
// to augmented-input pixels (the mirror, if any, comes after it).
func (s sampleAug) geometry() box.Letterbox {
	return box.Letterbox{Scale: s.scale, PadX: s.tx, PadY: s.ty}
}

// drawAug draws a sample's augmentation. cw, ch is the size of the image content
// in the cached input (the rest is padding) and grey its mean grey in [0, 1].
// Every value is drawn whether used or not, so the stream stays aligned.
func drawAug(r *rand.Rand, a Augment, size, cw, ch int, grey float64) sampleAug {
	u := func() float64 { return r.Float64() }
	flip, zoom, offX, offY := u(), u(), u(), u()
	bright, contrast, sat, hue := u(), u(), u(), u()

	s := sampleAug{flip: flip < a.FlipProb, scale: 1}
	if a.geometric() {
		s.scale = a.ScaleMin + (a.ScaleMax-a.ScaleMin)*zoom
		// The zoomed content lands anywhere from flush left to flush right: when it is
		// wider than the input that crops, when narrower it pads.
		s.tx = offX * (float64(size) - s.scale*float64(cw))
		s.ty = offY * (float64(size) - s.scale*float64(ch))
	}

	b := 1 + a.Brightness*(2*bright-1)
	c := 1 + a.Contrast*(2*contrast-1)
	m := saturationMatrix(1 + a.Saturation*(2*sat-1))
	if a.Hue > 0 {
		m = mul3(hueMatrix(2*math.Pi*a.Hue*(2*hue-1)), m)
	}
	// brightness then contrast: c·(b·x) + (1-c)·b·grey; saturation and hue keep grey
	// as it is, so the offset passes through them.
	for i := range m {
		s.m[i] = float32(m[i] * b * c / 255)
	}
	s.offset = float32((1 - c) * b * grey)
	return s
}

// lumaWeights are the Y row of YIQ: the grey that saturation and hue keep.
var lumaWeights = [3]float64{0.299, 0.587, 0.114}

// rgbToYIQ is the NTSC YIQ transform; yiqToRGB its exact inverse.
var (
	rgbToYIQ = [9]float64{
		0.299, 0.587, 0.114,
		0.596, -0.274, -0.322,
		0.211, -0.523, 0.312,
	}
	yiqToRGB = inverse3(rgbToYIQ)
)

func identity3() [9]float64 { return [9]float64{1, 0, 0, 0, 1, 0, 0, 0, 1} }

// saturationMatrix blends each colour with its grey: f = 0 is grey, f = 1 unchanged.
func saturationMatrix(f float64) [9]float64 {
	var m [9]float64
	for i := range 3 {
		for j := range 3 {
			m[i*3+j] = (1 - f) * lumaWeights[j]
			if i == j {
				m[i*3+j] += f
			}
		}
	}
	return m
}

// hueMatrix turns the hue by angle radians about the grey axis of YIQ.
func hueMatrix(angle float64) [9]float64 {
	cos, sin := math.Cos(angle), math.Sin(angle)
	rot := [9]float64{1, 0, 0, 0, cos, -sin, 0, sin, cos}
	return mul3(yiqToRGB, mul3(rot, rgbToYIQ))
}

func mul3(a, b [9]float64) [9]float64 {
	var m [9]float64
	for i := range 3 {
		for j := range 3 {
			for k := range 3 {
				m[i*3+j] += a[i*3+k] * b[k*3+j]
			}
		}
	}
	return m
}

func inverse3(m [9]float64) [9]float64 {
	a, b, c := m[0], m[1], m[2]
	d, e, f := m[3], m[4], m[5]
	g, h, i := m[6], m[7], m[8]
	det := a*(e*i-f*h) - b*(d*i-f*g) + c*(d*h-e*g)
	return [9]float64{
		(e*i - f*h) / det, (c*h - b*i) / det, (b*f - c*e) / det,
		(f*g - d*i) / det, (a*i - c*g) / det, (c*d - a*f) / det,
		(d*h - e*g) / det, (b*g - a*h) / det, (a*e - b*d) / det,
	}
}

// render writes the augmented, normalised sample into dst (size x size x 3) from
// a cached canvas (size x size with a one-pixel border of padding), resampling
// bilinearly; whatever falls outside the canvas reads the padding.
func render(dst []float32, canvas []uint8, size int, s sampleAug, norm Normalize) {
	stride := (size + 2) * 3
	xs := axisTaps(size, s.scale, s.tx, s.flip)
	ys := axisTaps(size, s.scale, s.ty, false)
	var inv [3]float32
	for c := range 3 {
		inv[c] = 1 / norm.Std[c]
	}
	m := s.m
	for v := range size {
		y := ys[v]
		row0 := canvas[y.i0*stride:]
		row1 := canvas[y.i1*stride:]
		out := dst[v*size*3 : (v+1)*size*3]
		for u := range size {
			x := xs[u]
			var rgb [3]float32
			for c := range 3 {
				top := float32(row0[x.i0*3+c])*(1-x.f) + float32(row0[x.i1*3+c])*x.f
				bot := float32(row1[x.i0*3+c])*(1-x.f) + float32(row1[x.i1*3+c])*x.f
				rgb[c] = top*(1-y.f) + bot*y.f
			}
			for c := range 3 {
				val := m[c*3]*rgb[0] + m[c*3+1]*rgb[1] + m[c*3+2]*rgb[2] + s.offset
				val = min(max(val, 0), 1)
				out[u*3+c] = (val - norm.Mean[c]) * inv[c]
			}
		}
	}
}

// tap is where one output pixel reads along an axis: two neighbouring canvas
// indices (border included) and the weight of the second.
type tap struct {
	i0, i1 int
	f      float32
}

// axisTaps maps each output pixel along an axis back through the zoom and shift
// (and a mirror) to the canvas. Indices past the canvas are clamped onto its
// border, which holds the padding colour.
func axisTaps(size int, scale, shift float64, flip bool) []tap {
	taps := make([]tap, size)
	for u := range size {
		p := u
		if flip {
			p = size - 1 - u
		}
		src := (float64(p)+0.5-shift)/scale - 0.5 // in interior pixel indices
		f := math.Floor(src)
		i0 := min(max(int(f)+1, 0), size+1) // +1 for the border
		i1 := min(max(int(f)+2, 0), size+1)
		taps[u] = tap{i0: i0, i1: i1, f: float32(src - f)}
	}
	return taps
}

// mapBoxes moves boxes from the cached input into the augmented input: zoom and
// shift, mirror, clip to the input, and drop those with less than minVisible of
// their area left in view. It returns the kept boxes and their indices.
func mapBoxes(boxes []box.Box, s sampleAug, size int, minVisible float64) ([]box.Box, []int) {
	g := s.geometry()
	fs := float64(size)
	var kept []box.Box
	var idx []int
	for i, b := range boxes {
		m := g.ToModel(b)
		if s.flip {
			m.X1, m.X2 = fs-m.X2, fs-m.X1
		}
		c := m.Clip(fs, fs)
		if c.Empty() || c.Area() < minVisible*m.Area() {
			continue
		}
		kept = append(kept, c)
		idx = append(idx, i)
	}
	return kept, idx
}
