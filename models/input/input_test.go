package input

import (
	"math"
	"testing"
)

var imagenet = Spec{MaxSide: 320, Multiple: 32, Mean: [3]float32{0.485, 0.456, 0.406},
	Std: [3]float32{0.229, 0.224, 0.225}}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		w, h           int
		iw, ih, cw, ch int
		scale          float64
	}{
		{640, 480, 320, 256, 320, 240, 0.5},
		{224, 224, 224, 224, 224, 224, 1},
		{224, 201, 224, 224, 224, 201, 1},
		{100, 50, 128, 64, 100, 50, 1},
		{1280, 720, 320, 192, 320, 180, 0.25},
		{1, 1, 32, 32, 1, 1, 1},
	} {
		p, err := imagenet.Plan(tc.w, tc.h)
		if err != nil {
			t.Fatal(err)
		}
		if p.Width != tc.iw || p.Height != tc.ih || p.ContentWidth != tc.cw ||
			p.ContentHeight != tc.ch || p.Letterbox.Scale != tc.scale {
			t.Errorf("%dx%d: plan %+v", tc.w, tc.h, p)
		}
	}
	for _, size := range [][2]int{{0, 10}, {10, -1}, {1 << 16, 10}} {
		if _, err := imagenet.Plan(size[0], size[1]); err == nil {
			t.Errorf("%v planned", size)
		}
	}
	if _, err := (Spec{MaxSide: 16, Multiple: 32, Std: [3]float32{1, 1, 1}}).Plan(8, 8); err == nil {
		t.Error("max side below the multiple planned")
	}
	if err := (Spec{MaxSide: 320, Multiple: 32}).Validate(); err == nil {
		t.Error("zero std validated")
	}
}

func TestResize(t *testing.T) {
	// A 4x2 BGR frame at scale 1: copied as RGB, padded with the mean.
	pix := []byte{
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 99, 99,
		13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 99, 99,
	}
	src := Source{Pix: pix, Width: 4, Height: 2, Stride: 14, BGR: true}
	p, _ := imagenet.Plan(4, 2)
	var r Resizer
	out, err := r.Resize(nil, src, p, imagenet.PadColour())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 32*32*3 || out[0] != 3 || out[1] != 2 || out[2] != 1 || out[3*3] != 12 ||
		out[32*3] != 15 {
		t.Errorf("copy: %v ...", out[:12])
	}
	pad := imagenet.PadColour()
	if out[4*3] != pad[0] || out[len(out)-1] != pad[2] || pad != [3]uint8{124, 116, 104} {
		t.Errorf("padding %v, want the mean colour", out[4*3:4*3+3])
	}

	// A 640x480 frame of stripes shrunk by half: every pixel inside the
	// content averages light and dark rows (the first and last rows lean
	// on the repeated edge).
	w, h := 640, 480
	big := make([]byte, w*h*3)
	for y := range h {
		for i := range w * 3 {
			big[y*w*3+i] = byte(200 * (y % 2))
		}
	}
	p, _ = imagenet.Plan(w, h)
	out, err = r.Resize(out, Source{Pix: big, Width: w, Height: h, Stride: w * 3}, p, pad)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{3 * (1*320 + 0), 3 * (100*320 + 50), 3 * (238*320 + 319)} {
		if math.Abs(float64(out[at])-100) > 1 {
			t.Errorf("pixel %d is %d, want the stripes' mean 100", at/3, out[at])
		}
	}
	if out[3*(250*320)] != pad[0] {
		t.Error("rows below the content are not padding")
	}
	for name, bad := range map[string]Source{
		"short":        {Pix: big[:100], Width: w, Height: h, Stride: w * 3},
		"small stride": {Pix: big, Width: w, Height: h, Stride: w},
	} {
		if _, err := r.Resize(nil, bad, p, pad); err == nil {
			t.Errorf("%s source resized", name)
		}
	}
}

func TestTables(t *testing.T) {
	f := imagenet.FloatTable()
	if math.Abs(float64(f[0][0])-(-0.485/0.229)) > 1e-6 || math.Abs(float64(f[2][255])-
		(1-0.406)/0.225) > 1e-6 {
		t.Errorf("float table ends %v %v", f[0][0], f[2][255])
	}
	lo, hi := imagenet.Range()
	if lo != f[0][0] || hi != f[2][255] {
		t.Errorf("range [%v, %v]", lo, hi)
	}
	scale := (hi - lo) / 255
	zp := int32(math.Round(float64(-128 - lo/scale)))
	q := imagenet.Int8Table(scale, zp)
	for c := range 3 {
		for v := range 256 {
			back := scale * float32(int32(q[c][v])-zp)
			if math.Abs(float64(back-f[c][v])) > float64(scale)/2+1e-6 {
				t.Fatalf("channel %d value %d: %v quantised to %v", c, v, f[c][v], back)
			}
		}
	}
	rgb := []uint8{0, 128, 255}
	n := Normalize(nil, rgb, f)
	d := make([]int8, 3)
	Quantize(d, rgb, q)
	if n[1] != f[1][128] || d[2] != q[2][255] {
		t.Errorf("normalise %v, quantise %v", n, d)
	}
}
