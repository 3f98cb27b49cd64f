package dataset

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/maskwatch/maskwatch/models/box"
)

// The largest image a reader decodes, in pixels and in bytes on disk; a larger
// one is a Problem, so that a corrupt or hostile file cannot exhaust memory.
const (
	MaxPixels     = 1 << 26   // width times height: 8192 x 8192
	MaxImageBytes = 256 << 20 // the file's size
)

// roundingSlack is how far, in pixels, a box may run past its image's edge and
// still count as the source's rounding rather than a box that needs clipping.
const roundingSlack = 1.0

// ProblemError is the error a reader returns in strict mode: the first Problem,
// in path order, of the set. Use errors.As to get it.
type ProblemError struct {
	Problem Problem
}

// Error returns the problem's path and reason.
func (e *ProblemError) Error() string {
	return e.Problem.Path + ": " + e.Problem.Reason
}

// imageExts are the extensions of the images a reader decodes.
var imageExts = []string{".jpg", ".jpeg", ".png"}

// isImageName reports whether name has one of imageExts, in any case.
func isImageName(name string) bool {
	return slices.Contains(imageExts, strings.ToLower(filepath.Ext(name)))
}

// pending is a record before its image is decoded and its boxes checked.
type pending struct {
	path    string // the image file
	objects []pendingObject
	// annWidth, annHeight are the size the annotation states; 0 when it states none.
	annWidth, annHeight float64
	// whole marks a record that is its one face (file-name format): if the face
	// is dropped the record goes with it rather than stand as an image of no faces.
	whole bool
	// lost counts the faces dropped so far; faces is how many the source gave,
	// set by lookupLabels.
	faces, lost int
}

// pendingObject is one labelled box as the source wrote it.
type pendingObject struct {
	box   box.Box
	label string
	class int
	what  string // how a Problem names the box: "object 3", "annotation 17"
}

// builder collects a set's records and problems, whatever the format.
type builder struct {
	set     *Set
	opt     Options
	pending []pending
}

func newBuilder(dir, source string, format Format, opt Options) *builder {
	opt.Classes = opt.Classes.orDefault()
	return &builder{
		set: &Set{Dir: dir, Source: source, Format: format, Classes: opt.Classes},
		opt: opt,
	}
}

// problem lists a problem with path.
func (b *builder) problem(path, format string, args ...any) {
	b.set.Problems = append(b.set.Problems,
		Problem{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// add queues a record to be read.
func (b *builder) add(p pending) {
	b.pending = append(b.pending, p)
}

// lookupLabels gives each queued box its class. A box whose label has no class
// is dropped; a whole record that loses its face is dropped with it.
func (b *builder) lookupLabels() {
	queued := b.pending[:0]
	for _, p := range b.pending {
		p.faces = p.lost + len(p.objects)
		kept := make([]pendingObject, 0, len(p.objects))
		for _, po := range p.objects {
			class, ok := b.set.Classes.Lookup(po.label)
			if !ok {
				reason := b.set.Classes.unknown(po.label)
				if p.whole {
					b.problem(p.path, "%s; the image is not read", reason)
				} else {
					b.problem(p.path, "%s: %s; box dropped", po.what, reason)
				}
				p.lost++
				continue
			}
			po.class = class
			kept = append(kept, po)
		}
		p.objects = kept
		if p.whole && len(p.objects) == 0 {
			continue
		}
		queued = append(queued, p)
	}
	b.pending = queued
}

// strictError returns the first problem, in path order, when the options are strict.
func (b *builder) strictError() error {
	if !b.opt.Strict || len(b.set.Problems) == 0 {
		return nil
	}
	sortProblems(b.set.Problems)
	return fmt.Errorf("strict read of %s: %w", b.set.Source, &ProblemError{b.set.Problems[0]})
}

// finish decodes every queued image, checks every box against its image and
// returns the set, or in strict mode its first problem in path order. (Strict
// mode reads the whole set first, so that the error does not depend on timing.)
func (b *builder) finish() (*Set, error) {
	b.lookupLabels()

	paths := make([]string, len(b.pending))
	for i, p := range b.pending {
		paths[i] = p.path
	}
	infos := decodeImages(paths, b.opt.Workers, b.opt.Progress)

	for i, p := range b.pending {
		if rec, ok := b.check(p, infos[i]); ok {
			b.set.Records = append(b.set.Records, rec)
		}
	}
	slices.SortFunc(b.set.Records, func(x, y Record) int { return cmp.Compare(x.Path, y.Path) })
	sortProblems(b.set.Problems)

	if err := b.strictError(); err != nil {
		return nil, err
	}
	return b.set, nil
}

// check turns a queued record into a Record, listing what it drops or mends.
func (b *builder) check(p pending, info imageInfo) (Record, bool) {
	if info.err != nil {
		b.problem(p.path, "%v; the image and its %s are not read", info.err, faces(p.faces))
		return Record{}, false
	}
	w, h := info.width, info.height
	if p.annWidth > 0 || p.annHeight > 0 {
		if p.annWidth != float64(w) || p.annHeight != float64(h) {
			b.problem(p.path, "annotation gives size %gx%g but the image is %dx%d; "+
				"boxes kept and checked against the image", p.annWidth, p.annHeight, w, h)
		}
	}

	rec := Record{Path: p.path, Width: w, Height: h, Objects: make([]Object, 0, len(p.objects))}
	for _, po := range p.objects {
		fit, how := fitBox(po.box, w, h)
		switch how {
		case boxDropped:
			if p.whole {
				b.problem(p.path, "%s: box %s %s; the image is not read",
					po.what, formatBox(po.box), fit.reason)
				return Record{}, false
			}
			b.problem(p.path, "%s: box %s %s; box dropped", po.what, formatBox(po.box), fit.reason)
			p.lost++
			continue
		case boxClipped:
			b.set.Clipped++
			b.problem(p.path, "%s: box %s runs past the %dx%d image; clipped to %s",
				po.what, formatBox(po.box), w, h, formatBox(fit.box))
		case boxRounded:
			b.set.Rounded++
		}
		rec.Objects = append(rec.Objects, Object{
			Box: fit.box, Class: po.class, Source: po.label, Clipped: how == boxClipped,
		})
	}

	rec.Dropped = p.lost
	if p.lost > 0 {
		b.problem(p.path, "image kept with %d of its %s; the dropped faces are unlabelled in it",
			p.faces-p.lost, faces(p.faces))
	}
	return rec, true
}

// faces says "1 face" or "n faces".
func faces(n int) string {
	if n == 1 {
		return "1 face"
	}
	return strconv.Itoa(n) + " faces"
}

// boxFit says what fitBox did with a box.
type boxFit int

const (
	boxInside  boxFit = iota // wholly inside the image
	boxRounded               // past the edge by at most roundingSlack; cut to the image
	boxClipped               // partly outside; cut to the image
	boxDropped               // unusable: not finite, no area or wholly outside
)

type fitted struct {
	box    box.Box
	reason string // why a box was dropped
}

// fitBox checks b against a w x h image and cuts it to the image when it runs past.
func fitBox(b box.Box, w, h int) (fitted, boxFit) {
	for _, v := range [...]float64{b.X1, b.Y1, b.X2, b.Y2} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fitted{reason: "has a coordinate that is not a finite number"},
				boxDropped
		}
	}
	if b.Empty() {
		return fitted{reason: fmt.Sprintf("has zero or negative size (%g x %g)",
			b.Width(), b.Height())}, boxDropped
	}
	in := b.Clip(float64(w), float64(h))
	if in.Empty() {
		return fitted{reason: fmt.Sprintf("lies wholly outside the %dx%d image",
			w, h)}, boxDropped
	}
	if in == b {
		return fitted{box: b}, boxInside
	}

	over := max(-b.X1, -b.Y1, b.X2-float64(w), b.Y2-float64(h))
	if over <= roundingSlack {
		return fitted{box: in}, boxRounded
	}
	return fitted{box: in}, boxClipped
}

// formatBox writes a box as [x1, y1, x2, y2].
func formatBox(b box.Box) string {
	return fmt.Sprintf("[%g, %g, %g, %g]", b.X1, b.Y1, b.X2, b.Y2)
}

// sortProblems orders problems by path, keeping the order of each file's problems.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(x, y Problem) int { return cmp.Compare(x.Path, y.Path) })
}

