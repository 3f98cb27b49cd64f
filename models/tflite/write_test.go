package tflite

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite/schema"
)

// calibrated returns int8 ranges for both stages from two photographs.
func calibrated(t *testing.T, s1, s2 *net.Net, w net.Weights, ins []net.Tensor) (Ranges,
	Ranges) {
	t.Helper()
	be := backendForTest(t)
	c1, err := NewCalibrator(be, s1, w)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := NewCalibrator(be, s2, w)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for _, in := range ins {
		out, err := c1.Add(in)
		if err != nil {
			t.Fatal(err)
		}
		f := out[0].Values
		rois := net.Tensor{Shape: []int{4, 7, 7, out[0].Shape[3]}}
		for i := range 4 * 7 * 7 * out[0].Shape[3] {
			rois.Values = append(rois.Values, f[(i*17)%len(f)])
		}
		if _, err := c2.Add(rois); err != nil {
			t.Fatal(err)
		}
	}
	r1, err := c1.Ranges(DefaultMethod)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c2.Ranges(DefaultMethod)
	if err != nil {
		t.Fatal(err)
	}
	r1["image"] = Range{-2.2, 2.7}
	r2["rois"] = r1["neck/smooth"]
	return r1, r2
}

// TestWritePrecisions writes both stages at each precision and checks what
// the files hold: builtin operators only, batch norm folded away, float16
// weights behind DEQUANTIZE, int8 inputs and outputs with their scales.
func TestWritePrecisions(t *testing.T) {
	cfg, s1, s2, w := detectorStages(t, 9)
	ins := []net.Tensor{photo(t, cfg, 1), photo(t, cfg, 2)}
	r1, r2 := calibrated(t, s1, s2, w, ins)
	for _, p := range []Precision{FP32, FP16, INT8} {
		g1, err := Write(s1, w, Options{Precision: p, InputShapes: [][]int{{1, 256, 320, 3}},
			Ranges: r1, Description: "stage 1"})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		g2, err := Write(s2, w, Options{Precision: p, InputShapes: [][]int{{100, 7, 7, 128}},
			Ranges: r2})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		s, err := Inspect(g1.Model)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if s.Description != "stage 1" {
			t.Errorf("%s: description %q", p, s.Description)
		}
		// 15 blocks' depthwise convolutions, 8 squeeze-excites.
		if s.Operators["DEPTHWISE_CONV_2D"] != 15 || s.Operators["MEAN"] != 8 ||
			s.Operators["HARD_SWISH"] == 0 || s.Operators["DEPTH_TO_SPACE"] != 1 {
			t.Errorf("%s: operators %v", p, s.Operators)
		}
		convs := s.Operators["CONV_2D"] + s.Operators["DEPTHWISE_CONV_2D"]
		if want := count(s1, net.Conv); convs != want {
			t.Errorf("%s: %d convolutions written, the net has %d", p, convs, want)
		}
		dequantize := s.Operators["DEQUANTIZE"]
		if (p == FP16) != (dequantize == 2*convs) {
			t.Errorf("%s: %d DEQUANTIZE for %d convolutions", p, dequantize, convs)
		}
		wantType := "float32"
		if p == INT8 {
			wantType = "int8"
		}
		for _, ti := range slices.Concat(g1.Inputs, g1.Outputs, g2.Inputs, g2.Outputs) {
			if ti.Type != wantType || (p == INT8) != (ti.Scale > 0) {
				t.Errorf("%s: tensor %+v", p, ti)
			}
		}
		if got := g1.Outputs[0].Shape; !slices.Equal(got, []int{1, 16, 20, 128}) {
			t.Errorf("%s: feature map %v, want 1x16x20x128", p, got)
		}
		t.Logf("%s: stage 1 %d bytes, stage 2 %d bytes, %v", p, len(g1.Model), len(g2.Model),
			s.Operators)
	}
}

func count(n *net.Net, op net.Op) int {
	k := 0
	for _, l := range n.Layers {
		if l.Op == op {
			k++
		}
	}
	return k
}

