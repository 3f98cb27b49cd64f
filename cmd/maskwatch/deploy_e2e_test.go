package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/edge/deploy"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/bundle/sign"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/models/export"
	"github.com/maskwatch/maskwatch/models/tflite"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// deployToken is the admin token of the device the deploy test starts.
const deployToken = "deploy-test-token-0123"

// buildBinaries builds maskwatch and masktrain into a temporary folder, as
// a user would, and returns their paths.
func buildBinaries(t *testing.T) (maskwatch, masktrain string) {
	t.Helper()
	dir := t.TempDir()
	for _, pkg := range []string{".", "../masktrain"} {
		cmd := exec.Command("go", "build", "-o", dir+"/", pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return filepath.Join(dir, "maskwatch"), filepath.Join(dir, "masktrain")
}

// deviceProc is a maskwatch run in a process of its own.
type deviceProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan struct{}
}

func startDevice(t *testing.T, bin string, args ...string) *deviceProc {
	t.Helper()
	d := &deviceProc{t: t, stderr: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(bin, append([]string{"run"}, args...)...)
	d.cmd.Stderr = d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, a, ok := strings.Cut(sc.Text(), "page at "); ok {
				addr <- strings.TrimRight(a, "/")
			}
		}
	}()
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(d.kill)
	select {
	case d.url = <-addr:
	case <-d.done:
		t.Fatalf("maskwatch ended before serving:\n%s", d.stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("maskwatch printed no page address:\n%s", d.stderr.String())
	}
	return d
}

// kill ends the process at once, as a power loss would.
func (d *deviceProc) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

func (d *deviceProc) status() edge.Status {
	d.t.Helper()
	var s edge.Status
	d.getJSON("/api/status", "", &s)
	return s
}

func (d *deviceProc) model() deploy.Doc {
	d.t.Helper()
	var doc deploy.Doc
	d.getJSON("/api/model", deployToken, &doc)
	return doc
}

func (d *deviceProc) getJSON(path, token string, v any) {
	d.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		d.t.Fatalf("%s: %v", path, err)
	}
}

// waitFor polls the status until cond holds.
func (d *deviceProc) waitFor(what string, cond func(edge.Status) bool) edge.Status {
	d.t.Helper()
	// A generous bound: on a CI machine busy with other test binaries (qemu,
	// training) a frame can take seconds.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		s := d.status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("waited 5 minutes for %s; model %+v, frames %d\n%s", what, s.Model,
				s.Frames, d.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serving checks that the device still runs version, by both endpoints.
func (d *deviceProc) serving(version, after string) {
	d.t.Helper()
	frames := d.status().Frames
	s := d.waitFor("a frame after "+after, func(s edge.Status) bool { return s.Frames > frames })
	if s.Model.Version != version {
		d.t.Errorf("after %s /api/status shows model %s, want %s", after, s.Model.Version,
			version)
	}
	if doc := d.model(); doc.Running == nil || doc.Running.Version != version {
		d.t.Errorf("after %s /api/model shows running %+v, want %s", after, doc.Running,
			version)
	}
}

// post sends data to /api/model as a raw request and decodes the answer.
func (d *deviceProc) post(data []byte, sum string) (int, deploy.Outcome) {
	d.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, d.url+"/api/model", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+deployToken)
	if sum != "" {
		req.Header.Set(deploy.SHA256Header, sum)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out deploy.Outcome
	body, _ := io.ReadAll(resp.Body)
	json.Unmarshal(body, &out)
	return resp.StatusCode, out
}

func runTool(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String() + errOut.String()
}

func mustTool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	code, out := runTool(t, bin, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", filepath.Base(bin), strings.Join(args, " "), code, out)
	}
	return out
}

func versionOf(t *testing.T, path string) string {
	t.Helper()
	b, err := bundle.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return b.ShortVersion()
}

