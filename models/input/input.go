// Package input turns a camera frame or a photograph into the detector's
// stage-1 input: how large the input is for a frame of a given size, the
// letterbox that maps boxes back to the frame, the resize, and the
// normalisation or int8 quantisation of the pixels. The exporter (for
// calibration) and both detector engines share it, so every path feeds the
// network the same numbers.
package input

import (
	"fmt"
	"math"

	"github.com/maskwatch/maskwatch/models/box"
)

// Spec is how a frame becomes stage 1's input. It is stored in every model
// bundle.
//
// A frame whose longer side exceeds MaxSide is shrunk so that side is
// MaxSide; a smaller frame keeps its size (it is never enlarged). The image
// sits in the input's top-left corner and the input is padded below and to
// the right, with the mean colour, up to multiples of Multiple. A 640x480
// camera frame at MaxSide 320 becomes a 320x256 input (the frame at half
// size, 320x240, and 16 rows of padding); a 224x224 crop of the study is
// used as it is, as in training.
//
// Why 320: the detector's anchors span 64 to 160 input pixels, fitted to the
// study's faces of 44 to 161 px in 224 px crops. At half size, faces of
// 128 to 320 px in a 640x480 frame (a person within about 1.5 m of a
// webcam) land on those anchors. The cost: smaller, farther faces are
// missed. MaxSide 640 would find faces half that size at about four times
// the compute of stage 1.
type Spec struct {
	MaxSide  int `json:"max_side"`
	Multiple int `json:"multiple"`
	// Mean and Std normalise RGB values in [0, 1], channel by channel:
	// (v/255 - Mean) / Std.
	Mean [3]float32 `json:"mean"`
	Std  [3]float32 `json:"std"`
}

// DefaultMaxSide is the MaxSide of exported bundles unless told otherwise.
const DefaultMaxSide = 320

// Validate reports a Spec that cannot make inputs.
func (s Spec) Validate() error {
	if s.Multiple <= 0 || s.MaxSide < s.Multiple {
		return fmt.Errorf("input: max side %d and multiple %d: want a positive multiple "+
			"and a max side at least that", s.MaxSide, s.Multiple)
	}
	for c := range 3 {
		m, d := float64(s.Mean[c]), float64(s.Std[c])
		if math.IsNaN(m) || math.IsInf(m, 0) || !(d > 0) || math.IsInf(d, 0) {
			return fmt.Errorf("input: channel %d: mean %v, std %v: want finite values "+
				"and a positive std", c, m, d)
		}
	}
	return nil
}

// Plan is how one frame size maps onto the input.
type Plan struct {
	// Width and Height are the input's size, multiples of Spec.Multiple.
	Width, Height int
	// ContentWidth and ContentHeight are the part of the input the frame
	// covers, from the top-left corner; the rest is padding.
	ContentWidth, ContentHeight int
	// Letterbox maps boxes between frame and input pixels.
	Letterbox box.Letterbox
}

// Plan returns the input for a w x h frame. The error reports an empty or
// absurd frame size.
func (s Spec) Plan(w, h int) (Plan, error) {
	if err := s.Validate(); err != nil {
		return Plan{}, err
	}
	if w <= 0 || h <= 0 || w > 1<<15 || h > 1<<15 {
		return Plan{}, fmt.Errorf("input: frame of %dx%d pixels: want 1 to 32768 a side", w, h)
	}
	scale := min(1, float64(s.MaxSide)/float64(max(w, h)))
	cw := min(max(int(math.Round(float64(w)*scale)), 1), s.MaxSide)
	ch := min(max(int(math.Round(float64(h)*scale)), 1), s.MaxSide)
	up := func(n int) int { return (n + s.Multiple - 1) / s.Multiple * s.Multiple }
	return Plan{
		Width: up(cw), Height: up(ch), ContentWidth: cw, ContentHeight: ch,
		Letterbox: box.Letterbox{Scale: scale},
	}, nil
}

// PadColour is the 8-bit RGB colour of the padding: the mean, which
// normalises to about zero, as training pads.
func (s Spec) PadColour() [3]uint8 {
	var p [3]uint8
	for c := range 3 {
		p[c] = uint8(math.Round(min(max(float64(s.Mean[c]), 0), 1) * 255))
	}
	return p
}

// Range is the smallest and largest normalised value a pixel can take:
// what an int8 input must represent.
func (s Spec) Range() (lo, hi float32) {
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	for c := range 3 {
		a, b := (0-s.Mean[c])/s.Std[c], (1-s.Mean[c])/s.Std[c]
		lo, hi = min(lo, a, b), max(hi, a, b)
	}
	return lo, hi
}

// FloatTable maps each 8-bit value of each RGB channel to its normalised
// float32.
func (s Spec) FloatTable() *[3][256]float32 {
	var t [3][256]float32
	for c := range 3 {
		for v := range 256 {
			t[c][v] = (float32(v)/255 - s.Mean[c]) / s.Std[c]
		}
	}
	return &t
}

// Int8Table maps each 8-bit value of each RGB channel to its normalised
// value quantised as q = round(v/scale) + zeroPoint, clamped to int8.
func (s Spec) Int8Table(scale float32, zeroPoint int32) *[3][256]int8 {
	f := s.FloatTable()
	var t [3][256]int8
	for c := range 3 {
		for v := range 256 {
			q := math.Round(float64(f[c][v])/float64(scale)) + float64(zeroPoint)
			t[c][v] = int8(min(max(q, -128), 127))
		}
	}
	return &t
}

// Normalize writes the RGB pixels rgb (as Resizer writes them) into dst as
// normalised float32, reusing dst when it is large enough.
func Normalize(dst []float32, rgb []uint8, t *[3][256]float32) []float32 {
	if cap(dst) < len(rgb) {
		dst = make([]float32, len(rgb))
	}
	dst = dst[:len(rgb)]
	for i := 0; i+2 < len(rgb); i += 3 {
		dst[i], dst[i+1], dst[i+2] = t[0][rgb[i]], t[1][rgb[i+1]], t[2][rgb[i+2]]
	}
	return dst
}

// Quantize writes the RGB pixels rgb into dst as int8 through t (see
// Int8Table); dst must be as long as rgb.
func Quantize(dst []int8, rgb []uint8, t *[3][256]int8) {
	for i := 0; i+2 < len(rgb) && i+2 < len(dst); i += 3 {
		dst[i], dst[i+1], dst[i+2] = t[0][rgb[i]], t[1][rgb[i+1]], t[2][rgb[i+2]]
	}
}