// imageInfo is the outcome of decoding one image.
type imageInfo struct {
	width, height int
	err           error
}

// decodeImages decodes every image fully with workers goroutines (0 means one a
// CPU), calling progress, if set, after each one from the calling goroutine.
func decodeImages(paths []string, workers int, progress func(done, total int)) []imageInfo {
	total := len(paths)
	out := make([]imageInfo, total)
	if total == 0 {
		return out
	}
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	workers = min(workers, total)

	jobs := make(chan int)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				out[i] = decodeImage(paths[i])
				done <- struct{}{}
			}
		})
	}
	go func() {
		for i := range total {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		close(done)
	}()

	n := 0
	for range done {
		n++
		if progress != nil {
			progress(n, total)
		}
	}
	return out
}

// decodeImage reads and fully decodes a JPEG or PNG file, so that a truncated or
// corrupt file is caught here rather than in training.
func decodeImage(path string) (info imageInfo) {
	defer func() {
		if r := recover(); r != nil {
			info = imageInfo{err: fmt.Errorf("image decoder failed: %v", r)}
		}
	}()

	if st, err := os.Stat(path); err == nil && st.Size() > MaxImageBytes {
		return imageInfo{err: fmt.Errorf("image file is %d bytes; a reader takes at most %d",
			st.Size(), MaxImageBytes)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return imageInfo{err: fmt.Errorf("cannot read image: %w", err)}
	}

	var codec imageCodec
	switch {
	case bytes.HasPrefix(data, []byte("\xff\xd8")):
		codec = imageCodec{jpeg.DecodeConfig, jpeg.Decode}
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		codec = imageCodec{png.DecodeConfig, png.Decode}
	case len(data) == 0:
		return imageInfo{err: errors.New("not an image: the file is empty")}
	default:
		return imageInfo{err: errors.New("not an image: the file is neither JPEG nor PNG")}
	}

	cfg, err := codec.config(bytes.NewReader(data))
	if err != nil {
		return imageInfo{err: fmt.Errorf("cannot decode image header: %w", err)}
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return imageInfo{err: fmt.Errorf("image is %dx%d; a reader takes 1 to %d pixels",
			cfg.Width, cfg.Height, MaxPixels)}
	}
	img, err := codec.decode(bytes.NewReader(data))
	if err != nil {
		return imageInfo{err: fmt.Errorf("cannot decode image (truncated or corrupt?): %w", err)}
	}
	r := img.Bounds()
	return imageInfo{width: r.Dx(), height: r.Dy()}
}

// imageCodec is one of the standard library's image decoders.
type imageCodec struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}
