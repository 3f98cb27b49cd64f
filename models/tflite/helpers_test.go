package tflite

import (
	"image"
	_ "image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// detectorStages returns the stages of the default MobileNetV3 detector
// with weights drawn from seed, batch-norm statistics spread out so that
// folding them is exercised.
func detectorStages(t testing.TB, seed uint64) (frcnn.Config, *net.Net, *net.Net,
	net.Weights) {
	t.Helper()
	cfg := frcnn.DefaultConfig(net.MobileNetV3Large)
	s1, s2, err := cfg.Stages()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	w := net.Weights{}
	for k, n := range []*net.Net{s1, s2} {
		if err := n.Init(ctx, seed+uint64(k)); err != nil {
			t.Fatal(err)
		}
		part, err := n.Weights(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range part {
			w[name] = v
		}
	}
	rng := rand.New(rand.NewPCG(seed, 3))
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
	return cfg, s1, s2, w
}

// photo returns a proper-mask/test photograph as the normalised stage-1
// input the edge would make of it, and the input's shape.
func photo(t testing.TB, cfg frcnn.Config, k int) net.Tensor {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(fixture.Path(t, "proper-mask", "test"), "*.jpg"))
	if err != nil || len(paths) <= k {
		t.Fatalf("proper-mask/test: %d photographs (%v)", len(paths), err)
	}
	sort.Strings(paths)
	f, err := os.Open(paths[k])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	pix := make([]byte, 0, b.Dx()*b.Dy()*3)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			pix = append(pix, byte(r>>8), byte(g>>8), byte(bl>>8))
		}
	}
	spec := input.Spec{MaxSide: 320, Multiple: 32, Mean: cfg.Mean, Std: cfg.Std}
	plan, err := spec.Plan(b.Dx(), b.Dy())
	if err != nil {
		t.Fatal(err)
	}
	var r input.Resizer
	rgb, err := r.Resize(nil, input.Source{Pix: pix, Width: b.Dx(), Height: b.Dy(),
		Stride: 3 * b.Dx()}, plan, spec.PadColour())
	if err != nil {
		t.Fatal(err)
	}
	return net.Tensor{Shape: []int{1, plan.Height, plan.Width, 3},
		Values: input.Normalize(nil, rgb, spec.FloatTable())}
}

// reference runs n on in with GoMLX.
func reference(t testing.TB, n *net.Net, w net.Weights, in net.Tensor) []net.Tensor {
	t.Helper()
	be, err := backend.New("")
	if err != nil {
		t.Fatal(err)
	}
	r, err := net.NewRunner(be, n, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, err := r.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// relDiff is max |a-b| over max |b|.
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

func backendForTest(t testing.TB) backends.Backend {
	t.Helper()
	be, err := backend.New("")
	if err != nil {
		t.Fatal(err)
	}
	return be
}
