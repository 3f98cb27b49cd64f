package eda

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/dataset"
)

// constructedSets builds two small sets whose statistics are worked out by hand
// in TestSummarize.
func constructedSets() []*dataset.Set {
	two := dataset.TwoClass()
	fileNames := &dataset.Set{
		Dir:     "/data/proper-mask/train",
		Format:  dataset.FormatFileName,
		Classes: two,
		Records: []dataset.Record{
			{Path: "/data/proper-mask/train/1.jpg", Width: 100, Height: 100,
				Objects: []dataset.Object{
					{Box: box.FromXYWH(10, 10, 20, 40), Class: 0, Source: "True"}}},
			{Path: "/data/proper-mask/train/2.jpg", Width: 200, Height: 100,
				Objects: []dataset.Object{
					{Box: box.FromXYWH(0, 0, 50, 50), Class: 1, Source: "False"}}},
			{Path: "/data/proper-mask/train/3.jpg", Width: 100, Height: 100,
				Objects: []dataset.Object{
					{Box: box.FromXYWH(0, 0, 30, 30), Class: 0, Source: "True"}}},
		},
	}
	voc := &dataset.Set{
		Dir:     "/data/facemask/train",
		Format:  dataset.FormatVOC,
		Classes: two,
		Records: []dataset.Record{
			{Path: "/data/facemask/train/images/a.jpg", Width: 400, Height: 300,
				Objects: []dataset.Object{
					{Box: box.FromXYWH(0, 0, 10, 20), Class: 0, Source: "with_mask"},
					{Box: box.FromXYWH(10, 10, 20, 20), Class: 1, Source: "without_mask"},
					{Box: box.FromXYWH(0, 0, 40, 10), Class: 0, Source: "with_mask",
						Clipped: true},
				}},
			{Path: "/data/facemask/train/images/b.jpg", Width: 300, Height: 300},
		},
		Problems: []dataset.Problem{
			{Path: "/data/facemask/train/annotations/a.xml", Reason: "object 3: clipped"},
			{Path: "/data/facemask/train/annotations/c.xml", Reason: "no image"},
		},
		Clipped: 1,
		Rounded: 2,
	}
	return []*dataset.Set{fileNames, voc}
}

func TestSummarize(t *testing.T) {
	s := Summarize(constructedSets())

	if !slices.Equal(s.Classes, []string{"proper", "not_proper"}) || s.Proper != "proper" {
		t.Errorf("classes %v, proper %q; want [proper not_proper], proper", s.Classes, s.Proper)
	}
	if len(s.Dirs) != 2 {
		t.Fatalf("%d directories, want 2", len(s.Dirs))
	}
	if s.Records() != 5 || s.Boxes() != 6 {
		t.Errorf("Records() %d, Boxes() %d; want 5 and 6", s.Records(), s.Boxes())
	}
	wantLabels := []string{"False", "True", "with_mask", "without_mask"}
	if got := s.LabelNames(); !slices.Equal(got, wantLabels) {
		t.Errorf("LabelNames() = %v, want %v", got, wantLabels)
	}

	a, b := s.Dirs[0], s.Dirs[1]
	if a.Name != "proper-mask/train" || b.Name != "facemask/train" {
		t.Errorf("names %q, %q; want proper-mask/train, facemask/train", a.Name, b.Name)
	}
	if a.Format != dataset.FormatFileName || b.Format != dataset.FormatVOC {
		t.Errorf("formats %q, %q", a.Format, b.Format)
	}
	checkInts(t, "file-name images, empty, boxes", []int{a.Images, a.EmptyImages, a.Boxes},
		[]int{3, 0, 3})
	checkInts(t, "VOC images, empty, boxes", []int{b.Images, b.EmptyImages, b.Boxes},
		[]int{2, 1, 3})
	checkInts(t, "VOC problems, clipped, rounded", []int{b.Problems, b.Clipped, b.Rounded},
		[]int{2, 1, 2})
	checkCounts(t, "file-name labels", a.Labels, map[string]int{"True": 2, "False": 1})
	checkCounts(t, "file-name classes", a.Classes, map[string]int{"proper": 2, "not_proper": 1})
	checkCounts(t, "VOC labels", b.Labels, map[string]int{"with_mask": 2, "without_mask": 1})
	checkCounts(t, "VOC classes", b.Classes, map[string]int{"proper": 2, "not_proper": 1})

	// Areas: True 800 and 900, False 2500; with_mask 200 and 400, without_mask 400.
	for _, tc := range []struct {
		what      string
		got, want Stats
	}{
		{"area True", a.Area["True"],
			Stats{Count: 2, Min: 800, Q1: 825, Median: 850, Q3: 875, Max: 900, Mean: 850}},
		{"area False", a.Area["False"],
			Stats{Count: 1, Min: 2500, Q1: 2500, Median: 2500, Q3: 2500, Max: 2500, Mean: 2500}},
		{"file-name area", a.AreaAll,
			Stats{Count: 3, Min: 800, Q1: 850, Median: 900, Q3: 1700, Max: 2500, Mean: 1400}},
		{"area with_mask", b.Area["with_mask"],
			Stats{Count: 2, Min: 200, Q1: 250, Median: 300, Q3: 350, Max: 400, Mean: 300}},
		{"VOC area", b.AreaAll,
			Stats{Count: 3, Min: 200, Q1: 300, Median: 400, Q3: 400, Max: 400, Mean: 1000.0 / 3}},
		// Aspect 0.5, 1, 1 and 0.5, 1, 4.
		{"file-name aspect", a.Aspect,
			Stats{Count: 3, Min: 0.5, Q1: 0.75, Median: 1, Q3: 1, Max: 1, Mean: 2.5 / 3}},
		{"VOC aspect", b.Aspect,
			Stats{Count: 3, Min: 0.5, Q1: 0.75, Median: 1, Q3: 2.5, Max: 4, Mean: 5.5 / 3}},
		// sqrt(800/10000), sqrt(2500/20000), sqrt(900/10000)
		{"file-name relative size", a.RelativeSize, Stats{
			Count: 3, Min: math.Sqrt(0.08), Q1: (math.Sqrt(0.08) + 0.3) / 2, Median: 0.3,
			Q3: (0.3 + math.Sqrt(0.125)) / 2, Max: math.Sqrt(0.125),
			Mean: (math.Sqrt(0.08) + math.Sqrt(0.125) + 0.3) / 3}},
		{"file-name image width", a.ImageWidth, Stats{
			Count: 3, Min: 100, Q1: 100, Median: 100, Q3: 150, Max: 200, Mean: 400.0 / 3}},
		{"VOC image height", b.ImageHeight, Stats{
			Count: 2, Min: 300, Q1: 300, Median: 300, Q3: 300, Max: 300, Mean: 300}},
	} {
		if !statsClose(tc.got, tc.want) {
			t.Errorf("%s = %+v, want %+v", tc.what, tc.got, tc.want)
		}
	}
}

