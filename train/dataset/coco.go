package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/maskwatch/maskwatch/models/box"
)

// cocoJSON is the part of a COCO instances file a reader needs. Boxes stay raw so
// that one bad box is one Problem, not a file that does not parse.
type cocoJSON struct {
	Images []struct {
		ID       int64   `json:"id"`
		FileName string  `json:"file_name"`
		Width    float64 `json:"width"`
		Height   float64 `json:"height"`
	} `json:"images"`
	Annotations []struct {
		ID         int64           `json:"id"`
		ImageID    int64           `json:"image_id"`
		CategoryID int64           `json:"category_id"`
		BBox       json.RawMessage `json:"bbox"`
	} `json:"annotations"`
	Categories []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	} `json:"categories"`
}

// ReadCOCO reads a COCO instances JSON: images (id, file_name, width, height),
// annotations (image_id, category_id, bbox as [x, y, w, h] in pixels) and
// categories (id, name; the name is the label the class map looks up). An
// image's file_name is resolved against the JSON's folder, or failing that its
// images/ subfolder. An image without annotations is kept as an image of no
// faces. Listed as Problems, with the rest kept: an image that is missing or
// does not decode, a repeated image id, an annotation naming an unknown image or
// category, a bbox that is not four numbers or is unusable, an unknown label, and
// a size that disagrees with the decoded image. A JSON file that cannot be read
// or parsed is an error, since no set is left without it; so is, with
// opt.Strict, the first problem. The set's Dir is the JSON's folder, its Source
// the JSON file.
func ReadCOCO(jsonPath string, opt Options) (*Set, error) {
	jsonPath = filepath.Clean(jsonPath)
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, fmt.Errorf("read COCO data set: %w", err)
	}
	var doc cocoJSON
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("read COCO data set %s: malformed JSON: %w; expected a COCO "+
			"instances file with images, annotations and categories", jsonPath, err)
	}

	dir := filepath.Dir(jsonPath)
	b := newBuilder(dir, jsonPath, FormatCOCO, opt)

	categories := map[int64]string{}
	for _, c := range doc.Categories {
		categories[c.ID] = c.Name
	}

	byID := map[int64]int{} // image id -> index into b.pending
	where := map[int64]string{}
	for i, img := range doc.Images {
		what := fmt.Sprintf("image %d (id %d, %q)", i+1, img.ID, img.FileName)
		if prev, dup := where[img.ID]; dup {
			b.problem(jsonPath, "%s: id %d is taken by %s already; not read", what, img.ID, prev)
			continue
		}
		where[img.ID] = what

		path, ok := resolveCOCOImage(dir, img.FileName)
		if !ok {
			b.problem(jsonPath, "%s: no such file in %s or its images/ folder; "+
				"its annotations are not read", what, dir)
			continue
		}
		byID[img.ID] = len(b.pending)
		b.add(pending{path: path, annWidth: img.Width, annHeight: img.Height})
	}

	for i, a := range doc.Annotations {
		what := fmt.Sprintf("annotation %d (id %d)", i+1, a.ID)
		idx, ok := byID[a.ImageID]
		if !ok {
			if where[a.ImageID] == "" {
				b.problem(jsonPath, "%s: image_id %d is not among the images; not read",
					what, a.ImageID)
			}
			continue // its image's problem is listed already
		}
		p := &b.pending[idx]
		name, ok := categories[a.CategoryID]
		if !ok {
			b.problem(p.path, "%s: category_id %d is not among the categories; box dropped",
				what, a.CategoryID)
			p.lost++
			continue
		}
		bb, err := parseCOCOBox(a.BBox)
		if err != nil {
			b.problem(p.path, "%s: %v; box dropped", what, err)
			p.lost++
			continue
		}
		p.objects = append(p.objects, pendingObject{box: bb, label: name, what: what})
	}

	set, err := b.finish()
	if err != nil {
		return nil, err
	}
	slog.Debug("read data set", "file", jsonPath, "format", set.Format,
		"images", len(set.Records), "problems", len(set.Problems))
	return set, nil
}

// resolveCOCOImage finds an image's file beside the JSON, or in its images/ folder.
func resolveCOCOImage(dir, fileName string) (string, bool) {
	if fileName == "" {
		return "", false
	}
	rel := filepath.FromSlash(fileName)
	for _, p := range []string{
		filepath.Join(dir, rel),
		filepath.Join(dir, "images", rel),
		filepath.Join(dir, "images", filepath.Base(rel)),
	} {
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// parseCOCOBox reads a bbox [x, y, w, h]; a number too large for a float64 reads
// as ±Inf, for the reader to list with the other non-finite boxes.
func parseCOCOBox(raw json.RawMessage) (box.Box, error) {
	var nums []json.Number
	if err := json.Unmarshal(raw, &nums); err != nil || len(nums) != 4 {
		return box.Box{}, fmt.Errorf("bbox %s is not a list of 4 numbers [x, y, w, h]",
			clip(string(raw), 60))
	}
	var v [4]float64
	for i, n := range nums {
		f, err := strconv.ParseFloat(n.String(), 64)
		if err != nil && !(errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0)) {
			return box.Box{}, fmt.Errorf("bbox %s holds %q, not a number", string(raw), n)
		}
		v[i] = f
	}
	return box.FromXYWH(v[0], v[1], v[2], v[3]), nil
}

// clip shortens s to at most n bytes for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
