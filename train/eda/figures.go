package eda

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/maskwatch/maskwatch/train/dataset"
)

// Figure is one PNG image of the report.
type Figure struct {
	File    string // base name in the output folder, "faces.png"
	Title   string
	Caption string
	PNG     []byte
}

// dpi sets the pixel size of the plots: a 7.5 in wide plot is 720 px.
const dpi = 96

// histBins is the number of bins of every histogram.
const histBins = 30

// palette holds distinct colours for labels and directories, in order. Green
// and red come last: in the sample grids they mean proper and not proper.
var palette = []color.NRGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {148, 103, 189, 255}, {140, 86, 75, 255},
	{227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
	{44, 160, 44, 255}, {214, 39, 40, 255},
}

// legendRoom raises the top of p's Y axis so that a legend in the top right
// corner sits above the highest bar, top.
func legendRoom(p *plot.Plot, top float64, entries int) {
	p.Y.Max = math.Max(p.Y.Max, top*(1.15+0.09*float64(entries)))
}

// countTicks marks a count axis as plot.DefaultTicks does, with labels
// written as plain numbers ("250", not "250.00").
type countTicks struct{}

func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}

func colorAt(i int) color.NRGBA { return palette[i%len(palette)] }

func translucent(c color.NRGBA, alpha uint8) color.NRGBA {
	c.A = alpha
	return c
}

// plotPNG draws one plot of w×h points into PNG bytes.
func plotPNG(p *plot.Plot, w, h vg.Length) ([]byte, error) {
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	p.Draw(draw.New(c))
	return encodeCanvas(c)
}

// tilesPNG draws plots in a grid of cols columns, each cell cellW×cellH points.
func tilesPNG(plots []*plot.Plot, cols int, cellW, cellH vg.Length) ([]byte, error) {
	cols = max(1, min(cols, len(plots)))
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
		for col := range grid[r] {
			if i := r*cols + col; i < len(plots) {
				grid[r][col] = plots[i]
			}
		}
	}

	c := vgimg.NewWith(vgimg.UseWH(cellW*vg.Length(cols), cellH*vg.Length(rows)),
		vgimg.UseDPI(dpi))
	tiles := draw.Tiles{
		Rows: rows, Cols: cols,
		PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2,
	}
	canvases := plot.Align(grid, tiles, draw.New(c))
	for r := range grid {
		for col, p := range grid[r] {
			if p != nil {
				p.Draw(canvases[r][col])
			}
		}
	}
	return encodeCanvas(c)
}

func encodeCanvas(c *vgimg.Canvas) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode figure: %w", err)
	}
	return buf.Bytes(), nil
}

// imagesFigure is a bar per directory of its image count.
func imagesFigure(s *Summary) (Figure, error) {
	p := plot.New()
	p.Title.Text = "Images per directory"
	p.Y.Label.Text = "images"
	p.Y.Tick.Marker = countTicks{}
	values := make(plotter.Values, len(s.Dirs))
	names := make([]string, len(s.Dirs))
	for i, d := range s.Dirs {
		values[i] = float64(d.Images)
		names[i] = d.Name
	}
	bars, err := plotter.NewBarChart(values, vg.Points(40))
	if err != nil {
		return Figure{}, fmt.Errorf("images figure: %w", err)
	}
	bars.Color = colorAt(0)
	p.Add(bars, plotter.NewGrid())
	p.NominalX(names...)

	png, err := plotPNG(p, vg.Inch*7.5, vg.Inch*3.5)
	return Figure{File: "images.png", Title: p.Title.Text, PNG: png}, err
}

// facesFigure groups, per directory, one bar per label of its face count.
func facesFigure(s *Summary) (Figure, error) {
	p := plot.New()
	p.Title.Text = "Faces per label and directory"
	p.Y.Label.Text = "faces"
	p.Y.Tick.Marker = countTicks{}
	p.Legend.Top = true

	labels := s.LabelNames()
	names := make([]string, len(s.Dirs))
	for i, d := range s.Dirs {
		names[i] = d.Name
	}
	const groupWidth = 84.0
	barWidth := vg.Points(groupWidth / float64(max(1, len(labels))))
	for li, label := range labels {
		values := make(plotter.Values, len(s.Dirs))
		for i, d := range s.Dirs {
			values[i] = float64(d.Labels[label])
		}
		bars, err := plotter.NewBarChart(values, barWidth)
		if err != nil {
			return Figure{}, fmt.Errorf("faces figure: %w", err)
		}
		bars.Color = colorAt(li)
		bars.LineStyle.Width = 0
		bars.Offset = barWidth * vg.Length(float64(li)-float64(len(labels)-1)/2)
		p.Add(bars)
		p.Legend.Add(label, bars)
	}
	p.Add(plotter.NewGrid())
	p.NominalX(names...)
	top := 0.0
	for _, d := range s.Dirs {
		for _, n := range d.Labels {
			top = max(top, float64(n))
		}
	}
	legendRoom(p, top, len(labels))

	png, err := plotPNG(p, vg.Inch*7.5, vg.Inch*4)
	return Figure{File: "faces.png", Title: p.Title.Text, PNG: png}, err
}

// edges splits [lo, hi] into n bins, evenly or, when geometric, evenly in log.
func edges(lo, hi float64, n int, geometric bool) []float64 {
	if hi <= lo {
		lo, hi = lo*0.9, hi*1.1
		if hi <= lo {
			lo, hi = lo-0.5, hi+0.5
		}
	}
	e := make([]float64, n+1)
	for i := range e {
		f := float64(i) / float64(n)
		if geometric {
			e[i] = lo * math.Pow(hi/lo, f)
		} else {
			e[i] = lo + f*(hi-lo)
		}
	}
	e[n] = hi
	return e
}

