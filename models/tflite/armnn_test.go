package tflite

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/net"
)

// armnnRunner builds testdata/armnn_run.cc against Debian's Arm NN
// (scripts/deps.sh installs it) and returns the program and the folder of
// Arm NN's CpuRef backend.
func armnnRunner(t *testing.T) (program, backends string) {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/*/armnn*/Arm_CpuRef_backend.so")
	if len(matches) == 0 {
		t.Fatal("Arm NN's CpuRef backend is not installed: run make deps " +
			"(libarmnn-cpuref-backend33 from sid)")
	}
	program = filepath.Join(t.TempDir(), "armnn_run")
	cmd := exec.Command("g++", "-std=c++17", "-O1", "-o", program,
		filepath.Join("testdata", "armnn_run.cc"), "-larmnnTfLiteParser", "-larmnn")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Arm NN harness: %v\n%s(run make deps for "+
			"libarmnntfliteparser-dev)", err, out)
	}
	return program, filepath.Dir(matches[0])
}

// runArmNN runs model on in with Arm NN and returns its outputs and shapes.
func runArmNN(t *testing.T, program, backends string, model []byte, in net.Tensor) (
	[][]float32, []string) {
	t.Helper()
	dir := t.TempDir()
	modelPath := filepath.Join(dir, "model.tflite")
	inPath := filepath.Join(dir, "input.f32")
	raw := make([]byte, 4*len(in.Values))
	for i, v := range in.Values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(modelPath, model, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, "out")
	out, err := exec.Command(program, modelPath, backends, inPath, prefix).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("Arm NN: %v: %s", err, msg)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	outputs := make([][]float32, len(lines))
	for k := range lines {
		data, err := os.ReadFile(prefix + "." + string(rune('0'+k)))
		if err != nil {
			t.Fatal(err)
		}
		values := make([]float32, len(data)/4)
		for i := range values {
			values[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		outputs[k] = values
	}
	return outputs, lines
}

// TestArmNNReadsFP32Stages has Arm NN's own TFLite parser load the fp32
// stage graphs and run them on its reference backend: every output agrees
// with GoMLX within 1e-4 of its scale.
func TestArmNNReadsFP32Stages(t *testing.T) {
	program, backends := armnnRunner(t)
	cfg, s1, s2, w := detectorStages(t, 5)
	in := photo(t, cfg, 0)
	g1, err := Write(s1, w, Options{Precision: FP32, InputShapes: [][]int{in.Shape}})
	if err != nil {
		t.Fatal(err)
	}
	want := reference(t, s1, w, in)
	got, shapes := runArmNN(t, program, backends, g1.Model, in)
	if len(got) != 3 {
		t.Fatalf("Arm NN gave %d outputs of stage 1, want 3: %q", len(got), shapes)
	}
	for k := range got {
		if d := relDiff(got[k], want[k].Values); !(d <= 1e-4) {
			t.Errorf("stage 1 output %q differs by %.2g of its scale", shapes[k], d)
		}
	}

	// Stage 2 on RoIs cut from stage 1's feature map.
	r := 6
	c := cfg.NeckChannels
	rois := net.Tensor{Shape: []int{r, cfg.RoIAlign.OutH, cfg.RoIAlign.OutW, c}}
	feature := want[0].Values
	for i := range r * cfg.RoIAlign.OutH * cfg.RoIAlign.OutW * c {
		rois.Values = append(rois.Values, feature[(i*31)%len(feature)])
	}
	g2, err := Write(s2, w, Options{Precision: FP32, InputShapes: [][]int{rois.Shape}})
	if err != nil {
		t.Fatal(err)
	}
	want2 := reference(t, s2, w, rois)
	got2, shapes2 := runArmNN(t, program, backends, g2.Model, rois)
	if len(got2) != 2 {
		t.Fatalf("Arm NN gave %d outputs of stage 2, want 2: %q", len(got2), shapes2)
	}
	for k := range got2 {
		if d := relDiff(got2[k], want2[k].Values); !(d <= 1e-4) {
			t.Errorf("stage 2 output %q differs by %.2g of its scale", shapes2[k], d)
		}
		if !slices.Equal(strings.Fields(shapes2[k])[1:], []string{"6",
			[]string{"3", "12"}[k]}) {
			t.Errorf("stage 2 output shape %q", shapes2[k])
		}
	}
}
