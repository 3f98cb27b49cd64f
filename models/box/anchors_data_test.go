package box_test

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// faceInName reads the box of a proper-mask file name, ID__[x, y, w, h]__True.jpg.
var faceInName = regexp.MustCompile(`__\[(\d+), (\d+), (\d+), (\d+)\]__`)

// TestDefaultAnchorsCoverProperMaskFaces checks the claim of
// DefaultAnchorConfig's doc comment on every face of the study: on the
// 14 x 14 map of a 224 px crop each face has an anchor of IoU at least 0.5,
// and half of them one of at least 0.8.
func TestDefaultAnchorsCoverProperMaskFaces(t *testing.T) {
	anchors := box.Anchors(nil, box.DefaultAnchorConfig(), 14, 14)

	var best []float64
	for _, split := range []string{"train", "test"} {
		entries, err := os.ReadDir(fixture.Path(t, "proper-mask", split))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			m := faceInName.FindStringSubmatch(e.Name())
			if m == nil {
				continue
			}
			var v [4]float64
			for i := range v {
				v[i], _ = strconv.ParseFloat(m[i+1], 64)
			}
			face := box.FromXYWH(v[0], v[1], v[2], v[3])
			top := 0.0
			for _, a := range anchors {
				top = max(top, box.IoU(a, face))
			}
			if top < 0.5 {
				t.Errorf("%s/%s: best anchor IoU %.3f, want at least 0.5", split, e.Name(), top)
			}
			best = append(best, top)
		}
	}

	if len(best) < 900 {
		t.Fatalf("read %d faces from proper-mask, want the 943 of train and test", len(best))
	}
	high := 0
	for _, v := range best {
		if v >= 0.8 {
			high++
		}
	}
	if 2*high < len(best) {
		t.Errorf("%d of %d faces have an anchor of IoU >= 0.8, want at least half", high, len(best))
	}
}
