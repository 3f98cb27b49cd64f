package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// epoch builds a plausible epoch n; without val its validation figures are NaN.
func epoch(n int, val bool) Epoch {
	f := float64(n)
	e := Epoch{
		Epoch: n, Step: int64(n) * 86, Seconds: 61.5 + f, ImagesPerSecond: 11.25, LR: 1e-3 / f,
		Train:         Losses{0.5 / f, 0.25 / f, 0.75 / f, 0.3 / f, 1.8 / f},
		Val:           NoLosses(),
		TrainAccuracy: 0.5 + f/100, TrainIoU: 0.4 + f/100,
		ValAccuracy: math.NaN(), ValIoU: math.NaN(), ValMAP50: math.NaN(),
	}
	if val {
		e.Val = Losses{0.6 / f, 0.3 / f, 0.8 / f, 0.35 / f, 2.05 / f}
		e.ValAccuracy, e.ValIoU, e.ValMAP50 = 0.45+f/100, 0.35+f/100, 0.3+f/100
	}
	return e
}

// sameEpoch compares two epochs, NaN equal to NaN.
func sameEpoch(a, b Epoch) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb) && a.Epoch == b.Epoch
}

// captureWarnings collects the log's records while the test runs.
func captureWarnings(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	want := []Epoch{epoch(1, false), epoch(2, true), epoch(3, true)}
	want[2].Train.Total = math.Inf(1) // diverged: written as null, read as NaN
	for _, e := range want {
		if err := Append(path, e); err != nil {
			t.Fatal(err)
		}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("log has %d lines, want 3:\n%s", len(lines), data)
	}
	for _, key := range []string{`"epoch":1`, `"val":{"rpn_objectness":null`,
		`"val_accuracy":null`, `"train_accuracy":0.51`, `"rpn_box":0.25`} {
		if !strings.Contains(lines[0], key) {
			t.Errorf("line 1 lacks %s: %s", key, lines[0])
		}
	}
	if !strings.Contains(lines[2], `"total":null`) {
		t.Errorf("line 3 writes an infinite loss other than as null: %s", lines[2])
	}

	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want[2].Train.Total = math.NaN()
	if len(got) != len(want) {
		t.Fatalf("read %d epochs, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameEpoch(got[i], want[i]) {
			t.Errorf("epoch %d: got %+v, want %+v", i+1, got[i], want[i])
		}
	}
	if !math.IsNaN(got[0].Val.Total) || got[1].Val.Total != 2.05/2 {
		t.Errorf("val totals %v, %v; want NaN, %v", got[0].Val.Total, got[1].Val.Total, 2.05/2)
	}
}

func TestReadAbsentFigures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	if err := os.WriteFile(path, []byte(`{"epoch":4,"step":9,"train":{"total":1.5}}`+"\n"),
		0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Epoch != 4 || got[0].Step != 9 || got[0].Train.Total != 1.5 {
		t.Fatalf("got %+v", got)
	}
	if !math.IsNaN(got[0].Train.RoIBox) || !math.IsNaN(got[0].Val.Total) ||
		!math.IsNaN(got[0].ValMAP50) || !math.IsNaN(got[0].LR) {
		t.Errorf("absent figures read as %+v, want NaN", got[0])
	}
}

func TestTornLine(t *testing.T) {
	warnings := captureWarnings(t)
	path := filepath.Join(t.TempDir(), "history.jsonl")
	for n := 1; n <= 2; n++ {
		if err := Append(path, epoch(n, true)); err != nil {
			t.Fatal(err)
		}
	}
	// A crash in the middle of the third append.
	third, err := json.Marshal(epoch(3, true))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(third[:len(third)/2]); err != nil {
		t.Fatal(err)
	}
	f.Close()

	got, err := Read(path)
	if err != nil {
		t.Fatalf("torn last line: %v", err)
	}
	if len(got) != 2 || got[1].Epoch != 2 {
		t.Fatalf("read %d epochs, want epochs 1 and 2", len(got))
	}
	if !strings.Contains(warnings.String(), "torn last line") ||
		!strings.Contains(warnings.String(), "line=3") {
		t.Errorf("torn line not reported; log:\n%s", warnings)
	}

	// The next append cuts the torn bytes off instead of running into them.
	if err := Append(path, epoch(3, true)); err != nil {
		t.Fatal(err)
	}
	got, err = Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !sameEpoch(got[2], epoch(3, true)) {
		t.Fatalf("after the append read %d epochs: %+v", len(got), got)
	}

	// A bad line before the last is corruption, not a crash: an error.
	data, _ := os.ReadFile(path)
	bad := bytes.Replace(data, []byte(`{"epoch":2`), []byte(`{"epoch":"two"`), 1)
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("corrupt middle line: err %v, want one naming line 2", err)
	}
}

