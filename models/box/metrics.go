package box

import (
	"fmt"
	"math"
	"slices"
)

// Detection is one box a detector reports.
type Detection struct {
	Box Box
	// Class is the class index; with the detector's numbering 0 is the
	// background and never reported.
	Class int
	// Score is the class probability, higher is surer.
	Score float64
}

// GroundTruth is one labelled box of an image.
type GroundTruth struct {
	Box   Box
	Class int
}

// COCO's IoU thresholds 0.50, 0.55, ..., 0.95 and its per-image cap.
const (
	cocoThresholds = 10
	cocoMaxDets    = 100
	vocHit         = 1 << cocoThresholds // record.hits bit of a VOC true positive
	pastMaxDets    = vocHit << 1         // record.hits bit of a detection COCO ignores
)

// record is one detection as AP needs it: its score and at which IoU
// thresholds it was a true positive.
type record struct {
	score float64
	hits  uint16 // bit t: COCO threshold t; vocHit; pastMaxDets
}

// Evaluator accumulates the study's metrics over images: Add each image's
// detections and ground truths, then read Results. Training and evaluation
// share it so that both report the same numbers. It is not safe for
// concurrent use.
//
// Classes are indices in [0, NumClasses). Pass the detector's own numbering,
// background included: the background then simply has no ground truth and is
// left out of the means.
type Evaluator struct {
	numClasses int

	images    int
	correct   int
	iouSum    float64
	confusion []int // numClasses rows of numClasses+1 columns
	gtCount   []int
	records   [][]record

	dets    []int
	gts     []int
	ious    []float64
	matched []uint16
}

// NewEvaluator returns an empty Evaluator for classes 0..numClasses-1.
func NewEvaluator(numClasses int) *Evaluator {
	numClasses = max(numClasses, 0)
	return &Evaluator{
		numClasses: numClasses,
		confusion:  make([]int, numClasses*(numClasses+1)),
		gtCount:    make([]int, numClasses),
		records:    make([][]record, numClasses),
	}
}

// NumClasses is the number of classes the Evaluator was made for.
func (e *Evaluator) NumClasses() int { return e.numClasses }

// Reset forgets every image added, keeping the buffers.
func (e *Evaluator) Reset() {
	e.images, e.correct, e.iouSum = 0, 0, 0
	clear(e.confusion)
	clear(e.gtCount)
	for c := range e.records {
		e.records[c] = e.records[c][:0]
	}
}

// Add counts one image: its detections, in any order, and its ground
// truths. Neither slice is kept. The error reports a class outside
// [0, NumClasses), and then nothing of the image is counted.
//
// For accuracy, IoU and the confusion matrix the image's top detection
// (highest score, the first of equal scores, NaN scores last) is compared
// with the ground truth it overlaps most (the first one when it overlaps
// none): the image is right when their classes agree, whatever the IoU, and
// an image without detections is wrong with IoU 0. An image without ground
// truth adds nothing to these three; its detections still count as false
// positives for AP. For AP every detection is matched within its image and
// class, highest score first: VOC-style to the ground truth of highest IoU,
// a true positive when that IoU is above 0.5 and the ground truth is not yet
// taken; COCO-style, at each threshold t, to the untaken ground truth of
// highest IoU at least t, among the image's 100 best detections of the class.
// IoU is computed on continuous coordinates, without VOC's +1 pixel.
func (e *Evaluator) Add(dets []Detection, gts []GroundTruth) error {
	for i, d := range dets {
		if d.Class < 0 || d.Class >= e.numClasses {
			return fmt.Errorf("evaluator: detection %d has class %d, outside 0..%d",
				i, d.Class, e.numClasses-1)
		}
	}
	for i, g := range gts {
		if g.Class < 0 || g.Class >= e.numClasses {
			return fmt.Errorf("evaluator: ground truth %d has class %d, outside 0..%d",
				i, g.Class, e.numClasses-1)
		}
	}

	if len(gts) > 0 {
		e.addTop(dets, gts)
	}
	for c := range e.numClasses {
		e.addClass(c, dets, gts)
	}
	return nil
}

