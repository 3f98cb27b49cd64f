package frcnn

import (
	"image"
	_ "image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// overfitImages reads the first n 224 px crops of proper-mask/train,
// normalised, with their truths.
func overfitImages(t testing.TB, cfg Config, n int) ([]float32, []Truth) {
	t.Helper()
	set, err := dataset.ReadFileNames(fixture.Path(t, "proper-mask", "train"), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Size
	images := make([]float32, 0, n*s*s*3)
	var truths []Truth
	// Alternate the classes so that both are learned.
	want := 1
	for _, r := range set.Records {
		if len(truths) == n {
			break
		}
		if r.Width != s || r.Height != s || len(r.Objects) != 1 || r.Objects[0].Class+1 != want {
			continue
		}
		want = 3 - want
		f, err := os.Open(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := image.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(r.Path), err)
		}
		for y := range s {
			for x := range s {
				cr, cg, cb, _ := img.At(x, y).RGBA()
				for c, v := range []uint32{cr, cg, cb} {
					images = append(images, (float32(v)/65535-cfg.Mean[c])/cfg.Std[c])
				}
			}
		}
		truths = append(truths, Truth{Boxes: []box.Box{r.Objects[0].Box},
			Classes: []int{r.Objects[0].Class + 1}})
	}
	if len(truths) < n {
		t.Fatalf("found %d usable images, want %d", len(truths), n)
	}
	return images, truths
}

// Eight real faces, learned by heart: the losses fall by 90% and the top
// detections find the faces.
func TestOverfitEightImages(t *testing.T) {
	be, err := backend.New("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(net.MobileNetV3Large)
	const n = 8
	images, truths := overfitImages(t, cfg, n)
	m, err := New(cfg, be, 7)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := m.NewTrainer(TrainOptions{Batch: n, LearningRate: 1e-3, Clip: 10, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	// Adam at 1e-3 still jitters by the end: the loss reached is the mean
	// of the last 10 steps, not whichever step happens to be last.
	var first Losses
	const steps, tail = 60, 10
	reached := 0.0
	for step := range steps {
		l, err := tr.Step(images, truths)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = l
		}
		if step >= steps-tail {
			reached += l.Total / tail
		}
		if step%10 == 0 || step == steps-1 {
			t.Logf("step %d: total %.4f (obj %.4f rpn box %.4f class %.4f roi box %.4f) grad %.1f",
				step, l.Total, l.RPNObjectness, l.RPNBox, l.RoIClass, l.RoIBox, l.GradNorm)
		}
	}
	if reached > 0.1*first.Total {
		t.Errorf("loss fell from %.4f to %.4f (mean of the last %d steps), want below 10%%",
			first.Total, reached, tail)
	}

	// The running batch-norm averages lag far behind weights trained this
	// fast; detect with statistics measured on the final weights.
	measured := false
	if err := m.RecalibrateBatchNorm(func() ([]float32, int, error) {
		if measured {
			return nil, 0, nil
		}
		measured = true
		return images, n, nil
	}); err != nil {
		t.Fatal(err)
	}
	dets, err := m.Detect(images, n)
	if err != nil {
		t.Fatal(err)
	}
	eval := box.NewEvaluator(cfg.NumClasses())
	for i, d := range dets {
		gts := []box.GroundTruth{{Box: truths[i].Boxes[0], Class: truths[i].Classes[0]}}
		if err := eval.Add(d, gts); err != nil {
			t.Fatal(err)
		}
	}
	r := eval.Results()
	t.Logf("after %d steps: accuracy %.3f IoU %.3f mAP50 %.3f", steps, r.Accuracy, r.MeanIoU, r.MAP50)
	if r.Accuracy < 0.75 {
		t.Errorf("accuracy of the top detections %.3f, want 0.75 or more", r.Accuracy)
	}
	if r.MeanIoU < 0.5 {
		t.Errorf("mean IoU of the top detections %.3f, want above 0.5", r.MeanIoU)
	}
}
