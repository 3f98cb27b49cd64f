// Package dataset reads face-mask data sets: the study's file-name format
// (ID__[x, y, w, h]__True.jpg), Pascal VOC folders and COCO JSON. Every
// reader checks each image and box, and lists what it had to drop or mend
// as a Problem instead of failing or silently losing it.
package dataset

import (
	"github.com/maskwatch/maskwatch/models/box"
)

// Format names the layout of a data set on disk.
type Format string

// The formats Open recognises.
const (
	FormatFileName Format = "filename" // one face an image, box and label in the file name
	FormatVOC      Format = "voc"      // images/NAME.jpg + annotations/NAME.xml
	FormatCOCO     Format = "coco"     // a COCO instances JSON beside its images
)

// Object is one labelled face.
type Object struct {
	Box    box.Box // in pixels of the image, [x1, y1, x2, y2]
	Class  int     // index into the set's Classes.Names
	Source string  // the label as the data set wrote it: "True", "with_mask", ...
	// Clipped is set when the box ran partly outside the image and was cut to it.
	Clipped bool
}

// Record is one image and its faces.
type Record struct {
	Path          string // the image file
	Width, Height int    // decoded image size in pixels
	Objects       []Object
	// Dropped counts the faces the source gave for this image that a reader
	// dropped (unknown label, unusable box), each listed as a Problem. They are
	// still in the picture, unlabelled: a trainer may want to skip such an image.
	Dropped int
}

// Problem is a file, or a part of one, that a reader dropped or mended.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Set is a data set read from one directory (or one COCO file).
type Set struct {
	Dir string // the folder read; for COCO, the JSON file's folder
	// Source is what was read: Dir, or for COCO the JSON file.
	Source   string
	Format   Format
	Classes  ClassMap
	Records  []Record
	Problems []Problem
	// Clipped counts boxes that ran partly outside their image and were cut to it.
	// Each such box is also listed in Problems.
	Clipped int
	// Rounded counts boxes that ran past their image by at most one pixel, as
	// rounding in the source does, and were cut to it without a Problem or a
	// Clipped mark. (Three crops of proper-mask have such a box.)
	Rounded int
}

// Options tune how a set is read. The zero value reads with TwoClass labels.
type Options struct {
	// Classes maps the data set's labels to model classes; the zero value means TwoClass().
	Classes ClassMap
	// Strict turns every problem into an error: a reader returns the set's first
	// problem in path order, as a *ProblemError, instead of the set.
	Strict bool
	// Workers decode images in parallel; 0 means runtime.NumCPU().
	Workers int
	// Progress, when set, is called as images are checked, with the number done and the
	// total, always from the goroutine that called the reader.
	Progress func(done, total int)
}
