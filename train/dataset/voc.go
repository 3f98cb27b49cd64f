package dataset

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/maskwatch/maskwatch/models/box"
)

// VOCAnnotation is one Pascal VOC annotation file: an image and its labelled boxes.
type VOCAnnotation struct {
	Filename string // the image's file name, as written
	Size     VOCSize
	Objects  []VOCObject
}

// VOCSize is the image size an annotation states; zero when it states none.
type VOCSize struct {
	Width, Height, Depth int
}

// VOCObject is one labelled box of an annotation.
type VOCObject struct {
	Name string // the class label, e.g. "with_mask"
	// Box is the bndbox as written: xmin, ymin, xmax, ymax. A coordinate that reads
	// as NaN or Inf is kept, for the reader to list as a Problem.
	Box       box.Box
	Truncated bool // the <truncated> flag; false when absent
	Difficult bool // the <difficult> flag; false when absent
}

// vocXML is the XML as written, before its numbers are read.
type vocXML struct {
	XMLName  xml.Name
	Filename string `xml:"filename"`
	Size     struct {
		Width  string `xml:"width"`
		Height string `xml:"height"`
		Depth  string `xml:"depth"`
	} `xml:"size"`
	Objects []struct {
		Name      string `xml:"name"`
		Truncated string `xml:"truncated"`
		Difficult string `xml:"difficult"`
		BndBox    *struct {
			XMin *string `xml:"xmin"`
			YMin *string `xml:"ymin"`
			XMax *string `xml:"xmax"`
			YMax *string `xml:"ymax"`
		} `xml:"bndbox"`
	} `xml:"object"`
}

// ParseVOC reads a Pascal VOC annotation. The root element must be <annotation>;
// every object needs a <bndbox> with xmin, ymin, xmax and ymax; sizes are
// non-negative integers; the flags are 0, 1, true or false. Names and the file
// name are trimmed of surrounding space. The XML must be UTF-8.
func ParseVOC(r io.Reader) (VOCAnnotation, error) {
	a, err := parseVOC(r)
	if err != nil {
		return VOCAnnotation{}, fmt.Errorf("malformed VOC XML: %w", err)
	}
	return a, nil
}

func parseVOC(r io.Reader) (VOCAnnotation, error) {
	var raw vocXML
	if err := xml.NewDecoder(r).Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return VOCAnnotation{}, errors.New("no <annotation> element")
		}
		return VOCAnnotation{}, err
	}
	if raw.XMLName.Local != "annotation" {
		return VOCAnnotation{}, fmt.Errorf("root element is <%s>, expected <annotation>",
			raw.XMLName.Local)
	}

	var a VOCAnnotation
	a.Filename = strings.TrimSpace(raw.Filename)
	for _, f := range []struct {
		name string
		text string
		to   *int
	}{
		{"width", raw.Size.Width, &a.Size.Width},
		{"height", raw.Size.Height, &a.Size.Height},
		{"depth", raw.Size.Depth, &a.Size.Depth},
	} {
		text := strings.TrimSpace(f.text)
		if text == "" {
			continue
		}
		n, err := strconv.Atoi(text)
		if err != nil || n < 0 {
			return VOCAnnotation{}, fmt.Errorf("size %s is %q, expected a non-negative integer",
				f.name, text)
		}
		*f.to = n
	}

	for i, o := range raw.Objects {
		obj := VOCObject{Name: strings.TrimSpace(o.Name)}
		what := fmt.Sprintf("object %d (%q)", i+1, obj.Name)
		if o.BndBox == nil {
			return VOCAnnotation{}, fmt.Errorf("%s has no <bndbox>", what)
		}
		var v [4]float64
		for j, c := range []*string{o.BndBox.XMin, o.BndBox.YMin, o.BndBox.XMax, o.BndBox.YMax} {
			tag := [...]string{"xmin", "ymin", "xmax", "ymax"}[j]
			if c == nil {
				return VOCAnnotation{}, fmt.Errorf("%s has no <%s>", what, tag)
			}
			n, err := parseCoordinate(*c)
			if err != nil {
				return VOCAnnotation{}, fmt.Errorf("%s <%s>: %w", what, tag, err)
			}
			v[j] = n
		}
		obj.Box = box.Box{X1: v[0], Y1: v[1], X2: v[2], Y2: v[3]}

		var err error
		if obj.Truncated, err = parseFlag(o.Truncated); err != nil {
			return VOCAnnotation{}, fmt.Errorf("%s <truncated>: %w", what, err)
		}
		if obj.Difficult, err = parseFlag(o.Difficult); err != nil {
			return VOCAnnotation{}, fmt.Errorf("%s <difficult>: %w", what, err)
		}
		a.Objects = append(a.Objects, obj)
	}
	return a, nil
}

// parseCoordinate reads a number; one too large for a float64 reads as ±Inf,
// so that the reader lists it with the other non-finite boxes.
func parseCoordinate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil && !(errors.Is(err, strconv.ErrRange) && math.IsInf(v, 0)) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// parseFlag reads a VOC flag: empty (absent), 0, 1, true or false.
func parseFlag(s string) (bool, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, fmt.Errorf("%q is not 0, 1, true or false", s)
}