// brokenBundle writes the default model with its class layer's weights
// made NaN, as fp16 and signed by key: a bundle that loads but finds
// nothing, which the self-check must refuse.
func brokenBundle(t *testing.T, path, keyPath string) {
	t.Helper()
	b, err := defaultmodel.Load()
	if err != nil {
		t.Fatal(err)
	}
	w := b.Weights["head/class/weights"]
	for i := range w.Values {
		w.Values[i] = float32(math.NaN())
	}
	nb, err := export.FromWeights(t.Context(), b.Meta.Model, b.Weights,
		export.Options{Precision: tflite.FP16, Exporter: "broken on purpose"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := sign.ReadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.Bundle(nb, key); err != nil {
		t.Fatal(err)
	}
	if err := bundle.Write(path, nb); err != nil {
		t.Fatal(err)
	}
}

// TestE2EDeploy: masktrain deploys to a maskwatch in another process over
// loopback. A signed bundle is taken and served; a wrong token, an
// unsigned bundle, one signed by another key, one damaged in transit, one
// changed after signing, one of another format version, an oversized one
// and one that fails its self-check each leave the old model serving, with
// their status codes. A device killed in the middle of an upload, or that
// finds its model file cut short, starts with a good model.
func TestE2EDeploy(t *testing.T) {
	maskwatch, masktrain := buildBinaries(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "desk")
	mustTool(t, masktrain, "keygen", "--out", key)
	mustTool(t, masktrain, "keygen", "--out", filepath.Join(dir, "other"))

	raw, err := defaultmodel.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model.mwb")
	os.WriteFile(filepath.Join(dir, "default.mwb"), raw, 0o644)
	mustTool(t, masktrain, "sign", "--key", key+".key", filepath.Join(dir, "default.mwb"),
		"--out", model)
	fresh := filepath.Join(dir, "fresh.mwb")
	mustTool(t, masktrain, "export", "--model", "default", "--precision", "fp16",
		"--sign", key+".key", "--out", fresh)
	unsigned := filepath.Join(dir, "unsigned.mwb")
	mustTool(t, masktrain, "export", "--model", "default", "--precision", "fp16",
		"--weights", "none", "--out", unsigned)
	otherSigned := filepath.Join(dir, "other.mwb")
	mustTool(t, masktrain, "sign", "--key", filepath.Join(dir, "other.key"), unsigned,
		"--out", otherSigned)
	big := filepath.Join(dir, "big.mwb")
	mustTool(t, masktrain, "export", "--model", "default", "--precision", "fp32",
		"--sign", key+".key", "--out", big)
	broken := filepath.Join(dir, "broken.mwb")
	brokenBundle(t, broken, key+".key")
	oldVersion, freshVersion := versionOf(t, model), versionOf(t, fresh)

	args := []string{"--source", fixture.Path(t, "video", "demo.mp4"), "--model", model,
		"--headless", "--listen", "127.0.0.1:0", "--admin-token", deployToken,
		"--trust", key + ".pub", "--max-model-size", "32MiB", "--reload-interval", "100ms"}
	dev := startDevice(t, maskwatch, args...)
	// The self-check compares with faces the running model found on stored
	// frames: let it store a few.
	dev.waitFor("frames", func(s edge.Status) bool { return s.Frames >= 45 })
	dev.serving(oldVersion, "start")

	code, out := runTool(t, masktrain, "deploy", "--to", dev.url, "--token", "wrong-token-99",
		fresh)
	if code != exitFailed || !strings.Contains(out, "HTTP 401") {
		t.Errorf("wrong token: exit %d\n%s", code, out)
	}
	dev.serving(oldVersion, "a wrong token")

	freshData, _ := os.ReadFile(fresh)
	freshSum := sha256.Sum256(freshData)
	damaged := bytes.Clone(freshData)
	damaged[len(damaged)/3] ^= 0x40
	fb, _ := bundle.Decode(freshData)
	resealed := bytes.Clone(freshData)
	resealed[len(fb.Signed)/2] ^= 0x40
	sum := sha256.Sum256(resealed[:len(fb.Signed)-sha256.Size])
	copy(resealed[len(fb.Signed)-sha256.Size:], sum[:])
	otherVersion := bytes.Clone(freshData)
	binary.LittleEndian.PutUint32(otherVersion[8:], bundle.Version+1)

	for _, c := range []struct {
		name  string
		file  string // deployed with masktrain deploy, or
		data  []byte // posted as they are
		sum   string
		code  int
		stage string
	}{
		{name: "unsigned", file: unsigned, code: 403, stage: deploy.StageSignature},
		{name: "signed by another key", file: otherSigned, code: 403,
			stage: deploy.StageSignature},
		{name: "damaged in transit", data: damaged, sum: hex.EncodeToString(freshSum[:]),
			code: 422, stage: deploy.StageSHA256},
		{name: "changed after export", data: damaged, code: 422, stage: deploy.StageSHA256},
		{name: "changed after signing", data: resealed, code: 403,
			stage: deploy.StageSignature},
		{name: "another format version", data: otherVersion, code: 422,
			stage: deploy.StageVersion},
		{name: "oversized", file: big, code: 413, stage: deploy.StageSize},
		{name: "fails its self-check", file: broken, code: 422, stage: deploy.StageSelfCheck},
	} {
		if c.file != "" {
			code, out := runTool(t, masktrain, "deploy", "--to", dev.url, "--token",
				deployToken, c.file)
			if code != exitFailed || !strings.Contains(out, fmt.Sprintf("HTTP %d", c.code)) ||
				!strings.Contains(out, "at "+c.stage) {
				t.Errorf("%s: exit %d, want %d and HTTP %d at %s\n%s", c.name, code,
					exitFailed, c.code, c.stage, out)
			}
		} else {
			code, o := dev.post(c.data, c.sum)
			if code != c.code || o.Stage != c.stage || o.OK {
				t.Errorf("%s: %d %s %q, want %d at %s", c.name, code, o.Stage, o.Error, c.code,
					c.stage)
			}
		}
		dev.serving(oldVersion, c.name)
	}
	// masktrain deploy checks the file before sending it.
	os.WriteFile(filepath.Join(dir, "damaged.mwb"), damaged, 0o644)
	if code, out := runTool(t, masktrain, "deploy", "--to", dev.url, "--token", deployToken,
		filepath.Join(dir, "damaged.mwb")); code != exitUsage ||
		!strings.Contains(out, "sha256 mismatch") {
		t.Errorf("deploying a damaged file: exit %d\n%s", code, out)
	}

	code, out = runTool(t, masktrain, "deploy", "--to", dev.url, "--token", deployToken, fresh)
	if code != exitOK || !strings.Contains(out, "accepted, now running "+freshVersion) {
		t.Fatalf("deploying a signed bundle: exit %d\n%s\n%s", code, out, dev.stderr.String())
	}
	dev.waitFor("the new model", func(s edge.Status) bool {
		return s.Model.Version == freshVersion && s.Model.Precision == "fp16"
	})
	doc := dev.model()
	if doc.Running.Version != freshVersion || doc.Previous == nil ||
		doc.Previous.Version != oldVersion || len(doc.History) < 8 {
		t.Errorf("/api/model: running %+v previous %+v, %d outcomes", doc.Running,
			doc.Previous, len(doc.History))
	}
	if h := doc.History[0]; !h.OK || h.Version != freshVersion || h.Previous != oldVersion {
		t.Errorf("last outcome %+v", h)
	}
	if h := doc.History[1]; h.OK || h.Stage != deploy.StageSelfCheck {
		t.Errorf("the outcome before it %+v, want the self-check refusal", h)
	}
	// The file watcher does not load the deployed file a second time.
	time.Sleep(500 * time.Millisecond)
	if s := dev.status(); s.Model.Reload != nil && s.Model.Reload.Reloads > 0 {
		t.Errorf("the watcher reloaded the deployed bundle: %+v", s.Model.Reload)
	}

	// Killed in the middle of an upload: the device restarts on the bundle
	// it ran, and nothing of the upload is left.
	uploadHalf(t, dev.url, raw)
	dev.kill()
	dev = startDevice(t, maskwatch, args...)
	dev.serving(freshVersion, "a restart in the middle of an upload")
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".model.mwb*")); len(leftovers) > 0 {
		t.Errorf("left behind: %v", leftovers)
	}
	if doc := dev.model(); len(doc.History) == 0 || doc.History[0].Version != freshVersion {
		t.Errorf("the history did not survive the restart: %+v", doc.History)
	}
	dev.kill()

	// A model file cut short (copied by hand, then the power went): the
	// device starts with the previous good bundle and sets the file aside.
	os.WriteFile(model, freshData[:len(freshData)/2], 0o644)
	dev = startDevice(t, maskwatch, args...)
	dev.serving(oldVersion, "a restart with a damaged model file")
	if _, err := os.Stat(model + ".rejected"); err != nil {
		t.Errorf("the damaged model file was not set aside: %v", err)
	}
	if got, _ := os.ReadFile(model); versionOfBytes(t, got) != oldVersion {
		t.Error("the model file was not restored from the previous bundle")
	}

	// --trust holds for the watched file too: an unsigned bundle dropped on
	// the model path is refused.
	unsignedData, _ := os.ReadFile(unsigned)
	writeAtomic(t, model, unsignedData)
	dev.waitFor("the watcher's refusal", func(s edge.Status) bool {
		return s.Model.Reload != nil && s.Model.Reload.Refused > 0
	})
	if r := dev.status().Model.Reload; r.Last == nil ||
		!strings.Contains(r.Last.Error, "not signed") {
		t.Errorf("watcher outcome %+v, want a refusal for the missing signature", r.Last)
	}
	dev.serving(oldVersion, "an unsigned bundle dropped on the model path")
}

func versionOfBytes(t *testing.T, data []byte) string {
	t.Helper()
	b, err := bundle.Decode(data)
	if err != nil {
		return ""
	}
	return b.ShortVersion()
}

// uploadHalf starts a POST /api/model of data and sends half of it, then
// leaves the connection hanging.
func uploadHalf(t *testing.T, base string, data []byte) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /api/model HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", u.Host,
		deployToken, len(data))
	if _, err := c.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the device read what was sent
}