func TestSummaryJSON(t *testing.T) {
	b, err := json.Marshal(Summarize(constructedSets()))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Classes []string `json:"classes"`
		Dirs    []struct {
			Path     string           `json:"path"`
			Format   string           `json:"format"`
			Images   int              `json:"images"`
			Boxes    int              `json:"boxes"`
			Labels   map[string]int   `json:"labels"`
			Area     map[string]Stats `json:"area"`
			AreaAll  Stats            `json:"area_all"`
			Problems int              `json:"problems"`
		} `json:"dirs"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Classes) != 2 || len(back.Dirs) != 2 {
		t.Fatalf("summary.json lost classes or directories: %s", b)
	}
	d := back.Dirs[1]
	if d.Path != "/data/facemask/train" || d.Format != "voc" || d.Images != 2 || d.Boxes != 3 ||
		d.Labels["with_mask"] != 2 || d.Area["without_mask"].Max != 400 ||
		d.AreaAll.Median != 400 || d.Problems != 2 {
		t.Errorf("summary.json directory = %+v", d)
	}
	if !strings.Contains(string(b), `"median":`) {
		t.Errorf("summary.json lacks the median key: %s", b)
	}
}

func TestSummarizeNoSets(t *testing.T) {
	s := Summarize(nil)
	if len(s.Dirs) != 0 || s.Records() != 0 || s.Classes != nil {
		t.Errorf("Summarize(nil) = %+v", s)
	}
}

func TestShortNames(t *testing.T) {
	for _, tc := range []struct {
		dirs, want []string
	}{
		{[]string{"/d/proper-mask/test", "/d/proper-mask/train", "/d/facemask/train"},
			[]string{"proper-mask/test", "proper-mask/train", "facemask/train"}},
		{[]string{"/a/b/x/train", "/a/c/x/train"}, []string{"b/x/train", "c/x/train"}},
		{[]string{"/only"}, []string{"only"}},
		{[]string{"train/"}, []string{"train"}},
		{[]string{"/a/x/train", "/a/x/train/"}, []string{"x/train", "x/train#2"}},
		{[]string{"/"}, []string{"."}},
	} {
		if got := ShortNames(tc.dirs); !slices.Equal(got, tc.want) {
			t.Errorf("ShortNames(%q) = %q, want %q", tc.dirs, got, tc.want)
		}
	}
}

func checkInts(t *testing.T, what string, got, want []int) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func checkCounts(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", what, got, want)
			return
		}
	}
}