// ReadVOC reads a Pascal VOC folder: dir/images holds the images and
// dir/annotations one NAME.xml for each. An annotation's image is the one its
// <filename> names in images/, or else images/NAME with an image extension.
// Coordinates are taken as written, xmax and ymax as the box's far edge: VOC's
// 1-based inclusive pixel convention is not shifted, so boxes may sit one pixel
// off from a reader that applies it.
// Listed as Problems, with the rest of the set kept: an annotation that does not
// parse (its image is not read), one whose image is missing, an image without an
// annotation (not read), a file in either folder that is neither, an unknown
// label or unusable box (the box is dropped, the image kept), and a size that
// disagrees with the decoded image (boxes kept). The error is for a folder that
// cannot be listed, or, with opt.Strict, the first problem.
func ReadVOC(dir string, opt Options) (*Set, error) {
	dir = filepath.Clean(dir)
	imageDir, annDir := filepath.Join(dir, "images"), filepath.Join(dir, "annotations")
	b := newBuilder(dir, dir, FormatVOC, opt)

	images, err := listFiles(b, imageDir, isImageName,
		"not an image: a VOC images folder holds .jpg, .jpeg and .png files")
	if err != nil {
		return nil, fmt.Errorf("read VOC data set: %w", err)
	}
	annotations, err := listFiles(b, annDir, isXMLName,
		"not an annotation: a VOC annotations folder holds NAME.xml files")
	if err != nil {
		return nil, fmt.Errorf("read VOC data set: %w", err)
	}

	// byStem finds an image by its name without extension, for annotations whose
	// <filename> is missing or wrong, and for broken annotations' images.
	byStem := map[string]string{}
	for name := range images {
		stem := strings.TrimSuffix(name, filepath.Ext(name))
		if _, dup := byStem[stem]; !dup || name < byStem[stem] {
			byStem[stem] = name
		}
	}
	// Each annotation finds its image first; then they claim them, those whose
	// name matches their image's first, so that a stray annotation naming another's
	// image is the one listed.
	type entry struct {
		name, path string
		ann        VOCAnnotation
		image      string // "" when none was found
		matches    bool   // the image's name without extension is the annotation's
		broken     bool   // the annotation does not parse; listed already
	}
	var entries []entry
	for _, annName := range slices.Sorted(maps.Keys(annotations)) {
		e := entry{name: annName, path: filepath.Join(annDir, annName)}
		stem := strings.TrimSuffix(annName, filepath.Ext(annName))
		ann, err := readVOCFile(e.path)
		if err != nil {
			if img, ok := byStem[stem]; ok {
				b.problem(e.path, "%v; its image %s is not read", err, img)
				e.image, e.matches, e.broken = img, true, true
				entries = append(entries, e)
			} else {
				b.problem(e.path, "%v", err)
			}
			continue
		}
		e.ann = ann

		e.image = filepath.Base(filepath.FromSlash(ann.Filename))
		if !images[e.image] {
			alt, ok := byStem[stem]
			if !ok {
				b.problem(e.path, "names image %q, which is not in %s; not read",
					ann.Filename, imageDir)
				continue
			}
			if ann.Filename != "" {
				b.problem(e.path, "names image %q, which is not in %s; read %s instead",
					ann.Filename, imageDir, alt)
			}
			e.image = alt
		}
		e.matches = strings.TrimSuffix(e.image, filepath.Ext(e.image)) == stem
		entries = append(entries, e)
	}
	slices.SortStableFunc(entries, func(x, y entry) int {
		if x.matches == y.matches {
			return 0
		}
		if x.matches {
			return -1
		}
		return 1
	})

	claimed := map[string]string{} // image name -> the annotation that claimed it
	for _, e := range entries {
		if by := claimed[e.image]; by != "" {
			if e.broken {
				continue
			}
			b.problem(e.path, "names image %s, which %s annotates already; not read",
				e.image, by)
			continue
		}
		claimed[e.image] = e.name
		if e.broken {
			continue // its image is not read
		}

		p := pending{
			path:      filepath.Join(imageDir, e.image),
			annWidth:  float64(e.ann.Size.Width),
			annHeight: float64(e.ann.Size.Height),
		}
		for i, o := range e.ann.Objects {
			p.objects = append(p.objects, pendingObject{
				box: o.Box, label: o.Name, what: fmt.Sprintf("object %d (%s)", i+1, o.Name),
			})
		}
		b.add(p)
	}

	for _, name := range slices.Sorted(maps.Keys(images)) {
		if claimed[name] == "" {
			b.problem(filepath.Join(imageDir, name), "no annotation in %s; not read", annDir)
		}
	}

	set, err := b.finish()
	if err != nil {
		return nil, err
	}
	slog.Debug("read data set", "dir", dir, "format", set.Format,
		"images", len(set.Records), "problems", len(set.Problems))
	return set, nil
}

// readVOCFile opens and parses one annotation.
func readVOCFile(path string) (VOCAnnotation, error) {
	f, err := os.Open(path)
	if err != nil {
		return VOCAnnotation{}, fmt.Errorf("cannot read annotation: %w", err)
	}
	defer f.Close()
	return ParseVOC(f)
}

// isXMLName reports whether name ends in .xml, in any case.
func isXMLName(name string) bool {
	return strings.EqualFold(filepath.Ext(name), ".xml")
}

// listFiles returns the names of the regular files in dir that keep accepts;
// every other entry is listed as a problem with the reason given (subfolders and
// other non-regular files with their own).
func listFiles(b *builder, dir string, keep func(string) bool, reason string) (
	map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		info, err := os.Stat(path)
		switch {
		case err != nil:
			b.problem(path, "cannot read: %v", err)
		case info.IsDir():
			b.problem(path, "a subfolder, not read")
		case !info.Mode().IsRegular():
			b.problem(path, "not a regular file; not read")
		case !keep(e.Name()):
			b.problem(path, "%s", reason)
		default:
			names[e.Name()] = true
		}
	}
	return names, nil
}
