package dataset

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// vocObject writes one <object> of a VOC annotation, coordinates as given.
func vocObject(name, xmin, ymin, xmax, ymax string) string {
	return fmt.Sprintf("<object><name>%s</name><pose>Unspecified</pose>"+
		"<truncated>0</truncated><difficult>0</difficult><bndbox><xmin>%s</xmin>"+
		"<ymin>%s</ymin><xmax>%s</xmax><ymax>%s</ymax></bndbox></object>",
		name, xmin, ymin, xmax, ymax)
}

// vocFile writes a VOC annotation for image filename of the given size.
func vocFile(filename string, width, height int, objects ...string) []byte {
	return fmt.Appendf(nil, "<annotation>\n<folder>images</folder>\n<filename>%s</filename>\n"+
		"<size><width>%d</width><height>%d</height><depth>3</depth></size>\n%s\n</annotation>\n",
		filename, width, height, strings.Join(objects, "\n"))
}

func TestParseVOC(t *testing.T) {
	full := `<?xml version="1.0"?>
<annotation>
	<folder>images</folder>
	<filename> a.jpg </filename>
	<size><width>10</width><height> 20 </height><depth>3</depth></size>
	<object>
		<name>with_mask</name><truncated>1</truncated><difficult>0</difficult>
		<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3.5</xmax><ymax>
			4
		</ymax></bndbox>
	</object>
	<object>
		<name> mask_weared_incorrect </name><difficult>true</difficult>
		<bndbox><ymax>8</ymax><xmax>7</xmax><ymin>6</ymin><xmin>5</xmin></bndbox>
	</object>
</annotation>`
	tests := []struct {
		desc string
		xml  string
		want VOCAnnotation
		err  string
	}{
		{desc: "full", xml: full, want: VOCAnnotation{
			Filename: "a.jpg",
			Size:     VOCSize{Width: 10, Height: 20, Depth: 3},
			Objects: []VOCObject{
				{Name: "with_mask", Box: box.Box{X1: 1, Y1: 2, X2: 3.5, Y2: 4}, Truncated: true},
				{Name: "mask_weared_incorrect", Box: box.Box{X1: 5, Y1: 6, X2: 7, Y2: 8},
					Difficult: true},
			},
		}},
		{desc: "no size, no objects", xml: "<annotation><filename>b.png</filename></annotation>",
			want: VOCAnnotation{Filename: "b.png"}},
		{desc: "NaN and a huge number kept", xml: "<annotation>" +
			vocObject("x", "NaN", "1e999", "-1e999", "4") + "</annotation>",
			want: VOCAnnotation{Objects: []VOCObject{{Name: "x", Box: box.Box{
				X1: math.NaN(), Y1: math.Inf(1), X2: math.Inf(-1), Y2: 4}}}}},
		{desc: "empty", xml: "", err: "no <annotation> element"},
		{desc: "text only", xml: "hello", err: "no <annotation> element"},
		{desc: "unclosed", xml: "<annotation><filename>a.jpg</filename>",
			err: "malformed VOC XML"},
		{desc: "bad nesting", xml: "<annotation><size></annotation>", err: "malformed VOC XML"},
		{desc: "other root", xml: "<doc></doc>", err: "root element is <doc>"},
		{desc: "object without bndbox", xml: "<annotation><object><name>a</name></object>" +
			"</annotation>", err: `object 1 ("a") has no <bndbox>`},
		{desc: "bndbox without ymax", xml: "<annotation><object><name>a</name><bndbox>" +
			"<xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox></object></annotation>",
			err: "has no <ymax>"},
		{desc: "coordinate not a number", xml: "<annotation>" +
			vocObject("a", "1", "two", "3", "4") + "</annotation>",
			err: `<ymin>: "two" is not a number`},
		{desc: "empty coordinate", xml: "<annotation>" + vocObject("a", "1", "2", "", "4") +
			"</annotation>", err: `<xmax>: "" is not a number`},
		{desc: "negative width", xml: "<annotation><size><width>-3</width></size></annotation>",
			err: `size width is "-3"`},
		{desc: "decimal height", xml: "<annotation><size><height>2.5</height></size>" +
			"</annotation>", err: `size height is "2.5"`},
		{desc: "bad flag", xml: "<annotation><object><name>a</name><difficult>maybe</difficult>" +
			"<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox>" +
			"</object></annotation>", err: `<difficult>: "maybe" is not 0, 1, true or false`},
		{desc: "bad entity", xml: "<annotation><filename>&bogus;</filename></annotation>",
			err: "malformed VOC XML"},
	}
	for _, tt := range tests {
		got, err := ParseVOC(strings.NewReader(tt.xml))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: ParseVOC = %+v, %v; want an error with %q",
					tt.desc, got, err, tt.err)
			}
			continue
		}
		if err != nil || !sameVOC(got, tt.want) {
			t.Errorf("%s: ParseVOC = %+v, %v; want %+v", tt.desc, got, err, tt.want)
		}
	}
}

