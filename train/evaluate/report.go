package evaluate

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/safefile"
)

// number is a float64 that JSON writes as null when it is NaN or ±Inf.
type number float64

// MarshalJSON writes the number, or null when it is not finite.
func (n number) MarshalJSON() ([]byte, error) {
	v := float64(n)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

type classJSON struct {
	Name  string `json:"name"`
	Faces int    `json:"faces"`
	AP50  number `json:"ap50"`
	AP    number `json:"ap"`
}

type confusionJSON struct {
	Rows    []string `json:"rows"`    // true classes
	Columns []string `json:"columns"` // predicted classes, then "none"
	Counts  [][]int  `json:"counts"`
}

type reportJSON struct {
	Source          string        `json:"source"`
	Images          int           `json:"images"`
	Labelled        int           `json:"labelled"`
	Accuracy        number        `json:"accuracy"`
	IoU             number        `json:"iou"`
	MAP50           number        `json:"map50"`
	MAP             number        `json:"map"`
	Classes         []classJSON   `json:"classes"`
	Confusion       confusionJSON `json:"confusion"`
	Seconds         number        `json:"seconds"`
	DetectSeconds   number        `json:"detect_seconds"`
	ImagesPerSecond number        `json:"images_per_second"`
}

// JSON returns the report's figures as one line of JSON, without a newline:
// source, images, labelled, accuracy, iou, map50, map, classes (name, faces,
// ap50, ap each), confusion (rows, columns, counts), seconds,
// detect_seconds and images_per_second. A NaN figure is null. The
// per-image predictions are left out; WritePredictions writes them.
func (r *Report) JSON() ([]byte, error) {
	out := reportJSON{
		Source: r.Source, Images: r.Images, Labelled: r.Labelled,
		Accuracy: number(r.Accuracy), IoU: number(r.IoU),
		MAP50: number(r.MAP50), MAP: number(r.MAP),
		Classes: make([]classJSON, len(r.PerClass)),
		Confusion: confusionJSON{
			Rows:    r.Classes,
			Columns: append(append([]string{}, r.Classes...), "none"),
			Counts:  r.Confusion,
		},
		Seconds: number(r.Seconds), DetectSeconds: number(r.DetectSeconds),
		ImagesPerSecond: number(r.ImagesPerSecond),
	}
	for i, c := range r.PerClass {
		out.Classes[i] = classJSON{c.Name, c.Faces, number(c.AP50), number(c.AP)}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("evaluate: encode report: %w", err)
	}
	return b, nil
}

// WriteText writes the report as a readable table: the four metrics, each
// class's AP and the confusion matrix with class names. A NaN figure is
// written as "-".
func (r *Report) WriteText(w io.Writer) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s: %d images (%d with faces) in %.1f s, %s images/s\n\n",
		r.Source, r.Images, r.Labelled, r.Seconds, formatFigure(r.ImagesPerSecond, 1))

	correct := 0
	for c, row := range r.Confusion {
		correct += row[c]
	}
	fmt.Fprintf(&buf, "accuracy      %s  (%d of %d images)\n",
		formatFigure(r.Accuracy, 4), correct, r.Labelled)
	fmt.Fprintf(&buf, "IoU           %s\n", formatFigure(r.IoU, 4))
	fmt.Fprintf(&buf, "mAP@0.5       %s\n", formatFigure(r.MAP50, 4))
	fmt.Fprintf(&buf, "mAP@[.5:.95]  %s\n", formatFigure(r.MAP, 4))

	// Numbers align right; names, padded to one width, stay left.
	width := len("class")
	for _, name := range r.Classes {
		width = max(width, len(name))
	}
	name := func(s string) string { return fmt.Sprintf("%-*s", width, s) }

	buf.WriteString("\n")
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tfaces\tAP@0.5\tAP@[.5:.95]\t\n", name("class"))
	for _, c := range r.PerClass {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t\n", name(c.Name), c.Faces,
			formatFigure(c.AP50, 4), formatFigure(c.AP, 4))
	}
	tw.Flush()

	buf.WriteString("\nconfusion (rows: true class, columns: top detection)\n")
	tw = tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\t", name(""))
	for _, c := range r.Classes {
		fmt.Fprintf(tw, "%s\t", c)
	}
	fmt.Fprint(tw, "none\t\n")
	for c, row := range r.Confusion {
		fmt.Fprintf(tw, "%s\t", name(r.Classes[c]))
		for _, n := range row {
			fmt.Fprintf(tw, "%d\t", n)
		}
		fmt.Fprint(tw, "\n")
	}
	tw.Flush()

	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("evaluate: write report: %w", err)
	}
	return nil
}

// formatFigure writes v with prec decimals, or "-" when it is NaN or ±Inf.
func formatFigure(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// WritePredictions writes the study's prediction.csv to path: a header
// filename,x,y,w,h,proper_mask and a row an image, in the set's order, of its
// file name (without folder) and its top detection. The box is cut to the
// image and its corners are rounded to the nearest pixel, so x, y is the
// rounded top-left corner and w, h the distance to the rounded bottom-right
// one; proper_mask is True when the detection's class is the set's proper
// class and False otherwise. An image without detections writes a box of
// 0,0,0,0 (IoU 0, as the metrics count it) and an empty proper_mask, which
// is neither True nor False and so never counts as right. The file is
// replaced atomically.
func (r *Report) WritePredictions(path string) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"filename", "x", "y", "w", "h", "proper_mask"})
	for i := range r.Predictions {
		p := &r.Predictions[i]
		row := []string{filepath.Base(p.Path), "0", "0", "0", "0", ""}
		if top, ok := p.Top(); ok {
			x, y, bw, bh := pixelBox(top.Box, p.Width, p.Height)
			row = []string{filepath.Base(p.Path), strconv.Itoa(x), strconv.Itoa(y),
				strconv.Itoa(bw), strconv.Itoa(bh), "False"}
			if top.Class == r.Proper {
				row[5] = "True"
			}
		}
		w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("evaluate: write %s: %w", path, err)
	}
	return safefile.Write(path, buf.Bytes(), 0o644)
}

// pixelBox cuts b to a width×height image and rounds its corners to whole
// pixels, returning the top-left corner and the size; a box outside the
// image, or one with a NaN coordinate, is 0, 0, 0, 0.
func pixelBox(b box.Box, width, height int) (x, y, w, h int) {
	b = b.Clip(float64(width), float64(height))
	if !b.Valid() {
		return 0, 0, 0, 0
	}
	x1, y1 := int(math.Round(b.X1)), int(math.Round(b.Y1))
	x2, y2 := int(math.Round(b.X2)), int(math.Round(b.Y2))
	return x1, y1, x2 - x1, y2 - y1
}