// histogram counts values into the bins between consecutive edges; values
// outside the edges are left out.
func histogram(values, edges []float64, c color.NRGBA) *plotter.Histogram {
	bins := make([]plotter.HistogramBin, len(edges)-1)
	for i := range bins {
		bins[i] = plotter.HistogramBin{Min: edges[i], Max: edges[i+1]}
	}
	for _, v := range values {
		i, found := slices.BinarySearch(edges, v)
		if !found {
			i--
		}
		if i == len(bins) && v == edges[len(edges)-1] {
			i--
		}
		if i >= 0 && i < len(bins) {
			bins[i].Weight++
		}
	}
	h := &plotter.Histogram{
		Bins:      bins,
		Width:     (edges[len(edges)-1] - edges[0]) / float64(len(bins)),
		FillColor: translucent(c, 110),
		LineStyle: draw.LineStyle{Color: c, Width: vg.Points(0.8)},
	}
	return h
}

// span returns the smallest and largest of every value in groups, skipping
// values not above floor; ok is false when none is left.
func span(groups [][]float64, floor float64) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, g := range groups {
		for _, v := range g {
			if v > floor && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
				ok = true
			}
		}
	}
	return lo, hi, ok
}

// perDirHistograms draws one panel per directory; in each, one histogram per
// label (from values) shares bins with the others, overlaid translucently.
func perDirHistograms(
	s *Summary, measures []boxMeasures, title, xLabel string, logX bool,
	values func(m boxMeasures, label string) []float64,
) ([]byte, error) {
	allLabels := s.LabelNames()
	plots := make([]*plot.Plot, len(s.Dirs))
	for i := range s.Dirs {
		d := &s.Dirs[i]
		p := plot.New()
		p.Title.Text = d.Name
		p.X.Label.Text = xLabel
		p.Y.Label.Text = "faces"
		p.Y.Tick.Marker = countTicks{}
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		plots[i] = p

		labels := d.LabelNames()
		groups := make([][]float64, len(labels))
		for li, l := range labels {
			groups[li] = values(measures[i], l)
		}
		floor := math.Inf(-1)
		if logX {
			floor = 0
		}
		lo, hi, ok := span(groups, floor)
		if !ok {
			p.Title.Text += " (no boxes)"
			continue
		}
		e := edges(lo, hi, histBins, logX)
		top := 0.0
		for li, l := range labels {
			h := histogram(groups[li], e, colorAt(slices.Index(allLabels, l)))
			p.Add(h)
			p.Legend.Add(l, h)
			for _, b := range h.Bins {
				top = max(top, b.Weight)
			}
		}
		legendRoom(p, top, len(labels))
		if logX {
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		}
	}
	if len(plots) == 0 {
		p := plot.New()
		p.Title.Text = title + ": no data sets"
		plots = append(plots, p)
	}
	return tilesPNG(plots, 2, vg.Inch*4.5, vg.Inch*3.2)
}

func areaFigure(s *Summary, measures []boxMeasures) (Figure, error) {
	png, err := perDirHistograms(s, measures, "Box area", "box area (px², log scale)", true,
		func(m boxMeasures, label string) []float64 { return m.area[label] })
	return Figure{
		File:    "area.png",
		Title:   "Box area",
		Caption: "Box area in square pixels, per label; bins are even in log scale.",
		PNG:     png,
	}, err
}

func aspectFigure(s *Summary, measures []boxMeasures) (Figure, error) {
	png, err := perDirHistograms(s, measures, "Box aspect ratio", "box width / height", false,
		func(m boxMeasures, label string) []float64 { return m.aspect[label] })
	return Figure{
		File:    "aspect.png",
		Title:   "Box aspect ratio",
		Caption: "Box width over height, per label.",
		PNG:     png,
	}, err
}

func relativeFigure(s *Summary, measures []boxMeasures) (Figure, error) {
	png, err := perDirHistograms(s, measures, "Box size relative to the image",
		"sqrt(box area / image area)", false,
		func(m boxMeasures, label string) []float64 { return m.relative[label] })
	return Figure{
		File:  "relative-size.png",
		Title: "Box size relative to the image",
		Caption: "The square root of box area over image area: the box side as a " +
			"fraction of the image side, per label.",
		PNG: png,
	}, err
}

// sizesFigure scatters image width against height, one colour per directory.
func sizesFigure(s *Summary, sets []*dataset.Set) (Figure, error) {
	p := plot.New()
	p.Title.Text = "Image sizes"
	p.X.Label.Text = "width (px)"
	p.Y.Label.Text = "height (px)"
	p.Legend.Top = true
	p.Add(plotter.NewGrid())

	shapes := []draw.GlyphDrawer{
		draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{},
		draw.CrossGlyph{}, draw.PlusGlyph{}, draw.RingGlyph{},
	}
	for i, set := range sets {
		xys := make(plotter.XYs, len(set.Records))
		for j, r := range set.Records {
			xys[j] = plotter.XY{X: float64(r.Width), Y: float64(r.Height)}
		}
		if len(xys) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return Figure{}, fmt.Errorf("image sizes figure: %s: %w", set.Dir, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{
			Color:  translucent(colorAt(i), 150),
			Radius: vg.Points(2.5),
			Shape:  shapes[i%len(shapes)],
		}
		p.Add(sc)
		p.Legend.Add(s.Dirs[i].Name, sc)
	}

	png, err := plotPNG(p, vg.Inch*7.5, vg.Inch*5)
	return Figure{
		File:    "image-sizes.png",
		Title:   p.Title.Text,
		Caption: "Width against height of every image, one colour and shape per directory.",
		PNG:     png,
	}, err
}
