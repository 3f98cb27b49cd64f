package finetune

import (
	"fmt"
	"hash/fnv"
	"image"
	_ "image/jpeg" // collected frames and the data sets' photographs
	_ "image/png"
	"os"
	"slices"
	"strings"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/train/dataset"
)

// Sample is one labelled image.
type Sample struct {
	Path string
	// Boxes are the faces in image pixels, Classes their classes (indices
	// into the model's classes, without the background).
	Boxes   []box.Box
	Classes []int
}

// ClassMap is the class map that reads data sets into a bundle's classes:
// the study's two classes know the labels of the study (True, False) and
// of Pascal VOC (with_mask, without_mask, mask_weared_incorrect); the VOC
// data set's three classes know VOC's; any class also reads as itself.
func ClassMap(b *bundle.Bundle) (dataset.ClassMap, error) {
	names := b.Meta.Model.Classes
	var pairs []string
	switch {
	case slices.Equal(names, dataset.TwoClass().Names):
		pairs = []string{"True=proper", "with_mask=proper", "proper=proper", "False=not_proper",
			"without_mask=not_proper", "mask_weared_incorrect=not_proper",
			"not_proper=not_proper"}
	case slices.Equal(names, dataset.ThreeClass().Names):
		pairs = []string{"True=with_mask", "with_mask=with_mask",
			"without_mask=without_mask", "mask_weared_incorrect=mask_weared_incorrect"}
	default:
		for _, n := range names {
			pairs = append(pairs, n+"="+n)
		}
	}
	m, err := dataset.ParseClassMap(strings.Join(pairs, ","))
	if err != nil {
		return m, fmt.Errorf("finetune: classes %v: %w", names, err)
	}
	if !slices.Equal(m.Names, names) {
		return m, fmt.Errorf("finetune: classes %v cannot be read from data sets", names)
	}
	return m, nil
}

// VOCName is the label a collected face of class k is written with in
// Pascal VOC annotations, so that ClassMap (and masktrain's --classes two
// or three) reads it back as k.
func VOCName(b *bundle.Bundle, k int) string {
	names := b.Meta.Model.Classes
	if slices.Equal(names, dataset.TwoClass().Names) {
		if k == b.Meta.Model.Proper {
			return "with_mask"
		}
		return "without_mask"
	}
	if k < 0 || k >= len(names) {
		return ""
	}
	return names[k]
}

// ReadData reads labelled folders (the study's file names, Pascal VOC or
// COCO, detected from the folder) into samples. Images whose faces a reader
// had to drop are left out, since an unlabelled face would be learnt as
// background; the problems are returned as lines for the log.
func ReadData(dirs []string, classes dataset.ClassMap) ([]Sample, []string, error) {
	var samples []Sample
	var problems []string
	for _, dir := range dirs {
		sets, err := dataset.OpenTree(dir, dataset.Options{Classes: classes})
		if err != nil {
			return nil, nil, fmt.Errorf("finetune: data %s: %w", dir, err)
		}
		for _, s := range sets {
			for _, p := range s.Problems {
				problems = append(problems, p.Path+": "+p.Reason)
			}
			for _, r := range s.Records {
				if r.Dropped > 0 {
					continue
				}
				sm := Sample{Path: r.Path}
				for _, o := range r.Objects {
					sm.Boxes = append(sm.Boxes, o.Box)
					sm.Classes = append(sm.Classes, o.Class)
				}
				samples = append(samples, sm)
			}
		}
	}
	slices.SortFunc(samples, func(a, b Sample) int { return strings.Compare(a.Path, b.Path) })
	samples = slices.CompactFunc(samples, func(a, b Sample) bool { return a.Path == b.Path })
	return samples, problems, nil
}

// Spread keeps at most n samples, evenly spread over the list (all of them
// when n <= 0).
func Spread(samples []Sample, n int) []Sample {
	if n <= 0 || len(samples) <= n {
		return samples
	}
	out := make([]Sample, n)
	for i := range out {
		out[i] = samples[i*len(samples)/n]
	}
	return out
}

// Split holds out a fifth of the samples (at least one, when there are two
// or more): those whose file names hash lowest, so a sample stays on its
// side as more are collected. The rest train.
func Split(samples []Sample) (train, heldOut []Sample) {
	n := len(samples) / 5
	if n == 0 && len(samples) >= 2 {
		n = 1
	}
	type keyed struct {
		h uint64
		i int
	}
	keys := make([]keyed, len(samples))
	for i, s := range samples {
		f := fnv.New64a()
		f.Write([]byte(s.Path[strings.LastIndexByte(s.Path, '/')+1:]))
		keys[i] = keyed{f.Sum64(), i}
	}
	slices.SortFunc(keys, func(a, b keyed) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return a.i - b.i
	})
	held := make([]bool, len(samples))
	for _, k := range keys[:n] {
		held[k.i] = true
	}
	for i, s := range samples {
		if held[i] {
			heldOut = append(heldOut, s)
		} else {
			train = append(train, s)
		}
	}
	return train, heldOut
}

// decodeFrame reads an image file as a BGR frame, as the camera gives them.
func decodeFrame(path string) (detect.Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return detect.Frame{}, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return detect.Frame{}, fmt.Errorf("%s: %w", path, err)
	}
	frame, _ := detect.FrameFromImage(img, nil)
	return frame, nil
}

// prepared is a sample as the model sees it: its pixels resized as the
// detector resizes a frame, on a canvas shared by every sample.
type prepared struct {
	sample Sample
	frame  detect.Frame // the decoded image (kept for held-out samples only)
	plan   input.Plan
	rgb    []uint8   // canvas of W x H x 3, the image at the top left
	boxes  []box.Box // faces in input pixels
}

// prepare decodes a sample and resizes it as spec resizes a frame.
func prepare(s Sample, spec input.Spec, r *input.Resizer) (prepared, error) {
	frame, err := decodeFrame(s.Path)
	if err != nil {
		return prepared{}, err
	}
	plan, err := spec.Plan(frame.Width, frame.Height)
	if err != nil {
		return prepared{}, fmt.Errorf("%s: %w", s.Path, err)
	}
	src := input.Source{Pix: frame.Pix, Width: frame.Width, Height: frame.Height,
		Stride: frame.Stride, BGR: true}
	rgb, err := r.Resize(nil, src, plan, spec.PadColour())
	if err != nil {
		return prepared{}, fmt.Errorf("%s: %w", s.Path, err)
	}
	p := prepared{sample: s, frame: frame, plan: plan, rgb: rgb}
	for _, b := range s.Boxes {
		p.boxes = append(p.boxes, plan.Letterbox.ToModel(b))
	}
	return p, nil
}

// onCanvas returns p's pixels on a w x h canvas, padded below and to the
// right with pad, as the detector pads its input.
func onCanvas(p prepared, w, h int, pad [3]uint8) []uint8 {
	if p.plan.Width == w && p.plan.Height == h {
		return p.rgb
	}
	out := make([]uint8, w*h*3)
	for i := 0; i < len(out); i += 3 {
		out[i], out[i+1], out[i+2] = pad[0], pad[1], pad[2]
	}
	for y := range p.plan.Height {
		copy(out[y*w*3:], p.rgb[y*p.plan.Width*3:(y+1)*p.plan.Width*3])
	}
	return out
}
