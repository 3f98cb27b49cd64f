package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/edge/finetune"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/models/export"
	"github.com/maskwatch/maskwatch/models/tflite"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// weakenedBundle writes the default model with the two classes of its box
// head swapped, as fp16: it finds faces and calls each mask the wrong way.
func weakenedBundle(t testing.TB, path string) string {
	t.Helper()
	return weakenedAs(t, path, export.Options{Precision: tflite.FP16})
}

// weakenedAs is weakenedBundle exported with opt.
func weakenedAs(t testing.TB, path string, opt export.Options) string {
	t.Helper()
	b, err := defaultmodel.Load()
	if err != nil {
		t.Fatal(err)
	}
	w := b.Weights["head/class/weights"]
	k := w.Shape[1]
	for r := range w.Shape[0] {
		w.Values[r*k+1], w.Values[r*k+2] = w.Values[r*k+2], w.Values[r*k+1]
	}
	bias := b.Weights["head/class/bias"].Values
	bias[1], bias[2] = bias[2], bias[1]
	opt.Exporter = "weakened on purpose"
	nb, err := export.FromWeights(t.Context(), b.Meta.Model, b.Weights, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Write(path, nb); err != nil {
		t.Fatal(err)
	}
	return nb.ShortVersion()
}

// labelledFolder links n crops of proper-mask/train into a folder of the
// study's file-name format.
func labelledFolder(t *testing.T, n int) string {
	t.Helper()
	src := fixture.Path(t, "proper-mask", "train")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := 0; i < len(entries) && n > 0; i += 5 {
		name := entries[i].Name()
		if !strings.HasSuffix(name, ".jpg") {
			continue
		}
		if err := os.Symlink(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		n--
	}
	return dir
}

func (d *deviceProc) request(method, path, token string, body any) (int, []byte) {
	d.t.Helper()
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, d.url+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestE2EFinetuneFromThePage: a device whose model mixes up the classes is
// fine-tuned from its admin API on a labelled folder, in a child process;
// the new bundle is accepted on held-out accuracy, deployed through the
// device's checks and served. Then maskwatch finetune on the command line
// installs a bundle over a model file, keeping the previous one.
func TestE2EFinetuneFromThePage(t *testing.T) {
	maskwatch, _ := buildBinaries(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "model.mwb")
	weakVersion := weakenedBundle(t, model)
	data := labelledFolder(t, 60)
	collect := filepath.Join(dir, "collect")

	dev := startDevice(t, maskwatch, "--source", fixture.Path(t, "video", "demo.mp4"),
		"--model", model, "--headless", "--listen", "127.0.0.1:0",
		"--admin-token", deployToken, "--collect", collect, "--finetune-nice", "5")
	dev.waitFor("frames", func(s edge.Status) bool { return s.Frames >= 45 })

	if code, page := dev.request("GET", "/admin", "", nil); code != 200 ||
		!bytes.Contains(page, []byte("admin.js")) {
		t.Errorf("GET /admin: %d", code)
	}
	if code, _ := dev.request("GET", "/api/finetune", "", nil); code != 401 {
		t.Errorf("GET /api/finetune without the token: %d, want 401", code)
	}
	if code, out := dev.request("POST", "/api/finetune", deployToken,
		map[string]any{"epochs": 5, "data": []string{data}}); code != 202 {
		t.Fatalf("POST /api/finetune: %d %s", code, out)
	}

	var st finetune.ManagerStatus
	deadline := time.Now().Add(8 * time.Minute)
	for {
		_, out := dev.request("GET", "/api/finetune", deployToken, nil)
		st = finetune.ManagerStatus{}
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("GET /api/finetune: %v: %s", err, out)
		}
		if !st.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fine-tune still runs after 8 minutes: %+v", st.Progress)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := st.Result
	if st.Error != "" || r == nil || r.Candidate == nil || !r.Accepted || st.Deployed == nil ||
		!st.Deployed.OK {
		t.Fatalf("fine-tune status %+v\n%s", st, dev.stderr.String())
	}
	t.Logf("held-out accuracy %.3f -> %.3f on %d images", r.Baseline.Accuracy,
		r.Candidate.Accuracy, r.HeldOut)
	if r.Candidate.Accuracy < r.Baseline.Accuracy+0.3 || r.Precision != "fp16" {
		t.Errorf("held-out accuracy %.3f -> %.3f (%s)", r.Baseline.Accuracy,
			r.Candidate.Accuracy, r.Precision)
	}
	s := dev.waitFor("the fine-tuned model", func(s edge.Status) bool {
		return s.Model.Version == st.Deployed.Version
	})
	if _, ok := s.Extra["finetune"]; !ok {
		t.Error("/api/status has no finetune section")
	}
	if h := dev.model().History; len(h) == 0 || h[0].Source != "finetune" ||
		h[0].Previous != weakVersion {
		t.Errorf("/api/model history %+v", h)
	}
	dev.kill()

	// The command line, on a model file no device runs.
	other := filepath.Join(dir, "other.mwb")
	before := weakenedBundle(t, other)
	out := mustTool(t, maskwatch, "finetune", "--model", other, "--data", data,
		"--epochs", "2", "--nice", "0")
	if !strings.Contains(out, "deployed") {
		t.Errorf("maskwatch finetune:\n%s", out)
	}
	if v := versionOf(t, other); v == before {
		t.Error("the model file was not replaced")
	}
	if v := versionOf(t, other+".prev"); v != before {
		t.Errorf("the previous model %s was not kept (%s)", before, v)
	}
}