// addTop counts the image's top detection for accuracy, IoU and confusion.
func (e *Evaluator) addTop(dets []Detection, gts []GroundTruth) {
	e.images++
	top := -1
	for i, d := range dets {
		if top < 0 || d.Score > dets[top].Score ||
			(math.IsNaN(dets[top].Score) && !math.IsNaN(d.Score)) {
			top = i
		}
	}
	row := e.numClasses + 1
	if top < 0 {
		e.confusion[gts[0].Class*row+e.numClasses]++
		return
	}

	d := dets[top]
	g, iou := 0, 0.0
	for j, gt := range gts {
		if v := IoU(d.Box, gt.Box); v > iou {
			g, iou = j, v
		}
	}
	e.iouSum += iou
	if d.Class == gts[g].Class {
		e.correct++
	}
	e.confusion[gts[g].Class*row+d.Class]++
}

// addClass matches the image's detections of class c to its ground truths
// of class c and records each detection's hits.
func (e *Evaluator) addClass(c int, dets []Detection, gts []GroundTruth) {
	e.gts = e.gts[:0]
	for j, g := range gts {
		if g.Class == c {
			e.gts = append(e.gts, j)
		}
	}
	e.gtCount[c] += len(e.gts)
	e.dets = e.dets[:0]
	for i, d := range dets {
		if d.Class == c {
			e.dets = append(e.dets, i)
		}
	}
	if len(e.dets) == 0 {
		return
	}
	slices.SortStableFunc(e.dets, func(i, j int) int {
		return byScoreValue(dets[i].Score, dets[j].Score)
	})
	e.matched = append(e.matched[:0], make([]uint16, len(e.gts))...)
	e.ious = append(e.ious[:0], make([]float64, len(e.gts))...)

	for rank, i := range e.dets {
		rec := record{score: dets[i].Score}
		best, bestIoU := -1, 0.0
		for k, j := range e.gts {
			e.ious[k] = IoU(dets[i].Box, gts[j].Box)
			if best < 0 || e.ious[k] > bestIoU {
				best, bestIoU = k, e.ious[k]
			}
		}
		if best >= 0 && bestIoU > 0.5 && e.matched[best]&vocHit == 0 {
			e.matched[best] |= vocHit
			rec.hits |= vocHit
		}

		if rank >= cocoMaxDets {
			rec.hits |= pastMaxDets
		} else {
			for t := range cocoThresholds {
				bit := uint16(1) << t
				if k := bestUntaken(e.ious, e.matched, bit, cocoThreshold(t)); k >= 0 {
					e.matched[k] |= bit
					rec.hits |= bit
				}
			}
		}
		e.records[c] = append(e.records[c], rec)
	}
}

// cocoThreshold is COCO's IoU threshold t: 0.50 + 0.05*t.
func cocoThreshold(t int) float64 { return float64(50+5*t) / 100 }

// bestUntaken is the first index of highest IoU, at least threshold, whose
// matched entry lacks bit; -1 when there is none.
func bestUntaken(ious []float64, matched []uint16, bit uint16, threshold float64) int {
	best := -1
	for k, v := range ious {
		if matched[k]&bit == 0 && v >= threshold && (best < 0 || v > ious[best]) {
			best = k
		}
	}
	return best
}

