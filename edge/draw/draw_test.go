package draw

import (
	"image"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// photo returns the first val photograph of the facemask set as a frame.
func photo(t testing.TB) *camera.Frame {
	t.Helper()
	src, err := camera.Open(fixture.Path(t, "facemask", "val", "images"), camera.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f camera.Frame
	if err := src.Read(&f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func at(f *camera.Frame, x, y int) BGR {
	i := y*f.Stride + 3*x
	return BGR{f.Pix[i], f.Pix[i+1], f.Pix[i+2]}
}

func TestFillAndRectClip(t *testing.T) {
	var f camera.Frame
	f.Reset(20, 10)
	FillRect(&f, image.Rect(-5, -5, 3, 3), Red)
	if at(&f, 0, 0) != Red || at(&f, 2, 2) != Red || at(&f, 3, 3) != Black {
		t.Error("FillRect clipped wrongly at the top-left")
	}
	Rect(&f, image.Rect(15, 5, 40, 40), Green, 2)
	if at(&f, 15, 9) != Green || at(&f, 16, 6) != Green || at(&f, 18, 8) != Black {
		t.Error("Rect partly outside the frame drawn wrongly")
	}
	BlendRect(&f, image.Rect(0, 0, 1, 1), White, 128)
	if c := at(&f, 0, 0); c.R < 230 || c.B < 120 || c.B > 150 {
		t.Errorf("half blend of white over red = %v", c)
	}
}

func TestFacesDrawsColouredBoxes(t *testing.T) {
	f := photo(t)
	orig := *f
	orig.Pix = append([]byte(nil), f.Pix...)
	a := NewAnnotator(Texts{})
	faces := []detect.Face{
		{Box: box.Box{X1: 40, Y1: 60, X2: 100, Y2: 130}, Proper: true, Score: 0.93},
		{Box: box.Box{X1: 200, Y1: 100, X2: 260, Y2: 170}, Proper: false, Score: 0.81},
		{Box: box.Box{X1: -20, Y1: -20, X2: 10, Y2: 5}, Proper: false, Score: 0.5},
	}
	if err := a.Faces(f, faces); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		x, y int
		want BGR
	}{{40, 100, Green}, {99, 100, Green}, {200, 150, Red}, {259, 120, Red}} {
		if got := at(f, c.x, c.y); got != c.want {
			t.Errorf("pixel (%d,%d) = %v, want %v", c.x, c.y, got, c.want)
		}
	}
	if at(f, 70, 95) != at(&orig, 70, 95) {
		t.Error("the inside of a box was painted")
	}
	// The label sits above the box: white text on the box colour.
	whites := 0
	for y := 60 - a.small.Height(); y < 60; y++ {
		for x := 40; x < 100; x++ {
			if c := at(f, x, y); c.B > 200 && c.R > 200 {
				whites++
			}
		}
	}
	if whites < 20 {
		t.Errorf("label above the green box has %d white pixels", whites)
	}
}

func TestTextMeasure(t *testing.T) {
	ft, err := NewFont(20, false)
	if err != nil {
		t.Fatal(err)
	}
	var f camera.Frame
	f.Reset(200, 40)
	end := ft.Draw(&f, 5, 5, "no mask 0.93", White)
	w := ft.Measure("no mask 0.93")
	if end < 5+w-1 || end > 5+w+1 {
		t.Errorf("Draw ended at %d, Measure says %d wide from 5", end, w)
	}
	lit, minX, maxX := 0, 1000, 0
	for y := 0; y < 40; y++ {
		for x := 0; x < 200; x++ {
			if at(&f, x, y).G > 128 {
				lit++
				minX, maxX = min(minX, x), max(maxX, x)
			}
		}
	}
	if lit < 100 || minX < 5 || maxX > 5+w {
		t.Errorf("text lit %d pixels from x=%d to %d, want within [5, %d]", lit, minX, maxX, 5+w)
	}
}

func variance(f *camera.Frame, r image.Rectangle) float64 {
	var s, s2, n float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			v := float64(at(f, x, y).G)
			s += v
			s2 += v * v
			n++
		}
	}
	m := s / n
	return s2/n - m*m
}

func TestBlurHidesDetail(t *testing.T) {
	f := photo(t)
	r := image.Rect(50, 50, 170, 190)
	before := variance(f, r)
	outside := at(f, 49, 100)
	var b Blurrer
	b.Blur(f, r)
	// High-frequency detail: the variance of differences between neighbours.
	if after := variance(f, r); after > before {
		t.Errorf("variance grew from %.1f to %.1f", before, after)
	}
	var diff float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X + 1; x < r.Max.X; x++ {
			d := float64(at(f, x, y).G) - float64(at(f, x-1, y).G)
			diff += d * d
		}
	}
	if diff /= float64(r.Dx() * r.Dy()); diff > 2 {
		t.Errorf("neighbouring pixels differ by %.2f (squared) after blurring", diff)
	}
	if at(f, 49, 100) != outside {
		t.Error("a pixel outside the region changed")
	}
}

func TestBannerForNearestFace(t *testing.T) {
	a := NewAnnotator(Texts{KioskOK: "Welcome"})
	var f camera.Frame
	f.Reset(640, 480)
	faces := []detect.Face{
		{Box: box.Box{X1: 10, Y1: 10, X2: 40, Y2: 40}, Proper: true},
		{Box: box.Box{X1: 100, Y1: 100, X2: 300, Y2: 300}, Proper: false},
	}
	if Nearest(faces) != 1 {
		t.Fatalf("nearest face %d, want the larger, 1", Nearest(faces))
	}
	if ok, err := a.Banner(&f, faces); !ok || err != nil {
		t.Fatalf("Banner: %v %v", ok, err)
	}
	if at(&f, 2, 478) != Red {
		t.Errorf("banner for no mask is %v, want red", at(&f, 2, 478))
	}
	faces[1].Proper = true
	a.Banner(&f, faces)
	if at(&f, 2, 478) != Green {
		t.Errorf("banner for a mask is %v, want green", at(&f, 2, 478))
	}
	band, _ := a.BannerRect(640, 480)
	if band.Dy() < 480/12 || band.Max.Y != 480 {
		t.Errorf("banner %v too small to read at a distance", band)
	}
	var clear camera.Frame
	clear.Reset(64, 48)
	if ok, _ := a.Banner(&clear, nil); ok {
		t.Error("banner drawn with no face")
	}
}

func TestNoSignalCard(t *testing.T) {
	a := NewAnnotator(Texts{})
	var f camera.Frame
	if err := a.NoSignal(&f, 320, 240, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if f.Width != 320 || at(&f, 0, 0) != Gray {
		t.Fatalf("card %dx%d corner %v", f.Width, f.Height, at(&f, 0, 0))
	}
	whites := 0
	for i := 0; i < len(f.Pix); i += 3 {
		if f.Pix[i] == 255 {
			whites++
		}
	}
	if whites < 200 {
		t.Errorf("no-signal text has %d white pixels", whites)
	}
}

func BenchmarkAnnotate(b *testing.B) {
	f := photo(b)
	a := NewAnnotator(Texts{})
	faces := []detect.Face{
		{Box: box.Box{X1: 40, Y1: 60, X2: 100, Y2: 130}, Proper: true, Score: 0.93},
		{Box: box.Box{X1: 200, Y1: 100, X2: 260, Y2: 170}, Score: 0.81},
	}
	for i := 0; i < b.N; i++ {
		a.Blur(f, faces)
		a.Faces(f, faces)
		a.Overlay(f, Overlay{FPS: 30, Latency: 33 * time.Millisecond, Model: "tflite int8"})
	}
}
