package box

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMaxLogScale(t *testing.T) {
	if want := math.Log(1000.0 / 16); math.Abs(MaxLogScale-want) > 1e-15 {
		t.Errorf("MaxLogScale = %v, want log(1000/16) = %v", MaxLogScale, want)
	}
}

func TestEncodeByHand(t *testing.T) {
	// ref: 10 wide, 20 high, centre (5, 10).
	// target: 20 wide, 20 high, centre (12, 14).
	ref, target := Box{0, 0, 10, 20}, Box{2, 4, 22, 24}
	cases := []struct {
		name  string
		coder Coder
		want  Deltas
	}{
		// dx = (12-5)/10 = 0.7, dy = (14-10)/20 = 0.2,
		// dw = log(20/10) = log 2, dh = log(20/20) = 0.
		{"rpn", RPNCoder(), Deltas{0.7, 0.2, math.Ln2, 0}},
		// The same times (10, 10, 5, 5).
		{"roi", RoICoder(), Deltas{7, 2, 5 * math.Ln2, 0}},
	}
	for _, c := range cases {
		got := c.coder.Encode(ref, target)
		if !nearDeltas(got, c.want, 1e-12) {
			t.Errorf("%s: Encode = %+v, want %+v", c.name, got, c.want)
		}
		if back := c.coder.Decode(ref, got); !near(back, target, 1e-12) {
			t.Errorf("%s: Decode(Encode) = %v, want %v", c.name, back, target)
		}
	}
}

func TestDecodeByHand(t *testing.T) {
	// ref centre (5, 10), 10 x 20. RPN deltas (0.5, -0.25, log 3, -log 2):
	// centre (5 + 0.5*10, 10 - 0.25*20) = (10, 5), size (30, 10):
	// [10-15, 5-5, 10+15, 5+5] = [-5, 0, 25, 10].
	ref := Box{0, 0, 10, 20}
	got := RPNCoder().Decode(ref, Deltas{0.5, -0.25, math.Log(3), -math.Ln2})
	if want := (Box{-5, 0, 25, 10}); !near(got, want, 1e-12) {
		t.Errorf("Decode = %v, want %v", got, want)
	}
}

func TestDecodeClampsScale(t *testing.T) {
	// exp(log(1000/16)) = 62.5, so a 10 px reference grows to 625 px at most:
	// centre 5 -> [5-312.5, 5+312.5]. The RoI coder divides 50 by 5 = 10 first.
	ref := Box{0, 0, 10, 10}
	want := Box{-307.5, -307.5, 317.5, 317.5}
	if got := RPNCoder().Decode(ref, Deltas{DW: 10, DH: 10}); !near(got, want, 1e-9) {
		t.Errorf("RPN Decode of dw=dh=10 = %v, want %v", got, want)
	}
	if got := RoICoder().Decode(ref, Deltas{DW: 50, DH: 50}); !near(got, want, 1e-9) {
		t.Errorf("RoI Decode of dw=dh=50 = %v, want %v", got, want)
	}

	// Below the cap nothing changes: dw = 4 gives exp(4)*10 = 545.98 px.
	got := RPNCoder().Decode(ref, Deltas{DW: 4})
	if w := got.Width(); math.Abs(w-10*math.Exp(4)) > 1e-9 {
		t.Errorf("width at dw=4 = %v, want %v", w, 10*math.Exp(4))
	}

	// There is no lower cap: a very negative dw shrinks the box to a sliver
	// (centred on 0, so that the sliver is not lost to rounding).
	got = RPNCoder().Decode(Box{-5, -5, 5, 5}, Deltas{DW: -100})
	if w := got.Width(); !(w > 0 && math.Abs(w-10*math.Exp(-100)) < 1e-50) {
		t.Errorf("width at dw=-100 = %v, want 10*exp(-100)", w)
	}

	// A coder's own cap: log 2 lets the box at most double.
	c := RPNCoder()
	c.MaxLogScale = math.Ln2
	if got := c.Decode(ref, Deltas{DW: 3}); math.Abs(got.Width()-20) > 1e-9 {
		t.Errorf("width with cap log 2 = %v, want 20", got.Width())
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomBox := func() Box {
		// Sizes 10..200 px, so no scale reaches 62.5 and the cap never bites.
		x, y := rng.Float64()*300-50, rng.Float64()*300-50
		return FromXYWH(x, y, 10+rng.Float64()*190, 10+rng.Float64()*190)
	}
	for _, coder := range []Coder{RPNCoder(), RoICoder()} {
		for range 1000 {
			ref, target := randomBox(), randomBox()
			got := coder.Decode(ref, coder.Encode(ref, target))
			if !near(got, target, 1e-9) {
				t.Fatalf("%+v: Decode(Encode(%v)) against %v = %v", coder, target, ref, got)
			}
		}
	}
}

func TestEncodeAllDecodeAll(t *testing.T) {
	refs := []Box{{0, 0, 10, 20}, {10, 10, 20, 20}}
	targets := []Box{{2, 4, 22, 24}, {10, 10, 20, 20}}
	coder := RoICoder()

	deltas := encodeAllChecked(t, coder, refs, targets)
	// First pair as in TestEncodeByHand, second pair identical: all zero.
	want := []float32{7, 2, float32(5 * math.Ln2), 0, 0, 0, 0, 0}
	for i := range want {
		if math.Abs(float64(deltas[i]-want[i])) > 1e-6 {
			t.Errorf("delta %d = %v, want %v", i, deltas[i], want[i])
		}
	}

	prefix := Box{1, 2, 3, 4}
	boxes := coder.DecodeAll([]Box{prefix}, refs, deltas)
	if len(boxes) != 3 || boxes[0] != prefix {
		t.Fatalf("DecodeAll gave %v, want the prefix and 2 boxes", boxes)
	}
	for i, b := range boxes[1:] {
		if !near(b, targets[i], 1e-4) {
			t.Errorf("box %d = %v, want %v", i, b, targets[i])
		}
	}

	mustPanic(t, "DecodeAll with 7 deltas", func() { coder.DecodeAll(nil, refs, deltas[:7]) })
	mustPanic(t, "EncodeAll with 1 target", func() { coder.EncodeAll(nil, refs, targets[:1]) })
}

// encodeAllChecked encodes and checks that the result has 4 values a box.
func encodeAllChecked(t *testing.T, c Coder, refs, targets []Box) []float32 {
	t.Helper()
	d := c.EncodeAll(nil, refs, targets)
	if len(d) != 4*len(refs) {
		t.Fatalf("EncodeAll gave %d values for %d boxes", len(d), len(refs))
	}
	return d
}

func TestEncodeEmptyTarget(t *testing.T) {
	// A zero-width target has log(0) = -Inf as dw, as the doc comment says.
	d := RPNCoder().Encode(Box{0, 0, 10, 10}, Box{5, 0, 5, 10})
	if !math.IsInf(d.DW, -1) {
		t.Errorf("dw of a zero-width target = %v, want -Inf", d.DW)
	}
}

func nearDeltas(a, b Deltas, tol float64) bool {
	return math.Abs(a.DX-b.DX) <= tol && math.Abs(a.DY-b.DY) <= tol &&
		math.Abs(a.DW-b.DW) <= tol && math.Abs(a.DH-b.DH) <= tol
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}
