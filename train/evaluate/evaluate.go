// Package evaluate measures a face-mask detector on a labelled data set with
// the study's metrics (top-detection accuracy and IoU, mAP@0.5, COCO mAP) and
// writes what it found: a JSON line, a text table, the study's prediction.csv
// and sample images of truth beside prediction.
package evaluate

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // the data sets' images
	_ "image/png"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/progress"
)

// Detector finds faces in images. Detect returns one slice of detections an
// image, in the same order as imgs, each in that image's own pixels. Class
// is in the detector's numbering: class k is the data set's class k-1, and
// 0, the background, is never reported. BatchSize is the number of images
// Detect is best given at once; values below 1 mean 1.
type Detector interface {
	Detect(ctx context.Context, imgs []image.Image) ([][]box.Detection, error)
	BatchSize() int
}

// Options tune Run. The zero value draws no progress bar.
type Options struct {
	// Progress receives a progress bar over the images; nil draws none.
	Progress io.Writer
	// Workers decode images in parallel; 0 means runtime.NumCPU().
	Workers int
}

// MaxKept is the most detections a Prediction keeps: COCO's cap an image.
const MaxKept = 100

// Report is what Run measured. Classes are numbered as the data set numbers
// them (Set.Classes.Names), not as the detector does. A figure with nothing
// to measure, such as Accuracy over a set without faces, is NaN.
type Report struct {
	Source  string   // the data set evaluated: Set.Source
	Classes []string // class names; the detector's class k is Classes[k-1]
	Proper  int      // index into Classes of the proper class; -1 when there is none

	Images int // images evaluated
	// Labelled counts the images with at least one face, the denominator of
	// Accuracy and IoU; an image without faces only adds false positives to AP.
	Labelled int
	// Accuracy is the share of labelled images whose top detection has the
	// class of the face it overlaps most (the first face when it overlaps
	// none); an image without detections is wrong.
	Accuracy float64
	// IoU is the mean over labelled images of the top detection's IoU with
	// the face it overlaps most, 0 for an image without detections.
	IoU   float64
	MAP50 float64 // mean over classes with faces of the VOC AP at IoU above 0.5
	MAP   float64 // mean over classes with faces of COCO's AP at IoU 0.50:0.05:0.95

	PerClass []ClassResult // one for each of Classes
	// Confusion counts labelled images by true class (row, index into
	// Classes) and the top detection's class (column); the last column,
	// index len(Classes), counts images without detections.
	Confusion [][]int

	Seconds         float64 // wall time of Run: decoding, detecting and scoring
	DetectSeconds   float64 // time spent inside Detect
	ImagesPerSecond float64 // Images / Seconds

	Predictions []Prediction // one an image, in the set's order
}

// ClassResult is the AP of one class.
type ClassResult struct {
	Name  string
	Faces int     // ground-truth boxes of the class
	AP50  float64 // VOC AP at IoU above 0.5; NaN when the class has no faces
	AP    float64 // COCO AP at IoU 0.50:0.05:0.95; NaN when the class has no faces
}

// Prediction is what the detector made of one image.
type Prediction struct {
	Path          string
	Width, Height int              // the image size, in pixels
	Truth         []dataset.Object // the image's faces, as the set holds them
	// Detections are the detector's boxes, highest score first (NaN scores
	// last), at most MaxKept, with Class in the data set's numbering.
	Detections []box.Detection
	// Found is false when the detector found nothing; the top detection is
	// then Detections[0].
	Found bool
	// TrueClass is the class of the face the top detection overlaps most
	// (the first face when it overlaps none, or when nothing was found); -1
	// for an image without faces.
	TrueClass int
	IoU       float64 // of the top detection with that face; 0 when nothing was found
	Correct   bool    // the top detection's class is TrueClass
}

// Top returns the image's top detection, and false when there is none.
func (p *Prediction) Top() (box.Detection, bool) {
	if !p.Found {
		return box.Detection{}, false
	}
	return p.Detections[0], true
}

