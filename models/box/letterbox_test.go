package box

import (
	"math"
	"testing"
)

func letterboxNear(a, b Box, tol float64) bool {
	return math.Abs(a.X1-b.X1) <= tol && math.Abs(a.Y1-b.Y1) <= tol &&
		math.Abs(a.X2-b.X2) <= tol && math.Abs(a.Y2-b.Y2) <= tol
}

func TestFitLetterboxIdentity(t *testing.T) {
	l := FitLetterbox(224, 224, 224)
	if l != (Letterbox{Scale: 1}) {
		t.Fatalf("FitLetterbox(224, 224, 224) = %+v, want the identity", l)
	}
	b := Box{X1: 10.5, Y1: 3, X2: 200, Y2: 224}
	if got := l.ToModel(b); got != b {
		t.Errorf("ToModel(%v) = %v, want it unchanged", b, got)
	}
	if got := l.ToImage(b); got != b {
		t.Errorf("ToImage(%v) = %v, want it unchanged", b, got)
	}
}

func TestFitLetterboxNonSquare(t *testing.T) {
	tests := []struct {
		w, h, size int
		scale      float64
		corner     Box // the image's full extent, in model pixels
	}{
		{600, 400, 224, 224.0 / 600, Box{X2: 224, Y2: 400 * 224.0 / 600}},
		{300, 450, 224, 224.0 / 450, Box{X2: 300 * 224.0 / 450, Y2: 224}},
		{112, 100, 224, 2, Box{X2: 224, Y2: 200}},
		{219, 224, 224, 1, Box{X2: 219, Y2: 224}},
	}
	for _, tt := range tests {
		l := FitLetterbox(tt.w, tt.h, tt.size)
		if math.Abs(l.Scale-tt.scale) > 1e-12 || l.PadX != 0 || l.PadY != 0 {
			t.Errorf("FitLetterbox(%d, %d, %d) = %+v, want Scale %g at the origin",
				tt.w, tt.h, tt.size, l, tt.scale)
		}
		whole := Box{X2: float64(tt.w), Y2: float64(tt.h)}
		if got := l.ToModel(whole); !letterboxNear(got, tt.corner, 1e-9) {
			t.Errorf("%dx%d: the whole image maps to %v, want %v", tt.w, tt.h, got, tt.corner)
		}
	}
}

func TestLetterboxRoundTrip(t *testing.T) {
	boxes := []Box{
		{X1: 0, Y1: 0, X2: 1, Y2: 1},
		{X1: 12.25, Y1: 40, X2: 380.5, Y2: 399},
		{X1: -5, Y1: 3, X2: 610, Y2: 7}, // running past the image survives too
	}
	letterboxes := []Letterbox{
		FitLetterbox(600, 400, 224),
		FitLetterbox(193, 600, 224),
		FitLetterbox(50, 30, 320),
		{Scale: 1.2, PadX: -17.5, PadY: 30},
	}
	for _, l := range letterboxes {
		for _, b := range boxes {
			if got := l.ToImage(l.ToModel(b)); !letterboxNear(got, b, 1e-9) {
				t.Errorf("%+v: ToImage(ToModel(%v)) = %v", l, b, got)
			}
			if got := l.ToModel(l.ToImage(b)); !letterboxNear(got, b, 1e-9) {
				t.Errorf("%+v: ToModel(ToImage(%v)) = %v", l, b, got)
			}
		}
	}
}

func TestLetterboxThen(t *testing.T) {
	fit := FitLetterbox(600, 400, 224)
	zoom := Letterbox{Scale: 1.25, PadX: -20, PadY: 7}
	both := fit.Then(zoom)
	b := Box{X1: 100, Y1: 50, X2: 300, Y2: 390}
	if got, want := both.ToModel(b), zoom.ToModel(fit.ToModel(b)); !letterboxNear(got, want, 1e-9) {
		t.Errorf("Then: %v, mapping one after the other: %v", got, want)
	}
}

func TestFitLetterboxInvalid(t *testing.T) {
	for _, c := range [][3]int{{0, 10, 224}, {10, -1, 224}, {10, 10, 0}} {
		if l := FitLetterbox(c[0], c[1], c[2]); l != (Letterbox{}) {
			t.Errorf("FitLetterbox%v = %+v, want the zero Letterbox", c, l)
		}
	}
}