// sameVOC compares annotations, NaN equal to NaN.
func sameVOC(a, b VOCAnnotation) bool {
	if a.Filename != b.Filename || a.Size != b.Size || len(a.Objects) != len(b.Objects) {
		return false
	}
	same := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
	for i, o := range a.Objects {
		p := b.Objects[i]
		if o.Name != p.Name || o.Truncated != p.Truncated || o.Difficult != p.Difficult ||
			!same(o.Box.X1, p.Box.X1) || !same(o.Box.Y1, p.Box.Y1) ||
			!same(o.Box.X2, p.Box.X2) || !same(o.Box.Y2, p.Box.Y2) {
			return false
		}
	}
	return true
}

// writeVOC writes an annotation back as VOC XML, for the fuzzer's round trip.
func writeVOC(a VOCAnnotation) []byte {
	var buf bytes.Buffer
	text := func(tag, s string) {
		buf.WriteString("<" + tag + ">")
		_ = xml.EscapeText(&buf, []byte(s)) // a bytes.Buffer does not fail
		buf.WriteString("</" + tag + ">")
	}
	num := func(tag string, v float64) { text(tag, strconv.FormatFloat(v, 'g', -1, 64)) }
	flag := func(tag string, v bool) { text(tag, map[bool]string{false: "0", true: "1"}[v]) }

	buf.WriteString("<annotation>")
	text("filename", a.Filename)
	buf.WriteString("<size>")
	text("width", strconv.Itoa(a.Size.Width))
	text("height", strconv.Itoa(a.Size.Height))
	text("depth", strconv.Itoa(a.Size.Depth))
	buf.WriteString("</size>")
	for _, o := range a.Objects {
		buf.WriteString("<object>")
		text("name", o.Name)
		flag("truncated", o.Truncated)
		flag("difficult", o.Difficult)
		buf.WriteString("<bndbox>")
		num("xmin", o.Box.X1)
		num("ymin", o.Box.Y1)
		num("xmax", o.Box.X2)
		num("ymax", o.Box.Y2)
		buf.WriteString("</bndbox></object>")
	}
	buf.WriteString("</annotation>")
	return buf.Bytes()
}

func FuzzParseVOC(f *testing.F) {
	f.Add(vocFile("a.jpg", 512, 366, vocObject("with_mask", "79", "105", "109", "142")))
	f.Add(vocFile("b c.png", 0, 0, vocObject(" x ", "NaN", "1e999", "-0", "0x1p3"),
		vocObject("y", "1", "2", "3", "4")))
	f.Add([]byte("<annotation><object><name>a</name></object></annotation>"))
	f.Add([]byte("<annotation><size><width>-1</width></size></annotation>"))
	f.Add([]byte(`<?xml version="1.0"?><annotation><filename>&amp;&#xA;</filename>` +
		`</annotation>`))
	f.Add([]byte("<doc/>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseVOC(bytes.NewReader(data))
		if err != nil {
			return
		}
		if a.Size.Width < 0 || a.Size.Height < 0 || a.Size.Depth < 0 {
			t.Fatalf("negative size %+v", a.Size)
		}
		if a.Filename != strings.TrimSpace(a.Filename) {
			t.Fatalf("file name %q is not trimmed", a.Filename)
		}
		for _, o := range a.Objects {
			if o.Name != strings.TrimSpace(o.Name) {
				t.Fatalf("name %q is not trimmed", o.Name)
			}
		}
		again, err := ParseVOC(bytes.NewReader(writeVOC(a)))
		if err != nil || !sameVOC(a, again) {
			t.Fatalf("round trip of %+v gave %+v, %v", a, again, err)
		}
	})
}

