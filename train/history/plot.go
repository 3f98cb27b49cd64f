package history

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/maskwatch/maskwatch/models/safefile"
)

// The size of every PNG Plot writes, in pixels.
const (
	PlotWidth  = 960
	PlotHeight = 600
)

// plotDPI converts the plots' points to pixels.
const plotDPI = 96

// The study's figures on its test set, and the project's goal, drawn as
// horizontal lines on accuracy.png.
const (
	StudyAccuracy = 0.7535
	StudyIoU      = 0.5776
	GoalAccuracy  = 0.80
	GoalIoU       = 0.60
)

var (
	accuracyColor = color.NRGBA{31, 119, 180, 255}
	iouColor      = color.NRGBA{255, 127, 14, 255}
	mapColor      = color.NRGBA{148, 103, 189, 255}
	studyColor    = color.NRGBA{127, 127, 127, 255}
	goalColor     = color.NRGBA{44, 160, 44, 255}
	lossColors    = []color.NRGBA{ // RPN objectness, RPN box, RoI class, RoI box, total
		{31, 119, 180, 255}, {255, 127, 14, 255}, {148, 103, 189, 255},
		{140, 86, 75, 255}, {20, 20, 20, 255},
	}
	dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	dots   = []vg.Length{vg.Points(2), vg.Points(3)}
)

// Plot draws epochs into dir, which it creates if needed: losses.png, the
// four Faster R-CNN losses and their total a curve each, training solid and
// validation dashed; and accuracy.png, the study's accuracy and IoU on
// training (solid) and validation (dashed) images and the validation
// mAP@0.5 (dotted), with the study's figures and the goal as labelled
// horizontal lines. Both are PlotWidth×PlotHeight pixels and replace any
// earlier ones atomically. NaN figures are left out, so a run without
// validation draws only training curves; a single epoch draws as points.
// No epochs is an error.
func Plot(epochs []Epoch, dir string) error {
	if len(epochs) == 0 {
		return errors.New("history: no epochs to plot")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("history: %w", err)
	}

	losses, err := lossesPlot(epochs)
	if err != nil {
		return err
	}
	if err := savePlot(losses, filepath.Join(dir, "losses.png")); err != nil {
		return err
	}

	accuracy, err := accuracyPlot(epochs)
	if err != nil {
		return err
	}
	return savePlot(accuracy, filepath.Join(dir, "accuracy.png"))
}

