package cross

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// benchBundle returns the model bundle to time: the default model when this
// checkout has one, or else a MobileNetV3 trained for one epoch at the
// study's 224 px and exported to int8 (the cost of a detection depends on
// the network's shape, not on how well it was trained).
func benchBundle(b *testing.B, masktrain string) string {
	b.Helper()
	if _, err := os.Stat(filepath.Join(repoRoot, "models", "defaultmodel", "data",
		"default.mwb")); err == nil {
		return "default"
	}
	b.Log("no models/defaultmodel/data/default.mwb: timing a MobileNetV3 bundle " +
		"trained for one epoch")
	seeds := fixture.Path(b, "seed-samples")
	dir := b.TempDir()
	output(b, exec.Command(masktrain, "train", "--backbone", "mobilenetv3", "--data", seeds,
		"--out", filepath.Join(dir, "run"), "--size", "224", "--batch", "2", "--epochs", "1",
		"--train-eval", "2", "--recalibrate", "2", "--workers", "1"))
	bundle := filepath.Join(dir, "bench.mwb")
	output(b, exec.Command(masktrain, "export", "--model", filepath.Join(dir, "run",
		"best.ckpt"), "--precision", "int8", "--calib", seeds, "--out", bundle))
	return bundle
}

// BenchmarkDetectPerFrame times one detection, image by image as frames
// come, with the TFLite engine of the full (cgo) build and with the GoMLX
// engine of the static (CGO_ENABLED=0) build, both amd64 on this machine:
// the cost of a binary that needs no shared library.
func BenchmarkDetectPerFrame(b *testing.B) {
	full := build(b, "full", "amd64", "./cmd/masktrain")
	static := build(b, "static", "amd64", "./cmd/masktrain")
	model := benchBundle(b, full)
	data := someImages(b, fixture.Path(b, "proper-mask", "test"), 24)

	perFrame := func(bin, engine string) float64 {
		out := output(b, exec.Command(bin, "eval", "--model", model, "--engine", engine,
			"--data", data, "--json", "--batch", "1", "--workers", "1", "--samples", "0"))
		var rep struct {
			Images        int     `json:"images"`
			DetectSeconds float64 `json:"detect_seconds"`
		}
		if err := json.Unmarshal(out, &rep); err != nil || rep.Images == 0 {
			b.Fatalf("%s eval --engine %s printed %q: %v", bin, engine, out, err)
		}
		return 1000 * rep.DetectSeconds / float64(rep.Images)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tfl := perFrame(full, "tflite")
		gomlx := perFrame(static, "gomlx")
		b.ReportMetric(tfl, "ms/frame-tflite")
		b.ReportMetric(gomlx, "ms/frame-static")
		b.ReportMetric(gomlx/tfl, "static/tflite")
	}
}
