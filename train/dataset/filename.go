package dataset

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/maskwatch/maskwatch/models/box"
)

// fileNameForm is the form ParseFileName expects, for error messages.
const fileNameForm = "expected ID__[x, y, w, h]__True.jpg (or False; .jpg, .jpeg or .png)"

// FileName is what the study's file-name format writes in an image's name.
type FileName struct {
	ID    string  // the part before "__[", e.g. "000024"
	Box   box.Box // the face, from the name's top-left corner, width and height
	Label string  // the part after "]__", e.g. "True"
}

// ParseFileName reads a name of the form ID__[x, y, w, h]__LABEL.jpg, such as
// "000024__[18, 84, 126, 135]__True.jpg" (also .jpeg and .png, in any case). x, y
// is the face's top-left corner and w, h its size in pixels; each is an integer or
// a decimal such as 12.5, and the spaces after the commas are optional. The label
// is letters, digits, '_' or '-'; whether it names a class is the ClassMap's
// business. A path is reduced to its last element. The box is not checked for
// size or against the image: ReadFileNames does that.
func ParseFileName(name string) (FileName, error) {
	name = filepath.Base(name)
	bad := func(what string) (FileName, error) {
		return FileName{}, fmt.Errorf("file name %q: %s; %s", name, what, fileNameForm)
	}

	ext := filepath.Ext(name)
	if !isImageName(name) {
		return bad(fmt.Sprintf("extension %q is not an image's", ext))
	}
	stem := strings.TrimSuffix(name, ext)

	open := strings.Index(stem, "__[")
	if open < 0 {
		return bad(`no "__[" opens the box`)
	}
	if open == 0 {
		return bad(`no ID before "__["`)
	}
	end := strings.LastIndex(stem, "]__")
	if end < open+3 {
		return bad(`no "]__" closes the box`)
	}
	fn := FileName{ID: stem[:open], Label: stem[end+3:]}
	if fn.Label == "" {
		return bad(`no label after "]__"`)
	}
	if i := strings.IndexFunc(fn.Label, notLabelRune); i >= 0 {
		return bad(fmt.Sprintf("label %q holds %q; a label is letters, digits, '_' or '-'",
			fn.Label, fn.Label[i:i+1]))
	}

	parts := strings.Split(stem[open+3:end], ",")
	if len(parts) != 4 {
		return bad(fmt.Sprintf("the box has %d numbers, not 4", len(parts)))
	}
	var v [4]float64
	for i, part := range parts {
		n, err := parseDecimal(strings.TrimSpace(part))
		if err != nil {
			return bad(fmt.Sprintf("%s of the box: %v", [...]string{"x", "y", "w", "h"}[i], err))
		}
		v[i] = n
	}
	fn.Box = box.FromXYWH(v[0], v[1], v[2], v[3])
	if math.IsInf(fn.Box.X2, 0) || math.IsInf(fn.Box.Y2, 0) {
		return bad("the box's far corner is too large for a float64")
	}
	return fn, nil
}

// notLabelRune reports whether r may not appear in a file name's label.
func notLabelRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '_' || r == '-')
}

// parseDecimal reads an integer or a decimal with an optional sign: "12", "-3",
// "12.5", ".5", "7.". It takes no exponents, hex, underscores, NaN or Inf.
func parseDecimal(s string) (float64, error) {
	digits, dot := 0, false
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.' && !dot:
			dot = true
		case (r == '-' || r == '+') && i == 0:
		default:
			return 0, fmt.Errorf("%q is not a number", s)
		}
	}
	if digits == 0 {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%q is too large for a float64", s)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// ReadFileNames reads a folder of images named in the study's file-name format
// (see ParseFileName), one face an image. Every regular file in the folder is
// either read or listed as a Problem: a name that does not parse, a file that is
// not an image, a box that is unusable. A subfolder is listed as a Problem too:
// the format reads only the folder's own files. An image whose face is
// dropped (unknown label, unusable box) is dropped with it. The error is for a
// folder that cannot be listed, or, with opt.Strict, the first problem.
func ReadFileNames(dir string, opt Options) (*Set, error) {
	dir = filepath.Clean(dir)
	b := newBuilder(dir, dir, FormatFileName, opt)
	images, err := listFiles(b, dir, isImageName, "not an image: the file-name format "+
		"reads .jpg, .jpeg and .png files named ID__[x, y, w, h]__True.jpg")
	if err != nil {
		return nil, fmt.Errorf("read file-name data set: %w", err)
	}

	for _, name := range slices.Sorted(maps.Keys(images)) {
		path := filepath.Join(dir, name)
		fn, err := ParseFileName(name)
		if err != nil {
			b.problem(path, "%v; not read", err)
			continue
		}
		b.add(pending{
			path:    path,
			objects: []pendingObject{{box: fn.Box, label: fn.Label, what: "face"}},
			whole:   true,
		})
	}

	set, err := b.finish()
	if err != nil {
		return nil, err
	}
	slog.Debug("read data set", "dir", dir, "format", set.Format,
		"images", len(set.Records), "problems", len(set.Problems))
	return set, nil
}
