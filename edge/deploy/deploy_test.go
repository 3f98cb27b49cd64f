package deploy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/bundle/sign"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
)

// fakeDetector stands in for an engine: it reports a version, finds the
// faces it was given, or fails.
type fakeDetector struct {
	version string
	faces   []detect.Face
	err     error
	closed  bool
}

func (f *fakeDetector) Detect(detect.Frame) ([]detect.Face, error) { return f.faces, f.err }
func (f *fakeDetector) LastTimings() detect.Timings                { return detect.Timings{} }
func (f *fakeDetector) Close() error                               { f.closed = true; return nil }

func (f *fakeDetector) Info() detect.Info { return detect.Info{Version: f.version} }

var face = detect.Face{Box: box.Box{X1: 10, Y1: 10, X2: 90, Y2: 90}, Label: "proper", Score: 0.9}

// variant returns a valid bundle file, different from the default one by
// its creation time, and its short version.
func variant(t *testing.T, n int) ([]byte, string) {
	t.Helper()
	raw, err := defaultmodel.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	b.Meta.Created = b.Meta.Created.Add(time.Duration(n) * time.Hour)
	b.Signatures = nil
	out, err := bundle.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	return out, b.ShortVersion()
}

func signed(t *testing.T, data []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	out, err := sign.File(data, key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rig is a Deployer over a model file in a temporary folder, with fake
// detectors: open decides what a bundle loads as.
type rig struct {
	t       *testing.T
	d       *Deployer
	path    string
	swapped []string
	mu      sync.Mutex
	errors  uint64 // detection errors the pipeline reports for serving
	tap     *Tap
}

func newRig(t *testing.T, initial []byte, trust []ed25519.PublicKey,
	open func(b *bundle.Bundle) (detect.Detector, error)) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, path: filepath.Join(dir, "model.mwb"), tap: &Tap{}}
	if initial != nil {
		if err := os.WriteFile(r.path, initial, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if open == nil {
		open = func(b *bundle.Bundle) (detect.Detector, error) {
			return &fakeDetector{version: b.ShortVersion(), faces: []detect.Face{face}}, nil
		}
	}
	r.d = New(Config{Path: r.path, Tap: r.tap, MinScore: 0.5, Probation: time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Loader: Loader{Trust: trust, Open: func(b *bundle.Bundle, _ string) (detect.Detector,
			error) {
			return open(b)
		}}})
	r.d.SetSwap(func(det detect.Detector) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.swapped = append(r.swapped, det.Info().Version)
	}, nil, func() (string, uint64, uint64) {
		r.mu.Lock()
		defer r.mu.Unlock()
		v := ""
		if len(r.swapped) > 0 {
			v = r.swapped[len(r.swapped)-1]
		}
		return v, uint64(time.Now().UnixMilli() / 20), r.errors
	})
	return r
}

func (r *rig) fileIs(want []byte, what string) {
	r.t.Helper()
	got, err := os.ReadFile(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		r.t.Errorf("%s: the model file changed", what)
	}
	entries, _ := os.ReadDir(filepath.Dir(r.path))
	for _, e := range entries {
		if strings.Contains(e.Name(), incomingInfix) {
			r.t.Errorf("%s: %s left behind", what, e.Name())
		}
	}
}

func TestDeployInstallsAndKeepsThePrevious(t *testing.T) {
	oldData, oldVersion := variant(t, 0)
	newData, newVersion := variant(t, 1)
	r := newRig(t, oldData, nil, nil)
	det, err := r.d.Start()
	if err != nil {
		t.Fatal(err)
	}
	if det.Info().Version != oldVersion {
		t.Fatalf("started with %s, want %s", det.Info().Version, oldVersion)
	}

	out := r.d.Deploy(context.Background(), Request{Data: newData, Source: "deploy"})
	if !out.OK || out.Code != http.StatusOK || out.Version != newVersion ||
		out.Previous != oldVersion {
		t.Fatalf("outcome %+v, want accepted %s over %s", out, newVersion, oldVersion)
	}
	r.fileIs(newData, "after a deployment")
	prev, err := os.ReadFile(r.path + prevSuffix)
	if err != nil || !bytes.Equal(prev, oldData) {
		t.Errorf("the previous bundle was not kept: %v", err)
	}
	if len(r.swapped) != 1 || r.swapped[0] != newVersion {
		t.Errorf("swapped %v, want [%s]", r.swapped, newVersion)
	}
	doc := r.d.Doc()
	if doc.Running.Version != newVersion || doc.Previous == nil ||
		doc.Previous.Version != oldVersion || len(doc.History) != 1 {
		t.Errorf("doc running %+v previous %+v history %d", doc.Running, doc.Previous,
			len(doc.History))
	}

	// The same bundle again changes nothing; the history survives a restart.
	again := r.d.Deploy(context.Background(), Request{Data: newData, Source: "deploy"})
	if !again.OK || len(r.swapped) != 1 {
		t.Errorf("the running bundle deployed again: %+v, swaps %v", again, r.swapped)
	}
	if h := New(Config{Path: r.path}).Doc().History; len(h) != 2 || h[1].Version != newVersion {
		t.Errorf("history after a restart: %+v", h)
	}
}

func TestDeployRefusals(t *testing.T) {
	oldData, oldVersion := variant(t, 0)
	newData, _ := variant(t, 1)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	good := signed(t, newData, priv)

	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1
	goodSum := sha256.Sum256(good)
	resealed := bytes.Clone(good)
	resealed[1000] ^= 1
	gb, err := bundle.Decode(good)
	if err != nil {
		t.Fatal(err)
	}
	end := len(gb.Signed)
	sum := sha256.Sum256(resealed[:end-sha256.Size])
	copy(resealed[end-sha256.Size:end], sum[:])
	version2 := bytes.Clone(good)
	binary.LittleEndian.PutUint32(version2[8:], 2)

	cases := []struct {
		name   string
		data   []byte
		sha    string
		open   func(b *bundle.Bundle) (detect.Detector, error)
		code   int
		stage  string
		reason string
	}{
		{"empty", nil, "", nil, 400, StageRequest, "empty"},
		{"damaged in transit", flipped, hex.EncodeToString(goodSum[:]), nil, 422, StageSHA256,
			"in transit"},
		{"changed after export", flipped, "", nil, 422, StageSHA256, "sha256 mismatch"},
		{"not a bundle", []byte("PK\x03\x04 a zip file"), "", nil, 422, StageFormat,
			"not a maskwatch model bundle"},
		{"other format version", version2, "", nil, 422, StageVersion, "format 2"},
		{"unsigned", newData, "", nil, 403, StageSignature, "not signed"},
		{"untrusted key", signed(t, newData, otherPriv), "", nil, 403, StageSignature,
			"does not trust"},
		{"changed after signing", resealed, "", nil, 403, StageSignature, "does not match"},
		{"does not load", good, "", func(*bundle.Bundle) (detect.Detector, error) {
			return nil, errors.New("delegate library missing")
		}, 422, StageLoad, "delegate library missing"},
		{"detection fails", good, "", func(b *bundle.Bundle) (detect.Detector, error) {
			return &fakeDetector{version: b.ShortVersion(), err: errors.New("stage 1 failed")}, nil
		}, 422, StageSelfCheck, "stage 1 failed"},
		{"finds nothing", good, "", func(b *bundle.Bundle) (detect.Detector, error) {
			return &fakeDetector{version: b.ShortVersion()}, nil
		}, 422, StageSelfCheck, "finds no face"},
		{"scores out of range", good, "", func(b *bundle.Bundle) (detect.Detector, error) {
			bad := face
			bad.Score = 7
			return &fakeDetector{version: b.ShortVersion(), faces: []detect.Face{bad}}, nil
		}, 422, StageSelfCheck, "outside 0 to 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			open := c.open
			if open != nil { // the model the device starts with loads
				open = func(b *bundle.Bundle) (detect.Detector, error) {
					if b.ShortVersion() == oldVersion {
						return &fakeDetector{version: oldVersion}, nil
					}
					return c.open(b)
				}
			}
			r := newRig(t, signed(t, oldData, priv), []ed25519.PublicKey{pub}, open)
			initial, _ := os.ReadFile(r.path)
			if _, err := r.d.Start(); err != nil {
				t.Fatal(err)
			}
			// The running model found a face on a stored frame.
			r.tap.Wrap(&fakeDetector{faces: []detect.Face{face}}).Detect(detect.Frame{
				Pix: make([]byte, 64*48*3), Width: 64, Height: 48, Stride: 64 * 3})
			out := r.d.Deploy(context.Background(), Request{Data: c.data, SHA256: c.sha,
				Source: "deploy"})
			if out.OK || out.Code != c.code || out.Stage != c.stage ||
				!strings.Contains(out.Error, c.reason) {
				t.Errorf("outcome %d %s %q, want %d %s with %q", out.Code, out.Stage, out.Error,
					c.code, c.stage, c.reason)
			}
			r.fileIs(initial, c.name)
			if len(r.swapped) != 0 {
				t.Errorf("swapped %v", r.swapped)
			}
			if _, err := os.Stat(r.path + prevSuffix); err == nil {
				t.Error("a refused bundle moved the running one aside")
			}
		})
	}

	r := newRig(t, oldData, nil, nil)
	r.d.cfg.MaxBytes = int64(len(newData) - 1)
	if out := r.d.Deploy(context.Background(), Request{Data: newData}); out.Code != 413 ||
		out.Stage != StageSize {
		t.Errorf("oversized: %d %s", out.Code, out.Stage)
	}
}

