package box

// Letterbox says how an image of w x h pixels is fitted into a square model input
// of size x size pixels keeping its aspect ratio: image coordinates are scaled by
// Scale, then shifted by PadX, PadY. FitLetterbox places the image at the top-left
// corner, so the padding lies below and to the right of it and PadX = PadY = 0;
// the pixel grids of image and input then share their origin and a box maps by
// scaling alone. Other placements (an augmented crop, say) set PadX, PadY,
// which may be negative when the image runs past the input's top or left edge.
//
// Both spaces are continuous pixel coordinates as Box uses them: pixel i covers
// [i, i+1), so a pixel centre is at i + 0.5.
type Letterbox struct {
	Scale      float64 // model-input pixels per image pixel
	PadX, PadY float64 // where the image's top-left corner lands in the model input
}

// FitLetterbox fits an image of w x h into a size x size input: Scale is
// size / max(w, h), so the longer side fills the input exactly, and the image sits
// at the top-left corner with the padding below and to the right. A 224 x 224
// image at size 224 gets the identity. For a non-positive w, h or size it returns
// the zero Letterbox, whose ToImage divides by zero.
func FitLetterbox(w, h, size int) Letterbox {
	if w <= 0 || h <= 0 || size <= 0 {
		return Letterbox{}
	}
	return Letterbox{Scale: float64(size) / float64(max(w, h))}
}

// ToModel maps a box from image pixels to model-input pixels.
func (l Letterbox) ToModel(b Box) Box {
	return Box{
		X1: b.X1*l.Scale + l.PadX, Y1: b.Y1*l.Scale + l.PadY,
		X2: b.X2*l.Scale + l.PadX, Y2: b.Y2*l.Scale + l.PadY,
	}
}

// ToImage maps a box from model-input pixels back to image pixels; it undoes ToModel.
// The result may run past the image where the box reaches into the padding:
// Clip it to the image size when that matters.
func (l Letterbox) ToImage(b Box) Box {
	return Box{
		X1: (b.X1 - l.PadX) / l.Scale, Y1: (b.Y1 - l.PadY) / l.Scale,
		X2: (b.X2 - l.PadX) / l.Scale, Y2: (b.Y2 - l.PadY) / l.Scale,
	}
}

// Then composes two letterboxes: the result maps as l, then next.
func (l Letterbox) Then(next Letterbox) Letterbox {
	return Letterbox{
		Scale: l.Scale * next.Scale,
		PadX:  l.PadX*next.Scale + next.PadX,
		PadY:  l.PadY*next.Scale + next.PadY,
	}
}