// lossesPlot draws each loss of the training and validation splits.
func lossesPlot(epochs []Epoch) (*plot.Plot, error) {
	p := newPlot(epochs, "Losses per epoch", "loss")
	p.Y.Min = 0
	names := []string{"RPN objectness", "RPN box", "RoI class", "RoI box", "total"}
	pick := []func(Losses) float64{
		func(l Losses) float64 { return l.RPNObjectness },
		func(l Losses) float64 { return l.RPNBox },
		func(l Losses) float64 { return l.RoIClass },
		func(l Losses) float64 { return l.RoIBox },
		func(l Losses) float64 { return l.Total },
	}
	for i, name := range names {
		train := series(epochs, func(e Epoch) float64 { return pick[i](e.Train) })
		val := series(epochs, func(e Epoch) float64 { return pick[i](e.Val) })
		if err := addCurve(p, train, "train "+name, lossColors[i], nil); err != nil {
			return nil, err
		}
		if err := addCurve(p, val, "val "+name, lossColors[i], dashes); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// accuracyPlot draws accuracy, IoU and mAP@0.5 with the reference lines.
func accuracyPlot(epochs []Epoch) (*plot.Plot, error) {
	p := newPlot(epochs, "Accuracy and IoU per epoch", "")
	p.Y.Min, p.Y.Max = 0, 1.05
	p.Legend.Left, p.Legend.Top = false, false // bottom right, below the references

	curves := []struct {
		name   string
		value  func(Epoch) float64
		col    color.NRGBA
		dashes []vg.Length
	}{
		{"train accuracy", func(e Epoch) float64 { return e.TrainAccuracy }, accuracyColor, nil},
		{"val accuracy", func(e Epoch) float64 { return e.ValAccuracy }, accuracyColor, dashes},
		{"train IoU", func(e Epoch) float64 { return e.TrainIoU }, iouColor, nil},
		{"val IoU", func(e Epoch) float64 { return e.ValIoU }, iouColor, dashes},
		{"val mAP@0.5", func(e Epoch) float64 { return e.ValMAP50 }, mapColor, dots},
	}
	for _, c := range curves {
		if err := addCurve(p, series(epochs, c.value), c.name, c.col, c.dashes); err != nil {
			return nil, err
		}
	}

	// Study lines are labelled at the left, goal lines at the right, so that
	// the labels of 0.5776 and 0.60 do not overlap.
	refs := []struct {
		label string
		value float64
		col   color.NRGBA
		right bool
	}{
		{"study accuracy 0.7535", StudyAccuracy, studyColor, false},
		{"study IoU 0.5776", StudyIoU, studyColor, false},
		{"goal accuracy 0.80", GoalAccuracy, goalColor, true},
		{"goal IoU 0.60", GoalIoU, goalColor, true},
	}
	for _, r := range refs {
		if err := addReference(p, r.label, r.value, r.col, r.right); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// newPlot is a plot with epochs on the X axis, whole numbers only.
func newPlot(epochs []Epoch, title, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = yLabel
	p.Y.Tick.Marker = valueTicks{}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true

	lo, hi := epochs[0].Epoch, epochs[0].Epoch
	for _, e := range epochs {
		lo, hi = min(lo, e.Epoch), max(hi, e.Epoch)
	}
	p.X.Min, p.X.Max = float64(lo)-0.5, float64(hi)+0.5
	p.X.Tick.Marker = epochTicks{}
	return p
}

// epochTicks marks whole epochs, at most about ten of them.
type epochTicks struct{}

// Ticks implements plot.Ticker.
func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	first, last := int(math.Ceil(lo)), int(math.Floor(hi))
	step := max(1, (last-first+1+9)/10)
	var ticks []plot.Tick
	for v := first; v <= last; v++ {
		t := plot.Tick{Value: float64(v)}
		if (v-first)%step == 0 {
			t.Label = strconv.Itoa(v)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// valueTicks marks a value axis at about eight steps of 1, 2 or 5 times a
// power of ten, with a minor tick between them.
type valueTicks struct{}

// Ticks implements plot.Ticker.
func (valueTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	raw := (hi - lo) / 8
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*step >= raw {
			step *= m
			break
		}
	}
	prec := max(0, int(-math.Floor(math.Log10(step))))
	var ticks []plot.Tick
	for k := math.Ceil(lo / step * 2); k/2*step <= hi+step*1e-9; k++ {
		t := plot.Tick{Value: k / 2 * step}
		if math.Mod(k, 2) == 0 {
			t.Label = strconv.FormatFloat(t.Value, 'f', prec, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// series is the finite values of one figure, by epoch.
func series(epochs []Epoch, value func(Epoch) float64) plotter.XYs {
	var xys plotter.XYs
	for _, e := range epochs {
		v := value(e)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		xys = append(xys, plotter.XY{X: float64(e.Epoch), Y: v})
	}
	return xys
}

// addCurve draws xys as a line with points and a legend entry; an empty
// series is left out.
func addCurve(p *plot.Plot, xys plotter.XYs, name string, col color.NRGBA,
	dashes []vg.Length) error {
	if len(xys) == 0 {
		return nil
	}
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("history: plot %s: %w", name, err)
	}
	line.Color = col
	line.Width = vg.Points(1.5)
	line.Dashes = dashes
	points.Color = col
	points.Radius = vg.Points(2)
	points.Shape = draw.CircleGlyph{}
	p.Add(line, points)
	p.Legend.Add(name, line)
	return nil
}

// addReference draws a thin horizontal line at value across the X axis,
// with its label written just above it at one end.
func addReference(p *plot.Plot, label string, value float64, col color.NRGBA,
	right bool) error {
	xs := plotter.XYs{{X: p.X.Min, Y: value}, {X: p.X.Max, Y: value}}
	line, err := plotter.NewLine(xs)
	if err != nil {
		return fmt.Errorf("history: plot %s: %w", label, err)
	}
	line.Color = col
	line.Width = vg.Points(1)
	line.Dashes = []vg.Length{vg.Points(8), vg.Points(4)}
	p.Add(line)

	x := p.X.Min
	if right {
		x = p.X.Max
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{
		XYs:    plotter.XYs{{X: x, Y: value}},
		Labels: []string{label},
	})
	if err != nil {
		return fmt.Errorf("history: plot %s: %w", label, err)
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].Color = col
		labels.TextStyle[i].YAlign = draw.YBottom
		if right {
			labels.TextStyle[i].XAlign = draw.XRight
		}
	}
	labels.Offset = vg.Point{X: vg.Points(3), Y: vg.Points(1)}
	if right {
		labels.Offset.X = -labels.Offset.X
	}
	p.Add(labels)
	return nil
}

// savePlot draws p as a PlotWidth×PlotHeight PNG at path, atomically.
func savePlot(p *plot.Plot, path string) error {
	px := vg.Inch / plotDPI
	c := vgimg.NewWith(vgimg.UseWH(PlotWidth*px, PlotHeight*px), vgimg.UseDPI(plotDPI))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return fmt.Errorf("history: draw %s: %w", path, err)
	}
	return safefile.Write(path, buf.Bytes(), 0o644)
}
