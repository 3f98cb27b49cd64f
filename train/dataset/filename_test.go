package dataset

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	_ "image/jpeg" // for image.DecodeConfig of the real photographs
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/fixture"
)

func TestParseFileName(t *testing.T) {
	tests := []struct {
		name string
		want FileName
		err  string
	}{
		{name: "000024__[18, 84, 126, 135]__True.jpg",
			want: FileName{"000024", box.Box{X1: 18, Y1: 84, X2: 144, Y2: 219}, "True"}},
		{name: "000133__[69,119,140,140]__False.jpeg",
			want: FileName{"000133", box.Box{X1: 69, Y1: 119, X2: 209, Y2: 259}, "False"}},
		{name: "a b__[ 1.5 ,2.25,  .5, 7. ]__True.PNG",
			want: FileName{"a b", box.Box{X1: 1.5, Y1: 2.25, X2: 2, Y2: 9.25}, "True"}},
		{name: "/some/folder/x__[-3, +4, 10, 0]__with_mask.jpg",
			want: FileName{"x", box.Box{X1: -3, Y1: 4, X2: 7, Y2: 4}, "with_mask"}},
		{name: "id__[1, 2, 3, 4]__[5]__True.jpg", err: `"4]__[5" is not a number`},
		{name: "000024__[18, 84, 126, 135]__True.gif", err: `extension ".gif"`},
		{name: "000024__[18, 84, 126, 135]__True", err: "extension"},
		{name: "README.md", err: "extension"},
		{name: "photo.jpg", err: `no "__[" opens the box`},
		{name: "__[1, 2, 3, 4]__True.jpg", err: "no ID"},
		{name: "x__[1, 2, 3, 4__True.jpg", err: `no "]__" closes the box`},
		{name: "x__[1, 2, 3, 4]True.jpg", err: `no "]__" closes the box`},
		{name: "x__]__[1, 2, 3, 4.jpg", err: `no "]__" closes the box`},
		{name: "x__[1, 2, 3, 4]__.jpg", err: "no label"},
		{name: "x__[1, 2, 3, 4]__Tr ue.jpg", err: `holds " "`},
		{name: "x__[1, 2, 3]__True.jpg", err: "3 numbers, not 4"},
		{name: "x__[1, 2, 3, 4, 5]__True.jpg", err: "5 numbers, not 4"},
		{name: "x__[]__True.jpg", err: "1 numbers, not 4"},
		{name: "x__[1, 2, , 4]__True.jpg", err: `w of the box: "" is not a number`},
		{name: "x__[NaN, 2, 3, 4]__True.jpg", err: `x of the box: "NaN" is not a number`},
		{name: "x__[1, Inf, 3, 4]__True.jpg", err: "y of the box"},
		{name: "x__[1, 2, 1e3, 4]__True.jpg", err: `"1e3" is not a number`},
		{name: "x__[1, 2, 0x10, 4]__True.jpg", err: "not a number"},
		{name: "x__[1, 2, 3, 4-]__True.jpg", err: "not a number"},
		{name: "x__[1, 2, 3, 1.2.3]__True.jpg", err: "not a number"},
		{name: "x__[1, 2, 3, -]__True.jpg", err: "not a number"},
		{name: "x__[1, 2, 3, " + strings.Repeat("9", 400) + "]__True.jpg",
			err: "too large"},
		{name: "x__[1" + strings.Repeat("0", 308) + ", 2, 1" + strings.Repeat("0", 308) +
			", 4]__True.jpg", err: "far corner is too large"},
	}
	for _, tt := range tests {
		got, err := ParseFileName(tt.name)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseFileName(%.60q) = %v, %v; want an error with %q",
					tt.name, got, err, tt.err)
			} else if !strings.Contains(err.Error(), "expected ID__[x, y, w, h]__True.jpg") {
				t.Errorf("ParseFileName(%.60q) error %q does not give the expected form",
					tt.name, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseFileName(%q) = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func FuzzParseFileName(f *testing.F) {
	for _, name := range []string{
		"000024__[18, 84, 126, 135]__True.jpg",
		"000133__[69,119,140,140]__False.png",
		"x__[-1.5, +2., .25, 0]__with_mask.JPEG",
		"x__[1, 2, 3, 4]__[5, 6, 7, 8]__True.jpg",
		"__[]__.jpg",
		"x__[NaN, Inf, -Inf, 1e308]__True.jpg",
	} {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		fn, err := ParseFileName(name)
		if err != nil {
			if fn != (FileName{}) {
				t.Errorf("ParseFileName(%q) failed but returned %+v", name, fn)
			}
			return
		}
		for _, v := range []float64{fn.Box.X1, fn.Box.Y1, fn.Box.X2, fn.Box.Y2} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("ParseFileName(%q) box %v is not finite", name, fn.Box)
			}
		}
		base := filepath.Base(name)
		if fn.ID == "" || !strings.HasPrefix(base, fn.ID+"__[") {
			t.Fatalf("ParseFileName(%q) ID %q is not the name's start", name, fn.ID)
		}
		if fn.Label == "" || strings.IndexFunc(fn.Label, notLabelRune) >= 0 ||
			!strings.HasSuffix(strings.TrimSuffix(base, filepath.Ext(base)), "]__"+fn.Label) {
			t.Fatalf("ParseFileName(%q) label %q is not the name's end", name, fn.Label)
		}
		if !isImageName(base) {
			t.Fatalf("ParseFileName(%q) took a name without an image extension", name)
		}
	})
}

