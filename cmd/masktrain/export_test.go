package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/train/fixture"
)

func TestExportFlagErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.mwb")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"--out", out}, "no --model"},
		{"no out", []string{"--model", "x.ckpt"}, "no --out"},
		{"bad precision", []string{"--model", "x", "--out", out, "--precision", "int4"},
			`precision "int4"`},
		{"int8 without calib", []string{"--model", "x", "--out", out, "--precision", "int8"},
			"--calib DIR"},
		{"missing calib", []string{"--model", "x", "--out", out, "--calib", "/no/such"},
			"--calib"},
		{"bad method", []string{"--model", "x", "--out", out, "--calib-method", "median"},
			`method "median"`},
		{"bad count", []string{"--model", "x", "--out", out, "--precision", "fp32",
			"--calib-images", "0"},
			"--calib-images 0"},
		{"argument", []string{"--model", "x", "--out", out, "extra"}, `"extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(context.Background(), append([]string{"export"},
				tc.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
	code, _, stderr := runCLI(context.Background(), "export", "--model",
		filepath.Join(t.TempDir(), "none.ckpt"), "--precision", "fp32", "--out", out)
	if code != exitFailed || !strings.Contains(stderr, "none.ckpt") {
		t.Errorf("missing checkpoint: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed export wrote its --out")
	}
}

type evalLine struct {
	Accuracy float64 `json:"accuracy"`
	IoU      float64 `json:"iou"`
	Images   int     `json:"images"`
}

func evalJSON(t *testing.T, args ...string) evalLine {
	t.Helper()
	code, stdout, stderr := runCLI(context.Background(), append([]string{"eval", "--json",
		"--samples", "0", "--threads", "1"}, args...)...)
	if code != exitOK {
		t.Fatalf("eval %v: exit %d\n%s", args, code, stderr)
	}
	var e evalLine
	if err := json.Unmarshal([]byte(stdout), &e); err != nil {
		t.Fatalf("eval %v: %v in %q", args, err, stdout)
	}
	return e
}

// TestExportedPrecisionsKeepAccuracy exports the default model again at
// each precision (from the float weights it carries) and evaluates the
// bundles on proper-mask/test with TFLite: fp16 keeps accuracy and IoU
// within 0.01 of fp32, int8 within 0.02; the GoMLX engine scores the fp32
// bundle as TFLite does.
func TestExportedPrecisionsKeepAccuracy(t *testing.T) {
	test := fixture.Path(t, "proper-mask", "test")
	calib := fixture.Path(t, "proper-mask", "train")
	dir := t.TempDir()
	scores := map[string]evalLine{}
	for _, p := range []string{"fp32", "fp16", "int8"} {
		out := filepath.Join(dir, p+".mwb")
		code, _, stderr := runCLI(context.Background(), "export", "--model", "default",
			"--precision", p, "--calib", calib, "--calib-images", "100", "--out", out)
		if code != exitOK {
			t.Fatalf("export %s: exit %d\n%s", p, code, stderr)
		}
		scores[p] = evalJSON(t, "--model", out, "--engine", "tflite", "--data", test)
		t.Logf("%s: accuracy %.4f, IoU %.4f", p, scores[p].Accuracy, scores[p].IoU)
	}
	ref := scores["fp32"]
	if ref.Images != 255 {
		t.Fatalf("%d images evaluated, proper-mask/test has 255", ref.Images)
	}
	for p, tol := range map[string]float64{"fp16": 0.01, "int8": 0.02} {
		s := scores[p]
		if math.Abs(s.Accuracy-ref.Accuracy) > tol || math.Abs(s.IoU-ref.IoU) > tol {
			t.Errorf("%s: accuracy %.4f, IoU %.4f; fp32 %.4f, %.4f: more than %.2f apart", p,
				s.Accuracy, s.IoU, ref.Accuracy, ref.IoU, tol)
		}
	}
	g := evalJSON(t, "--model", filepath.Join(dir, "fp32.mwb"), "--engine", "gomlx",
		"--data", test)
	if g.Accuracy != ref.Accuracy || math.Abs(g.IoU-ref.IoU) > 1e-4 {
		t.Errorf("gomlx engine: accuracy %.4f, IoU %.4f; tflite %.4f, %.4f", g.Accuracy, g.IoU,
			ref.Accuracy, ref.IoU)
	}

	// The default model itself.
	d := evalJSON(t, "--model", "default", "--data", test)
	t.Logf("default model: accuracy %.4f, IoU %.4f", d.Accuracy, d.IoU)
	if math.Abs(d.Accuracy-ref.Accuracy) > 0.02 || math.Abs(d.IoU-ref.IoU) > 0.02 {
		t.Errorf("default model: accuracy %.4f, IoU %.4f, its fp32 export %.4f, %.4f",
			d.Accuracy, d.IoU, ref.Accuracy, ref.IoU)
	}
}

// TestEvalRefusesBadBundles: damaged bundles fail with the file named and
// the reason, never a crash.
func TestEvalRefusesBadBundles(t *testing.T) {
	test := fixture.Path(t, "seed-samples")
	raw, err := os.ReadFile(filepath.Join("..", "..", "models", "defaultmodel", "data",
		"default.mwb"))
	if err != nil {
		t.Fatalf("the default model: %v", err)
	}
	dir := t.TempDir()
	changed := append([]byte(nil), raw...)
	changed[len(changed)/2] ^= 1
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"truncated.mwb": {raw[:len(raw)/3], "truncated"},
		"changed.mwb":   {changed, "sha256"},
		"tflite.mwb":    {[]byte("MWBUNDL"), "too short"},
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCLI(context.Background(), "eval", "--model", path, "--data", test)
		if code != exitFailed || !strings.Contains(stderr, tc.want) ||
			!strings.Contains(stderr, name) {
			t.Errorf("%s: exit %d, %q; want %d naming the file and %q", name, code, stderr,
				exitFailed, tc.want)
		}
	}
	if !strings.HasPrefix(string(raw), bundle.Magic) {
		t.Error("the default model is not a bundle")
	}
}