func TestReadMissing(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "none.jsonl"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing log: err %v, want fs.ErrNotExist", err)
	}
}

func TestTruncate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "history.jsonl")
	for n := 1; n <= 5; n++ {
		if err := Append(path, epoch(n, n%2 == 0)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"epoch":6,"st`)
	f.Close()

	if err := Truncate(path, 3); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("kept %d epochs, want 3", len(got))
	}
	for i, e := range got {
		if !sameEpoch(e, epoch(i+1, (i+1)%2 == 0)) {
			t.Errorf("epoch %d changed: %+v", i+1, e)
		}
	}
	if err := Append(path, epoch(4, true)); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(path); len(got) != 4 || got[3].Epoch != 4 {
		t.Errorf("append after truncate: %+v", got)
	}

	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only the log", len(entries))
	}
	if err := Truncate(filepath.Join(dir, "none.jsonl"), 3); err != nil {
		t.Errorf("truncating a missing log: %v", err)
	}
	if err := Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(path); err != nil || len(got) != 0 {
		t.Errorf("truncate to 0: %d epochs, err %v", len(got), err)
	}
}

func TestPlot(t *testing.T) {
	cases := map[string][]Epoch{
		"one epoch":   {epoch(1, true)},
		"no val":      {epoch(1, false), epoch(2, false), epoch(3, false)},
		"mixed":       {epoch(1, false), epoch(2, true), epoch(3, false), epoch(4, true)},
		"many epochs": manyEpochs(40),
	}
	for name, epochs := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "plots")
			if err := Plot(epochs, dir); err != nil {
				t.Fatal(err)
			}
			for _, file := range []string{"losses.png", "accuracy.png"} {
				img := readPNG(t, filepath.Join(dir, file))
				if b := img.Bounds(); b.Dx() != PlotWidth || b.Dy() != PlotHeight {
					t.Errorf("%s is %dx%d, want %dx%d", file, b.Dx(), b.Dy(),
						PlotWidth, PlotHeight)
				}
				if colours(img) < 5 {
					t.Errorf("%s looks blank", file)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("plot folder holds %d entries, want 2", len(entries))
			}
		})
	}
	if err := Plot(nil, t.TempDir()); err == nil {
		t.Error("plotting no epochs: no error")
	}
}

// TestPlotReferenceLines checks that accuracy.png draws the goal lines: the
// goal colour appears on the rows of 0.80 and 0.60 even without any epoch
// figure near them.
func TestPlotReferenceLines(t *testing.T) {
	dir := t.TempDir()
	if err := Plot([]Epoch{epoch(1, false)}, dir); err != nil {
		t.Fatal(err)
	}
	img := readPNG(t, filepath.Join(dir, "accuracy.png"))
	rows := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		n := 0
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 < 90 && g>>8 > 130 && bl>>8 < 90 {
				n++
			}
		}
		if n > PlotWidth/3 {
			rows++
		}
	}
	if rows < 2 {
		t.Errorf("%d rows hold a long green line, want the two goal lines", rows)
	}
}

func manyEpochs(n int) []Epoch {
	epochs := make([]Epoch, n)
	for i := range epochs {
		epochs[i] = epoch(i+1, true)
	}
	return epochs
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// colours counts the distinct colours of img, up to 100.
func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y && len(seen) < 100; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}