func TestProbationRollsBack(t *testing.T) {
	oldData, oldVersion := variant(t, 0)
	newData, newVersion := variant(t, 1)
	r := newRig(t, oldData, nil, nil)
	if _, err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	serving := r.d.cfg.Serving
	r.d.SetSwap(r.d.cfg.Swap, nil, func() (string, uint64, uint64) {
		v, frames, errs := serving()
		if v == newVersion {
			r.mu.Lock()
			r.errors++ // the new model fails on live frames
			r.mu.Unlock()
		}
		return v, frames, errs
	})
	out := r.d.Deploy(context.Background(), Request{Data: newData, Source: "deploy"})
	if out.OK || out.Stage != StageServing || !out.RolledBack {
		t.Fatalf("outcome %+v, want a rollback at %s", out, StageServing)
	}
	r.fileIs(oldData, "after a rollback")
	if len(r.swapped) != 2 || r.swapped[1] != oldVersion {
		t.Errorf("swapped %v, want the new model then the old one", r.swapped)
	}
	if v := r.d.Doc().Running.Version; v != oldVersion {
		t.Errorf("running %s after the rollback, want %s", v, oldVersion)
	}
}

func TestStartFallsBackToThePreviousBundle(t *testing.T) {
	good, version := variant(t, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "model.mwb")
	half := good[:len(good)/2] // a copy cut short by a power loss
	os.WriteFile(path, half, 0o644)
	os.WriteFile(path+prevSuffix, good, 0o644)
	os.WriteFile(filepath.Join(dir, ".model.mwb"+incomingInfix+"123"), half, 0o644)
	d := New(Config{Path: path, Loader: Loader{Open: func(b *bundle.Bundle, _ string) (
		detect.Detector, error) {
		return &fakeDetector{version: b.ShortVersion()}, nil
	}}})
	det, err := d.Start()
	if err != nil {
		t.Fatal(err)
	}
	if det.Info().Version != version {
		t.Errorf("started with %s, want the previous bundle %s", det.Info().Version, version)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, good) {
		t.Error("the model file was not restored from the previous bundle")
	}
	if got, _ := os.ReadFile(path + rejectedSuffix); !bytes.Equal(got, half) {
		t.Error("the damaged model file was not set aside")
	}
	if _, err := os.Stat(filepath.Join(dir, ".model.mwb"+incomingInfix+"123")); err == nil {
		t.Error("an unfinished upload was left")
	}

	// Without a previous bundle the damage is the error.
	os.Remove(path + prevSuffix)
	os.WriteFile(path, half, 0o644)
	if _, err := d.Start(); !errors.Is(err, bundle.ErrNotBundle) {
		t.Errorf("start without a good bundle: %v", err)
	}
}