// Run decodes every image of set, has det detect faces in them, a batch of
// det.BatchSize() images at a time in the set's order, and scores the
// detections with box.Evaluator against the set's faces. Every image is
// evaluated, also one whose Record.Dropped shows faces the reader could not
// label: detections of those count as false positives.
//
// An image that cannot be opened or decoded (a file removed since the set
// was read, say), or whose size differs from its record's, is an error that
// names it, as is a detection of class 0 or of a class the set lacks, and a
// Detect that returns a different number of results than images. Run stops
// with ctx's error when ctx is cancelled.
func Run(ctx context.Context, det Detector, set *dataset.Set, opt Options) (*Report, error) {
	if det == nil || set == nil {
		return nil, errors.New("evaluate: no detector or no data set given")
	}
	start := time.Now()
	numClasses := len(set.Classes.Names)
	eval := box.NewEvaluator(numClasses + 1)
	rep := &Report{
		Source:      set.Source,
		Classes:     slices.Clone(set.Classes.Names),
		Proper:      set.Classes.Proper,
		Images:      len(set.Records),
		Predictions: make([]Prediction, 0, len(set.Records)),
	}
	if numClasses == 0 {
		rep.Proper = -1
	}
	slog.Info("evaluate: start", "source", set.Source, "images", len(set.Records),
		"classes", numClasses, "batch", det.BatchSize())

	var bar *progress.Bar
	if opt.Progress != nil {
		bar = progress.New(opt.Progress, "evaluate", len(set.Records), "img")
		defer bar.Finish()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := decodeBatches(ctx, set.Records, max(1, det.BatchSize()), opt.Workers)
	var gts []box.GroundTruth
	var scratch []box.Detection
	for b := range batches {
		if b.err != nil {
			return nil, b.err
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		t := time.Now()
		dets, err := det.Detect(ctx, b.imgs)
		rep.DetectSeconds += time.Since(t).Seconds()
		if err != nil {
			return nil, fmt.Errorf("evaluate: detect images %d to %d: %w",
				b.start+1, b.start+len(b.imgs), err)
		}
		if len(dets) != len(b.imgs) {
			return nil, fmt.Errorf("evaluate: the detector returned %d results for %d images",
				len(dets), len(b.imgs))
		}

		for i, d := range dets {
			rec := &set.Records[b.start+i]
			if err := checkClasses(rec.Path, d, numClasses); err != nil {
				return nil, err
			}
			gts = gts[:0]
			for _, o := range rec.Objects {
				gts = append(gts, box.GroundTruth{Box: o.Box, Class: o.Class + 1})
			}
			if err := eval.Add(d, gts); err != nil {
				return nil, fmt.Errorf("evaluate: %s: %w", rec.Path, err)
			}
			var p Prediction
			p, scratch = predict(rec, d, scratch)
			rep.Predictions = append(rep.Predictions, p)
		}
		if bar != nil {
			bar.Add(len(b.imgs))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}

	rep.fill(eval.Results())
	rep.Seconds = time.Since(start).Seconds()
	rep.ImagesPerSecond = math.NaN()
	if rep.Seconds > 0 {
		rep.ImagesPerSecond = float64(rep.Images) / rep.Seconds
	}
	slog.Info("evaluate: done", "source", set.Source, "images", rep.Images,
		"accuracy", rep.Accuracy, "iou", rep.IoU, "map50", rep.MAP50, "map", rep.MAP,
		"seconds", rep.Seconds, "images_per_second", rep.ImagesPerSecond)
	return rep, nil
}

// checkClasses reports a detection whose class is the background or one
// the set does not have.
func checkClasses(path string, dets []box.Detection, numClasses int) error {
	for _, d := range dets {
		if d.Class < 1 || d.Class > numClasses {
			return fmt.Errorf("evaluate: %s: the detector reported class %d; "+
				"it must report classes 1..%d (0 is the background)", path, d.Class, numClasses)
		}
	}
	return nil
}

// predict sums up one image's detections, which are in the detector's
// numbering; scratch is reused between calls.
func predict(rec *dataset.Record, dets, scratch []box.Detection) (Prediction, []box.Detection) {
	p := Prediction{
		Path: rec.Path, Width: rec.Width, Height: rec.Height,
		Truth: rec.Objects, TrueClass: -1,
	}
	scratch = append(scratch[:0], dets...)
	slices.SortStableFunc(scratch, func(a, b box.Detection) int {
		return byScore(a.Score, b.Score)
	})
	scratch = scratch[:min(len(scratch), MaxKept)]
	p.Detections = make([]box.Detection, len(scratch))
	for i, d := range scratch {
		d.Class--
		p.Detections[i] = d
	}
	p.Found = len(p.Detections) > 0

	if len(rec.Objects) == 0 {
		return p, scratch
	}
	p.TrueClass = rec.Objects[0].Class
	if !p.Found {
		return p, scratch
	}
	top := p.Detections[0]
	for _, o := range rec.Objects {
		if v := box.IoU(top.Box, o.Box); v > p.IoU {
			p.IoU, p.TrueClass = v, o.Class
		}
	}
	p.Correct = top.Class == p.TrueClass
	return p, scratch
}

// byScore orders scores highest first and NaN last, as box.Evaluator picks
// an image's top detection.
func byScore(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	case math.IsNaN(a) && !math.IsNaN(b):
		return 1
	case math.IsNaN(b) && !math.IsNaN(a):
		return -1
	}
	return 0
}

// fill copies the evaluator's results, turning its detector numbering
// (0 the background) into the data set's.
func (r *Report) fill(res box.Results) {
	r.Labelled = res.Images
	r.Accuracy, r.IoU = res.Accuracy, res.MeanIoU
	r.MAP50, r.MAP = res.MAP50, res.MAP
	n := len(r.Classes)
	r.PerClass = make([]ClassResult, n)
	r.Confusion = make([][]int, n)
	for c := range n {
		r.PerClass[c] = ClassResult{
			Name:  r.Classes[c],
			Faces: res.GroundTruths[c+1],
			AP50:  res.AP50[c+1],
			AP:    res.AP[c+1],
		}
		// Column 0, the background, stays empty: Run refuses class 0.
		r.Confusion[c] = slices.Clone(res.Confusion[c+1][1:])
	}
}

// batch is a run of decoded images starting at record start, or the error
// that stopped decoding.
type batch struct {
	start int
	imgs  []image.Image
	err   error
}

// decodeBatches decodes records in batches of size on a goroutine, workers
// images at a time, one batch ahead of the caller. The channel closes after
// the last batch, after an error, or when ctx is done.
func decodeBatches(ctx context.Context, recs []dataset.Record, size, workers int) <-chan batch {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	out := make(chan batch, 1)
	go func() {
		defer close(out)
		for start := 0; start < len(recs); start += size {
			b := batch{start: start, imgs: make([]image.Image, min(size, len(recs)-start))}
			b.err = decodeAll(recs[start:start+len(b.imgs)], b.imgs, workers)
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	return out
}

// decodeAll decodes recs into imgs with up to workers goroutines and
// returns the first error in record order.
func decodeAll(recs []dataset.Record, imgs []image.Image, workers int) error {
	errs := make([]error, len(recs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(recs)) {
		wg.Go(func() {
			for i := range next {
				imgs[i], errs[i] = decodeRecord(&recs[i])
			}
		})
	}
	for i := range recs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeRecord decodes a record's image and checks its size.
func decodeRecord(rec *dataset.Record) (image.Image, error) {
	img, err := decodeFile(rec.Path)
	if err != nil {
		return nil, err
	}
	if b := img.Bounds(); b.Dx() != rec.Width || b.Dy() != rec.Height {
		return nil, fmt.Errorf("evaluate: image %s is %dx%d, but the data set read it as "+
			"%dx%d; read the data set again", rec.Path, b.Dx(), b.Dy(), rec.Width, rec.Height)
	}
	return img, nil
}

// decodeFile decodes the image at path with the standard decoders.
func decodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("evaluate: image %s: %w", path, err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("evaluate: image %s: %w", path, err)
	}
	return img, nil
}
