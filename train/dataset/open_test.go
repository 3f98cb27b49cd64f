package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/train/fixture"
)

func TestOpenTreeRealData(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		splits []string
	}{
		{"proper-mask", FormatFileName, []string{"test", "train"}},
		{"facemask", FormatVOC, []string{"train", "val"}},
		{"seed-samples", FormatFileName, []string{"seed-samples"}},
	}
	for _, tt := range tests {
		sets := realTree(t, tt.name)
		var splits []string
		for _, s := range sets {
			splits = append(splits, filepath.Base(s.Dir))
			if s.Format != tt.format {
				t.Errorf("%s read as %s, want %s", s.Dir, s.Format, tt.format)
			}
		}
		if !slices.Equal(splits, tt.splits) {
			t.Errorf("OpenTree(%s) gives %v, want %v", tt.name, splits, tt.splits)
		}
	}

	// Of the data folder's own folders only seed-samples is a set: the others hold sets.
	sets, err := OpenTree(fixture.DataDir(t), Options{})
	if err != nil || len(sets) != 1 || filepath.Base(sets[0].Dir) != "seed-samples" {
		t.Errorf("OpenTree of the data folder: %v, %v; want seed-samples alone", sets, err)
	}
	for name, want := range map[string]Format{
		"facemask/train":    FormatVOC,
		"facemask/val":      FormatVOC,
		"proper-mask/train": FormatFileName,
	} {
		format, _, err := detect(fixture.Path(t, filepath.FromSlash(name)))
		if err != nil || format != want {
			t.Errorf("detect(%s) = %s, %v; want %s", name, format, err, want)
		}
	}
}

// dataSetDirs builds one small data set of each format, and some non-sets, in a
// temporary folder, and returns it.
func dataSetDirs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	good := seedJPEG(t)

	writeFile(t, root, "names/"+seedName, good)
	writeFile(t, root, "names/notes.json", []byte(`{"about": "not COCO"}`))

	writeFile(t, root, "voc/images/a.jpg", good)
	writeFile(t, root, "voc/annotations/a.xml", vocFile("a.jpg", 167, 224,
		vocObject("with_mask", "18", "84", "144", "219")))

	coco := `{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"id": 1,
		"image_id": 1, "category_id": 1, "bbox": [18, 84, 126, 135]}],
		"categories": [{"id": 1, "name": "True"}]}`
	writeFile(t, root, "coco/images/a.jpg", good)
	writeFile(t, root, "coco/train.json", []byte(coco))
	writeFile(t, root, "coco/readme.txt", []byte("hi"))

	writeFile(t, root, "twococo/train.json", []byte(coco))
	writeFile(t, root, "twococo/val.json", []byte(coco))

	writeFile(t, root, "plain/photo.jpg", good)
	writeFile(t, root, "plain/README", []byte("hi"))
	if err := os.Mkdir(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestOpen(t *testing.T) {
	root := dataSetDirs(t)
	tests := []struct {
		path   string
		format Format
		source string // the set's Source, under root
		err    string
		is     error
	}{
		{path: "names", format: FormatFileName, source: "names"},
		{path: "voc", format: FormatVOC, source: "voc"},
		{path: "coco", format: FormatCOCO, source: "coco/train.json"},
		{path: "coco/train.json", format: FormatCOCO, source: "coco/train.json"},
		{path: "twococo", err: "holds 2 COCO files (train.json, val.json); open one of them"},
		{path: "plain", is: ErrNotDataSet},
		{path: "empty", is: ErrNotDataSet},
		{path: "plain/photo.jpg", is: ErrNotDataSet},
		{path: ".", is: ErrNotDataSet},
		{path: "nowhere", is: os.ErrNotExist},
	}
	for _, tt := range tests {
		path := filepath.Join(root, tt.path)
		set, err := Open(path, Options{})
		switch {
		case tt.err != "" || tt.is != nil:
			if err == nil || !strings.Contains(err.Error(), tt.err) ||
				tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Open(%s) = %v; want an error with %q or %v", tt.path, err, tt.err, tt.is)
			}
			if errors.Is(err, ErrNotDataSet) && !strings.Contains(err.Error(), path) {
				t.Errorf("Open(%s) error %q does not name the path", tt.path, err)
			}
		case err != nil:
			t.Errorf("Open(%s): %v", tt.path, err)
		default:
			source := filepath.Join(root, tt.source)
			dir := strings.TrimSuffix(source, "/train.json")
			if set.Format != tt.format || set.Source != source || set.Dir != dir ||
				len(set.Records) != 1 || len(set.Records[0].Objects) != 1 {
				t.Errorf("Open(%s) = %s set of %s in %s with %+v; want %s of %s with one face",
					tt.path, set.Format, set.Source, set.Dir, set.Records, tt.format, source)
			}
		}
	}
}

func TestOpenTree(t *testing.T) {
	root := dataSetDirs(t)
	if err := os.RemoveAll(filepath.Join(root, "twococo")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "loose-file.jpg", seedJPEG(t))

	sets, err := OpenTree(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sets {
		rel, _ := filepath.Rel(root, s.Source)
		got = append(got, string(s.Format)+":"+filepath.ToSlash(rel))
	}
	want := []string{"coco:coco/train.json", "filename:names", "voc:voc"}
	if !slices.Equal(got, want) {
		t.Errorf("OpenTree gives %v, want %v", got, want)
	}

	// A data set given directly is one set.
	sets, err = OpenTree(filepath.Join(root, "voc"), Options{})
	if err != nil || len(sets) != 1 || sets[0].Format != FormatVOC {
		t.Errorf("OpenTree(voc) = %v, %v; want the one VOC set", sets, err)
	}

	// A folder whose subfolder cannot be read as one set is an error.
	writeFile(t, root, "names/README", []byte("hi"))
	_, err = OpenTree(root, Options{Strict: true})
	var pe *ProblemError
	if !errors.As(err, &pe) || !strings.HasSuffix(pe.Problem.Path, "README") {
		t.Errorf("strict OpenTree: %v; want the README's problem", err)
	}

	// Neither a data set nor a folder of them.
	for _, dir := range []string{filepath.Join(root, "plain"), filepath.Join(root, "empty")} {
		_, err = OpenTree(dir, Options{})
		if !errors.Is(err, ErrNotDataSet) || !strings.Contains(err.Error(), dir) {
			t.Errorf("OpenTree(%s): %v; want ErrNotDataSet naming it", dir, err)
		}
	}
}
