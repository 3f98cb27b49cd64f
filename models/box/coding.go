package box

import "math"

// MaxLogScale bounds dw and dh, after dividing by the weights, when decoding:
// log(1000/16), torchvision's bbox_xform_clip, so that exp never grows a box
// more than 62.5 times its reference.
const MaxLogScale = 4.135166556742356

// Deltas are a box's offsets from a reference box (an anchor or a proposal),
// in the Faster R-CNN parametrisation, each multiplied by the coder's weight:
//
//	DX = WX * (target centre x - ref centre x) / ref width
//	DY = WY * (target centre y - ref centre y) / ref height
//	DW = WW * log(target width / ref width)
//	DH = WH * log(target height / ref height)
type Deltas struct {
	DX, DY, DW, DH float64
}

// Coder turns boxes into deltas against reference boxes and back, like
// torchvision's BoxCoder. The zero Coder divides by zero; use RPNCoder or
// RoICoder, or set all four weights.
type Coder struct {
	// WX, WY, WW, WH scale the four deltas; larger weights make the
	// regression targets larger numbers for the same offsets.
	WX, WY, WW, WH float64
	// MaxLogScale caps DW/WW and DH/WH when decoding; 0 means MaxLogScale.
	MaxLogScale float64
}

// RPNCoder is the coder of the region proposal network: weights (1, 1, 1, 1).
func RPNCoder() Coder { return Coder{WX: 1, WY: 1, WW: 1, WH: 1} }

// RoICoder is the coder of the RoI (box) head: weights (10, 10, 5, 5).
func RoICoder() Coder { return Coder{WX: 10, WY: 10, WW: 5, WH: 5} }

// Encode returns the deltas that move ref onto target. ref must have a
// positive width and height (anchors and size-filtered proposals do); a
// target with no width or height gives infinite or NaN DW or DH.
func (c Coder) Encode(ref, target Box) Deltas {
	rw, rh := ref.Width(), ref.Height()
	rx, ry := ref.X1+0.5*rw, ref.Y1+0.5*rh
	tw, th := target.Width(), target.Height()
	tx, ty := target.X1+0.5*tw, target.Y1+0.5*th
	return Deltas{
		DX: c.WX * (tx - rx) / rw,
		DY: c.WY * (ty - ry) / rh,
		DW: c.WW * math.Log(tw/rw),
		DH: c.WH * math.Log(th/rh),
	}
}

// Decode applies d to ref and returns the box it describes. DW/WW and DH/WH
// are capped at the coder's MaxLogScale before exp, as torchvision caps them;
// there is no lower cap, so a very negative DW gives a box of width near 0.
// The result is not clipped to the image.
func (c Coder) Decode(ref Box, d Deltas) Box {
	limit := c.MaxLogScale
	if limit == 0 {
		limit = MaxLogScale
	}
	rw, rh := ref.Width(), ref.Height()
	rx, ry := ref.X1+0.5*rw, ref.Y1+0.5*rh

	cx := d.DX/c.WX*rw + rx
	cy := d.DY/c.WY*rh + ry
	w := math.Exp(math.Min(d.DW/c.WW, limit)) * rw
	h := math.Exp(math.Min(d.DH/c.WH, limit)) * rh
	return Box{X1: cx - 0.5*w, Y1: cy - 0.5*h, X2: cx + 0.5*w, Y2: cy + 0.5*h}
}

// EncodeAll appends to dst the deltas of targets[i] against refs[i], four
// float32 a box in the order dx, dy, dw, dh: the layout of a regression
// target tensor. It panics if the two slices differ in length.
func (c Coder) EncodeAll(dst []float32, refs, targets []Box) []float32 {
	if len(refs) != len(targets) {
		panic("box: EncodeAll: refs and targets differ in length")
	}
	for i, ref := range refs {
		d := c.Encode(ref, targets[i])
		dst = append(dst, float32(d.DX), float32(d.DY), float32(d.DW), float32(d.DH))
	}
	return dst
}

// DecodeAll appends to dst the boxes that deltas describe against refs,
// reading four float32 a box (dx, dy, dw, dh) as a model outputs them.
// It panics if len(deltas) != 4*len(refs).
func (c Coder) DecodeAll(dst []Box, refs []Box, deltas []float32) []Box {
	if len(deltas) != 4*len(refs) {
		panic("box: DecodeAll: want 4 deltas a reference box")
	}
	for i, ref := range refs {
		d := deltas[4*i : 4*i+4]
		dst = append(dst, c.Decode(ref, Deltas{
			DX: float64(d[0]), DY: float64(d[1]), DW: float64(d[2]), DH: float64(d[3]),
		}))
	}
	return dst
}
