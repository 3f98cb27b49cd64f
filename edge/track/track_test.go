package track

import (
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/box"
)

func face(x float64, proper bool) detect.Face {
	f := detect.Face{Box: box.Box{X1: x, Y1: 10, X2: x + 50, Y2: 60}, Proper: proper,
		Score: 0.9, Label: "not_proper", Class: 1}
	if proper {
		f.Label, f.Class = "proper", 0
	}
	return f
}

// run feeds frames and returns the events as "kind:id:label" strings.
func run(t *Tracker, frames [][]detect.Face) []string {
	var out []string
	t0 := time.Unix(0, 0)
	for i, faces := range frames {
		for _, e := range t.Update(faces, t0.Add(time.Duration(i)*time.Second/15), nil) {
			out = append(out, string(e.Kind)+":"+string(rune('0'+e.Track.ID))+":"+e.Track.Label)
		}
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEnterMoveLeave(t *testing.T) {
	tr := New()
	tr.MaxMisses = 2
	frames := [][]detect.Face{
		{face(0, true)},
		{face(5, true)}, // moves a little: same track, now confirmed
		{face(10, true), face(300, false)},
		{face(15, true), face(302, false)},
		{face(304, false)}, // first face missing 1
		{face(306, false)}, // missing 2
		{face(308, false)}, // missing 3 > MaxMisses: leaves
	}
	got := run(tr, frames)
	want := []string{"enter:1:proper", "enter:2:not_proper", "leave:1:proper"}
	if !equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	conf := tr.Confirmed(nil)
	if len(conf) != 1 || conf[0].ID != 2 || conf[0].Box.X1 != 308 {
		t.Errorf("confirmed tracks %+v", conf)
	}
	if got := tr.Flush(nil); len(got) != 1 || got[0].Kind != Leave || got[0].Track.ID != 2 {
		t.Errorf("flush %+v", got)
	}
	if len(tr.Confirmed(nil)) != 0 {
		t.Error("tracks left after Flush")
	}
}

func TestFlickerIsNotAnEvent(t *testing.T) {
	tr := New()
	// A face seen once (a false detection) never enters; a face that blinks
	// out for fewer than MaxMisses frames does not leave.
	frames := [][]detect.Face{
		{face(0, true), face(400, false)},
		{face(0, true)},
		{},
		{face(1, true)},
		{face(2, true)},
	}
	got := run(tr, frames)
	if !equal(got, []string{"enter:1:proper"}) {
		t.Errorf("events %v", got)
	}
}

func TestLabelChangeHolds(t *testing.T) {
	tr := New()
	frames := [][]detect.Face{
		{face(0, false)}, {face(0, false)}, // enters without a mask
		{face(0, true)}, // one frame: noise
		{face(0, false)},
		{face(0, true)}, {face(0, true)}, // puts the mask on
	}
	got := run(tr, frames)
	want := []string{"enter:1:not_proper", "change:1:proper"}
	if !equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestGreedyByIoU(t *testing.T) {
	tr := New()
	tr.MinHits = 1
	a := face(0, true)
	b := face(30, false) // overlaps a
	tr.Update([]detect.Face{a, b}, time.Now(), nil)
	// Both move right by 10: each must stay with its own track.
	a.Box.X1, a.Box.X2 = 10, 60
	b.Box.X1, b.Box.X2 = 40, 90
	tr.Update([]detect.Face{b, a}, time.Now(), nil)
	for _, c := range tr.Confirmed(nil) {
		if (c.ID == 1) != c.Proper {
			t.Errorf("track %d took the other face: %+v", c.ID, c)
		}
	}
}
