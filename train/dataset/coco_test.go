package dataset

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
)

// cocoDoc is a COCO instances file around real photographs, with one of each
// kind of flaw. Written by hand: encoding/json cannot write 1e999.
const cocoDoc = `{
  "info": {"description": "test"},
  "images": [
    {"id": 1, "file_name": "a.jpg", "width": 167, "height": 224},
    {"id": 2, "file_name": "b.jpg", "width": 167, "height": 224},
    {"id": 3, "file_name": "sub/c.png", "width": 100, "height": 100},
    {"id": 4, "file_name": "missing.jpg", "width": 10, "height": 10},
    {"id": 1, "file_name": "dup.jpg"},
    {"id": 5, "file_name": "e.jpg", "width": 167, "height": 224},
    {"id": 6, "file_name": "f.jpg"}
  ],
  "categories": [
    {"id": 1, "name": "with_mask"}, {"id": 2, "name": "without_mask"},
    {"id": 3, "name": "mask_weared_incorrect"}, {"id": 7, "name": "hat"}
  ],
  "annotations": [
    {"id": 10, "image_id": 1, "category_id": 1, "bbox": [18, 84, 126, 135], "iscrowd": 0},
    {"id": 11, "image_id": 1, "category_id": 3, "bbox": [0.5, 1.5, 10, 20]},
    {"id": 12, "image_id": 2, "category_id": 2, "bbox": [150, 200, 30, 40]},
    {"id": 13, "image_id": 2, "category_id": 1, "bbox": [1, 2]},
    {"id": 14, "image_id": 2, "category_id": 9, "bbox": [1, 2, 3, 4]},
    {"id": 15, "image_id": 2, "category_id": 7, "bbox": [1, 2, 3, 4]},
    {"id": 16, "image_id": 99, "category_id": 1, "bbox": [1, 2, 3, 4]},
    {"id": 17, "image_id": 3, "category_id": 1, "bbox": [1, 2, 3, 1e999]},
    {"id": 18, "image_id": 3, "category_id": 1, "bbox": [1, 2, -3, 4]},
    {"id": 19, "image_id": 3, "category_id": 1, "bbox": [5, 5, 10, 10]},
    {"id": 20, "image_id": 4, "category_id": 1, "bbox": [1, 2, 3, 4]},
    {"id": 21, "image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4]},
    {"id": 22, "image_id": 2, "category_id": 1, "bbox": ["a", 1, 2, 3]}
  ]
}`

// writeCOCO makes a COCO folder around the seed photograph and returns the JSON's path.
func writeCOCO(t *testing.T, doc string) string {
	t.Helper()
	dir := t.TempDir()
	good := seedJPEG(t)
	writeFile(t, dir, "a.jpg", good)
	writeFile(t, dir, "images/b.jpg", good)
	writeFile(t, dir, "images/sub/c.png", seedPNG(t))
	writeFile(t, dir, "e.jpg", good[:len(good)/2])
	writeFile(t, dir, "f.jpg", good)
	return writeFile(t, dir, "instances.json", []byte(doc))
}

