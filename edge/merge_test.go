package edge

import (
	"context"
	"testing"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/box"
)

func TestFaceMergerKeepsOneLabelAFace(t *testing.T) {
	a := box.Box{X1: 40, Y1: 40, X2: 80, Y2: 80}
	faces := []detect.Face{
		{Box: box.Box{X1: 42, Y1: 41, X2: 81, Y2: 80}, Label: "not_proper", Score: 0.6},
		{Box: box.Box{X1: 100, Y1: 10, X2: 130, Y2: 40}, Label: "not_proper", Score: 0.8},
		{Box: a, Label: "proper", Score: 0.9},
	}
	var m faceMerger
	got := m.faces(faces, 0.5)
	if len(got) != 2 || got[0].Label != "proper" || got[0].Box != a ||
		got[1].Label != "not_proper" || got[1].Score != 0.8 {
		t.Fatalf("merged %+v, want the proper face at 0.9 and the far one at 0.8", got)
	}
	// Overlapping less than the threshold: both stay.
	if got := m.faces(faces, 0.99); len(got) != 3 {
		t.Errorf("at IoU 0.99 kept %d faces, want 3", len(got))
	}
	if allocs := testing.AllocsPerRun(100, func() { m.faces(faces, 0.5) }); allocs != 0 {
		t.Errorf("%v allocations a call once warm", allocs)
	}
}

// twoLabels finds the same face under both labels in every frame.
type twoLabels struct{ scripted }

func (d *twoLabels) Detect(detect.Frame) ([]detect.Face, error) {
	b := box.Box{X1: 40, Y1: 40, X2: 80, Y2: 80}
	return []detect.Face{
		{Box: b, Class: 1, Label: "not_proper", Score: 0.7},
		{Box: b, Class: 0, Label: "proper", Proper: true, Score: 0.65},
	}, nil
}

func TestPipelineMergesLabelsOfOneFace(t *testing.T) {
	for _, tc := range []struct {
		overlap float64
		want    map[string]uint64
	}{
		{0.5, map[string]uint64{"not_proper": 10}},
		{0, map[string]uint64{"not_proper": 10, "proper": 10}},
	} {
		c := capture(10, camera.PaceAll)
		runCapture(t, c)
		p, err := New(Config{Capture: c, Detector: &twoLabels{}, FaceOverlap: tc.overlap})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := p.RunStats().Detections
		if len(got) != len(tc.want) || got["proper"] != tc.want["proper"] ||
			got["not_proper"] != tc.want["not_proper"] {
			t.Errorf("FaceOverlap %g: detections %v, want %v", tc.overlap, got, tc.want)
		}
	}
}
