package loader

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
)

func apply3(m [9]float64, v [3]float64) [3]float64 {
	var out [3]float64
	for i := range 3 {
		out[i] = m[i*3]*v[0] + m[i*3+1]*v[1] + m[i*3+2]*v[2]
	}
	return out
}

func TestColourMatricesKeepGrey(t *testing.T) {
	grey := [3]float64{0.4, 0.4, 0.4}
	for _, m := range [][9]float64{saturationMatrix(0), saturationMatrix(1.7), hueMatrix(0.3),
		hueMatrix(-1)} {
		got := apply3(m, grey)
		for c := range 3 {
			if math.Abs(got[c]-0.4) > 1e-9 {
				t.Fatalf("matrix %v maps grey to %v", m, got)
			}
		}
	}
	id := identity3()
	for i, v := range mul3(hueMatrix(0), saturationMatrix(1)) {
		if math.Abs(v-id[i]) > 1e-9 {
			t.Fatalf("no hue turn and saturation 1 give %v, want the identity", v)
		}
	}
	// A full turn of hue comes back.
	full := hueMatrix(2 * math.Pi)
	for i, v := range full {
		if math.Abs(v-id[i]) > 1e-9 {
			t.Fatalf("a full hue turn gives %v, want the identity", full)
		}
	}
	// Saturation 0 makes the colour grey with its luma.
	red := apply3(saturationMatrix(0), [3]float64{1, 0, 0})
	if math.Abs(red[0]-0.299) > 1e-9 || red[0] != red[1] || red[1] != red[2] {
		t.Errorf("saturation 0 of red is %v, want grey 0.299", red)
	}
}

func TestAugmentValidate(t *testing.T) {
	if err := DefaultAugment().Validate(); err != nil {
		t.Fatalf("DefaultAugment: %v", err)
	}
	if err := (Augment{}).Validate(); err != nil {
		t.Fatalf("zero Augment: %v", err)
	}
	bad := []struct {
		change func(*Augment)
		field  string
	}{
		{func(a *Augment) { a.FlipProb = 1.5 }, "FlipProb"},
		{func(a *Augment) { a.Brightness = -0.1 }, "Brightness"},
		{func(a *Augment) { a.Saturation = math.NaN() }, "Saturation"},
		{func(a *Augment) { a.Hue = 0.7 }, "Hue"},
		{func(a *Augment) { a.ScaleMin, a.ScaleMax = 1.2, 0.8 }, "ScaleMin"},
		{func(a *Augment) { a.ScaleMin = 0 }, "ScaleMin"},
	}
	for _, b := range bad {
		a := DefaultAugment()
		b.change(&a)
		err := a.Validate()
		if err == nil || !strings.Contains(err.Error(), b.field) {
			t.Errorf("%+v: error %v, want one naming %s", a, err, b.field)
		}
	}
}

func TestDrawAugRanges(t *testing.T) {
	a := DefaultAugment()
	r := rand.New(rand.NewPCG(1, 2))
	flips := 0
	for range 2000 {
		s := drawAug(r, a, 224, 224, 180, 0.5)
		if s.scale < a.ScaleMin || s.scale > a.ScaleMax {
			t.Fatalf("scale %v outside [%v, %v]", s.scale, a.ScaleMin, a.ScaleMax)
		}
		// The zoomed content spans from flush left to flush right, never beyond.
		lo, hi := min(0, 224-s.scale*224), max(0, 224-s.scale*224)
		if s.tx < lo-1e-9 || s.tx > hi+1e-9 {
			t.Fatalf("shift %v outside [%v, %v] at scale %v", s.tx, lo, hi, s.scale)
		}
		if s.flip {
			flips++
		}
	}
	if flips < 900 || flips > 1100 {
		t.Errorf("%d flips in 2000 at probability 0.5", flips)
	}
}

func TestMapBoxesDropsMostlyHidden(t *testing.T) {
	s := sampleAug{scale: 1, tx: -50} // the input's left 50 px are cut off
	boxes := []box.Box{
		{X1: 0, Y1: 0, X2: 60, Y2: 10},    // 1/6 left in view: dropped
		{X1: 20, Y1: 0, X2: 80, Y2: 10},   // half left: kept at MinVisible 0.5
		{X1: 100, Y1: 0, X2: 150, Y2: 10}, // all in view
	}
	kept, idx := mapBoxes(boxes, s, 224, 0.5)
	if len(idx) != 2 || idx[0] != 1 || idx[1] != 2 {
		t.Fatalf("kept %v (%v), want boxes 1 and 2", idx, kept)
	}
	if want := (box.Box{X1: 0, Y1: 0, X2: 30, Y2: 10}); kept[0] != want {
		t.Errorf("box 1 became %v, want it clipped to %v", kept[0], want)
	}
	s.flip = true
	kept, _ = mapBoxes(boxes[2:], s, 224, 0.5)
	if want := (box.Box{X1: 124, Y1: 0, X2: 174, Y2: 10}); kept[0] != want {
		t.Errorf("mirrored box is %v, want %v", kept[0], want)
	}
}