func TestReadCOCO(t *testing.T) {
	path := writeCOCO(t, cocoDoc)
	set, err := ReadCOCO(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if set.Format != FormatCOCO || set.Source != path || set.Dir != filepath.Dir(path) {
		t.Errorf("format %s, source %s, dir %s; want coco, %s and its folder",
			set.Format, set.Source, set.Dir, path)
	}

	type obj struct {
		box     box.Box
		class   int
		source  string
		clipped bool
	}
	want := []struct {
		path    string
		objects []obj
	}{
		{"a.jpg", []obj{
			{box.Box{X1: 18, Y1: 84, X2: 144, Y2: 219}, 0, "with_mask", false},
			{box.Box{X1: 0.5, Y1: 1.5, X2: 10.5, Y2: 21.5}, 1, "mask_weared_incorrect", false},
		}},
		{"f.jpg", nil},
		{"images/b.jpg", []obj{
			{box.Box{X1: 150, Y1: 200, X2: 167, Y2: 224}, 1, "without_mask", true},
		}},
		{"images/sub/c.png", []obj{
			{box.Box{X1: 5, Y1: 5, X2: 15, Y2: 15}, 0, "with_mask", false},
		}},
	}
	if len(set.Records) != len(want) {
		t.Fatalf("records %+v; want %d", set.Records, len(want))
	}
	for i, w := range want {
		rec := set.Records[i]
		rel, _ := filepath.Rel(filepath.Dir(path), rec.Path)
		if rel != filepath.FromSlash(w.path) {
			t.Errorf("record %d is %s, want %s", i, rel, w.path)
		}
		if rec.Width != 167 || rec.Height != 224 || len(rec.Objects) != len(w.objects) {
			t.Errorf("%s: %dx%d with %d objects; want 167x224 with %d",
				w.path, rec.Width, rec.Height, len(rec.Objects), len(w.objects))
			continue
		}
		for j, o := range rec.Objects {
			got := obj{o.Box, o.Class, o.Source, o.Clipped}
			if got != w.objects[j] {
				t.Errorf("%s object %d: %+v, want %+v", w.path, j, got, w.objects[j])
			}
		}
	}

	for _, p := range []struct{ path, reason string }{
		{"instances.json", `image 4 (id 4, "missing.jpg"): no such file`},
		{"instances.json", `image 5 (id 1, "dup.jpg"): id 1 is taken by image 1`},
		{"instances.json", "annotation 7 (id 16): image_id 99 is not among the images"},
		{"e.jpg", "cannot decode image"},
		{"b.jpg", "annotation 3 (id 12): box [150, 200, 180, 240] runs past the 167x224 image"},
		{"b.jpg", "annotation 4 (id 13): bbox [1, 2] is not a list of 4 numbers"},
		{"b.jpg", "annotation 5 (id 14): category_id 9 is not among the categories"},
		{"b.jpg", `annotation 6 (id 15): unknown class label "hat"`},
		{"b.jpg", `annotation 13 (id 22): bbox ["a", 1, 2, 3] is not a list of 4 numbers`},
		{"b.jpg", "image kept with 1 of its 5 faces"},
		{"c.png", "annotation gives size 100x100 but the image is 167x224"},
		{"c.png", "annotation 8 (id 17): box [1, 2, 4, +Inf] has a coordinate that is not"},
		{"c.png", "annotation 9 (id 18): box [1, 2, -2, 6] has zero or negative size"},
	} {
		wantProblem(t, set, p.path, p.reason)
	}
	if len(set.Problems) != 14 || set.Clipped != 1 {
		t.Errorf("%d problems, %d clipped; want 14 and 1: %q",
			len(set.Problems), set.Clipped, set.Problems)
	}
	for _, p := range set.Problems {
		if strings.Contains(p.Reason, "id 20") || strings.Contains(p.Reason, "id 21") {
			t.Errorf("an annotation of an image already listed is listed again: %v", p)
		}
	}
}

func TestReadCOCOStrictFirstProblem(t *testing.T) {
	path := writeCOCO(t, cocoDoc)
	_, err := ReadCOCO(path, Options{Strict: true})
	var pe *ProblemError
	if !errors.As(err, &pe) {
		t.Fatalf("strict read: %v; want a ProblemError", err)
	}
	loose, err := ReadCOCO(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pe.Problem != loose.Problems[0] {
		t.Errorf("strict read failed on %v; the first problem in path order is %v",
			pe.Problem, loose.Problems[0])
	}
}

func TestReadCOCOMalformed(t *testing.T) {
	for _, doc := range []string{
		`{"images": [`,
		`{"images": [{"id": "one", "file_name": "a.jpg"}], "annotations": []}`,
		`[1, 2, 3]`,
	} {
		path := writeCOCO(t, doc)
		set, err := ReadCOCO(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "malformed JSON") ||
			!strings.Contains(err.Error(), path) {
			t.Errorf("ReadCOCO of %q: %v, %v; want a malformed-JSON error naming the file",
				doc, set, err)
		}
	}
}
