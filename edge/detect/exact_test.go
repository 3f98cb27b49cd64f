//go:build cgo

package detect

import (
	"math"
	"slices"
	"testing"

	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite"
)

// TestFP32TFLiteMatchesGoMLX runs an fp32 bundle with both engines on real
// photographs: every stage output agrees within 1e-4 of the tensor's
// largest value, and the final detections are the same boxes, classes and
// scores.
func TestFP32TFLiteMatchesGoMLX(t *testing.T) {
	cfg, w := randomDetector(t, 1)
	matchEngines(t, cfg, w, 3, true, 1e-4)
}

// TestResNet50TFLiteMatchesGoMLX compares the stage outputs for the
// ResNet50 backbone (max pooling, residual additions with a fused ReLU) on
// one photograph. Its random box head scores most boxes 1.0, so NMS among
// ties would pick survivors by float noise: detections are not compared.
// Fifty random layers amplify the engines' different summation orders
// (the objectness of one photograph differs by 1.1e-4 of its scale), so
// the bound is 2e-4; a wrong operator is off by a good part of the scale.
func TestResNet50TFLiteMatchesGoMLX(t *testing.T) {
	cfg, w := randomBackbone(t, net.ResNet50, 2)
	matchEngines(t, cfg, w, 1, false, 2e-4)
}

// matchEngines compares the engines' stage outputs on a 640x480 frame and
// n photographs, and their detections when detections is set; stage
// outputs must agree within tol of each tensor's largest value.
func matchEngines(t *testing.T, cfg frcnn.Config, w net.Weights, n int, detections bool,
	tol float64) {
	b := exportBundle(t, cfg, w, tflite.FP32, nil)
	tf, err := OpenBundle(b, "fp32", Options{Engine: EngineTFLite, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	gm, err := OpenBundle(b, "fp32", Options{Engine: EngineGoMLX, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer gm.Close()
	pt, pg := tf.(*pipeline), gm.(*pipeline)

	frames := []Frame{frame640(t)}
	for _, path := range testImages(t, n) {
		frames = append(frames, loadFrame(t, path))
	}
	for i, f := range frames {
		plan, err := pt.spec.Plan(f.Width, f.Height)
		if err != nil {
			t.Fatal(err)
		}
		rgb, err := pt.resizer.Resize(nil, sourceOf(f), plan, pt.spec.PadColour())
		if err != nil {
			t.Fatal(err)
		}
		outs := make([][3][]float32, 2)
		for k, p := range []*pipeline{pt, pg} {
			if err := p.engine.setInput(rgb, plan.Height, plan.Width); err != nil {
				t.Fatal(err)
			}
			f1, o1, d1, _, _, err := p.engine.stage1()
			if err != nil {
				t.Fatal(err)
			}
			outs[k] = [3][]float32{slices.Clone(f1), slices.Clone(o1), slices.Clone(d1)}
		}
		for j, name := range []string{"feature", "objectness", "deltas"} {
			if d := relDiff(outs[0][j], outs[1][j]); !(d <= tol) {
				t.Errorf("frame %d (%dx%d): stage 1 %s differs by %.2g of its scale", i,
					plan.Width, plan.Height, name, d)
			}
		}

		// Stage 2 on the same pooled RoIs.
		c := cfg.NeckChannels
		r := 32
		pooled := make([]float32, r*7*7*c)
		for k := range pooled {
			pooled[k] = outs[1][0][(k*7919)%len(outs[1][0])]
		}
		var s2 [2][2][]float32
		for k, p := range []*pipeline{pt, pg} {
			l, d, err := p.engine.stage2(pooled, r, r)
			if err != nil {
				t.Fatal(err)
			}
			s2[k] = [2][]float32{slices.Clone(l), slices.Clone(d)}
		}
		for j, name := range []string{"class logits", "deltas"} {
			if d := relDiff(s2[0][j], s2[1][j]); !(d <= tol) {
				t.Errorf("frame %d: stage 2 %s differ by %.2g of their scale", i, name, d)
			}
		}

		if !detections {
			continue
		}
		dt, err := pt.DetectBoxes(f)
		if err != nil {
			t.Fatal(err)
		}
		dt = slices.Clone(dt)
		dg, err := pg.DetectBoxes(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(dt) == 0 || len(dt) != len(dg) {
			t.Fatalf("frame %d: %d detections with TFLite, %d with GoMLX", i, len(dt), len(dg))
		}
		// The same detections; the order of detections whose scores tie
		// to float precision may differ.
		used := make([]bool, len(dg))
		for k, a := range dt {
			found := false
			for j, g := range dg {
				far := math.Max(math.Max(math.Abs(a.Box.X1-g.Box.X1), math.Abs(a.Box.Y1-g.Box.Y1)),
					math.Max(math.Abs(a.Box.X2-g.Box.X2), math.Abs(a.Box.Y2-g.Box.Y2)))
				inOrder := j == k || math.Abs(a.Score-dg[k].Score) <= 1e-4
				if !used[j] && a.Class == g.Class && far <= 1e-2 &&
					math.Abs(a.Score-g.Score) <= 1e-4 && inOrder {
					used[j], found = true, true
					break
				}
			}
			if !found {
				t.Errorf("frame %d: TFLite's detection %d %+v has no match in GoMLX's", i, k, a)
			}
		}
		t.Logf("frame %d (%dx%d): %d detections agree", i, f.Width, f.Height, len(dt))
	}
}