// byScoreValue orders scores highest first, NaN last, others equal.
func byScoreValue(a, b float64) int {
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

// Results are the metrics over all images added so far. A figure with
// nothing to measure is NaN (encoding/json refuses NaN, so check Images and
// GroundTruths first when writing them out).
type Results struct {
	// Images is the number of images with ground truth, the denominator of
	// Accuracy and MeanIoU.
	Images int
	// Accuracy is the share of those images whose top detection has the
	// true class.
	Accuracy float64
	// MeanIoU is the mean IoU of the top detection with its ground truth,
	// 0 for an image without detections.
	MeanIoU float64
	// GroundTruths counts the ground-truth boxes of each class.
	GroundTruths []int
	// AP50 is each class's VOC all-point interpolated average precision at
	// IoU above 0.5; NaN for a class without ground truth.
	AP50 []float64
	// MAP50 is the mean of AP50 over the classes with ground truth.
	MAP50 float64
	// AP is each class's COCO average precision: 101-point interpolated,
	// averaged over the IoU thresholds 0.50:0.05:0.95, at most 100
	// detections an image and class, no area ranges; NaN for a class
	// without ground truth.
	AP []float64
	// MAP is the mean of AP over the classes with ground truth, COCO's
	// mAP@[.5:.95].
	MAP float64
	// Confusion counts images by true class (row) and the top detection's
	// class (column); the last column, index NumClasses, counts images
	// without detections.
	Confusion [][]int
}

// Results computes the metrics of the images added so far; more images may
// be added afterwards.
func (e *Evaluator) Results() Results {
	res := Results{
		Images:       e.images,
		Accuracy:     math.NaN(),
		MeanIoU:      math.NaN(),
		GroundTruths: slices.Clone(e.gtCount),
		AP50:         make([]float64, e.numClasses),
		AP:           make([]float64, e.numClasses),
		Confusion:    make([][]int, e.numClasses),
	}
	if e.images > 0 {
		res.Accuracy = float64(e.correct) / float64(e.images)
		res.MeanIoU = e.iouSum / float64(e.images)
	}
	row := e.numClasses + 1
	for c := range e.numClasses {
		res.Confusion[c] = slices.Clone(e.confusion[c*row : (c+1)*row])
	}

	var sum50, sum float64
	classes := 0
	for c, recs := range e.records {
		if e.gtCount[c] == 0 {
			res.AP50[c], res.AP[c] = math.NaN(), math.NaN()
			continue
		}
		slices.SortStableFunc(recs, func(a, b record) int {
			return byScoreValue(a.score, b.score)
		})
		res.AP50[c] = vocAP(recs, e.gtCount[c])
		for t := range cocoThresholds {
			res.AP[c] += cocoAP(recs, e.gtCount[c], uint16(1)<<t) / cocoThresholds
		}
		sum50 += res.AP50[c]
		sum += res.AP[c]
		classes++
	}
	res.MAP50, res.MAP = math.NaN(), math.NaN()
	if classes > 0 {
		res.MAP50 = sum50 / float64(classes)
		res.MAP = sum / float64(classes)
	}
	return res
}

// vocAP is the all-point interpolated AP of records sorted by score, with
// npos ground truths: the area under the precision envelope, which is the
// sum over true positives of the best precision at or after each, / npos.
func vocAP(recs []record, npos int) float64 {
	tp := 0
	for _, r := range recs {
		if r.hits&vocHit != 0 {
			tp++
		}
	}
	ap, envelope := 0.0, 0.0
	for i := len(recs) - 1; i >= 0; i-- {
		envelope = math.Max(envelope, float64(tp)/float64(i+1))
		if recs[i].hits&vocHit != 0 {
			ap += envelope
			tp--
		}
	}
	return ap / float64(npos)
}

// cocoAP is COCO's AP at one threshold (bit) of records sorted by score,
// with npos ground truths: the precision envelope read at the recall
// thresholds 0, 0.01, ..., 1 (0 past the highest recall reached), averaged.
// Records past the per-image cap are left out.
func cocoAP(recs []record, npos int, bit uint16) float64 {
	var recall, precision []float64
	tp := 0
	for _, r := range recs {
		if r.hits&pastMaxDets != 0 {
			continue
		}
		if r.hits&bit != 0 {
			tp++
		}
		recall = append(recall, float64(tp)/float64(npos))
		precision = append(precision, float64(tp)/float64(len(precision)+1))
	}
	for i := len(precision) - 2; i >= 0; i-- {
		precision[i] = math.Max(precision[i], precision[i+1])
	}

	sum, i := 0.0, 0
	for step := 0; step <= 100; step++ {
		threshold := float64(step) / 100
		for i < len(recall) && recall[i] < threshold {
			i++
		}
		if i == len(recall) {
			break
		}
		sum += precision[i]
	}
	return sum / 101
}
