package eda

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"image/jpeg"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// figuresPerReport counts the figures drawn once a report, besides the two
// sample grids a directory.
const figuresPerReport = 6

// TestReportOnSharedData writes the report of both shared data sets, once
// through Run and once through the masktrain binary, and checks summary.json
// against counts taken straight from the files, the report's figures, and
// that every image of the report loads in headless Chromium.
func TestReportOnSharedData(t *testing.T) {
	roots := []string{fixture.Path(t, "proper-mask"), fixture.Path(t, "facemask")}
	want := countShared(t, roots)

	t.Run("package", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "eda")
		s, err := Run(context.Background(), Config{
			Data:    roots,
			Out:     out,
			Read:    dataset.Options{Classes: dataset.TwoClass()},
			Samples: 8,
			JSON:    true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if s.Records() != want.images() {
			t.Errorf("Run's summary has %d records, want %d", s.Records(), want.images())
		}
		checkSummaryFile(t, out, want)
		checkReportFile(t, out, want)
		checkInBrowser(t, filepath.Join(out, ReportFile), figuresPerReport+2*len(want))
	})

	t.Run("binary", func(t *testing.T) {
		bin := buildMasktrain(t)
		version, err := exec.Command(bin, "--version").Output()
		if err != nil || strings.TrimSpace(string(version)) != "masktrain e2e-test" {
			t.Errorf("masktrain --version = %q, %v; want the stamped e2e-test", version, err)
		}

		out := filepath.Join(t.TempDir(), "new", "eda")
		args := []string{"eda", "--out", out, "--json", "--samples", "4"}
		for _, r := range roots {
			args = append(args, "--data", r)
		}
		cmd := exec.Command(bin, args...)
		log, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("masktrain %s: %v\n%s", strings.Join(args, " "), err, log)
		}
		for _, line := range []string{"eda: start", "eda: done",
			"records=" + strconv.Itoa(want.images()), "read proper-mask", "draw ["} {
			if !strings.Contains(string(log), line) {
				t.Errorf("masktrain's log lacks %q:\n%s", line, log)
			}
		}
		checkSummaryFile(t, out, want)
		checkReportFile(t, out, want)
	})
}

// dirCounts is what the test itself reads from one directory's files.
type dirCounts struct {
	format string
	images int
	labels map[string]int
	areas  map[string][]float64
}

type sharedCounts map[string]*dirCounts // by directory path

func (c sharedCounts) images() int {
	n := 0
	for _, d := range c {
		n += d.images
	}
	return n
}

// properMaskName is the file-name format, read here independently of the readers.
var properMaskName = regexp.MustCompile(`^\d+__\[(\d+), (\d+), (\d+), (\d+)\]__(True|False)\.jpg$`)

// countShared counts the images, labels and box areas of every split below roots.
func countShared(t *testing.T, roots []string) sharedCounts {
	t.Helper()
	counts := sharedCounts{}
	for _, root := range roots {
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			dir := filepath.Join(root, e.Name())
			if _, err := os.Stat(filepath.Join(dir, "annotations")); err == nil {
				counts[dir] = countVOC(t, dir)
			} else {
				counts[dir] = countFileNames(t, dir)
			}
		}
	}
	if len(counts) != 4 {
		t.Fatalf("found %d splits below %v, want proper-mask's and facemask's 4", len(counts), roots)
	}
	return counts
}

func countFileNames(t *testing.T, dir string) *dirCounts {
	t.Helper()
	c := &dirCounts{format: "filename", labels: map[string]int{}, areas: map[string][]float64{}}
	names, err := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		m := properMaskName.FindStringSubmatch(filepath.Base(name))
		if m == nil {
			t.Fatalf("%s is not in the ID__[x, y, w, h]__True.jpg format", name)
		}
		var v [4]float64
		for i := range v {
			v[i], _ = strconv.ParseFloat(m[1+i], 64)
		}
		c.images++
		c.labels[m[5]]++
		c.areas[m[5]] = append(c.areas[m[5]],
			areaInImage(t, name, v[0], v[1], v[0]+v[2], v[1]+v[3]))
	}
	return c
}

