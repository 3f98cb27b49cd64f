package box

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ramp is an h x w x c NHWC map with value 1 + 2x + 3y + 10ch at cell
// (y, x), channel ch. Bilinear sampling reproduces a linear function
// exactly, so inside the map a bin's average is the ramp at the mean of its
// sample points.
func ramp(h, w, c int) []float32 {
	f := make([]float32, 0, h*w*c)
	for y := range h {
		for x := range w {
			for ch := range c {
				f = append(f, float32(1+2*x+3*y+10*ch))
			}
		}
	}
	return f
}

func TestRoIAlignConstant(t *testing.T) {
	// Channels hold 1, 2, 3 everywhere; any RoI whose samples lie no more
	// than a cell outside the map reads the constants back.
	h, w, c := 5, 6, 3
	feature := make([]float32, 0, h*w*c)
	for range h * w {
		feature = append(feature, 1, 2, 3)
	}
	r := RoIAlign{OutH: 3, OutW: 2, SamplingRatio: 2, SpatialScale: 0.5, Aligned: true}
	rois := []Box{{2, 2, 8, 8}, {0, 0, 12, 10}, {-1, -1, 3, 3}, {1, 3, 1.5, 3.5}}
	out := make([]float32, len(rois)*3*2*c)
	if err := r.Pool(out, feature, h, w, c, rois); err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		if want := float32(i%c + 1); math.Abs(float64(v-want)) > 1e-6 {
			t.Fatalf("value %d = %v, want %v", i, v, want)
		}
	}

	// An RoI more than a cell outside the map reads zeros.
	far := []Box{{40, 40, 60, 60}}
	out = out[:3*2*c]
	if err := r.Pool(out, feature, h, w, c, far); err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		if v != 0 {
			t.Fatalf("far RoI value %d = %v, want 0", i, v)
		}
	}
}

