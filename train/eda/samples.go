package eda

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // the data sets' images
	"image/png"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/maskwatch/maskwatch/train/dataset"
)

// Sample grids: cells of sampleCell×sampleCell pixels, sampleCols to a row,
// separated by sampleGap pixels of background.
const (
	sampleCell = 224
	sampleCols = 4
	sampleGap  = 4
	// boxThickness is the width, in pixels, of a drawn box.
	boxThickness = 2
)

var (
	gridBackground = color.RGBA{245, 245, 245, 255}
	cellBackground = color.RGBA{60, 60, 60, 255}
	// ProperColor draws boxes of the proper class, OtherColor those of every other class.
	ProperColor = color.RGBA{0, 200, 60, 255}
	OtherColor  = color.RGBA{230, 30, 30, 255}
)

// SamplePicks chooses n of count records, always the same for the same n and
// count: a fixed-seed shuffle, so that samples are spread over the directory
// rather than bunched at its start. The indices come back in ascending order.
func SamplePicks(n, count int) []int {
	if n >= count {
		picks := make([]int, count)
		for i := range picks {
			picks[i] = i
		}
		return picks
	}
	rng := rand.New(rand.NewPCG(0x6d61736b, 0x65646121))
	picks := rng.Perm(count)[:n]
	slices.Sort(picks)
	return picks
}

// sampleGrids draws the picked records of set as a grid of scaled images, and
// the same grid with every face's box drawn: green for the set's proper class,
// red for the others, with a tag naming the label where the box is wide enough.
// An image that cannot be decoded is drawn as a dark cell and logged.
func sampleGrids(set *dataset.Set, picks []int) (plain, boxed *image.RGBA) {
	rows := (len(picks) + sampleCols - 1) / sampleCols
	cols := min(sampleCols, len(picks))
	w := cols*sampleCell + (cols+1)*sampleGap
	h := rows*sampleCell + (rows+1)*sampleGap
	plain = image.NewRGBA(image.Rect(0, 0, max(w, 1), max(h, 1)))
	draw.Draw(plain, plain.Bounds(), image.NewUniform(gridBackground), image.Point{}, draw.Src)

	type placed struct {
		cell   image.Rectangle
		scale  float64
		origin image.Point
		rec    *dataset.Record
	}
	var cells []placed
	for k, i := range picks {
		r, c := k/sampleCols, k%sampleCols
		x0 := sampleGap + c*(sampleCell+sampleGap)
		y0 := sampleGap + r*(sampleCell+sampleGap)
		cell := image.Rect(x0, y0, x0+sampleCell, y0+sampleCell)
		rec := &set.Records[i]

		img, err := decodeFile(rec.Path)
		if err != nil {
			slog.Warn("eda: sample image not drawn", "path", rec.Path, "err", err)
			draw.Draw(plain, cell, image.NewUniform(cellBackground), image.Point{}, draw.Src)
			continue
		}
		b := img.Bounds()
		scale := min(float64(sampleCell)/float64(b.Dx()), float64(sampleCell)/float64(b.Dy()))
		sw, sh := int(float64(b.Dx())*scale+0.5), int(float64(b.Dy())*scale+0.5)
		origin := image.Pt(x0+(sampleCell-sw)/2, y0+(sampleCell-sh)/2)
		draw.Draw(plain, cell, image.NewUniform(cellBackground), image.Point{}, draw.Src)
		dst := image.Rectangle{Min: origin, Max: origin.Add(image.Pt(sw, sh))}
		xdraw.CatmullRom.Scale(plain, dst, img, b, draw.Src, nil)
		// Boxes are in the recorded image size, which the decoded image matches.
		cells = append(cells, placed{cell, scale, origin, rec})
	}

	boxed = image.NewRGBA(plain.Bounds())
	copy(boxed.Pix, plain.Pix)
	for _, p := range cells {
		canvas := boxed.SubImage(p.cell).(*image.RGBA)
		for _, o := range p.rec.Objects {
			col := OtherColor
			if o.Class == set.Classes.Proper {
				col = ProperColor
			}
			r := image.Rect(
				p.origin.X+int(o.Box.X1*p.scale), p.origin.Y+int(o.Box.Y1*p.scale),
				p.origin.X+int(o.Box.X2*p.scale+0.5), p.origin.Y+int(o.Box.Y2*p.scale+0.5))
			DrawBox(canvas, r, col, boxThickness)
			drawTag(canvas, r, o.Source, col)
		}
	}
	return plain, boxed
}

// DrawBox draws the outline of r, thickness pixels wide inside r, in col,
// clipped to img's bounds.
func DrawBox(img draw.Image, r image.Rectangle, col color.Color, thickness int) {
	if r.Empty() {
		return
	}
	t := min(thickness, r.Dx(), r.Dy())
	src := image.NewUniform(col)
	bounds := img.Bounds()
	for _, side := range []image.Rectangle{
		image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+t), // top
		image.Rect(r.Min.X, r.Max.Y-t, r.Max.X, r.Max.Y), // bottom
		image.Rect(r.Min.X, r.Min.Y, r.Min.X+t, r.Max.Y), // left
		image.Rect(r.Max.X-t, r.Min.Y, r.Max.X, r.Max.Y), // right
	} {
		draw.Draw(img, side.Intersect(bounds), src, image.Point{}, draw.Src)
	}
}

// drawTag writes label in white on a col tag above box r (inside it when there
// is no room above), when the box is at least as wide as the tag.
func drawTag(img *image.RGBA, r image.Rectangle, label string, col color.Color) {
	face := basicfont.Face7x13
	textWidth := font.MeasureString(face, label).Ceil()
	tagW, tagH := textWidth+4, face.Height+2
	if r.Dx() < tagW {
		return
	}
	top := r.Min.Y - tagH
	if top < img.Bounds().Min.Y {
		top = r.Min.Y
	}
	tag := image.Rect(r.Min.X, top, r.Min.X+tagW, top+tagH).Intersect(img.Bounds())
	draw.Draw(img, tag, image.NewUniform(col), image.Point{}, draw.Src)
	d := font.Drawer{
		Dst:  img,
		Src:  image.NewUniform(color.White),
		Face: face,
		Dot:  fixed.P(r.Min.X+2, top+1+face.Ascent),
	}
	d.DrawString(label)
}

func decodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// encodePNG encodes img as PNG bytes.
func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}
