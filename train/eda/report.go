package eda

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/maskwatch/maskwatch/models/safefile"
	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/progress"
)

// The files a report writes into its output folder, besides the figures.
const (
	ReportFile  = "report.html"
	SummaryFile = "summary.json"
)

//go:embed report.html.tmpl
var reportSource string

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"num": formatNumber,
}).Parse(reportSource))

// formatNumber prints a statistic with at most two decimals and no trailing zeros.
func formatNumber(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// WriteOptions say what WriteReport draws and where its progress goes.
type WriteOptions struct {
	// Samples is the number of sample images drawn a directory; 0 draws none.
	Samples int
	// JSON also writes summary.json.
	JSON bool
	// ProgressTo receives a progress bar while figures are drawn; nil draws none.
	ProgressTo io.Writer
}

// figureView is a Figure as the template shows it.
type figureView struct {
	Figure
	ID string
	// Src is the img element's src attribute. Base64 needs no escaping, and
	// writing it whole keeps html/template from writing each '+' as "&#43;".
	Src           template.HTMLAttr
	Width, Height int
}

type areaRow struct {
	Label string
	Stats Stats
	All   bool
}

// dirView is one directory as the template shows it.
type dirView struct {
	*DirSummary
	Slug        string
	ClassCounts []int
	LabelCounts []int
	AreaRows    []areaRow
	ProblemList []dataset.Problem
	Plain       *figureView
	Boxed       *figureView
	SampleFiles []string
}

type reportView struct {
	Summary  *Summary
	DirNames string
	Labels   []string
	Dirs     []dirView
	Figures  map[string]*figureView
	Samples  int
}

// WriteReport draws the figures of sets, summarised as s, and writes them into
// the folder out (created if missing): one PNG a figure, report.html with every
// figure embedded as a data: URI so that it opens offline, and summary.json
// when opt.JSON. Each file is written to a temporary name and renamed, and
// report.html comes last, so a failure never leaves a partial file behind.
func WriteReport(
	ctx context.Context, out string, sets []*dataset.Set, s *Summary, opt WriteOptions,
) error {
	if len(sets) == 0 {
		return errors.New("report: no data sets: read at least one directory")
	}
	if len(sets) != len(s.Dirs) {
		return fmt.Errorf("report: %d sets but %d directories in the summary; "+
			"summarise the same sets", len(sets), len(s.Dirs))
	}
	if opt.Samples < 0 {
		return fmt.Errorf("report: %d samples a directory; give 0 or more", opt.Samples)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("report folder: %w", err)
	}

	measures := make([]boxMeasures, len(sets))
	for i, set := range sets {
		measures[i] = measure(set)
	}
	view := newReportView(s, sets, opt.Samples)

	type step struct {
		key  string
		draw func() (Figure, error)
	}
	steps := []step{
		{"images", func() (Figure, error) { return imagesFigure(s) }},
		{"faces", func() (Figure, error) { return facesFigure(s) }},
		{"area", func() (Figure, error) { return areaFigure(s, measures) }},
		{"aspect", func() (Figure, error) { return aspectFigure(s, measures) }},
		{"relative", func() (Figure, error) { return relativeFigure(s, measures) }},
		{"sizes", func() (Figure, error) { return sizesFigure(s, sets) }},
	}
	total := len(steps)
	if opt.Samples > 0 {
		total += len(sets)
	}
	var bar *progress.Bar
	if opt.ProgressTo != nil {
		bar = progress.New(opt.ProgressTo, "draw", total, "fig")
		defer bar.Finish()
	}
	advance := func() {
		if bar != nil {
			bar.Add(1)
		}
	}

	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := st.draw()
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		fv, err := saveFigure(out, st.key, f)
		if err != nil {
			return err
		}
		view.Figures[st.key] = fv
		advance()
	}

	if opt.Samples > 0 {
		for i, set := range sets {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := drawSamples(out, set, &view.Dirs[i], opt.Samples); err != nil {
				return err
			}
			advance()
		}
	}

	if opt.JSON {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return fmt.Errorf("summary: %w", err)
		}
		if err := safefile.Write(filepath.Join(out, SummaryFile), append(b, '\n'), 0o644); err != nil {
			return err
		}
	}

	var page bytes.Buffer
	if err := reportTemplate.Execute(&page, view); err != nil {
		return fmt.Errorf("report page: %w", err)
	}
	return safefile.Write(filepath.Join(out, ReportFile), page.Bytes(), 0o644)
}