func TestOneDeploymentAtATime(t *testing.T) {
	oldData, _ := variant(t, 0)
	newData, _ := variant(t, 1)
	otherData, _ := variant(t, 2)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	r := newRig(t, oldData, nil, func(b *bundle.Bundle) (detect.Detector, error) {
		entered <- struct{}{}
		<-release
		return &fakeDetector{version: b.ShortVersion(), faces: []detect.Face{face}}, nil
	})
	r.d.cfg.Loader.Open = func(b *bundle.Bundle, _ string) (detect.Detector, error) {
		return &fakeDetector{version: b.ShortVersion()}, nil
	}
	if _, err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	r.d.cfg.Loader.Open = func(b *bundle.Bundle, _ string) (detect.Detector, error) {
		entered <- struct{}{}
		<-release
		return &fakeDetector{version: b.ShortVersion(), faces: []detect.Face{face}}, nil
	}
	done := make(chan Outcome)
	go func() { done <- r.d.Deploy(context.Background(), Request{Data: newData}) }()
	<-entered
	if out := r.d.Deploy(context.Background(), Request{Data: otherData}); out.Code != 409 ||
		out.Stage != StageBusy {
		t.Errorf("second deployment: %d %s, want 409 busy", out.Code, out.Stage)
	}
	close(release)
	if out := <-done; !out.OK {
		t.Errorf("first deployment: %+v", out)
	}
}

func TestHandlerAndClient(t *testing.T) {
	oldData, _ := variant(t, 0)
	newData, newVersion := variant(t, 1)
	r := newRig(t, oldData, nil, nil)
	if _, err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.d.Handler())
	defer srv.Close()

	res := Upload(context.Background(), srv.Client(), srv.URL, "token", newData)
	if !res.OK || res.Code != 200 || res.Version != newVersion {
		t.Errorf("upload: %+v", res)
	}
	r.d.cfg.MaxBytes = 1000
	res = Upload(context.Background(), srv.Client(), srv.URL, "token", newData)
	if res.OK || res.Code != 413 || res.Stage != StageSize {
		t.Errorf("oversized upload: %+v", res)
	}
	res = Upload(context.Background(), srv.Client(), "127.0.0.1:1", "token", newData)
	if res.OK || res.Code != 0 || !strings.Contains(res.Message, "unreachable") {
		t.Errorf("unreachable device: %+v", res)
	}

	for in, want := range map[string]string{
		"cam1:8080":                       "http://cam1:8080/api/model",
		"http://cam1:8080/":               "http://cam1:8080/api/model",
		"https://cam1/maskwatch":          "https://cam1/maskwatch/api/model",
		"http://127.0.0.1:8080/api/model": "http://127.0.0.1:8080/api/model",
	} {
		if got, err := ModelURL(in); err != nil || got != want {
			t.Errorf("ModelURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ModelURL("ftp://cam1"); err == nil {
		t.Error("an ftp URL was taken")
	}
}
