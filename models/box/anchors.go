package box

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// AnchorConfig describes the anchors of one feature map (one level of a feature
// pyramid; an FPN takes one AnchorConfig per level).
//
// Every cell of the map carries len(Sizes)*len(AspectRatios) anchors, all
// centred on the cell's centre. An anchor of size s and ratio r has the area
// s*s, width s/sqrt(r) and height s*sqrt(r).
type AnchorConfig struct {
	// Sizes are the anchors' square-root areas, in input-image pixels.
	Sizes []float64
	// AspectRatios are height / width; 1 is square, 1.5 is taller than wide.
	AspectRatios []float64
	// Stride is how many input pixels one feature cell spans (16 for a
	// backbone that halves the image four times).
	Stride int
}

// DefaultAnchorConfig is the single-level config for the study: faces in
// 224 px crops on a stride-16 feature map (14 x 14 cells).
//
// The sizes come from the boxes in the proper-mask file names (943 faces in
// train and test): widths 44..161 px, heights 54..153 px, square-root areas
// 67..157 px (median 109), and height/width mostly 0.67..1.94 (median 1.09).
// Sizes 64, 96, 128 and 160 px span that range in steps small enough that
// every one of those faces has an anchor with IoU at least 0.5 (median 0.82),
// and the ratio 1.5 next to 1 serves the many faces taller than wide.
// torchvision's default (32..512 px at 0.5, 1, 2) gives 15 anchors a cell
// and a median best IoU of only 0.72. The whole photographs of the facemask
// set hold faces from 16 px up and need a pyramid with smaller sizes instead.
func DefaultAnchorConfig() AnchorConfig {
	return AnchorConfig{
		Sizes:        []float64{64, 96, 128, 160},
		AspectRatios: []float64{1, 1.5},
		Stride:       16,
	}
}

// PerCell is the number of anchors on each feature cell.
func (c AnchorConfig) PerCell() int { return len(c.Sizes) * len(c.AspectRatios) }

// Validate reports a config that cannot produce anchors.
func (c AnchorConfig) Validate() error {
	if len(c.Sizes) == 0 || len(c.AspectRatios) == 0 {
		return errors.New("anchor config: needs at least one size and one aspect ratio")
	}
	if c.Stride <= 0 {
		return fmt.Errorf("anchor config: stride %d: must be positive", c.Stride)
	}
	for _, s := range c.Sizes {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("anchor config: size %v: must be positive and finite", s)
		}
	}
	for _, r := range c.AspectRatios {
		if !(r > 0) || math.IsInf(r, 0) {
			return fmt.Errorf("anchor config: aspect ratio %v: must be positive and finite", r)
		}
	}
	return nil
}

// Anchors appends to dst the anchors of a feature map of h x w cells and
// returns the extended slice; it allocates only when dst lacks capacity for
// h*w*cfg.PerCell() more boxes.
//
// The order is torchvision's, which is also the order of an RPN head's
// NHWC output flattened: cells row by row (y outer, x inner), and within a
// cell the anchors ratio by ratio, each ratio through all sizes, so anchor
// a of a cell has ratio AspectRatios[a/len(Sizes)] and size Sizes[a%len(Sizes)].
// Cell (y, x) is centred at ((x+0.5)*Stride, (y+0.5)*Stride) in image pixels.
// Unlike torchvision, which puts the centres on the cells' top-left
// corners and rounds the anchors to whole pixels, the anchors here are
// centred on the cells and not rounded. Anchors near the border run past the
// image and are kept, as torchvision keeps them. An invalid config or a
// non-positive h or w appends nothing; check cfg.Validate first.
func Anchors(dst []Box, cfg AnchorConfig, h, w int) []Box {
	if cfg.Validate() != nil || h <= 0 || w <= 0 {
		return dst
	}
	dst = slices.Grow(dst, h*w*cfg.PerCell())

	stride := float64(cfg.Stride)
	for y := range h {
		cy := (float64(y) + 0.5) * stride
		for x := range w {
			cx := (float64(x) + 0.5) * stride
			for _, r := range cfg.AspectRatios {
				hr := math.Sqrt(r)
				for _, s := range cfg.Sizes {
					halfW, halfH := s/hr/2, s*hr/2
					dst = append(dst, Box{
						X1: cx - halfW, Y1: cy - halfH,
						X2: cx + halfW, Y2: cy + halfH,
					})
				}
			}
		}
	}
	return dst
}

// GridSize is the height and width of a feature map, in cells.
type GridSize struct {
	H, W int
}

// PyramidAnchors appends the anchors of several feature maps, level after
// level, each as Anchors lays it out: levels[i] on a map of sizes[i]. This is
// the order in which an FPN's per-level RPN outputs are concatenated. It
// appends nothing when the two slices differ in length.
func PyramidAnchors(dst []Box, levels []AnchorConfig, sizes []GridSize) []Box {
	if len(levels) != len(sizes) {
		return dst
	}
	for i, cfg := range levels {
		dst = Anchors(dst, cfg, sizes[i].H, sizes[i].W)
	}
	return dst
}
