package box

import (
	"math"
	"testing"
)

func TestAnchorsOrderAndShape(t *testing.T) {
	// Two sizes and two ratios on a 2 x 3 map of stride 10: 4 anchors a cell,
	// index (y*3 + x)*4 + ratio*2 + size.
	cfg := AnchorConfig{Sizes: []float64{4, 8}, AspectRatios: []float64{1, 4}, Stride: 10}
	got := Anchors(nil, cfg, 2, 3)
	if len(got) != 2*3*4 {
		t.Fatalf("got %d anchors, want 24", len(got))
	}

	cases := []struct {
		index int
		want  Box
	}{
		// Cell (0,0), centre (5,5); ratio 1, size 4: 4 x 4.
		{0, Box{3, 3, 7, 7}},
		// Cell (1,2), centre (25,15); ratio 1, size 8: 8 x 8.
		{20 + 1, Box{21, 11, 29, 19}},
		// Ratio 4, size 4: sqrt(4) = 2, width 4/2 = 2, height 4*2 = 8.
		{20 + 2, Box{24, 11, 26, 19}},
		// Ratio 4, size 8: width 8/2 = 4, height 8*2 = 16.
		{20 + 3, Box{23, 7, 27, 23}},
		// Cell (0,1), centre (15,5); ratio 1, size 4.
		{4, Box{13, 3, 17, 7}},
		// Cell (1,0), centre (5,15); ratio 1, size 4.
		{12, Box{3, 13, 7, 17}},
	}
	for _, c := range cases {
		if !near(got[c.index], c.want, 1e-12) {
			t.Errorf("anchor %d = %v, want %v", c.index, got[c.index], c.want)
		}
	}

	// Every anchor's area is its size squared and its h/w its ratio.
	for i, a := range got {
		k := i % 4
		size, ratio := cfg.Sizes[k%2], cfg.AspectRatios[k/2]
		if math.Abs(a.Area()-size*size) > 1e-9 || math.Abs(a.Height()/a.Width()-ratio) > 1e-12 {
			t.Errorf("anchor %d = %v: area %v, ratio %v; want %v, %v",
				i, a, a.Area(), a.Height()/a.Width(), size*size, ratio)
		}
	}
}

func TestAnchorsAppendWithoutAllocating(t *testing.T) {
	cfg := DefaultAnchorConfig()
	marker := Box{-1, -1, -2, -2}
	dst := make([]Box, 1, 1+14*14*cfg.PerCell())
	dst[0] = marker

	got := Anchors(dst, cfg, 14, 14)
	if len(got) != 1+1568 || got[0] != marker {
		t.Fatalf("got %d boxes starting %v, want the marker and 1568 anchors", len(got), got[0])
	}
	allocs := testing.AllocsPerRun(10, func() { Anchors(dst[:1], cfg, 14, 14) })
	if allocs != 0 {
		t.Errorf("Anchors with room allocated %v times, want 0", allocs)
	}
}

func TestAnchorsInvalid(t *testing.T) {
	good := AnchorConfig{Sizes: []float64{8}, AspectRatios: []float64{1}, Stride: 4}
	bad := map[string]AnchorConfig{
		"no sizes":      {AspectRatios: []float64{1}, Stride: 4},
		"no ratios":     {Sizes: []float64{8}, Stride: 4},
		"zero stride":   {Sizes: []float64{8}, AspectRatios: []float64{1}},
		"negative size": {Sizes: []float64{-8}, AspectRatios: []float64{1}, Stride: 4},
		"NaN ratio":     {Sizes: []float64{8}, AspectRatios: []float64{math.NaN()}, Stride: 4},
		"inf size":      {Sizes: []float64{math.Inf(1)}, AspectRatios: []float64{1}, Stride: 4},
	}
	for name, cfg := range bad {
		if cfg.Validate() == nil {
			t.Errorf("%s: Validate passed", name)
		}
		if got := Anchors(nil, cfg, 2, 2); len(got) != 0 {
			t.Errorf("%s: got %d anchors, want none", name, len(got))
		}
	}
	if err := good.Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
	if got := Anchors(nil, good, 0, 5); len(got) != 0 {
		t.Errorf("empty map gave %d anchors", len(got))
	}
}

func TestPyramidAnchors(t *testing.T) {
	levels := []AnchorConfig{
		{Sizes: []float64{16}, AspectRatios: []float64{0.5, 1, 2}, Stride: 8},
		{Sizes: []float64{32}, AspectRatios: []float64{0.5, 1, 2}, Stride: 16},
	}
	sizes := []GridSize{{H: 4, W: 4}, {H: 2, W: 2}}
	got := PyramidAnchors(nil, levels, sizes)

	want := Anchors(nil, levels[0], 4, 4)
	want = Anchors(want, levels[1], 2, 2)
	if len(got) != 4*4*3+2*2*3 || len(got) != len(want) {
		t.Fatalf("got %d anchors, want %d", len(got), 60)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("anchor %d = %v, want %v", i, got[i], want[i])
		}
	}
	if got := PyramidAnchors(nil, levels, sizes[:1]); len(got) != 0 {
		t.Errorf("mismatched levels and sizes gave %d anchors", len(got))
	}
}

func TestDefaultAnchorConfig(t *testing.T) {
	cfg := DefaultAnchorConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// 4 sizes x 2 ratios; a 224 px image on stride 16 is 14 x 14 cells.
	if cfg.PerCell() != 8 || 224/cfg.Stride != 14 {
		t.Errorf("per cell %d, grid %d; want 8 and 14", cfg.PerCell(), 224/cfg.Stride)
	}
}

func BenchmarkAnchors(b *testing.B) {
	cfg := DefaultAnchorConfig()
	dst := make([]Box, 0, 14*14*cfg.PerCell())
	b.ReportAllocs()
	for b.Loop() {
		dst = Anchors(dst[:0], cfg, 14, 14)
	}
}

// near reports whether two boxes agree to within tol in every coordinate.
func near(a, b Box, tol float64) bool {
	return math.Abs(a.X1-b.X1) <= tol && math.Abs(a.Y1-b.Y1) <= tol &&
		math.Abs(a.X2-b.X2) <= tol && math.Abs(a.Y2-b.Y2) <= tol
}