// TestReadVOCRealData reads facemask's splits and checks each against counts the
// test takes from the annotation files themselves.
func TestReadVOCRealData(t *testing.T) {
	classes := []string{"with_mask", "without_mask", "mask_weared_incorrect"}
	for _, split := range []string{"train", "val"} {
		t.Run(split, func(t *testing.T) {
			annDir := fixture.Path(t, "facemask", split, "annotations")
			xmls, err := filepath.Glob(filepath.Join(annDir, "*.xml"))
			if err != nil || len(xmls) == 0 {
				t.Fatalf("no annotations in %s: %v", annDir, err)
			}
			objects := 0
			byLabel := map[string]int{}
			for _, path := range xmls {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				objects += bytes.Count(data, []byte("<object>"))
				for _, c := range classes {
					byLabel[c] += bytes.Count(data, []byte("<name>"+c+"</name>"))
				}
			}

			set := realSet(t, "facemask", split)
			if set.Format != FormatVOC || len(set.Records) != len(xmls) ||
				len(set.Problems) != 0 || set.Clipped != 0 {
				t.Fatalf("%s, %d records, %d clipped, problems %q; want VOC, %d and none",
					set.Format, len(set.Records), set.Clipped, set.Problems, len(xmls))
			}
			checkSorted(t, set)
			two := classCounts(set)
			if two["proper"] != byLabel["with_mask"] ||
				two["not_proper"] != objects-byLabel["with_mask"] {
				t.Errorf("two-class counts %v; the XML gives %d objects, %v",
					two, objects, byLabel)
			}
			for _, rec := range set.Records {
				for _, o := range rec.Objects {
					in := o.Box.Clip(float64(rec.Width), float64(rec.Height))
					if o.Box != in || !o.Box.Valid() || o.Clipped {
						t.Fatalf("%s: box %v is not inside %dx%d", rec.Path, o.Box,
							rec.Width, rec.Height)
					}
				}
			}

			three, err := ReadVOC(filepath.Dir(annDir), Options{Classes: ThreeClass()})
			if err != nil {
				t.Fatal(err)
			}
			counts := classCounts(three)
			for _, c := range classes {
				if counts[c] != byLabel[c] {
					t.Errorf("three-class count of %s is %d; the XML gives %d",
						c, counts[c], byLabel[c])
				}
			}
			if len(three.Problems) != 0 {
				t.Errorf("three-class problems %q", three.Problems)
			}
		})
	}
}

