package eda

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// writeSolidPNG writes a w×h PNG of one colour and returns its path.
func writeSolidPNG(t *testing.T, dir, name string, w, h int, c color.RGBA) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(c), image.Point{}, draw.Src)
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return path
}

// builtSet is a set of three images the test draws itself, each 224 px square
// so that the sample grid shows them unscaled.
func builtSet(t *testing.T) *dataset.Set {
	dir := t.TempDir()
	blue := color.RGBA{0, 0, 200, 255}
	return &dataset.Set{
		Dir:     dir,
		Format:  dataset.FormatFileName,
		Classes: dataset.TwoClass(),
		Records: []dataset.Record{
			{Path: writeSolidPNG(t, dir, "a.png", 224, 224, blue), Width: 224, Height: 224,
				Objects: []dataset.Object{
					{Box: box.Box{X1: 20, Y1: 30, X2: 100, Y2: 120}, Class: 0, Source: "True"}}},
			{Path: writeSolidPNG(t, dir, "b.png", 224, 224, blue), Width: 224, Height: 224,
				Objects: []dataset.Object{
					{Box: box.Box{X1: 50, Y1: 50, X2: 150, Y2: 200}, Class: 1, Source: "False"}}},
			{Path: writeSolidPNG(t, dir, "c.png", 224, 224, blue), Width: 224, Height: 224,
				Objects: []dataset.Object{
					{Box: box.Box{X1: 0, Y1: 0, X2: 224, Y2: 224}, Class: 0, Source: "True"}}},
		},
		Problems: []dataset.Problem{
			{Path: filepath.Join(dir, "d.jpg"), Reason: "box <0 wide> dropped"},
		},
	}
}

