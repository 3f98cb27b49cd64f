package evaluate

import (
	"bytes"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/safefile"
	"github.com/maskwatch/maskwatch/train/eda"
)

// SampleMinScore is the score from which a sample draws a detection besides
// the top one, which it always draws.
const SampleMinScore = 0.5

// Sample layout: each image is scaled so that its longer side is
// sampleSide pixels and drawn twice, truth left and prediction right, below
// a header line, with sampleMargin pixels around and between the panels.
const (
	sampleSide     = 320
	sampleHeader   = 16
	sampleMargin   = 6
	sampleMaxDrawn = 10 // detections drawn at most on a prediction panel
	boxThickness   = 2
)

var (
	sampleBackground = color.RGBA{245, 245, 245, 255}
	sampleText       = color.RGBA{30, 30, 30, 255}
)

// sampleLayout is where a sample draws an image of a given size.
type sampleLayout struct {
	scale       float64     // sample pixels an image pixel
	size        image.Point // a panel's size
	left, right image.Point // the panels' top-left corners
	bounds      image.Rectangle
}

func layoutSample(width, height int) sampleLayout {
	scale := float64(sampleSide) / float64(max(width, height, 1))
	size := image.Pt(max(1, int(float64(width)*scale+0.5)), max(1, int(float64(height)*scale+0.5)))
	top := sampleMargin + sampleHeader
	l := sampleLayout{
		scale: scale,
		size:  size,
		left:  image.Pt(sampleMargin, top),
		right: image.Pt(2*sampleMargin+size.X, top),
	}
	l.bounds = image.Rect(0, 0, 3*sampleMargin+2*size.X, top+size.Y+sampleMargin)
	return l
}

// panel is the rectangle of the panel at origin.
func (l sampleLayout) panel(origin image.Point) image.Rectangle {
	return image.Rectangle{Min: origin, Max: origin.Add(l.size)}
}

// rect maps a box in image pixels to the panel at origin.
func (l sampleLayout) rect(origin image.Point, b box.Box) image.Rectangle {
	return image.Rect(
		origin.X+int(b.X1*l.scale), origin.Y+int(b.Y1*l.scale),
		origin.X+int(b.X2*l.scale+0.5), origin.Y+int(b.Y2*l.scale+0.5))
}

// samplePicks chooses up to n images to draw, always the same for the same
// report: first the worst mistakes, up to half of n rounded up (wrong
// classes, surest first, then images where nothing was found, in set
// order), then images spread evenly over the rest of the set, in set order.
func (r *Report) samplePicks(n int) []int {
	if n <= 0 {
		return nil
	}
	var wrong, missed []int
	for i := range r.Predictions {
		p := &r.Predictions[i]
		switch {
		case p.TrueClass < 0 || p.Correct:
		case p.Found:
			wrong = append(wrong, i)
		default:
			missed = append(missed, i)
		}
	}
	slices.SortStableFunc(wrong, func(a, b int) int {
		return byScore(r.Predictions[a].Detections[0].Score,
			r.Predictions[b].Detections[0].Score)
	})
	mistakes := append(wrong, missed...)
	picks := slices.Clone(mistakes[:min(len(mistakes), (n+1)/2)])

	taken := make(map[int]bool, len(picks))
	for _, i := range picks {
		taken[i] = true
	}
	var rest []int
	for i := range r.Predictions {
		if !taken[i] {
			rest = append(rest, i)
		}
	}
	m := n - len(picks)
	if m >= len(rest) {
		return append(picks, rest...)
	}
	for k := range m {
		picks = append(picks, rest[(2*k+1)*len(rest)/(2*m)])
	}
	return picks
}

// sampleView is one sample on index.html.
type sampleView struct {
	File, Image, Truth, Top string
	Mistake                 bool
}

// WriteSamples draws n of the report's images into dir, which it creates:
// each as sample-NNN.png, the image twice side by side, the true faces on
// the left and the detections on the right (the top one, and the others of
// score at least SampleMinScore, at most ten), green for the proper class
// and red for the others, each detection tagged with its class and score;
// and an index.html that shows them with captions, by relative paths. The
// samples are the worst mistakes first, up to half of n (wrong classes,
// surest first, then images without detections), then images spread evenly
// over the rest of the set; the same report always gives the same samples.
// Every file is written atomically; an image that can no longer be read is
// an error naming it.
func (r *Report) WriteSamples(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("evaluate: samples: %w", err)
	}
	var views []sampleView
	for k, i := range r.samplePicks(n) {
		p := &r.Predictions[i]
		img, err := r.drawSample(p)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return fmt.Errorf("evaluate: sample of %s: %w", p.Path, err)
		}
		file := fmt.Sprintf("sample-%03d.png", k+1)
		if err := safefile.Write(filepath.Join(dir, file), buf.Bytes(), 0o644); err != nil {
			return err
		}
		views = append(views, r.sampleView(p, file))
	}

	var page bytes.Buffer
	err := indexTemplate.Execute(&page, map[string]any{
		"Source":   r.Source,
		"Images":   r.Images,
		"Accuracy": formatFigure(r.Accuracy, 4),
		"IoU":      formatFigure(r.IoU, 4),
		"MAP50":    formatFigure(r.MAP50, 4),
		"MAP":      formatFigure(r.MAP, 4),
		"Samples":  views,
		"MinScore": SampleMinScore,
	})
	if err != nil {
		return fmt.Errorf("evaluate: samples index: %w", err)
	}
	return safefile.Write(filepath.Join(dir, "index.html"), page.Bytes(), 0o644)
}

