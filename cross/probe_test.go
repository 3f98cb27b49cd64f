package cross

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// probeReport is what cross/probe prints.
type probeReport struct {
	OpenCV     string      `json:"opencv"`
	Width      int         `json:"width"`
	Height     int         `json:"height"`
	Outputs    [][]float32 `json:"outputs"`
	FrameMeans []float64   `json:"frame_means"`
}

// probeModel writes a small convolutional network with fixed pseudo-random
// weights as a float32 TFLite model taking 48x48 RGB images.
func probeModel(t *testing.T) string {
	t.Helper()
	b := net.NewBuilder()
	x := b.Input("image", 3)
	x = b.Conv("conv1", x, 8, 3, 2, 1, true)
	x = b.Act("relu1", x, net.ReLU)
	x = b.Conv("conv2", x, 16, 3, 2, 1, true)
	x = b.Act("relu2", x, net.ReLU)
	x = b.GlobalAvgPool("pool", x)
	x = b.Flatten("flat", x, 16)
	x = b.Dense("logits", x, 4, "")
	b.Output(x)
	n, err := b.Net()
	if err != nil {
		t.Fatal(err)
	}
	w := net.Weights{}
	seed := uint32(7)
	for _, v := range n.Vars() {
		size := 1
		for _, d := range v.Shape {
			size *= d
		}
		values := make([]float32, size)
		for i := range values {
			seed = seed*1664525 + 1013904223
			values[i] = float32(int(seed>>16)%2001-1000) / 2000
		}
		if v.Name == net.VarVariance {
			for i := range values {
				values[i] = 1 + values[i]*values[i]
			}
		}
		w[v.FullName()] = net.Tensor{Shape: v.Shape, Values: values}
	}
	g, err := tflite.Write(n, w, tflite.Options{Precision: tflite.FP32,
		InputShapes: [][]int{{1, 48, 48, 3}}, Description: "cross probe"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "probe.tflite")
	if err := os.WriteFile(path, g.Model, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// GoCV (image decoding, resizing, video decoding through FFmpeg) and TFLite
// give the same results in the arm64 build, run under qemu with the
// sysroot's libraries, as in the amd64 build.
func TestProbeSameOnArm64(t *testing.T) {
	amd64 := build(t, "full", "amd64", "./cross/probe")
	arm := build(t, "full", "arm64", "./cross/probe")
	args := []string{"--model", probeModel(t),
		"--image", fixture.Path(t, "seed-samples", "000024__[18, 84, 126, 135]__True.jpg"),
		"--video", fixture.Path(t, "video", "demo.mp4"), "--frames", "3"}

	parse := func(name string, out []byte) probeReport {
		var rep probeReport
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("%s probe printed %q: %v", name, out, err)
		}
		return rep
	}
	want := parse("amd64", output(t, exec.Command(amd64, args...)))
	got := parse("arm64", output(t, arm64(t, arm, args...)))

	if want.OpenCV != "4.6.0" || got.OpenCV != want.OpenCV {
		t.Errorf("OpenCV %q on arm64, %q on amd64; want 4.6.0 on both", got.OpenCV, want.OpenCV)
	}
	if got.Width != want.Width || got.Height != want.Height || want.Width == 0 {
		t.Errorf("image %dx%d on arm64, %dx%d on amd64", got.Width, got.Height,
			want.Width, want.Height)
	}
	if len(want.Outputs) != 1 || len(want.Outputs[0]) != 4 {
		t.Fatalf("amd64 outputs %v, want one output of 4 values", want.Outputs)
	}
	if len(got.Outputs) != 1 || len(got.Outputs[0]) != 4 {
		t.Fatalf("arm64 outputs %v, want one output of 4 values", got.Outputs)
	}
	for i, v := range want.Outputs[0] {
		if d := math.Abs(float64(got.Outputs[0][i] - v)); d > 1e-4*(1+math.Abs(float64(v))) {
			t.Errorf("output %d: %g on arm64, %g on amd64", i, got.Outputs[0][i], v)
		}
	}
	if len(want.FrameMeans) != 3 || len(got.FrameMeans) != 3 {
		t.Fatalf("frames read: %d on arm64, %d on amd64, want 3", len(got.FrameMeans),
			len(want.FrameMeans))
	}
	for i, m := range want.FrameMeans {
		// H.264 decoding is exact; the conversion to BGR may round apart.
		if math.Abs(got.FrameMeans[i]-m) > 0.5 || m < 1 {
			t.Errorf("frame %d mean %.3f on arm64, %.3f on amd64", i, got.FrameMeans[i], m)
		}
	}
}
