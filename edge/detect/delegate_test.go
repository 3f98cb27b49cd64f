//go:build cgo

package detect

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/tflite"
)

// buildMarkerDelegate compiles testdata/marker_delegate.c into a plugin.
func buildMarkerDelegate(t *testing.T) string {
	t.Helper()
	lib := filepath.Join(t.TempDir(), "libmarker_delegate.so")
	cmd := exec.Command("gcc", "-shared", "-fPIC", "-O1", "-o", lib,
		filepath.Join("testdata", "marker_delegate.c"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test delegate: %v\n%s", err, out)
	}
	return lib
}

func TestExternalDelegate(t *testing.T) {
	cfg, w := randomDetector(t, 3)
	b := exportBundle(t, cfg, w, tflite.FP32, nil)
	lib := buildMarkerDelegate(t)
	f := loadFrame(t, testImages(t, 1)[0])

	cpu, err := OpenBundle(b, "m", Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	want, err := cpu.Detect(f)
	if err != nil {
		t.Fatal(err)
	}

	marker := filepath.Join(t.TempDir(), "marker")
	d, err := OpenBundle(b, "m", Options{Threads: 1, Delegate: "external:" + lib,
		DelegateOptions: map[string]string{"marker": marker}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Detect(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || (len(got) > 0 && got[0] != want[0]) {
		t.Errorf("with the delegate %d faces, without %d", len(got), len(want))
	}
	if err := d.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := d.Detect(f); err == nil {
		t.Error("a closed detector detected")
	}
	raw, err := os.ReadFile(marker)
	if err != nil {
		t.Fatalf("the plugin was not applied: %v", err)
	}
	// Once a stage at least (TFLite prepares delegates again after a resize).
	if n := strings.Count(string(raw), "prepared"); n < 2 {
		t.Errorf("the plugin prepared %d graphs, want both stages", n)
	}

	// The plugin refusing to create a delegate is an error with its reason.
	_, err = OpenBundle(b, "m", Options{Delegate: "external:" + lib,
		DelegateOptions: map[string]string{"fail": "1"}})
	if err == nil || !strings.Contains(err.Error(), "told to fail") {
		t.Errorf("refusing plugin: %v", err)
	}
}

func TestDelegateErrors(t *testing.T) {
	cfg, w := randomDetector(t, 4)
	b := exportBundle(t, cfg, w, tflite.FP32, nil)
	missing := filepath.Join(t.TempDir(), "libnothing.so")
	for _, tc := range []struct {
		delegate string
		says     []string
	}{
		{"external:" + missing, []string{missing, "cannot be loaded", "check the path"}},
		{"external:libm.so.6", []string{"libm.so.6", "tflite_plugin_create_delegate",
			"not a TFLite external delegate plugin"}},
		{"xnnpack", []string{"XNNPACK", "Debian", "--delegate cpu"}},
		{"nnapi", []string{"Android"}},
		{"edgetpu", []string{"libedgetpu.so.1", "libedgetpu1-std"}},
		{"gpu", []string{"libarmnnDelegate.so", "external:PATH"}},
		{"external:", []string{"name the plugin library"}},
		{"tpu", []string{`delegate "tpu"`, "external:PATH"}},
	} {
		t.Run(tc.delegate, func(t *testing.T) {
			d, err := OpenBundle(b, "m", Options{Delegate: tc.delegate})
			if err == nil {
				d.Close()
				t.Fatal("opened")
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.HasPrefix(tc.delegate, "external:") && len(tc.delegate) > 9 ||
				tc.delegate == "xnnpack" || tc.delegate == "nnapi" {
				// With fallback: a warning, and the CPU.
				d, err := OpenBundle(b, "m", Options{Delegate: tc.delegate,
					DelegateFallback: true})
				if err != nil {
					t.Fatalf("with fallback: %v", err)
				}
				if _, err := d.Detect(loadFrame(t, testImages(t, 1)[0])); err != nil {
					t.Error(err)
				}
				d.Close()
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "none.mwb"), Options{}); err == nil {
		t.Error("a missing bundle opened")
	}
	bad := filepath.Join(t.TempDir(), "bad.mwb")
	os.WriteFile(bad, []byte("MWBUNDLE and then nothing useful"), 0o644)
	if _, err := Open(bad, Options{}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a damaged bundle: %v", err)
	}
	cfg, w := randomDetector(t, 5)
	b := exportBundle(t, cfg, w, tflite.FP16, nil)
	for _, opt := range []Options{{Engine: "onnx"}, {Threads: -1},
		{Engine: EngineGoMLX, Delegate: "gpu"}} {
		if d, err := OpenBundle(b, "m", opt); err == nil {
			d.Close()
			t.Errorf("%+v opened", opt)
		}
	}
	b.Weights = nil
	if _, err := OpenBundle(b, "m", Options{Engine: EngineGoMLX}); err == nil ||
		!strings.Contains(err.Error(), "float weights") {
		t.Errorf("gomlx without weights: %v", err)
	}
}