func newReportView(s *Summary, sets []*dataset.Set, samples int) *reportView {
	v := &reportView{
		Summary: s,
		Labels:  s.LabelNames(),
		Figures: map[string]*figureView{},
		Samples: samples,
	}
	names := make([]string, len(s.Dirs))
	for i := range s.Dirs {
		names[i] = s.Dirs[i].Name
	}
	v.DirNames = strings.Join(names, ", ")
	slugs := slugs(names)

	for i := range s.Dirs {
		d := &s.Dirs[i]
		dv := dirView{DirSummary: d, Slug: slugs[i]}
		for _, c := range s.Classes {
			dv.ClassCounts = append(dv.ClassCounts, d.Classes[c])
		}
		for _, l := range v.Labels {
			dv.LabelCounts = append(dv.LabelCounts, d.Labels[l])
		}
		for _, l := range d.LabelNames() {
			dv.AreaRows = append(dv.AreaRows, areaRow{Label: l, Stats: d.Area[l]})
		}
		dv.AreaRows = append(dv.AreaRows, areaRow{Label: "all", Stats: d.AreaAll, All: true})
		for _, p := range sets[i].Problems {
			p.Path = relativeTo(sets[i].Dir, p.Path)
			dv.ProblemList = append(dv.ProblemList, p)
		}
		v.Dirs = append(v.Dirs, dv)
	}
	return v
}

// drawSamples draws the sample grids of one directory, saves them and puts
// them in its view.
func drawSamples(out string, set *dataset.Set, dv *dirView, n int) error {
	picks := SamplePicks(n, len(set.Records))
	if len(picks) == 0 {
		return nil
	}
	plain, boxed := sampleGrids(set, picks)
	for _, i := range picks {
		dv.SampleFiles = append(dv.SampleFiles, relativeTo(set.Dir, set.Records[i].Path))
	}

	for _, g := range []struct {
		img   image.Image
		kind  string
		title string
		into  **figureView
	}{
		{plain, "samples", "Sample images of " + dv.Name, &dv.Plain},
		{boxed, "boxes", "The same samples with their boxes", &dv.Boxed},
	} {
		png, err := encodePNG(g.img)
		if err != nil {
			return fmt.Errorf("samples of %s: %w", set.Dir, err)
		}
		f := Figure{File: g.kind + "-" + dv.Slug + ".png", Title: g.title, PNG: png}
		fv, err := saveFigure(out, g.kind+"-"+dv.Slug, f)
		if err != nil {
			return err
		}
		*g.into = fv
	}
	return nil
}

// saveFigure writes the figure's PNG into out and returns its view.
func saveFigure(out, id string, f Figure) (*figureView, error) {
	cfg, err := pngSize(f.PNG)
	if err != nil {
		return nil, fmt.Errorf("figure %s: %w", f.File, err)
	}
	if err := safefile.Write(filepath.Join(out, f.File), f.PNG, 0o644); err != nil {
		return nil, err
	}
	return &figureView{
		Figure: f,
		ID:     id,
		Src: template.HTMLAttr(`src="data:image/png;base64,` +
			base64.StdEncoding.EncodeToString(f.PNG) + `"`),
		Width:  cfg.Width,
		Height: cfg.Height,
	}, nil
}

func pngSize(b []byte) (image.Config, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	return cfg, err
}

// relativeTo shortens path to its part below dir, when it lies below dir.
func relativeTo(dir, path string) string {
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}

// slugs turns names into unique file-name parts of letters, digits, '.', '_' and '-'.
func slugs(names []string) []string {
	out := make([]string, len(names))
	seen := map[string]bool{}
	for i, n := range names {
		s := strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
				r == '.', r == '_', r == '-':
				return r
			}
			return '-'
		}, n)
		s = strings.Trim(s, "-.")
		if s == "" {
			s = "dir"
		}
		base := s
		for k := 2; seen[s]; k++ {
			s = base + "-" + strconv.Itoa(k)
		}
		seen[s] = true
		out[i] = s
	}
	return out
}
