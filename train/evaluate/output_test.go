package evaluate

import (
	"encoding/csv"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/dataset"
)

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

// TestPredictionsRoundTrip writes the truth detector's predictions and reads
// each row back as a file name of the study's format: it must give the box
// and label of the image's own name.
func TestPredictionsRoundTrip(t *testing.T) {
	set := properTest(t)
	rep := run(t, set, 8, truth)
	dir := t.TempDir()
	path := filepath.Join(dir, "prediction.csv")
	if err := rep.WritePredictions(path); err != nil {
		t.Fatal(err)
	}

	rows := readCSV(t, path)
	if strings.Join(rows[0], ",") != "filename,x,y,w,h,proper_mask" {
		t.Fatalf("header %q", rows[0])
	}
	if len(rows) != len(set.Records)+1 {
		t.Fatalf("%d rows for %d images", len(rows)-1, len(set.Records))
	}
	for i, row := range rows[1:] {
		want, err := dataset.ParseFileName(row[0])
		if err != nil {
			t.Fatalf("row %d: %v", i+1, err)
		}
		if row[0] != filepath.Base(set.Records[i].Path) {
			t.Fatalf("row %d names %s, want %s", i+1, row[0], set.Records[i].Path)
		}
		name := fmt.Sprintf("%s__[%s, %s, %s, %s]__%s.jpg", want.ID,
			row[1], row[2], row[3], row[4], row[5])
		got, err := dataset.ParseFileName(name)
		if err != nil {
			t.Fatalf("row %d reads back as %q: %v", i+1, name, err)
		}
		if got.Label != want.Label {
			t.Errorf("row %d: proper_mask %s, want %s", i+1, got.Label, want.Label)
		}
		// Three crops' boxes run a pixel past their image and were cut to it.
		for _, d := range [...]float64{got.Box.X1 - want.Box.X1, got.Box.Y1 - want.Box.Y1,
			got.Box.X2 - want.Box.X2, got.Box.Y2 - want.Box.Y2} {
			if math.Abs(d) > 1 {
				t.Errorf("row %d: box %v, want %v", i+1, got.Box, want.Box)
				break
			}
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only prediction.csv", len(entries))
	}
}

func TestPixelBox(t *testing.T) {
	for _, tc := range []struct {
		b          box.Box
		x, y, w, h int
	}{
		{box.Box{X1: 10.4, Y1: 20.6, X2: 50.5, Y2: 60.2}, 10, 21, 41, 39},
		{box.Box{X1: -5, Y1: -3, X2: 40, Y2: 300}, 0, 0, 40, 100},
		{box.Box{X1: 300, Y1: 10, X2: 400, Y2: 20}, 0, 0, 0, 0},
		{box.Box{X1: math.NaN(), Y1: 0, X2: 4, Y2: 4}, 0, 0, 0, 0},
	} {
		x, y, w, h := pixelBox(tc.b, 200, 100)
		if x != tc.x || y != tc.y || w != tc.w || h != tc.h {
			t.Errorf("pixelBox(%v) = %d,%d,%d,%d; want %d,%d,%d,%d", tc.b, x, y, w, h,
				tc.x, tc.y, tc.w, tc.h)
		}
	}
}

func TestWriteSamples(t *testing.T) {
	set := properTest(t)
	rep := run(t, set, 16, shiftedWrong(2))
	dir := filepath.Join(t.TempDir(), "samples")
	const n = 8
	if err := rep.WriteSamples(dir, n); err != nil {
		t.Fatal(err)
	}

	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	srcs := regexp.MustCompile(`<img src="([^"]+)"`).FindAllStringSubmatch(string(page), -1)
	if len(srcs) != n {
		t.Fatalf("index.html shows %d images, want %d", len(srcs), n)
	}
	picks := rep.samplePicks(n)
	for k, m := range srcs {
		if filepath.IsAbs(m[1]) || strings.Contains(m[1], "/") {
			t.Errorf("index.html refers to %s, not a file beside it", m[1])
		}
		p := &rep.Predictions[picks[k]]
		if !strings.Contains(string(page), filepath.Base(p.Path)) {
			t.Errorf("index.html does not name %s", filepath.Base(p.Path))
		}
		// The worst mistakes, up to half, come first.
		if mistake := k < n/2; mistake != !p.Correct {
			t.Errorf("sample %d: correct %v, want mistakes first", k+1, p.Correct)
		}
		checkSample(t, rep, p, filepath.Join(dir, m[1]))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != n+1 {
		t.Errorf("samples folder holds %d entries, want %d", len(entries), n+1)
	}

	// The same report picks the same samples; spread ones are distinct.
	again := rep.samplePicks(n)
	seen := map[int]bool{}
	for k := range picks {
		if picks[k] != again[k] || seen[picks[k]] {
			t.Fatalf("picks %v then %v", picks, again)
		}
		seen[picks[k]] = true
	}
	if last := picks[n-1]; last < len(rep.Predictions)/2 {
		t.Errorf("picks %v are not spread over the set", picks)
	}
}

// checkSample decodes a sample and looks for its boxes: the middle of each
// box's left edge has the class's colour, in the truth panel for the face
// and in the prediction panel for the top detection.
func checkSample(t *testing.T, rep *Report, p *Prediction, path string) {
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
	l := layoutSample(p.Width, p.Height)
	if img.Bounds() != l.bounds {
		t.Fatalf("%s is %v, want %v", path, img.Bounds(), l.bounds)
	}

	top, _ := p.Top()
	for _, c := range []struct {
		origin image.Point
		b      box.Box
		class  int
	}{
		{l.left, p.Truth[0].Box, p.Truth[0].Class},
		{l.right, top.Box, top.Class},
	} {
		x := c.origin.X + int(math.Max(c.b.X1, 0)*l.scale) + 1
		y := c.origin.Y + int((c.b.Y1+c.b.Y2)/2*l.scale)
		r, g, b, _ := img.At(x, y).RGBA()
		r, g, b = r>>8, g>>8, b>>8
		green := g > 150 && r < 80 && b < 120
		red := r > 180 && g < 80 && b < 80
		if c.class == rep.Proper && !green || c.class != rep.Proper && !red {
			t.Errorf("%s: pixel %d,%d is %d,%d,%d; want the colour of %s", path, x, y,
				r, g, b, rep.Classes[c.class])
		}
	}
}

func TestWriteSamplesVOC(t *testing.T) {
	set := vocSubset(t, dataset.ThreeClass(), 6)
	rep := run(t, set, 3, truth)
	dir := t.TempDir()
	if err := rep.WriteSamples(dir, 20); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 7 {
		t.Errorf("samples folder holds %d entries, want 6 samples and index.html",
			len(entries))
	}
	if err := rep.WriteSamples(t.TempDir(), 0); err != nil {
		t.Errorf("no samples: %v", err)
	}
}