// TestFlatcDecodes has flatc, with TensorFlow's schema.fbs, turn written
// graphs into JSON: the files follow the schema as another reader sees it.
func TestFlatcDecodes(t *testing.T) {
	if _, err := exec.LookPath("flatc"); err != nil {
		t.Fatal("flatc is missing: run make deps (flatbuffers-compiler)")
	}
	cfg, s1, s2, w := detectorStages(t, 2)
	r1, _ := calibrated(t, s1, s2, w, []net.Tensor{photo(t, cfg, 3)})
	for _, p := range []Precision{FP32, FP16, INT8} {
		g, err := Write(s1, w, Options{Precision: p, InputShapes: [][]int{{1, 224, 224, 3}},
			Ranges: r1})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "stage1.tflite")
		if err := os.WriteFile(path, g.Model, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("flatc", "--json", "--strict-json", "--defaults-json",
			"--raw-binary", "-o", dir,
			filepath.Join("schema", "schema.fbs"), "--", path)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: flatc: %v\n%s", p, err, out)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "stage1.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Version       int `json:"version"`
			OperatorCodes []struct {
				Deprecated int    `json:"deprecated_builtin_code"`
				Code       string `json:"builtin_code"`
				Version    int    `json:"version"`
			} `json:"operator_codes"`
			Subgraphs []struct {
				Tensors []struct {
					Name         string `json:"name"`
					Type         string `json:"type"`
					Quantization struct {
						Scale []float64 `json:"scale"`
						Dim   int       `json:"quantized_dimension"`
					} `json:"quantization"`
				} `json:"tensors"`
				Operators []json.RawMessage `json:"operators"`
			} `json:"subgraphs"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: flatc's JSON: %v", p, err)
		}
		s, _ := Inspect(g.Model)
		if doc.Version != 3 || len(doc.Subgraphs) != 1 ||
			len(doc.Subgraphs[0].Tensors) != s.Tensors {
			t.Errorf("%s: flatc read version %d, %d subgraphs", p, doc.Version, len(doc.Subgraphs))
		}
		ops := 0
		for _, c := range doc.OperatorCodes {
			code, known := schema.EnumValuesBuiltinOperator[c.Code]
			if !known || c.Version < 1 || c.Deprecated != min(int(code), 127) {
				t.Errorf("%s: operator code %+v (deprecated_builtin_code must repeat "+
					"codes below 127)", p, c)
			}
			if p == INT8 && strings.Contains(c.Code, "CONV_2D") && c.Version != 3 {
				t.Errorf("%s: %s version %d, TFLite's int8 kernels are version 3", p, c.Code,
					c.Version)
			}
		}
		for _, n := range s.Operators {
			ops += n
		}
		if len(doc.Subgraphs[0].Operators) != ops {
			t.Errorf("%s: flatc read %d operators, Inspect %d", p,
				len(doc.Subgraphs[0].Operators), ops)
		}
		if p == INT8 {
			perChannel := 0
			for _, tensor := range doc.Subgraphs[0].Tensors {
				if strings.HasSuffix(tensor.Name, "/filter") && len(tensor.Quantization.Scale) > 1 {
					perChannel++
				}
			}
			if perChannel != count(s1, net.Conv) {
				t.Errorf("int8: %d filters quantised per channel, want %d", perChannel,
					count(s1, net.Conv))
			}
		}
	}
}

func TestQuantizeWeights(t *testing.T) {
	// Two output channels (last axis of a [1, 2, 2] depthwise-like filter).
	values := []float32{0.5, -2, -1, 1, 0.25, 0.5, 0, 0}
	q, scales := quantizeWeights(values, []int{1, 4, 2}, 2)
	if len(scales) != 2 || math.Abs(float64(scales[0])-1.0/127) > 1e-9 ||
		math.Abs(float64(scales[1])-2.0/127) > 1e-9 {
		t.Fatalf("scales %v", scales)
	}
	if !slices.Equal(q, []int8{64, -127, -127, 64, 32, 32, 0, 0}) {
		t.Errorf("quantised %v", q)
	}
	q, scales = quantizeWeights([]float32{0, 0}, []int{2}, -1)
	if scales[0] <= 0 || q[0] != 0 {
		t.Errorf("all-zero weights: %v %v", q, scales)
	}
	a := activationQuant(Range{Min: 0.5, Max: 3})
	if a.zeroPoints[0] != -128 || math.Abs(float64(a.scales[0])-3.0/255) > 1e-9 {
		t.Errorf("range [0.5, 3] (widened to hold 0): %+v", a)
	}
	a = activationQuant(Range{Min: -1, Max: 1})
	zero := float64(a.zeroPoints[0])
	if math.Abs(-128+(0-(-1))/float64(a.scales[0])-zero) > 0.5 {
		t.Errorf("range [-1, 1]: zero point %v", zero)
	}
}

func TestWriteRefuses(t *testing.T) {
	_, s1, _, w := detectorStages(t, 1)
	if _, err := Write(s1, w, Options{Precision: "fp64",
		InputShapes: [][]int{{1, 64, 64, 3}}}); err == nil {
		t.Error("fp64 written")
	}
	if _, err := Write(s1, w, Options{Precision: INT8,
		InputShapes: [][]int{{1, 64, 64, 3}}}); err == nil ||
		!strings.Contains(err.Error(), "calibrated range") {
		t.Errorf("int8 without ranges: %v", err)
	}
	delete(w, "backbone/stem/conv/weights")
	if _, err := Write(s1, w, Options{Precision: FP32,
		InputShapes: [][]int{{1, 64, 64, 3}}}); err == nil ||
		!strings.Contains(err.Error(), "backbone/stem/conv/weights") {
		t.Errorf("missing weights: %v", err)
	}

	// A batch norm that follows no convolution of its own cannot be folded.
	b := net.NewBuilder()
	x := b.Input("image", 3)
	b.Output(b.BN("bn", x))
	n, _ := b.Net()
	if _, err := Write(n, net.Weights{}, Options{Precision: FP32,
		InputShapes: [][]int{{1, 8, 8, 3}}}); err == nil {
		t.Error("a lone batch norm written")
	}
	if _, err := Inspect([]byte("TFL3 is not enough")); err == nil {
		t.Error("garbage inspected")
	}
}