func countVOC(t *testing.T, dir string) *dirCounts {
	t.Helper()
	c := &dirCounts{format: "voc", labels: map[string]int{}, areas: map[string][]float64{}}
	names, err := filepath.Glob(filepath.Join(dir, "annotations", "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var ann struct {
			Objects []struct {
				Name string `xml:"name"`
				Box  struct {
					XMin float64 `xml:"xmin"`
					YMin float64 `xml:"ymin"`
					XMax float64 `xml:"xmax"`
					YMax float64 `xml:"ymax"`
				} `xml:"bndbox"`
			} `xml:"object"`
		}
		if err := xml.Unmarshal(b, &ann); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.images++
		img := filepath.Join(dir, "images", strings.TrimSuffix(filepath.Base(name), ".xml")+".jpg")
		for _, o := range ann.Objects {
			c.labels[o.Name]++
			b := o.Box
			c.areas[o.Name] = append(c.areas[o.Name],
				areaInImage(t, img, b.XMin, b.YMin, b.XMax, b.YMax))
		}
	}
	return c
}

// areaInImage is the area of the box x1, y1, x2, y2 within the image at path:
// the readers cut a box that runs past its image by a pixel of rounding.
func areaInImage(t *testing.T, path string, x1, y1, x2, y2 float64) float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := jpeg.DecodeConfig(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	w := min(x2, float64(cfg.Width)) - max(x1, 0)
	h := min(y2, float64(cfg.Height)) - max(y1, 0)
	return max(w, 0) * max(h, 0)
}

// checkSummaryFile compares out/summary.json with the test's own counts.
func checkSummaryFile(t *testing.T, out string, want sharedCounts) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	type stats struct {
		Count          int
		Min, Max, Mean float64
	}
	var got struct {
		Classes []string `json:"classes"`
		Dirs    []struct {
			Path     string           `json:"path"`
			Format   string           `json:"format"`
			Images   int              `json:"images"`
			Boxes    int              `json:"boxes"`
			Labels   map[string]int   `json:"labels"`
			Classes  map[string]int   `json:"classes"`
			Area     map[string]stats `json:"area"`
			AreaAll  stats            `json:"area_all"`
			Problems *int             `json:"problems"`
		} `json:"dirs"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if !slices.Equal(got.Classes, []string{"proper", "not_proper"}) {
		t.Errorf("summary.json classes %v, want the two-class map's", got.Classes)
	}
	if len(got.Dirs) != len(want) {
		t.Errorf("summary.json has %d directories, want %d", len(got.Dirs), len(want))
	}

	for _, d := range got.Dirs {
		w, ok := want[d.Path]
		if !ok {
			t.Errorf("summary.json has a directory %s the test did not count", d.Path)
			continue
		}
		boxes := 0
		for _, n := range w.labels {
			boxes += n
		}
		if d.Format != w.format || d.Images != w.images || d.Boxes != boxes ||
			d.AreaAll.Count != boxes || d.Problems == nil {
			t.Errorf("%s: format %q, %d images, %d boxes (%d areas), problems %v; "+
				"want %q, %d images, %d boxes and a problem count",
				d.Path, d.Format, d.Images, d.Boxes, d.AreaAll.Count, d.Problems,
				w.format, w.images, boxes)
		}
		checkCounts(t, d.Path+" labels", d.Labels, w.labels)
		proper := w.labels["True"] + w.labels["with_mask"]
		checkCounts(t, d.Path+" classes", d.Classes,
			map[string]int{"proper": proper, "not_proper": boxes - proper})

		for label, areas := range w.areas {
			a := d.Area[label]
			mean := 0.0
			for _, v := range areas {
				mean += v
			}
			mean /= float64(len(areas))
			if a.Count != len(areas) || a.Min != slices.Min(areas) ||
				a.Max != slices.Max(areas) || math.Abs(a.Mean-mean) > 1e-6*mean {
				t.Errorf("%s area of %s = %+v; want count %d, min %g, max %g, mean %g",
					d.Path, label, a, len(areas), slices.Min(areas), slices.Max(areas), mean)
			}
		}
	}
}

// checkReportFile checks that report.html embeds every PNG written beside it
// and has a problem section for every directory.
func checkReportFile(t *testing.T, out string, want sharedCounts) {
	t.Helper()
	page, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	doc := html.UnescapeString(string(page))

	pngs, err := filepath.Glob(filepath.Join(out, "*.png"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pngs) != figuresPerReport+2*len(want) {
		t.Errorf("%d PNG files in %s, want %d", len(pngs), out, figuresPerReport+2*len(want))
	}
	for _, p := range pngs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		uri := "data:image/png;base64," + base64.StdEncoding.EncodeToString(b)
		if !strings.Contains(doc, uri) {
			t.Errorf("report.html does not embed %s as a data: URI", filepath.Base(p))
		}
	}
	if n := strings.Count(doc, `src="data:image/png;base64,`); n != len(pngs) {
		t.Errorf("report.html embeds %d images, want one a PNG file: %d", n, len(pngs))
	}

	if !strings.Contains(doc, `<h2 id="problems">`) {
		t.Error("report.html has no problem section")
	}
	for _, slug := range []string{"proper-mask-test", "proper-mask-train",
		"facemask-train", "facemask-val"} {
		if !strings.Contains(doc, fmt.Sprintf(`<h3 id="problems-%s">`, slug)) {
			t.Errorf("report.html's problem section lacks %s", slug)
		}
	}
	if strings.Contains(doc, "http://") || strings.Contains(doc, "https://") {
		t.Error("report.html links to the network; it must open offline")
	}
}