func TestWriteReport(t *testing.T) {
	set := builtSet(t)
	sets := []*dataset.Set{set}
	s := Summarize(sets)
	out := filepath.Join(t.TempDir(), "new", "report")
	var progressLog bytes.Buffer
	err := WriteReport(context.Background(), out, sets, s,
		WriteOptions{Samples: 3, JSON: true, ProgressTo: &progressLog})
	if err != nil {
		t.Fatal(err)
	}

	slug := slugs([]string{s.Dirs[0].Name})[0]
	wantPNGs := []string{"area.png", "aspect.png", "boxes-" + slug + ".png", "faces.png",
		"image-sizes.png", "images.png", "relative-size.png", "samples-" + slug + ".png"}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var pngs, others []string
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".png" {
			pngs = append(pngs, e.Name())
		} else {
			others = append(others, e.Name())
		}
	}
	if !slices.Equal(pngs, wantPNGs) {
		t.Errorf("figures %v, want %v", pngs, wantPNGs)
	}
	if !slices.Equal(others, []string{ReportFile, SummaryFile}) {
		t.Errorf("other files %v, want only %s and %s (no temporary files)",
			others, ReportFile, SummaryFile)
	}

	page, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	doc := html.UnescapeString(string(page))
	for _, name := range pngs {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(doc, "data:image/png;base64,"+base64.StdEncoding.EncodeToString(b)) {
			t.Errorf("report.html does not embed %s as a data: URI", name)
		}
	}
	for _, want := range []string{`id="problems"`, "d.jpg", "box <0 wide> dropped",
		"a.png", "<td>True</td>"} {
		if !strings.Contains(doc, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if !strings.Contains(string(page), "box &lt;0 wide&gt; dropped") {
		t.Error("report.html does not escape a problem's reason")
	}
	if strings.Contains(doc, "ZgotmplZ") {
		t.Error("report.html holds a URL the template refused (ZgotmplZ)")
	}

	var back Summary
	b, err := os.ReadFile(filepath.Join(out, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if len(back.Dirs) != 1 || back.Dirs[0].Boxes != 3 || back.Dirs[0].Problems != 1 {
		t.Errorf("summary.json = %s", b)
	}
	if !strings.Contains(progressLog.String(), "draw") {
		t.Errorf("no progress bar while drawing: %q", progressLog.String())
	}

	checkSampleGrids(t, out, slug)
}

// checkSampleGrids checks the boxes drawn over the three samples of builtSet:
// the cells hold the images unscaled, the first cell at (sampleGap, sampleGap).
func checkSampleGrids(t *testing.T, out, slug string) {
	t.Helper()
	plain := readPNG(t, filepath.Join(out, "samples-"+slug+".png"))
	boxed := readPNG(t, filepath.Join(out, "boxes-"+slug+".png"))
	cell := func(k, x, y int) (int, int) {
		return sampleGap + k*(sampleCell+sampleGap) + x, sampleGap + y
	}
	rgba := func(img image.Image, x, y int) color.RGBA {
		return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
	}
	for _, tc := range []struct {
		what      string
		cell      int
		x, y      int
		boxed     color.RGBA
		untouched bool
	}{
		{"left side of the proper box", 0, 20, 60, ProperColor, false},
		{"bottom side of the proper box", 0, 60, 119, ProperColor, false},
		{"inside the proper box", 0, 60, 60, color.RGBA{0, 0, 200, 255}, true},
		{"right side of the other box", 1, 149, 150, OtherColor, false},
		{"outside the other box", 1, 10, 10, color.RGBA{0, 0, 200, 255}, true},
	} {
		x, y := cell(tc.cell, tc.x, tc.y)
		if got := rgba(boxed, x, y); got != tc.boxed {
			t.Errorf("%s: boxed grid at (%d, %d) is %v, want %v", tc.what, x, y, got, tc.boxed)
		}
		if got := rgba(plain, x, y); got != (color.RGBA{0, 0, 200, 255}) {
			t.Errorf("%s: plain grid at (%d, %d) is %v, want the image's blue",
				tc.what, x, y, got)
		}
	}
	if b := plain.Bounds(); b.Dx() != 3*sampleCell+4*sampleGap || b.Dy() != sampleCell+2*sampleGap {
		t.Errorf("sample grid is %v, want one row of three cells", b)
	}
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

func TestWriteReportWithoutSamples(t *testing.T) {
	sets := []*dataset.Set{builtSet(t)}
	out := t.TempDir()
	if err := WriteReport(context.Background(), out, sets, Summarize(sets),
		WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(out, "samples-*"))
	if len(matches) != 0 {
		t.Errorf("samples drawn with Samples 0: %v", matches)
	}
	if _, err := os.Stat(filepath.Join(out, SummaryFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("summary.json written without JSON: %v", err)
	}
	page, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "No samples were asked for") {
		t.Error("report does not say that no samples were asked for")
	}
}

func TestWriteReportCancelled(t *testing.T) {
	sets := []*dataset.Set{builtSet(t)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := t.TempDir()
	err := WriteReport(ctx, out, sets, Summarize(sets), WriteOptions{Samples: 2})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteReport with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(out, ReportFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a cancelled report left report.html: %v", err)
	}
}

func TestWriteReportMismatch(t *testing.T) {
	sets := []*dataset.Set{builtSet(t)}
	err := WriteReport(context.Background(), t.TempDir(), sets, Summarize(nil), WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "summarise the same sets") {
		t.Errorf("sets and summary that differ: %v", err)
	}
}

func TestWriteReportEmpty(t *testing.T) {
	err := WriteReport(context.Background(), t.TempDir(), nil, Summarize(nil), WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "no data sets") {
		t.Errorf("a report of no sets: %v, want an error saying so", err)
	}

	// A set without images still gets a report, with empty figures.
	sets := []*dataset.Set{{Dir: "/x/empty", Classes: dataset.TwoClass()}}
	out := t.TempDir()
	err = WriteReport(context.Background(), out, sets, Summarize(sets),
		WriteOptions{Samples: 2, JSON: true})
	if err != nil {
		t.Fatalf("a report of an empty set: %v", err)
	}
	page, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "No images.") {
		t.Error("the report of an empty set does not say it has no images")
	}
}

func TestWriteReportUnreadableSample(t *testing.T) {
	set := builtSet(t)
	set.Records[0].Path = filepath.Join(set.Dir, "gone.png")
	sets := []*dataset.Set{set}
	out := t.TempDir()
	if err := WriteReport(context.Background(), out, sets, Summarize(sets),
		WriteOptions{Samples: 3}); err != nil {
		t.Fatalf("an unreadable sample should be drawn as a dark cell: %v", err)
	}
	slug := slugs([]string{Summarize(sets).Dirs[0].Name})[0]
	plain := readPNG(t, filepath.Join(out, "samples-"+slug+".png"))
	x, y := sampleGap+5, sampleGap+5
	if got := color.RGBAModel.Convert(plain.At(x, y)); got != cellBackground {
		t.Errorf("unreadable sample cell at (%d, %d) is %v, want %v", x, y, got, cellBackground)
	}
}

func TestDrawBox(t *testing.T) {
	red := color.RGBA{255, 0, 0, 255}
	img := image.NewRGBA(image.Rect(0, 0, 20, 20))
	DrawBox(img, image.Rect(5, 5, 15, 15), red, 2)
	for _, tc := range []struct {
		x, y int
		want bool
	}{
		{5, 5, true}, {6, 10, true}, {7, 10, false}, {10, 13, true}, {10, 12, false},
		{14, 14, true}, {15, 15, false}, {4, 4, false}, {10, 10, false},
	} {
		if got := img.RGBAAt(tc.x, tc.y) == red; got != tc.want {
			t.Errorf("pixel (%d, %d) red = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}

	// A box partly outside the image is clipped, not a panic.
	clipped := image.NewRGBA(image.Rect(0, 0, 20, 20))
	DrawBox(clipped, image.Rect(-5, -5, 10, 10), red, 2)
	if clipped.RGBAAt(0, 9) != red || clipped.RGBAAt(9, 0) != red || clipped.RGBAAt(0, 0) == red {
		t.Error("a box running off the top-left corner is not clipped to the image")
	}
	// Thicker than the box: filled, not inverted.
	small := image.NewRGBA(image.Rect(0, 0, 10, 10))
	DrawBox(small, image.Rect(2, 2, 4, 4), red, 5)
	if small.RGBAAt(3, 3) != red || small.RGBAAt(4, 4) == red {
		t.Error("a box thinner than its outline is not filled within its bounds")
	}
}

func TestHistogram(t *testing.T) {
	h := histogram([]float64{0, 0.5, 1, 2.5, 3, 3.5, -1}, []float64{0, 1, 2, 3},
		colorAt(0))
	var got []float64
	for _, b := range h.Bins {
		got = append(got, b.Weight)
	}
	// [0,1): 0 and 0.5; [1,2): 1; [2,3]: 2.5 and 3 (the last bin holds its top edge).
	if want := []float64{2, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("bin counts %v, want %v", got, want)
	}
}

func TestEdges(t *testing.T) {
	if got, want := edges(1, 100, 2, true), []float64{1, 10, 100}; !closeAll(got, want) {
		t.Errorf("geometric edges %v, want %v", got, want)
	}
	if got, want := edges(0, 1, 4, false), []float64{0, 0.25, 0.5, 0.75, 1}; !closeAll(got, want) {
		t.Errorf("even edges %v, want %v", got, want)
	}
	for _, v := range []float64{0, 5} {
		e := edges(v, v, 3, false)
		for i := 1; i < len(e); i++ {
			if e[i] <= e[i-1] {
				t.Errorf("edges around the single value %g are not increasing: %v", v, e)
			}
		}
		if e[0] > v || e[len(e)-1] < v {
			t.Errorf("edges %v leave out the single value %g", e, v)
		}
	}
}

func closeAll(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return x-y < 1e-9 && y-x < 1e-9 })
}

func TestSamplePicks(t *testing.T) {
	if got := SamplePicks(8, 3); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("SamplePicks(8, 3) = %v, want every record", got)
	}
	if got := SamplePicks(0, 10); len(got) != 0 {
		t.Errorf("SamplePicks(0, 10) = %v, want none", got)
	}
	a, b := SamplePicks(8, 688), SamplePicks(8, 688)
	if !slices.Equal(a, b) {
		t.Errorf("SamplePicks is not deterministic: %v, then %v", a, b)
	}
	if len(a) != 8 || !slices.IsSorted(a) || a[0] < 0 || a[7] >= 688 {
		t.Errorf("SamplePicks(8, 688) = %v, want 8 sorted indices below 688", a)
	}
	if len(slices.Compact(slices.Clone(a))) != 8 {
		t.Errorf("SamplePicks(8, 688) repeats a record: %v", a)
	}
	if a[7] < 688/2 {
		t.Errorf("SamplePicks(8, 688) = %v bunches at the start of the directory", a)
	}
}

func TestSlugs(t *testing.T) {
	got := slugs([]string{"proper-mask/test", "a b", "a-b", "///", "x#2"})
	want := []string{"proper-mask-test", "a-b", "a-b-2", "dir", "x-2"}
	if !slices.Equal(got, want) {
		t.Errorf("slugs = %q, want %q", got, want)
	}
}

func TestReadBars(t *testing.T) {
	var buf bytes.Buffer
	r := &readBars{w: &buf, label: "read x"}
	for _, step := range [][2]int{{1, 3}, {2, 3}, {3, 3}, {1, 2}, {2, 2}} {
		r.update(step[0], step[1])
	}
	r.finish()
	n := buf.Len()
	r.update(1, 5)

	text := buf.String()
	for _, want := range []string{"read x [", "3/3", "read x (2) [", "2/2"} {
		if !strings.Contains(text, want) {
			t.Errorf("progress output lacks %q:\n%s", want, text)
		}
	}
	if buf.Len() != n {
		t.Errorf("a bar drew after finish: %q", text[n:])
	}
}

func TestRead(t *testing.T) {
	seed := fixture.Path(t, "seed-samples")
	sets, err := Read(context.Background(), []string{seed, seed + "/"}, dataset.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 1 || len(sets[0].Records) != 4 {
		t.Errorf("a directory named twice gave %d sets; want it read once, with 4 images",
			len(sets))
	}
}

func TestReadErrors(t *testing.T) {
	_, err := Read(context.Background(), []string{filepath.Join(t.TempDir(), "nope")},
		dataset.Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "nope") ||
		!strings.Contains(err.Error(), "no such directory") {
		t.Errorf("reading a missing folder: %v, want an error naming it", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Read(ctx, []string{t.TempDir()}, dataset.Options{}, nil); !errors.Is(
		err, context.Canceled) {
		t.Errorf("Read with a cancelled context: %v, want context.Canceled", err)
	}

	if _, err := Run(context.Background(), Config{Out: t.TempDir()}); err == nil {
		t.Error("Run without data directories succeeded")
	}
	if _, err := Run(context.Background(), Config{Data: []string{"x"}}); err == nil {
		t.Error("Run without an output folder succeeded")
	}
}

func TestFormatNumber(t *testing.T) {
	for v, want := range map[float64]string{
		12535: "12535", 0: "0", 100: "100", 2.5: "2.5", 1974.8049: "1974.8", 1.0 / 3: "0.33",
		-0.004: "0", -2.5: "-2.5",
	} {
		if got := formatNumber(v); got != want {
			t.Errorf("formatNumber(%g) = %q, want %q", v, got, want)
		}
	}
}
