package eda

import (
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/maskwatch/maskwatch/train/dataset"
)

// Summary is what the report says about a group of data sets, in the form
// written to summary.json.
type Summary struct {
	// Classes are the model's class names, in index order.
	Classes []string `json:"classes"`
	// Proper is the class drawn green in the report, "" when there is none.
	Proper string `json:"proper_class,omitempty"`
	// Dirs has one entry per data set, in the order they were read.
	Dirs []DirSummary `json:"dirs"`
}

// DirSummary describes one data set directory.
type DirSummary struct {
	// Name is a short name unique among the report's directories
	// ("proper-mask/train"): the last path elements that tell them apart.
	Name   string         `json:"name"`
	Path   string         `json:"path"`
	Format dataset.Format `json:"format"`
	Images int            `json:"images"`
	// EmptyImages counts images without any face.
	EmptyImages int `json:"empty_images"`
	Boxes       int `json:"boxes"`
	// Labels counts faces per label as the data set wrote it ("True", "with_mask").
	Labels map[string]int `json:"labels"`
	// Classes counts faces per model class name.
	Classes map[string]int `json:"classes"`
	// Area describes box areas in square pixels per label; AreaAll over all labels.
	Area    map[string]Stats `json:"area"`
	AreaAll Stats            `json:"area_all"`
	// Aspect describes box width over height.
	Aspect Stats `json:"aspect"`
	// RelativeSize describes sqrt(box area / image area): the box side as a
	// fraction of the image side.
	RelativeSize Stats `json:"relative_size"`
	ImageWidth   Stats `json:"image_width"`
	ImageHeight  Stats `json:"image_height"`
	// Problems counts the files, or parts of them, the reader dropped or mended;
	// Clipped counts the boxes cut to their image, which are among the Problems;
	// Rounded counts boxes past the image by at most a pixel, cut without a Problem.
	Problems int `json:"problems"`
	Clipped  int `json:"clipped"`
	Rounded  int `json:"rounded"`
}

// LabelNames returns the directory's labels in sorted order.
func (d *DirSummary) LabelNames() []string {
	names := make([]string, 0, len(d.Labels))
	for l := range d.Labels {
		names = append(names, l)
	}
	slices.Sort(names)
	return names
}

// Records counts the images of every directory.
func (s *Summary) Records() int {
	n := 0
	for _, d := range s.Dirs {
		n += d.Images
	}
	return n
}

// Boxes counts the faces of every directory.
func (s *Summary) Boxes() int {
	n := 0
	for _, d := range s.Dirs {
		n += d.Boxes
	}
	return n
}

// LabelNames returns the labels found in any directory, in sorted order.
func (s *Summary) LabelNames() []string {
	var names []string
	for i := range s.Dirs {
		for _, l := range s.Dirs[i].LabelNames() {
			if !slices.Contains(names, l) {
				names = append(names, l)
			}
		}
	}
	slices.Sort(names)
	return names
}

// Summarize computes the Summary of sets. The class names are those of the
// first set; every set read with the same Options shares them.
func Summarize(sets []*dataset.Set) *Summary {
	s := &Summary{Dirs: make([]DirSummary, 0, len(sets))}
	if len(sets) > 0 {
		cm := sets[0].Classes
		s.Classes = slices.Clone(cm.Names)
		if cm.Proper >= 0 && cm.Proper < len(cm.Names) {
			s.Proper = cm.Names[cm.Proper]
		}
	}

	dirs := make([]string, len(sets))
	for i, set := range sets {
		dirs[i] = set.Dir
	}
	names := ShortNames(dirs)
	for i, set := range sets {
		d := summarizeSet(set)
		d.Name = names[i]
		s.Dirs = append(s.Dirs, d)
	}
	return s
}

// boxMeasures are the per-box numbers of one set, per label, kept for the
// histograms.
type boxMeasures struct {
	area     map[string][]float64 // square pixels
	aspect   map[string][]float64 // width / height
	relative map[string][]float64 // sqrt(box area / image area)
}

func measure(set *dataset.Set) boxMeasures {
	m := boxMeasures{
		area:     map[string][]float64{},
		aspect:   map[string][]float64{},
		relative: map[string][]float64{},
	}
	for _, r := range set.Records {
		imageArea := float64(r.Width) * float64(r.Height)
		for _, o := range r.Objects {
			a := o.Box.Area()
			m.area[o.Source] = append(m.area[o.Source], a)
			if w, h := o.Box.Width(), o.Box.Height(); w > 0 && h > 0 {
				m.aspect[o.Source] = append(m.aspect[o.Source], w/h)
			}
			if imageArea > 0 {
				m.relative[o.Source] = append(m.relative[o.Source], math.Sqrt(a/imageArea))
			}
		}
	}
	return m
}

// concat joins the values of every label.
func concat(perLabel map[string][]float64) []float64 {
	var all []float64
	for _, v := range perLabel {
		all = append(all, v...)
	}
	return all
}

func summarizeSet(set *dataset.Set) DirSummary {
	d := DirSummary{
		Path:     set.Dir,
		Format:   set.Format,
		Images:   len(set.Records),
		Labels:   map[string]int{},
		Classes:  map[string]int{},
		Area:     map[string]Stats{},
		Problems: len(set.Problems),
		Clipped:  set.Clipped,
		Rounded:  set.Rounded,
	}

	widths := make([]float64, 0, len(set.Records))
	heights := make([]float64, 0, len(set.Records))
	for _, r := range set.Records {
		widths = append(widths, float64(r.Width))
		heights = append(heights, float64(r.Height))
		if len(r.Objects) == 0 {
			d.EmptyImages++
		}
		for _, o := range r.Objects {
			d.Boxes++
			d.Labels[o.Source]++
			d.Classes[className(set.Classes, o.Class)]++
		}
	}
	d.ImageWidth = Describe(widths)
	d.ImageHeight = Describe(heights)

	m := measure(set)
	for label, areas := range m.area {
		d.Area[label] = Describe(areas)
	}
	d.AreaAll = Describe(concat(m.area))
	d.Aspect = Describe(concat(m.aspect))
	d.RelativeSize = Describe(concat(m.relative))
	return d
}

// className names class index c, or gives its number when the map lacks it.
func className(cm dataset.ClassMap, c int) string {
	if c >= 0 && c < len(cm.Names) {
		return cm.Names[c]
	}
	return "class " + strconv.Itoa(c)
}

// ShortNames gives each directory the fewest trailing path elements (at least
// two where the path has them) that make the names unique, joined with "/".
// Identical paths get a "#2", "#3" suffix.
func ShortNames(dirs []string) []string {
	parts := make([][]string, len(dirs))
	longest := 0
	for i, d := range dirs {
		clean := filepath.ToSlash(filepath.Clean(d))
		parts[i] = strings.FieldsFunc(clean, func(r rune) bool { return r == '/' })
		longest = max(longest, len(parts[i]))
	}

	tail := func(k int) []string {
		names := make([]string, len(parts))
		for i, p := range parts {
			names[i] = strings.Join(p[max(0, len(p)-k):], "/")
			if names[i] == "" {
				names[i] = "."
			}
		}
		return names
	}
	names := tail(2)
	for k := 3; k <= longest && !unique(names); k++ {
		if longer := tail(k); unique(longer) {
			names = longer
		}
	}

	seen := map[string]int{}
	for i, n := range names {
		seen[n]++
		if seen[n] > 1 {
			names[i] = n + "#" + strconv.Itoa(seen[n])
		}
	}
	return names
}

func unique(names []string) bool {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return false
		}
		seen[n] = true
	}
	return true
}
