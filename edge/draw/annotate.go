package draw

import (
	"fmt"
	"image"
	"math"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/detect"
)

// Texts are the words drawn on frames; empty fields take the defaults.
type Texts struct {
	Proper    string // box label of a mask worn properly: "mask"
	NotProper string // box label of no mask or a mask worn wrongly: "no mask"
	KioskOK   string // kiosk banner for a proper mask: "Thank you"
	KioskWarn string // kiosk banner otherwise: "Please wear a mask"
	NoSignal  string // the card shown while the source is lost: "no signal"
}

func (t Texts) withDefaults() Texts {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&t.Proper, "mask")
	def(&t.NotProper, "no mask")
	def(&t.KioskOK, "Thank you")
	def(&t.KioskWarn, "Please wear a mask")
	def(&t.NoSignal, "no signal")
	return t
}

// Overlay is what the corner overlay shows.
type Overlay struct {
	FPS     float64
	Latency time.Duration // of the last frame, capture to drawing
	Model   string        // such as "tflite mobilenetv3 int8"
}

// Annotator draws detections, the overlay and the kiosk banner. It keeps
// fonts sized for the last frame height. Not safe for concurrent use.
type Annotator struct {
	texts  Texts
	height int
	small  *Font
	big    *Font
	blur   Blurrer
}

// NewAnnotator makes an Annotator with the given texts.
func NewAnnotator(t Texts) *Annotator { return &Annotator{texts: t.withDefaults()} }

// Texts returns the texts in use, defaults filled in.
func (a *Annotator) Texts() Texts { return a.texts }

func (a *Annotator) fonts(h int) error {
	if a.height == h && a.small != nil {
		return nil
	}
	var err error
	if a.small, err = NewFont(max(12, float64(h)/26), true); err != nil {
		return err
	}
	if a.big, err = NewFont(max(20, float64(h)/9), true); err != nil {
		return err
	}
	a.height = h
	return nil
}

// BoxRect rounds a face's box to pixels inside the frame.
func BoxRect(f *camera.Frame, face detect.Face) image.Rectangle {
	b := face.Box
	r := image.Rect(int(math.Floor(b.X1)), int(math.Floor(b.Y1)),
		int(math.Ceil(b.X2)), int(math.Ceil(b.Y2)))
	return r.Intersect(bounds(f))
}

// BoxColour is green for a mask worn properly, red otherwise.
func BoxColour(face detect.Face) BGR {
	if face.Proper {
		return Green
	}
	return Red
}

// Blur hides every face of faces in f.
func (a *Annotator) Blur(f *camera.Frame, faces []detect.Face) {
	for _, face := range faces {
		a.blur.Blur(f, BoxRect(f, face))
	}
}

// Faces draws a box and a "mask 0.93" label for each face.
func (a *Annotator) Faces(f *camera.Frame, faces []detect.Face) error {
	if err := a.fonts(f.Height); err != nil {
		return err
	}
	thick := max(2, f.Height/240)
	for _, face := range faces {
		r := BoxRect(f, face)
		if r.Empty() {
			continue
		}
		c := BoxColour(face)
		Rect(f, r, c, thick)
		text := a.texts.NotProper
		if face.Proper {
			text = a.texts.Proper
		}
		label := fmt.Sprintf("%s %.2f", text, face.Score)
		y := r.Min.Y - a.small.Height() - 2
		if y < 0 {
			y = r.Max.Y
		}
		a.small.Label(f, r.Min.X, y, label, White, c)
	}
	return nil
}

// Overlay draws the FPS, latency and model line at the top-left corner.
func (a *Annotator) Overlay(f *camera.Frame, o Overlay) error {
	if err := a.fonts(f.Height); err != nil {
		return err
	}
	text := fmt.Sprintf("%.1f fps  %d ms  %s", o.FPS, o.Latency.Milliseconds(), o.Model)
	pad := a.small.Height() / 4
	w := a.small.Measure(text) + 2*pad
	BlendRect(f, image.Rect(0, 0, w, a.small.Height()+pad), Black, 160)
	a.small.Draw(f, pad, pad/2, text, White)
	return nil
}

// Nearest returns the index of the largest face (the one closest to the
// camera), or -1 when there is none.
func Nearest(faces []detect.Face) int {
	best, area := -1, 0.0
	for i, face := range faces {
		if a := face.Box.Area(); a > area {
			best, area = i, a
		}
	}
	return best
}

// Banner draws the kiosk banner across the bottom of f for the nearest face:
// the OK text on green for a proper mask, the warning on red otherwise.
// With no face it draws nothing and returns false.
func (a *Annotator) Banner(f *camera.Frame, faces []detect.Face) (bool, error) {
	i := Nearest(faces)
	if i < 0 {
		return false, nil
	}
	if err := a.fonts(f.Height); err != nil {
		return false, err
	}
	text, c := a.texts.KioskWarn, Red
	if faces[i].Proper {
		text, c = a.texts.KioskOK, Green
	}
	h := a.big.Height() * 3 / 2
	band := image.Rect(0, f.Height-h, f.Width, f.Height)
	FillRect(f, band, c)
	w := a.big.Measure(text)
	a.big.Draw(f, max(0, (f.Width-w)/2), band.Min.Y+(h-a.big.Height())/2, text, White)
	return true, nil
}

// BannerRect is where Banner draws on a frame of height h and width w.
func (a *Annotator) BannerRect(w, h int) (image.Rectangle, error) {
	if err := a.fonts(h); err != nil {
		return image.Rectangle{}, err
	}
	bh := a.big.Height() * 3 / 2
	return image.Rect(0, h-bh, w, h), nil
}

// NoSignal paints f, sized w×h, as the card shown while the source is lost:
// dark gray with the no-signal text and for how long.
func (a *Annotator) NoSignal(f *camera.Frame, w, h int, down time.Duration) error {
	f.Reset(w, h)
	FillRect(f, bounds(f), Gray)
	if err := a.fonts(h); err != nil {
		return err
	}
	text := a.texts.NoSignal
	tw := a.big.Measure(text)
	y := (h - a.big.Height()) / 2
	a.big.Draw(f, max(0, (w-tw)/2), y, text, White)
	sub := down.Round(time.Second).String()
	sw := a.small.Measure(sub)
	a.small.Draw(f, max(0, (w-sw)/2), y+a.big.Height(), sub, White)
	return nil
}