func TestReadFileNamesSeedSamples(t *testing.T) {
	set := realTree(t, "seed-samples")[0]
	if set.Format != FormatFileName {
		t.Fatalf("seed-samples read as %s", set.Format)
	}
	tests := []struct {
		name    string
		width   int
		box     box.Box
		class   string
		clipped bool
	}{
		{"000024__[18, 84, 126, 135]__True.jpg", 167,
			box.Box{X1: 18, Y1: 84, X2: 144, Y2: 219}, "proper", false},
		{"000133__[69, 119, 140, 140]__False.jpg", 224,
			box.Box{X1: 69, Y1: 119, X2: 209, Y2: 224}, "not_proper", true},
		{"000190__[70, 83, 100, 102]__True.jpg", 224,
			box.Box{X1: 70, Y1: 83, X2: 170, Y2: 185}, "proper", false},
		{"000207__[63, 159, 118, 119]__False.jpg", 224,
			box.Box{X1: 63, Y1: 159, X2: 181, Y2: 224}, "not_proper", true},
	}
	if len(set.Records) != len(tests) {
		t.Fatalf("%d records, want %d", len(set.Records), len(tests))
	}
	for i, tt := range tests {
		rec := set.Records[i]
		if filepath.Base(rec.Path) != tt.name || rec.Width != tt.width || rec.Height != 224 {
			t.Errorf("record %d is %s %dx%d; want %s %dx224",
				i, rec.Path, rec.Width, rec.Height, tt.name, tt.width)
		}
		if len(rec.Objects) != 1 {
			t.Fatalf("%s has %d objects, want 1", tt.name, len(rec.Objects))
		}
		o := rec.Objects[0]
		if o.Box != tt.box || set.Classes.Names[o.Class] != tt.class || o.Clipped != tt.clipped {
			t.Errorf("%s: %v %s clipped %v; want %v %s clipped %v", tt.name, o.Box,
				set.Classes.Names[o.Class], o.Clipped, tt.box, tt.class, tt.clipped)
		}
		if tt.clipped {
			// The name's box runs 35 and 54 px below these 224 px images.
			wantProblem(t, set, tt.name, "runs past the 224x224 image; clipped to")
		}
	}
	if set.Clipped != 2 || len(set.Problems) != 2 {
		t.Errorf("Clipped %d, problems %q; want the two clipped boxes", set.Clipped, set.Problems)
	}
}

