package box

import (
	"math"
	"slices"
	"testing"
)

func closeTo(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

// Three images, classes 1 and 2 (0 is the background), worked out by hand.
func TestEvaluatorByHand(t *testing.T) {
	e := NewEvaluator(3)
	square := Box{0, 0, 10, 10}
	// Image 1: right class, perfect box; a lower-scored class-2 false alarm.
	if err := e.Add([]Detection{
		{Box: Box{0, 0, 5, 10}, Class: 2, Score: 0.5},
		{Box: square, Class: 1, Score: 0.9},
	}, []GroundTruth{{Box: square, Class: 1}}); err != nil {
		t.Fatal(err)
	}
	// Image 2: wrong class, half the box (IoU 0.5).
	if err := e.Add([]Detection{{Box: Box{0, 0, 10, 5}, Class: 1, Score: 0.8}},
		[]GroundTruth{{Box: square, Class: 2}}); err != nil {
		t.Fatal(err)
	}
	// Image 3: nothing detected.
	if err := e.Add(nil, []GroundTruth{{Box: square, Class: 1}}); err != nil {
		t.Fatal(err)
	}

	r := e.Results()
	if r.Images != 3 || !closeTo(r.Accuracy, 1.0/3) || !closeTo(r.MeanIoU, 0.5) {
		t.Errorf("images %d accuracy %v IoU %v, want 3, 1/3, 0.5", r.Images, r.Accuracy, r.MeanIoU)
	}
	wantConfusion := [][]int{{0, 0, 0, 0}, {0, 1, 0, 1}, {0, 1, 0, 0}}
	for c := range wantConfusion {
		if !slices.Equal(r.Confusion[c], wantConfusion[c]) {
			t.Errorf("confusion row %d = %v, want %v", c, r.Confusion[c], wantConfusion[c])
		}
	}
	if !slices.Equal(r.GroundTruths, []int{0, 2, 1}) {
		t.Errorf("ground truths %v, want [0 2 1]", r.GroundTruths)
	}
	// Class 1: a true positive (0.9) then a false positive (0.8), two ground
	// truths: precision 1 up to recall 0.5, so VOC AP = 0.5 and COCO reads
	// precision 1 at the 51 recall points 0..0.50.
	// Class 2: one false positive, AP 0.
	if !math.IsNaN(r.AP50[0]) || !closeTo(r.AP50[1], 0.5) || !closeTo(r.AP50[2], 0) {
		t.Errorf("AP50 %v, want [NaN 0.5 0]", r.AP50)
	}
	if !closeTo(r.MAP50, 0.25) {
		t.Errorf("mAP50 %v, want 0.25", r.MAP50)
	}
	if !closeTo(r.AP[1], 51.0/101) || !closeTo(r.AP[2], 0) || !closeTo(r.MAP, 51.0/202) {
		t.Errorf("AP %v mAP %v, want [NaN %v 0] %v", r.AP, r.MAP, 51.0/101, 51.0/202)
	}
}

// VOC counts a hit above 0.5 only; COCO's first threshold is at least 0.5.
// A second detection of the same face is a false positive.
func TestEvaluatorThresholdsAndDuplicates(t *testing.T) {
	e := NewEvaluator(2)
	gt := []GroundTruth{{Box: Box{0, 0, 10, 10}, Class: 1}}
	half := Detection{Box: Box{0, 0, 10, 5}, Class: 1, Score: 0.9} // IoU exactly 0.5
	if err := e.Add([]Detection{half}, gt); err != nil {
		t.Fatal(err)
	}
	r := e.Results()
	if r.AP50[1] != 0 {
		t.Errorf("VOC AP of an IoU-0.5 detection = %v, want 0", r.AP50[1])
	}
	// COCO: a hit at threshold 0.50 only, precision 1 at all 101 recall
	// points of that threshold, 0 at the nine others.
	if !closeTo(r.AP[1], 0.1) {
		t.Errorf("COCO AP = %v, want 0.1", r.AP[1])
	}

	e.Reset()
	exact := Detection{Box: gt[0].Box, Class: 1, Score: 0.9}
	dup := Detection{Box: gt[0].Box, Class: 1, Score: 0.8}
	if err := e.Add([]Detection{dup, exact}, gt); err != nil {
		t.Fatal(err)
	}
	r = e.Results()
	// TP then FP with one ground truth: recall reaches 1 at precision 1.
	if !closeTo(r.AP50[1], 1) || !closeTo(r.AP[1], 1) || r.Images != 1 {
		t.Errorf("after Reset: AP50 %v AP %v images %d, want 1 1 1", r.AP50[1], r.AP[1], r.Images)
	}
	e.Reset()
	// Ranked the other way round (false positive first) precision at the
	// hit is 1/2.
	if err := e.Add([]Detection{
		{Box: Box{20, 20, 30, 30}, Class: 1, Score: 0.95}, exact,
	}, gt); err != nil {
		t.Fatal(err)
	}
	if r := e.Results(); !closeTo(r.AP50[1], 0.5) || !closeTo(r.Accuracy, 1) || !closeTo(r.MeanIoU, 0) {
		t.Errorf("FP first: AP50 %v accuracy %v IoU %v, want 0.5 1 0", r.AP50[1], r.Accuracy, r.MeanIoU)
	}
}

func TestEvaluatorRejectsBadClasses(t *testing.T) {
	e := NewEvaluator(3)
	good := []GroundTruth{{Box: Box{0, 0, 1, 1}, Class: 1}}
	if err := e.Add([]Detection{{Class: 3}}, good); err == nil {
		t.Error("detection of class 3 with 3 classes was accepted")
	}
	if err := e.Add(nil, []GroundTruth{{Class: -1}}); err == nil {
		t.Error("ground truth of class -1 was accepted")
	}
	r := e.Results()
	if r.Images != 0 || !math.IsNaN(r.Accuracy) || !math.IsNaN(r.MAP50) {
		t.Errorf("refused images were counted: %+v", r)
	}
	// Images without ground truth count only as false positives.
	if err := e.Add([]Detection{{Box: Box{0, 0, 1, 1}, Class: 1, Score: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Add(nil, good); err != nil {
		t.Fatal(err)
	}
	if r := e.Results(); r.Images != 1 || r.AP50[1] != 0 || r.Accuracy != 0 {
		t.Errorf("got images %d AP50 %v accuracy %v, want 1 0 0", r.Images, r.AP50[1], r.Accuracy)
	}
}

// The top detection is the highest score; NaN scores never win.
func TestEvaluatorTopIgnoresNaN(t *testing.T) {
	e := NewEvaluator(3)
	gt := []GroundTruth{{Box: Box{0, 0, 10, 10}, Class: 2}}
	if err := e.Add([]Detection{
		{Box: Box{0, 0, 10, 10}, Class: 1, Score: math.NaN()},
		{Box: Box{0, 0, 10, 10}, Class: 2, Score: 0.1},
	}, gt); err != nil {
		t.Fatal(err)
	}
	if r := e.Results(); r.Accuracy != 1 || r.MeanIoU != 1 {
		t.Errorf("accuracy %v IoU %v, want 1 1", r.Accuracy, r.MeanIoU)
	}
}