// TestReadVOCBadFiles adds bad files to a good VOC folder and checks that each is
// listed, the good record kept, and strict mode fails on the bad one.
func TestReadVOCBadFiles(t *testing.T) {
	good := seedJPEG(t) // 167x224
	goodXML := vocFile("good.jpg", 167, 224, vocObject("with_mask", "18", "84", "144", "219"),
		vocObject("without_mask", "100", "10", "150", "60"))
	// withX is image x.jpg with the annotation given; withBad annotates it with the
	// object given, then a good with_mask box.
	withX := func(xml []byte) map[string][]byte {
		return map[string][]byte{"images/x.jpg": good, "annotations/x.xml": xml}
	}
	withBad := func(name, xmin, ymin, xmax, ymax string) map[string][]byte {
		return withX(vocFile("x.jpg", 167, 224, vocObject(name, xmin, ymin, xmax, ymax),
			vocObject("with_mask", "1", "2", "30", "40")))
	}
	tests := []struct {
		desc    string
		files   map[string][]byte
		path    string // the problem's path ends in this
		reason  string
		record  string // a record for this image, with objects boxes, is kept
		objects int
		clipped bool // its first object is clipped
		dropped int  // the record's Dropped
	}{
		{desc: "missing image",
			files:  map[string][]byte{"annotations/lost.xml": vocFile("lost.jpg", 167, 224)},
			path:   "annotations/lost.xml",
			reason: `names image "lost.jpg", which is not in`},
		{desc: "image without annotation",
			files:  map[string][]byte{"images/alone.jpg": good},
			path:   "images/alone.jpg",
			reason: "no annotation in"},
		{desc: "malformed XML",
			files: withX([]byte("<annotation><filename>x.jpg")),
			path:  "annotations/x.xml",
			reason: "malformed VOC XML: XML syntax error on line 1: unexpected EOF; " +
				"its image x.jpg is not read"},
		{desc: "object without a box",
			files: withX([]byte("<annotation><filename>x.jpg</filename>" +
				"<object><name>with_mask</name></object></annotation>")),
			path:   "annotations/x.xml",
			reason: `object 1 ("with_mask") has no <bndbox>`},
		{desc: "unknown class",
			files:  withBad("maybe", "5", "5", "20", "20"),
			path:   "images/x.jpg",
			reason: `object 1 (maybe): unknown class label "maybe"`,
			record: "images/x.jpg", objects: 1, dropped: 1},
		{desc: "size disagrees",
			files: withX(vocFile("x.jpg", 500, 400,
				vocObject("with_mask", "1", "2", "30", "40"))),
			path:   "images/x.jpg",
			reason: "annotation gives size 500x400 but the image is 167x224; boxes kept",
			record: "images/x.jpg", objects: 1},
		{desc: "NaN box",
			files: withBad("with_mask", "NaN", "5", "20", "20"),
			path:  "images/x.jpg",
			reason: "object 1 (with_mask): box [NaN, 5, 20, 20] has a coordinate " +
				"that is not a finite number",
			record: "images/x.jpg", objects: 1, dropped: 1},
		{desc: "infinite box",
			files:  withBad("with_mask", "1", "5", "1e999", "20"),
			path:   "images/x.jpg",
			reason: "not a finite number", record: "images/x.jpg", objects: 1, dropped: 1},
		{desc: "inverted box",
			files:  withBad("with_mask", "30", "5", "20", "20"),
			path:   "images/x.jpg",
			reason: "zero or negative size (-10 x 15); box dropped",
			record: "images/x.jpg", objects: 1, dropped: 1},
		{desc: "box wholly outside",
			files:  withBad("with_mask", "300", "5", "320", "20"),
			path:   "images/x.jpg",
			reason: "lies wholly outside the 167x224 image",
			record: "images/x.jpg", objects: 1, dropped: 1},
		{desc: "box partly outside",
			files: withBad("with_mask", "150", "-10", "190", "20"),
			path:  "images/x.jpg",
			reason: "object 1 (with_mask): box [150, -10, 190, 20] runs past the " +
				"167x224 image; clipped to [150, 0, 167, 20]",
			record: "images/x.jpg", objects: 2, clipped: true},
		{desc: "truncated image",
			files: map[string][]byte{"images/x.jpg": good[:len(good)/3],
				"annotations/x.xml": vocFile("x.jpg", 167, 224,
					vocObject("with_mask", "1", "2", "3", "4"))},
			path:   "images/x.jpg",
			reason: "cannot decode image (truncated or corrupt?)"},
		{desc: "README among annotations",
			files:  map[string][]byte{"annotations/README": []byte("hi")},
			path:   "annotations/README",
			reason: "not an annotation"},
		{desc: "text among images",
			files:  map[string][]byte{"images/list.txt": []byte("good.jpg")},
			path:   "images/list.txt",
			reason: "not an image"},
		{desc: "wrong file name, image found by stem",
			files: withX(vocFile("x.png", 167, 224,
				vocObject("with_mask", "1", "2", "3", "4"))),
			path:   "annotations/x.xml",
			reason: `names image "x.png", which is not in`,
			record: "images/x.jpg", objects: 1},
		{desc: "two annotations of one image",
			files:  map[string][]byte{"annotations/again.xml": vocFile("good.jpg", 167, 224)},
			path:   "annotations/again.xml",
			reason: "names image good.jpg, which good.xml annotates already"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "images/good.jpg", good)
			writeFile(t, dir, "annotations/good.xml", goodXML)
			for name, data := range tt.files {
				writeFile(t, dir, name, data)
			}

			set, err := ReadVOC(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if rec, ok := findRecord(set, "good.jpg"); !ok || len(rec.Objects) != 2 {
				t.Errorf("the good record is gone or changed: %+v", set.Records)
			}
			wantProblem(t, set, tt.path, tt.reason)
			if tt.record == "" {
				if len(set.Records) != 1 {
					t.Errorf("records %+v; want only the good one", set.Records)
				}
			} else {
				rec, ok := findRecord(set, tt.record)
				if !ok || len(rec.Objects) != tt.objects || rec.Objects[0].Clipped != tt.clipped ||
					rec.Dropped != tt.dropped {
					t.Errorf("record %+v; want %s with %d objects (%d dropped), "+
						"the first clipped %v", rec, tt.record, tt.objects, tt.dropped, tt.clipped)
				}
			}
			if strings.HasPrefix(tt.reason, "malformed") && len(findProblems(set, "x.jpg")) > 0 {
				t.Errorf("the broken annotation's image is listed twice: %q", set.Problems)
			}
			if tt.clipped != (set.Clipped == 1) {
				t.Errorf("Clipped %d", set.Clipped)
			}

			set, err = ReadVOC(dir, Options{Strict: true})
			wantStrictError(t, set, err, tt.path)
		})
	}
}

func TestReadVOCMissingFolders(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "images/a.jpg", seedJPEG(t))
	_, err := ReadVOC(dir, Options{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "annotations") {
		t.Errorf("ReadVOC without annotations/: %v; want a not-exist error naming it", err)
	}
}