// TestReadFileNamesRealData reads proper-mask's splits and checks each against
// what the test works out from the folder itself.
func TestReadFileNamesRealData(t *testing.T) {
	for _, split := range []string{"train", "test"} {
		t.Run(split, func(t *testing.T) {
			dir := fixture.Path(t, "proper-mask", split)
			set := realSet(t, "proper-mask", split)
			if set.Format != FormatFileName {
				t.Fatalf("read as %s", set.Format)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var jpgs, trues, rounded int
			for _, e := range entries {
				if !strings.HasSuffix(e.Name(), ".jpg") {
					continue
				}
				jpgs++
				if strings.HasSuffix(e.Name(), "__True.jpg") {
					trues++
				}
				if runsPast(t, filepath.Join(dir, e.Name())) {
					rounded++
				}
			}

			if len(set.Records) != jpgs || len(set.Problems) != 0 || set.Clipped != 0 {
				t.Fatalf("%d records, %d clipped, problems %q; want %d records and no problems",
					len(set.Records), set.Clipped, set.Problems, jpgs)
			}
			if set.Rounded != rounded {
				t.Errorf("Rounded %d; the names give %d boxes one pixel past the image",
					set.Rounded, rounded)
			}
			checkSorted(t, set)
			counts := classCounts(set)
			if counts["proper"] != trues || counts["not_proper"] != jpgs-trues {
				t.Errorf("class counts %v; the names give %d True of %d", counts, trues, jpgs)
			}
			for _, rec := range set.Records {
				fn, err := ParseFileName(rec.Path)
				if err != nil {
					t.Fatal(err)
				}
				want := fn.Box.Clip(float64(rec.Width), float64(rec.Height))
				if len(rec.Objects) != 1 || rec.Objects[0].Box != want {
					t.Fatalf("%s: objects %v, want one box %v", rec.Path, rec.Objects, want)
				}
			}
		})
	}
}

// runsPast reports whether the box in an image's name runs past the image.
func runsPast(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	fn, err := ParseFileName(path)
	if err != nil {
		t.Fatal(err)
	}
	return fn.Box.X1 < 0 || fn.Box.Y1 < 0 ||
		fn.Box.X2 > float64(cfg.Width) || fn.Box.Y2 > float64(cfg.Height)
}

// classCounts counts a set's objects by class name.
func classCounts(set *Set) map[string]int {
	counts := map[string]int{}
	for _, r := range set.Records {
		for _, o := range r.Objects {
			counts[set.Classes.Names[o.Class]]++
		}
	}
	return counts
}

func TestReadFileNamesThreeClass(t *testing.T) {
	dir := fixture.Path(t, "proper-mask", "test")
	set, err := ReadFileNames(dir, Options{Classes: ThreeClass()})
	if err != nil {
		t.Fatal(err)
	}
	falses, _ := filepath.Glob(filepath.Join(dir, "*__False.jpg"))
	trues, _ := filepath.Glob(filepath.Join(dir, "*__True.jpg"))
	if len(falses) == 0 || len(trues) == 0 {
		t.Fatalf("proper-mask/test has %d True and %d False images", len(trues), len(falses))
	}

	counts := classCounts(set)
	if len(set.Records) != len(trues) || counts["with_mask"] != len(trues) || len(counts) != 1 {
		t.Errorf("%d records, classes %v; want the %d True images as with_mask",
			len(set.Records), counts, len(trues))
	}
	if len(set.Problems) != len(falses) {
		t.Fatalf("%d problems; want one for each of the %d False images",
			len(set.Problems), len(falses))
	}
	for _, p := range set.Problems {
		if !strings.HasSuffix(p.Path, "__False.jpg") ||
			!strings.Contains(p.Reason, "read this set with two classes") {
			t.Errorf("problem %v; want a False image and the advice to use two classes", p)
		}
	}

	_, err = ReadFileNames(dir, Options{Classes: ThreeClass(), Strict: true})
	var pe *ProblemError
	if !errors.As(err, &pe) || pe.Problem != set.Problems[0] {
		t.Errorf("strict three-class read: %v; want the first False image's problem", err)
	}
}

// TestReadFileNamesBadFiles puts one bad file beside a good image and checks that
// the bad one is listed, the good one kept, and strict mode fails on the bad one.
func TestReadFileNamesBadFiles(t *testing.T) {
	good := seedJPEG(t)
	tests := []struct {
		desc   string
		name   string // "" for no file
		data   []byte
		dir    bool   // make a folder named name instead
		reason string // "" when the file is read without a problem
		kept   bool   // whether the file is a record
	}{
		{desc: "name without a box", name: "photo.jpg", data: good,
			reason: `no "__[" opens the box`},
		{desc: "negative width", name: "x__[10, 10, -5, 20]__True.jpg", data: good,
			reason: "zero or negative size (-5 x 20)"},
		{desc: "zero height", name: "x__[10, 10, 5, 0]__False.jpg", data: good,
			reason: "zero or negative size"},
		{desc: "NaN in the name", name: "x__[NaN, 10, 5, 5]__True.jpg", data: good,
			reason: `"NaN" is not a number`},
		{desc: "box wholly outside", name: "x__[500, 10, 20, 20]__True.jpg", data: good,
			reason: "lies wholly outside the 167x224 image"},
		{desc: "box touching the edge from outside", name: "x__[167, 10, 20, 20]__True.jpg",
			data: good, reason: "wholly outside"},
		{desc: "box partly outside", name: "x__[-20, 10, 50, 20]__True.jpg", data: good,
			reason: "clipped to [0, 10, 30, 30]", kept: true},
		{desc: "box inside", name: "x__[0, 0, 167, 224]__False.jpg", data: good, kept: true},
		{desc: "PNG image", name: "x__[1, 2, 30, 40]__True.png", data: seedPNG(t), kept: true},
		{desc: "truncated JPEG", name: "x__[1, 2, 3, 4]__True.jpg", data: good[:len(good)/2],
			reason: "cannot decode image"},
		{desc: "JPEG cut before its end marker", name: "x__[1, 2, 3, 4]__True.jpg",
			data: good[:len(good)-2], reason: "cannot decode image"},
		{desc: "truncated PNG", name: "x__[1, 2, 3, 4]__True.png",
			data: seedPNG(t)[:5000], reason: "cannot decode image"},
		{desc: "garbage", name: "x__[1, 2, 3, 4]__True.jpg", data: []byte("not a picture"),
			reason: "neither JPEG nor PNG"},
		{desc: "JPEG header only", name: "x__[1, 2, 3, 4]__True.jpg", data: good[:20],
			reason: "cannot decode image header"},
		{desc: "huge image header", name: "x__[1, 2, 3, 4]__True.png", data: hugePNG(),
			reason: "image is 100000x100000; a reader takes 1 to 67108864 pixels"},
		{desc: "empty file", name: "x__[1, 2, 3, 4]__True.jpg", data: nil,
			reason: "the file is empty"},
		{desc: "README", name: "README", data: []byte("about"), reason: "not an image"},
		{desc: "notes", name: "notes.txt", data: []byte("about"), reason: "not an image"},
		{desc: "unknown label", name: "x__[1, 2, 3, 4]__Maybe.jpg", data: good,
			reason: `unknown class label "Maybe"`},
		{desc: "subfolder", name: "more", dir: true, reason: "a subfolder, not read"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, seedName, good)
			if tt.dir {
				if err := os.Mkdir(filepath.Join(dir, tt.name), 0o755); err != nil {
					t.Fatal(err)
				}
			} else {
				writeFile(t, dir, tt.name, tt.data)
			}

			set, err := ReadFileNames(dir, Options{Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := findRecord(set, seedName); !ok {
				t.Errorf("the good image is gone: records %v", set.Records)
			}
			if _, ok := findRecord(set, tt.name); ok != tt.kept {
				t.Errorf("record for %s kept %v, want %v", tt.name, ok, tt.kept)
			}
			if len(set.Records)+len(set.Problems)-set.Clipped != 2 {
				t.Errorf("records %v and problems %q do not account for both files once",
					set.Records, set.Problems)
			}
			if tt.reason == "" {
				if len(set.Problems) != 0 {
					t.Errorf("problems %q, want none", set.Problems)
				}
				return
			}
			wantProblem(t, set, tt.name, tt.reason)
			for _, p := range set.Problems {
				if !strings.HasPrefix(p.Path, dir) {
					t.Errorf("problem path %s is not in %s", p.Path, dir)
				}
			}

			set, err = ReadFileNames(dir, Options{Strict: true})
			wantStrictError(t, set, err, tt.name)
		})
	}
}

// hugePNG is the start of a PNG whose header claims 100000 x 100000 pixels.
func hugePNG() []byte {
	ihdr := []byte("IHDR")
	ihdr = binary.BigEndian.AppendUint32(ihdr, 100000)
	ihdr = binary.BigEndian.AppendUint32(ihdr, 100000)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB, no interlace
	data := []byte("\x89PNG\r\n\x1a\n")
	data = binary.BigEndian.AppendUint32(data, uint32(len(ihdr)-4))
	data = append(data, ihdr...)
	return binary.BigEndian.AppendUint32(data, crc32.ChecksumIEEE(ihdr))
}

func TestReadFileNamesClippedObject(t *testing.T) {
	dir := t.TempDir()
	name := "x__[150, 200, 30, 40]__False.jpg"
	writeFile(t, dir, name, seedJPEG(t))
	set, err := ReadFileNames(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := findRecord(set, name)
	want := box.Box{X1: 150, Y1: 200, X2: 167, Y2: 224}
	if !ok || len(rec.Objects) != 1 || rec.Objects[0].Box != want || !rec.Objects[0].Clipped {
		t.Fatalf("record %+v; want one clipped box %v", rec, want)
	}
	if set.Clipped != 1 || set.Rounded != 0 || len(set.Problems) != 1 {
		t.Errorf("Clipped %d, Rounded %d, problems %q; want one clipped box listed",
			set.Clipped, set.Rounded, set.Problems)
	}

	// A box at most a pixel past the edge is rounding: cut, counted, not a problem.
	rounded := "y__[-1, 200.5, 30, 24.5]__True.jpg"
	writeFile(t, dir, rounded, seedJPEG(t))
	set, err = ReadFileNames(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, ok = findRecord(set, rounded)
	want = box.Box{X1: 0, Y1: 200.5, X2: 29, Y2: 224}
	if !ok || len(rec.Objects) != 1 || rec.Objects[0].Box != want || rec.Objects[0].Clipped {
		t.Fatalf("record %+v; want one box %v, not marked clipped", rec, want)
	}
	if set.Clipped != 1 || set.Rounded != 1 || len(set.Problems) != 1 {
		t.Errorf("Clipped %d, Rounded %d, problems %q; want the rounded box unlisted",
			set.Clipped, set.Rounded, set.Problems)
	}
}

func TestReadFileNamesProgress(t *testing.T) {
	dir := t.TempDir()
	good := seedJPEG(t)
	for _, name := range []string{"a__[1, 2, 3, 4]__True.jpg", "b__[1, 2, 3, 4]__False.jpg",
		"c__[1, 2, 3, 4]__True.jpg", "README"} {
		writeFile(t, dir, name, good)
	}
	for _, workers := range []int{0, 1, 3, 10} {
		var calls [][2]int
		set, err := ReadFileNames(dir, Options{Workers: workers, Progress: func(done, total int) {
			calls = append(calls, [2]int{done, total})
		}})
		if err != nil {
			t.Fatal(err)
		}
		want := [][2]int{{1, 3}, {2, 3}, {3, 3}}
		if len(calls) != len(want) || calls[0] != want[0] || calls[2] != want[2] {
			t.Errorf("workers %d: progress calls %v; want %v", workers, calls, want)
		}
		if len(set.Records) != 3 || len(set.Problems) != 1 {
			t.Errorf("workers %d: %d records, problems %q",
				workers, len(set.Records), set.Problems)
		}
	}
}

func TestReadFileNamesMissingFolder(t *testing.T) {
	_, err := ReadFileNames(filepath.Join(t.TempDir(), "nowhere"), Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFileNames of a missing folder: %v; want a not-exist error", err)
	}
}
