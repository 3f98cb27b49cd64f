// Package box holds the box arithmetic that training and the edge share:
// boxes, IoU, anchors, box coding, NMS and the detection metrics.
// It is pure Go and imports nothing of this project, GoMLX, GoCV or TFLite.
package box

import "math"

// Box is an axis-aligned box in pixels, as corners [X1, Y1, X2, Y2]
// (top-left inclusive, bottom-right exclusive), the form the models take.
type Box struct {
	X1, Y1, X2, Y2 float64
}

// FromXYWH converts the study's top-left corner, width and height form.
func FromXYWH(x, y, w, h float64) Box {
	return Box{X1: x, Y1: y, X2: x + w, Y2: y + h}
}

// XYWH returns the top-left corner, width and height.
func (b Box) XYWH() (x, y, w, h float64) {
	return b.X1, b.Y1, b.X2 - b.X1, b.Y2 - b.Y1
}

// Width of the box; negative for a box whose corners are swapped.
func (b Box) Width() float64 { return b.X2 - b.X1 }

// Height of the box; negative for a box whose corners are swapped.
func (b Box) Height() float64 { return b.Y2 - b.Y1 }

// Area is the box's area, or 0 for an empty or inverted box.
func (b Box) Area() float64 {
	w, h := b.Width(), b.Height()
	if w <= 0 || h <= 0 {
		return 0
	}
	return w * h
}

// Empty reports whether the box has no area.
func (b Box) Empty() bool { return b.Width() <= 0 || b.Height() <= 0 }

// Valid reports whether every coordinate is finite and the box has area.
func (b Box) Valid() bool {
	for _, v := range [...]float64{b.X1, b.Y1, b.X2, b.Y2} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return !b.Empty()
}

// Intersect returns the overlap of two boxes; it is Empty when they do not overlap.
func (b Box) Intersect(o Box) Box {
	return Box{
		X1: math.Max(b.X1, o.X1), Y1: math.Max(b.Y1, o.Y1),
		X2: math.Min(b.X2, o.X2), Y2: math.Min(b.Y2, o.Y2),
	}
}

// Clip limits the box to an image of the given size.
func (b Box) Clip(width, height float64) Box {
	return b.Intersect(Box{X2: width, Y2: height})
}

// IoU is the intersection over union of two boxes, 0 when either is empty.
func IoU(a, b Box) float64 {
	inter := a.Intersect(b).Area()
	if inter == 0 {
		return 0
	}
	return inter / (a.Area() + b.Area() - inter)
}