func TestRoIAlignRamp(t *testing.T) {
	h, w, c := 8, 8, 2
	feature := ramp(h, w, c)
	cases := []struct {
		name string
		r    RoIAlign
		roi  Box
		// want[ph][pw][ch]
		want [2][2][2]float32
	}{
		{
			// Aligned, scale 1: RoI [2,6] starts at 2-0.5 = 1.5 and is 4
			// cells wide, so 2-cell bins with samples at 2.0, 3.0 and 4.0,
			// 5.0: bin centres 2.5 and 4.5 on each axis.
			// (0,0,0) = 1 + 2*2.5 + 3*2.5 = 13.5; (0,1,0) = 1 + 9 + 7.5 =
			// 17.5; (1,0,0) = 1 + 5 + 13.5 = 19.5; (1,1,0) = 23.5;
			// channel 1 adds 10.
			"aligned",
			RoIAlign{OutH: 2, OutW: 2, SamplingRatio: 2, SpatialScale: 1, Aligned: true},
			Box{2, 2, 6, 6},
			[2][2][2]float32{{{13.5, 23.5}, {17.5, 27.5}}, {{19.5, 29.5}, {23.5, 33.5}}},
		},
		{
			// Scale 0.5 maps [4,12] to [2,6]: the same as above.
			"aligned, scale 1/2",
			RoIAlign{OutH: 2, OutW: 2, SamplingRatio: 2, SpatialScale: 0.5, Aligned: true},
			Box{4, 4, 12, 12},
			[2][2][2]float32{{{13.5, 23.5}, {17.5, 27.5}}, {{19.5, 29.5}, {23.5, 33.5}}},
		},
		{
			// Not aligned: no half-cell shift, centres 3 and 5.
			// (0,0,0) = 1 + 6 + 9 = 16; (0,1,0) = 1 + 10 + 9 = 20;
			// (1,0,0) = 1 + 6 + 15 = 22; (1,1,0) = 26.
			"not aligned",
			RoIAlign{OutH: 2, OutW: 2, SamplingRatio: 2, SpatialScale: 1},
			Box{2, 2, 6, 6},
			[2][2][2]float32{{{16, 26}, {20, 30}}, {{22, 32}, {26, 36}}},
		},
		{
			// Adaptive sampling: ceil(2-cell bin / 1) = 2 samples a side,
			// the same points as the first case.
			"adaptive",
			RoIAlign{OutH: 2, OutW: 2, SpatialScale: 1, Aligned: true},
			Box{2, 2, 6, 6},
			[2][2][2]float32{{{13.5, 23.5}, {17.5, 27.5}}, {{19.5, 29.5}, {23.5, 33.5}}},
		},
		{
			// A zero-size RoI at (3,3): every sample at 3-0.5 = 2.5, so all
			// bins read 1 + 5 + 7.5 = 13.5.
			"zero size",
			RoIAlign{OutH: 2, OutW: 2, SamplingRatio: 2, SpatialScale: 1, Aligned: true},
			Box{3, 3, 3, 3},
			[2][2][2]float32{{{13.5, 23.5}, {13.5, 23.5}}, {{13.5, 23.5}, {13.5, 23.5}}},
		},
		{
			// The same with adaptive sampling takes ceil(0) = 0 samples: 0.
			"zero size, adaptive",
			RoIAlign{OutH: 2, OutW: 2, SpatialScale: 1, Aligned: true},
			Box{3, 3, 3, 3},
			[2][2][2]float32{},
		},
	}
	for _, tc := range cases {
		out := make([]float32, 2*2*c)
		if err := tc.r.Pool(out, feature, h, w, c, []Box{tc.roi}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for ph := range 2 {
			for pw := range 2 {
				for ch := range c {
					got := out[(ph*2+pw)*c+ch]
					if want := tc.want[ph][pw][ch]; math.Abs(float64(got-want)) > 1e-4 {
						t.Errorf("%s: bin (%d,%d) channel %d = %v, want %v",
							tc.name, ph, pw, ch, got, want)
					}
				}
			}
		}
	}
}

func TestRoIAlignBilinearAndBorders(t *testing.T) {
	// A 2 x 2 map, one channel: [[0, 1], [2, 3]], value x + 2y. One bin,
	// one sample at the centre of the RoI shifted half a cell.
	feature := []float32{0, 1, 2, 3}
	r := RoIAlign{OutH: 1, OutW: 1, SamplingRatio: 1, SpatialScale: 1, Aligned: true}
	cases := []struct {
		name string
		roi  Box
		want float32
	}{
		// Sample at (x, y) = (0.25, 0.5): rows interpolate to 0.25 and
		// 2.25, then halfway: 1.25.
		{"inside", Box{0.5, 0.5, 1, 1.5}, 1.25},
		// y = -0.5, within a cell of the map: clamped to row 0: 0.25.
		{"half a cell above", Box{0.5, -0.5, 1, 0.5}, 0.25},
		// y = 1.5, past the last row but not past 2: row 1: 2.25.
		{"half a cell below", Box{0.5, 1.5, 1, 2.5}, 2.25},
		// y = 2.5 > h = 2: outside, 0.
		{"a cell and a half below", Box{0.5, 2.5, 1, 3.5}, 0},
		// x = -1.25 < -1: outside, 0.
		{"left of the map", Box{-1, 0.5, -0.5, 1.5}, 0},
		// x = -1 exactly is still inside: clamped to column 0, y = 0.5: 1.
		{"at -1", Box{-0.75, 0.5, -0.25, 1.5}, 1},
	}
	out := make([]float32, 1)
	for _, c := range cases {
		if err := r.Pool(out, feature, 2, 2, 1, []Box{c.roi}); err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(out[0]-c.want)) > 1e-6 {
			t.Errorf("%s: %v, want %v", c.name, out[0], c.want)
		}
	}
}

func TestRoIAlignMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	h, w, c := 6, 7, 5
	feature := make([]float32, h*w*c)
	for i := range feature {
		feature[i] = float32(rng.NormFloat64())
	}
	var rois []Box
	for range 40 {
		// Pixels on a 4x-scaled image, some reaching past it, some tiny,
		// some inverted.
		x, y := rng.Float64()*40-8, rng.Float64()*36-8
		rois = append(rois, Box{x, y, x + rng.Float64()*30 - 2, y + rng.Float64()*30 - 2})
	}

	for _, aligned := range []bool{true, false} {
		for _, ratio := range []int{0, 1, 2, 3} {
			for _, scale := range []float64{1, 0.5, 0.25} {
				r := RoIAlign{OutH: 3, OutW: 4, SamplingRatio: ratio, SpatialScale: scale,
					Aligned: aligned}
				out := make([]float32, len(rois)*3*4*c)
				if err := r.Pool(out, feature, h, w, c, rois); err != nil {
					t.Fatal(err)
				}
				for n, roi := range rois {
					want := referenceRoIAlign(r, feature, h, w, c, roi)
					got := out[n*len(want) : (n+1)*len(want)]
					for i := range want {
						if math.Abs(float64(got[i])-want[i]) > 1e-5 {
							t.Fatalf("%+v, RoI %v: value %d = %v, reference %v",
								r, roi, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

func TestRoIAlignErrors(t *testing.T) {
	r := DefaultRoIAlign()
	feature := make([]float32, 2*2*3)
	rois := []Box{{0, 0, 10, 10}}
	if err := r.Pool(make([]float32, 7*7*3-1), feature, 2, 2, 3, rois); err == nil {
		t.Error("short output: no error")
	}
	if err := r.Pool(make([]float32, 7*7*3), feature[:11], 2, 2, 3, rois); err == nil {
		t.Error("short feature map: no error")
	}
	if err := r.Pool(make([]float32, 7*7*3), feature, 2, 2, 3, rois); err != nil {
		t.Errorf("right sizes: %v", err)
	}
	if err := r.Pool(nil, feature, 2, 2, 3, nil); err != nil {
		t.Errorf("no RoIs: %v", err)
	}
	r.OutW = 0
	if err := r.Pool(nil, feature, 2, 2, 3, nil); err == nil {
		t.Error("zero output width: no error")
	}
	// NaN coordinates read as outside the map, not as a crash.
	r = DefaultRoIAlign()
	out := make([]float32, 7*7*3)
	if err := r.Pool(out, feature, 2, 2, 3, []Box{{math.NaN(), 0, 10, 10}}); err != nil {
		t.Fatal(err)
	}
	r.SamplingRatio = 0
	if err := r.Pool(out, feature, 2, 2, 3, []Box{{math.NaN(), 0, 10, 10}}); err != nil {
		t.Fatal(err)
	}
}

func TestRoIAlignDoesNotAllocate(t *testing.T) {
	r := DefaultRoIAlign()
	h, w, c := 14, 14, 8
	feature := ramp(h, w, c)
	rois := []Box{{10, 20, 120, 200}, {0, 0, 224, 224}}
	out := make([]float32, len(rois)*7*7*c)
	allocs := testing.AllocsPerRun(10, func() { _ = r.Pool(out, feature, h, w, c, rois) })
	if allocs != 0 {
		t.Errorf("Pool allocated %v times, want 0", allocs)
	}
}

// referenceRoIAlign is torchvision's roi_align written out the plain way,
// one output value at a time, in float64.
func referenceRoIAlign(r RoIAlign, feature []float32, h, w, c int, roi Box) []float64 {
	out := make([]float64, r.OutH*r.OutW*c)
	offset := 0.0
	if r.Aligned {
		offset = 0.5
	}
	startX, startY := roi.X1*r.SpatialScale-offset, roi.Y1*r.SpatialScale-offset
	endX, endY := roi.X2*r.SpatialScale-offset, roi.Y2*r.SpatialScale-offset
	roiW, roiH := endX-startX, endY-startY
	if !r.Aligned {
		roiW, roiH = math.Max(roiW, 1), math.Max(roiH, 1)
	}
	binW, binH := roiW/float64(r.OutW), roiH/float64(r.OutH)
	gridW, gridH := r.SamplingRatio, r.SamplingRatio
	if gridW <= 0 {
		gridW, gridH = int(math.Ceil(binW)), int(math.Ceil(binH))
		gridW, gridH = max(gridW, 0), max(gridH, 0)
	}
	count := float64(max(gridW*gridH, 1))

	value := func(y, x int, ch int) float64 { return float64(feature[(y*w+x)*c+ch]) }
	sample := func(y, x float64, ch int) float64 {
		if y < -1 || y > float64(h) || x < -1 || x > float64(w) {
			return 0
		}
		y, x = math.Max(y, 0), math.Max(x, 0)
		y0, x0 := int(math.Floor(y)), int(math.Floor(x))
		y1, x1 := y0+1, x0+1
		if y0 >= h-1 {
			y0, y1, y = h-1, h-1, float64(h-1)
		}
		if x0 >= w-1 {
			x0, x1, x = w-1, w-1, float64(w-1)
		}
		ly, lx := y-float64(y0), x-float64(x0)
		return (1-ly)*(1-lx)*value(y0, x0, ch) + (1-ly)*lx*value(y0, x1, ch) +
			ly*(1-lx)*value(y1, x0, ch) + ly*lx*value(y1, x1, ch)
	}

	for ph := range r.OutH {
		for pw := range r.OutW {
			for ch := range c {
				sum := 0.0
				for iy := range gridH {
					y := startY + float64(ph)*binH + (float64(iy)+0.5)*binH/float64(gridH)
					for ix := range gridW {
						x := startX + float64(pw)*binW + (float64(ix)+0.5)*binW/float64(gridW)
						sum += sample(y, x, ch)
					}
				}
				out[(ph*r.OutW+pw)*c+ch] = sum / count
			}
		}
	}
	return out
}

func BenchmarkRoIAlign(b *testing.B) {
	// 100 RoIs on the 14 x 14 x 160 map of a 224 px image at stride 16.
	rng := rand.New(rand.NewPCG(23, 24))
	h, w, c := 14, 14, 160
	feature := make([]float32, h*w*c)
	for i := range feature {
		feature[i] = rng.Float32()
	}
	rois := make([]Box, 100)
	for i := range rois {
		rois[i] = FromXYWH(rng.Float64()*150, rng.Float64()*150, 40+rng.Float64()*120,
			40+rng.Float64()*120).Clip(224, 224)
	}
	r := DefaultRoIAlign()
	out := make([]float32, len(rois)*7*7*c)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Pool(out, feature, h, w, c, rois); err != nil {
			b.Fatal(err)
		}
	}
}

// The factored weights pool exactly what Pool pools.
func TestAxisWeightsMatchPool(t *testing.T) {
	const h, w, c = 14, 14, 3
	feature := make([]float32, h*w*c)
	for i := range feature {
		feature[i] = float32((i*7919)%101) / 17
	}
	rois := []Box{{10, 20, 120, 200}, {-30, -10, 40, 30}, {200, 200, 260, 250},
		{100, 100, 101, 101}, {0, 0, 224, 224}}
	for _, r := range []RoIAlign{DefaultRoIAlign(),
		{OutH: 7, OutW: 5, SamplingRatio: 1, SpatialScale: 1.0 / 16},
		{OutH: 4, OutW: 4, SamplingRatio: 0, SpatialScale: 1.0 / 16, Aligned: true}} {
		want := make([]float32, len(rois)*r.OutH*r.OutW*c)
		if err := r.Pool(want, feature, h, w, c, rois); err != nil {
			t.Fatal(err)
		}
		wy, wx := make([]float32, r.OutH*h), make([]float32, r.OutW*w)
		for n, roi := range rois {
			if err := r.AxisWeights(wy, wx, h, w, roi); err != nil {
				t.Fatal(err)
			}
			for i := range r.OutH {
				for j := range r.OutW {
					for k := range c {
						var got float64
						for y := range h {
							for x := range w {
								got += float64(wy[i*h+y]) * float64(wx[j*w+x]) *
									float64(feature[(y*w+x)*c+k])
							}
						}
						at := ((n*r.OutH+i)*r.OutW+j)*c + k
						if math.Abs(got-float64(want[at])) > 1e-4 {
							t.Fatalf("%+v roi %v bin (%d,%d,%d): factored %v, Pool %v",
								r, roi, i, j, k, got, want[at])
						}
					}
				}
			}
		}
	}
	if err := DefaultRoIAlign().AxisWeights(make([]float32, 3), make([]float32, 98), 14, 14,
		Box{}); err == nil {
		t.Error("short weights accepted")
	}
}