// className names a data set class, or gives its number when the report
// has no name for it.
func (r *Report) className(c int) string {
	if c >= 0 && c < len(r.Classes) {
		return r.Classes[c]
	}
	return fmt.Sprintf("class %d", c)
}

// sampleView captions one sample.
func (r *Report) sampleView(p *Prediction, file string) sampleView {
	v := sampleView{File: file, Image: filepath.Base(p.Path)}
	counts := make([]int, len(r.Classes))
	for _, o := range p.Truth {
		if o.Class >= 0 && o.Class < len(counts) {
			counts[o.Class]++
		}
	}
	var truth []string
	for c, k := range counts {
		if k > 0 {
			truth = append(truth, fmt.Sprintf("%d %s", k, r.Classes[c]))
		}
	}
	v.Truth = "no faces"
	if len(truth) > 0 {
		v.Truth = strings.Join(truth, ", ")
	}

	v.Top = "nothing found"
	if top, ok := p.Top(); ok {
		v.Top = fmt.Sprintf("%s %.2f, IoU %.2f", r.className(top.Class), top.Score, p.IoU)
	}
	v.Mistake = p.TrueClass >= 0 && !p.Correct
	return v
}

// drawSample draws one prediction's truth and detections side by side.
func (r *Report) drawSample(p *Prediction) (*image.RGBA, error) {
	img, err := decodeFile(p.Path)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	l := layoutSample(b.Dx(), b.Dy())
	canvas := image.NewRGBA(l.bounds)
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(sampleBackground), image.Point{}, draw.Src)
	for _, origin := range []image.Point{l.left, l.right} {
		xdraw.CatmullRom.Scale(canvas, l.panel(origin), img, b, draw.Src, nil)
	}
	drawText(canvas, image.Pt(l.left.X, sampleMargin), "truth", sampleText)
	heading := "prediction"
	if p.TrueClass >= 0 && !p.Correct {
		heading = "prediction (wrong)"
	}
	drawText(canvas, image.Pt(l.right.X, sampleMargin), heading, sampleText)

	truth := canvas.SubImage(l.panel(l.left)).(*image.RGBA)
	for _, o := range p.Truth {
		rect := l.rect(l.left, o.Box)
		eda.DrawBox(truth, rect, r.classColor(o.Class), boxThickness)
		drawTag(truth, rect, r.className(o.Class), r.classColor(o.Class), false)
	}

	pred := canvas.SubImage(l.panel(l.right)).(*image.RGBA)
	drawn := 0
	for i, d := range p.Detections {
		if drawn == sampleMaxDrawn || (i > 0 && !(d.Score >= SampleMinScore)) {
			break
		}
		drawn++
	}
	for i := drawn - 1; i >= 0; i-- { // the top detection last, on top
		d := p.Detections[i]
		rect := l.rect(l.right, d.Box)
		eda.DrawBox(pred, rect, r.classColor(d.Class), boxThickness)
		label := fmt.Sprintf("%s %.2f", r.className(d.Class), d.Score)
		drawTag(pred, rect, label, r.classColor(d.Class), i == 0)
	}
	return canvas, nil
}

// classColor is green for the proper class and red for the others.
func (r *Report) classColor(c int) color.Color {
	if c == r.Proper {
		return eda.ProperColor
	}
	return eda.OtherColor
}

// drawText writes s with its top-left corner at pt.
func drawText(img draw.Image, pt image.Point, s string, col color.Color) {
	face := basicfont.Face7x13
	d := font.Drawer{
		Dst:  img,
		Src:  image.NewUniform(col),
		Face: face,
		Dot:  fixed.P(pt.X, pt.Y+face.Ascent),
	}
	d.DrawString(s)
}

// drawTag writes label in white on a col tag above box r, or inside it when
// there is no room above, clipped to img. It draws nothing when the tag is
// wider than the box, unless always is set.
func drawTag(img *image.RGBA, r image.Rectangle, label string, col color.Color, always bool) {
	face := basicfont.Face7x13
	tagW := font.MeasureString(face, label).Ceil() + 4
	tagH := face.Height + 2
	if r.Dx() < tagW && !always {
		return
	}
	top := r.Min.Y - tagH
	if top < img.Bounds().Min.Y {
		top = r.Min.Y
	}
	left := max(min(r.Min.X, img.Bounds().Max.X-tagW), img.Bounds().Min.X)
	tag := image.Rect(left, top, left+tagW, top+tagH).Intersect(img.Bounds())
	draw.Draw(img, tag, image.NewUniform(col), image.Point{}, draw.Src)
	drawText(img, image.Pt(left+2, top+1), label, color.White)
}

var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Detections on {{.Source}}</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
figure { display: inline-block; margin: 0 1em 1.5em 0; vertical-align: top; }
figcaption { font-size: 0.9em; max-width: 660px; }
.mistake { color: #c01818; font-weight: bold; }
</style>
</head>
<body>
<h1>Detections on {{.Source}}</h1>
<p>{{.Images}} images: accuracy {{.Accuracy}}, IoU {{.IoU}}, mAP@0.5 {{.MAP50}},
mAP@[.5:.95] {{.MAP}}. Left: the true faces; right: the detections (the top one,
and others of score at least {{.MinScore}}); green is proper, red not proper.
The worst mistakes come first.</p>
{{range .Samples}}<figure>
<img src="{{.File}}" alt="{{.Image}}">
<figcaption>{{.Image}}: truth {{.Truth}}; top detection {{.Top}}
{{- if .Mistake}} <span class="mistake">wrong</span>{{end}}</figcaption>
</figure>
{{else}}<p>No samples.</p>
{{end}}</body>
</html>
`))
