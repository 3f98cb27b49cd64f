package detect

import (
	"context"
	"image"
	"image/draw"
	_ "image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/export"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// randomDetector returns a MobileNetV3 detector's config and weights drawn
// from seed, with batch-norm statistics and head weights spread out so
// that folding is exercised and class scores differ clearly.
func randomDetector(t testing.TB, seed uint64) (frcnn.Config, net.Weights) {
	t.Helper()
	return randomBackbone(t, net.MobileNetV3Large, seed)
}

// randomBackbone is randomDetector with the backbone given.
func randomBackbone(t testing.TB, bb net.Backbone, seed uint64) (frcnn.Config, net.Weights) {
	t.Helper()
	cfg := frcnn.DefaultConfig(bb)
	s1, s2, err := cfg.Stages()
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.New("")
	if err != nil {
		t.Fatal(err)
	}
	m, err := frcnn.New(cfg, be, seed)
	if err != nil {
		t.Fatal(err)
	}
	if bb == net.ResNet50 {
		// Without it, ResNet50's random residuals grow to 1e4 and the RPN
		// proposes nothing.
		recalibrate(t, m)
	}
	w, err := s1.Weights(m.Ctx.In(frcnn.Scope))
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s2.Weights(m.Ctx.In(frcnn.Scope))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range w2 {
		w[k] = v
	}
	if bb == net.ResNet50 {
		for _, name := range []string{"head/class/weights", "rpn/objectness/weights"} {
			for i := range w[name].Values {
				w[name].Values[i] *= 8
			}
		}
		return cfg, w
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, name := range w.Names() { // in order: the draws must not depend on map order
		tensor := w[name]
		switch filepath.Base(name) {
		case net.VarMean, net.VarBeta:
			for i := range tensor.Values {
				tensor.Values[i] = float32(rng.NormFloat64() * 0.2)
			}
		case net.VarVariance, net.VarGamma:
			for i := range tensor.Values {
				tensor.Values[i] = float32(0.5 + rng.Float64())
			}
		}
	}
	for _, name := range []string{"head/class/weights", "rpn/objectness/weights"} {
		for i := range w[name].Values {
			w[name].Values[i] *= 8
		}
	}
	return cfg, w
}

// recalibrate sets m's batch-norm statistics from two photographs.
func recalibrate(t testing.TB, m *frcnn.Model) {
	t.Helper()
	cfg := m.Config
	spec := input.Spec{MaxSide: cfg.Size, Multiple: cfg.Size, Mean: cfg.Mean, Std: cfg.Std}
	var r input.Resizer
	var images []float32
	for _, path := range testImages(t, 2) {
		f := loadFrame(t, path)
		plan, err := spec.Plan(f.Width, f.Height)
		if err != nil {
			t.Fatal(err)
		}
		rgb, err := r.Resize(nil, sourceOf(f), plan, spec.PadColour())
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, input.Normalize(nil, rgb, spec.FloatTable())...)
	}
	done := false
	if err := m.RecalibrateBatchNorm(func() ([]float32, int, error) {
		if done {
			return nil, 0, nil
		}
		done = true
		return images, 2, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// exportBundle writes cfg and w as a bundle of precision p and reads it back
// through the file format.
func exportBundle(t testing.TB, cfg frcnn.Config, w net.Weights, p tflite.Precision,
	calib []string) *bundle.Bundle {
	t.Helper()
	be, err := backend.New("")
	if err != nil {
		t.Fatal(err)
	}
	opt := export.Options{Precision: p, Backend: be, Exporter: "test"}
	if p == tflite.INT8 {
		next := 0
		opt.Calibration = func() (input.Source, bool, error) {
			if next == len(calib) {
				return input.Source{}, false, nil
			}
			next++
			f := loadFrame(t, calib[next-1])
			return input.Source{Pix: f.Pix, Width: f.Width, Height: f.Height,
				Stride: f.Stride, BGR: true}, true, nil
		}
	}
	b, err := export.FromWeights(context.Background(), cfg, w, opt)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bundle.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	back, err := bundle.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// loadFrame reads a photograph as a BGR frame.
func loadFrame(t testing.TB, path string) Frame {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return frameOf(img)
}

// frameOf converts an image to a BGR frame.
func frameOf(img image.Image) Frame {
	b := img.Bounds()
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	w, h := b.Dx(), b.Dy()
	pix := make([]byte, w*h*3)
	for i := range w * h {
		pix[3*i], pix[3*i+1], pix[3*i+2] = rgba.Pix[4*i+2], rgba.Pix[4*i+1], rgba.Pix[4*i]
	}
	return Frame{Pix: pix, Width: w, Height: h, Stride: 3 * w}
}

// testImages returns n photographs of proper-mask/test, in name order.
func testImages(t testing.TB, n int) []string {
	t.Helper()
	dir := fixture.Path(t, "proper-mask", "test")
	paths, err := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if err != nil || len(paths) < n {
		t.Fatalf("proper-mask/test: %d images (%v)", len(paths), err)
	}
	sort.Strings(paths)
	return paths[:n]
}

// frame640 is a whole photograph of facemask/val letterboxed into a
// 640x480 frame, as a camera would give it.
func frame640(t testing.TB) Frame {
	t.Helper()
	path := filepath.Join(fixture.Path(t, "facemask", "val", "images"), "maksssksksss102.jpg")
	f := loadFrame(t, path)
	out := Frame{Pix: make([]byte, 640*480*3), Width: 640, Height: 480, Stride: 640 * 3}
	scale := math.Min(640/float64(f.Width), 480/float64(f.Height))
	var r input.Resizer
	p := input.Plan{Width: 640, Height: 480,
		ContentWidth:  min(640, int(math.Round(float64(f.Width)*scale))),
		ContentHeight: min(480, int(math.Round(float64(f.Height)*scale)))}
	p.Letterbox.Scale = scale
	rgb, err := r.Resize(nil, input.Source{Pix: f.Pix, Width: f.Width, Height: f.Height,
		Stride: f.Stride, BGR: true}, p, [3]uint8{40, 40, 40})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(rgb); i += 3 {
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = rgb[i+2], rgb[i+1], rgb[i]
	}
	return out
}

// relDiff is max |a-b| over max |b|: the difference relative to the
// tensor's scale.
func relDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var diff, peak float64
	for i := range a {
		diff = math.Max(diff, math.Abs(float64(a[i])-float64(b[i])))
		peak = math.Max(peak, math.Abs(float64(b[i])))
	}
	if peak == 0 {
		return diff
	}
	return diff / peak
}

func sourceOf(f Frame) input.Source {
	return input.Source{Pix: f.Pix, Width: f.Width, Height: f.Height, Stride: f.Stride,
		BGR: true}
}
