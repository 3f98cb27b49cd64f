package reload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
)

// fakeDetector stands in for an engine: its version is the file's text.
type fakeDetector struct {
	version string
	closed  bool
}

func (f *fakeDetector) Detect(detect.Frame) ([]detect.Face, error) { return nil, nil }
func (f *fakeDetector) LastTimings() detect.Timings                { return detect.Timings{} }
func (f *fakeDetector) Close() error                               { f.closed = true; return nil }

func (f *fakeDetector) Info() detect.Info { return detect.Info{Version: f.version} }

func openFake(path string) (detect.Detector, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := string(b)
	if !strings.HasPrefix(s, "bundle ") {
		return nil, errors.New("not a model bundle")
	}
	return &fakeDetector{version: strings.TrimPrefix(s, "bundle ")}, nil
}

func checkFake(d detect.Detector) error {
	if d.Info().Version == "crashes" {
		return errors.New("detect failed on the sample frame")
	}
	return nil
}

// replace writes content to path atomically, as deploy tools do.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func waitStatus(t *testing.T, w *Watcher, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := w.Status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reached: %+v", s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWatchSwapsGoodRefusesBad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.mwb")
	replace(t, path, "bundle v1")
	swapped := make(chan detect.Detector, 10)
	w := New(path, 5*time.Millisecond, openFake, checkFake,
		func(d detect.Detector) { swapped <- d }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	replace(t, path, "bundle v2")
	if d := <-swapped; d.Info().Version != "v2" {
		t.Errorf("swapped in %q, want v2", d.Info().Version)
	}

	for i, bad := range []string{"garbage", "bundle crashes"} {
		replace(t, path, bad)
		s := waitStatus(t, w, func(s Status) bool { return s.Refused == i+1 })
		if s.Last.OK || !strings.Contains(s.Last.Error, "refused") {
			t.Errorf("outcome for %q: %+v", bad, s.Last)
		}
	}
	select {
	case d := <-swapped:
		t.Fatalf("a bad bundle was swapped in: %q", d.Info().Version)
	default:
	}

	replace(t, path, "bundle v3")
	if d := <-swapped; d.Info().Version != "v3" {
		t.Errorf("swapped in %q, want v3", d.Info().Version)
	}
	s := w.Status()
	if s.Reloads != 2 || s.Refused != 2 || len(s.History) != 4 || !s.History[0].OK {
		t.Errorf("status %+v", s)
	}
}

func TestReloadOnRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.mwb")
	replace(t, path, "bundle crashes")
	var got detect.Detector
	w := New(path, time.Hour, openFake, checkFake, func(d detect.Detector) { got = d }, nil)
	if _, err := w.Reload("request"); !errors.Is(err, ErrRefused) || got != nil {
		t.Fatalf("reload of a bundle failing its self-check: %v", err)
	}
	replace(t, path, "bundle v9")
	info, err := w.Reload("request")
	if err != nil || info.Version != "v9" || got == nil {
		t.Fatalf("reload: %v %+v", err, info)
	}
	if w.Status().Last.Trigger != "request" {
		t.Errorf("trigger %q", w.Status().Last.Trigger)
	}
}