// buildMasktrain builds the masktrain command, version-stamped, into a
// temporary folder.
func buildMasktrain(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "masktrain")
	cmd := exec.Command(goTool, "build", "-ldflags", "-X main.version=e2e-test", "-o", bin,
		"github.com/maskwatch/maskwatch/cmd/masktrain")
	if log, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build masktrain: %v\n%s", err, log)
	}
	return bin
}

// pageCheck is what the script in checkInBrowser reports.
type pageCheck struct {
	Images   int      `json:"images"`
	Broken   []string `json:"broken"`
	Fetched  []string `json:"fetched"`
	Problems bool     `json:"problems"`
}

const pageCheckScript = `(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  return {
    images: imgs.length,
    broken: imgs.filter(img => !(img.complete && img.naturalWidth > 0))
      .map(img => img.alt + " (" + img.src.slice(0, 40) + "...)"),
    fetched: performance.getEntriesByType("resource").map(e => e.name)
      .filter(n => !n.startsWith("data:")),
    problems: document.getElementById("problems") !== null,
  };
})()`

// checkInBrowser opens the report in headless Chromium and checks that every
// image loaded and nothing was fetched.
func checkInBrowser(t *testing.T, report string, minImages int) {
	t.Helper()

	browser := fixture.Browser(t, 60*time.Second)

	abs, err := filepath.Abs(report)
	if err != nil {
		t.Fatal(err)
	}
	page := (&url.URL{Scheme: "file", Path: abs}).String()
	if err := chromedp.Do(browser, chromedp.Navigate(page)); err != nil {
		t.Fatalf("open %s in headless Chromium: %v", page, err)
	}
	got, err := chromedp.Run(browser,
		chromedp.Evaluate[pageCheck](pageCheckScript, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("check the images of %s in headless Chromium: %v", page, err)
	}
	if len(got.Broken) > 0 {
		t.Errorf("%d of %d images did not load: %s",
			len(got.Broken), got.Images, strings.Join(got.Broken, "; "))
	}
	if got.Images < minImages {
		t.Errorf("the page shows %d images, want at least %d", got.Images, minImages)
	}
	if len(got.Fetched) > 0 {
		t.Errorf("the page fetched %v; it must need nothing beside itself", got.Fetched)
	}
	if !got.Problems {
		t.Error("the page has no element with id problems")
	}
}
