package evaluate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// scripted is a fake Detector that answers each image from its record: it
// relies on Run detecting the set's images in order, and checks that each
// image has its record's size.
type scripted struct {
	set    *dataset.Set
	batch  int
	answer func(i int, rec *dataset.Record) []box.Detection

	next     int
	calls    int
	maxBatch int
}

func (s *scripted) BatchSize() int { return s.batch }

func (s *scripted) Detect(ctx context.Context, imgs []image.Image) ([][]box.Detection, error) {
	s.calls++
	s.maxBatch = max(s.maxBatch, len(imgs))
	out := make([][]box.Detection, len(imgs))
	for k, img := range imgs {
		rec := &s.set.Records[s.next]
		if b := img.Bounds(); b.Dx() != rec.Width || b.Dy() != rec.Height {
			return nil, fmt.Errorf("image %d is %v, its record %dx%d", s.next, b,
				rec.Width, rec.Height)
		}
		out[k] = s.answer(s.next, rec)
		s.next++
	}
	return out, nil
}

// truth answers every face with its own box and class, scores rising with
// the face's index so that the last face is the top detection.
func truth(_ int, rec *dataset.Record) []box.Detection {
	var dets []box.Detection
	for j, o := range rec.Objects {
		dets = append(dets, box.Detection{
			Box: o.Box, Class: o.Class + 1,
			Score: 0.5 + 0.4*float64(j+1)/float64(len(rec.Objects)+1),
		})
	}
	return dets
}

func nothing(int, *dataset.Record) []box.Detection { return nil }

// shift moves a box right by a fifth of its width: IoU 2/3 with the original.
func shift(b box.Box) box.Box {
	dx := b.Width() / 5
	return box.Box{X1: b.X1 + dx, Y1: b.Y1, X2: b.X2 + dx, Y2: b.Y2}
}

// shiftedWrong answers each face shifted, the first face of an image
// scoring highest. Every third image's first face, its top detection, gets
// the next class; that image's detections score below every other image's.
func shiftedWrong(numClasses int) func(int, *dataset.Record) []box.Detection {
	return func(i int, rec *dataset.Record) []box.Detection {
		var dets []box.Detection
		for j, o := range rec.Objects {
			d := box.Detection{Box: shift(o.Box), Class: o.Class + 1,
				Score: 0.9 - 1e-4*float64(i) - 1e-6*float64(j)}
			if i%3 == 0 {
				d.Score = 0.3 - 1e-4*float64(i) - 1e-6*float64(j)
				if j == 0 {
					d.Class = (o.Class+1)%numClasses + 1
				}
			}
			dets = append(dets, d)
		}
		return dets
	}
}

var (
	properOnce sync.Once
	properSet  *dataset.Set
	properErr  error
)

// properTest reads proper-mask/test once for all tests; each gets a copy.
func properTest(t *testing.T) *dataset.Set {
	t.Helper()
	dir := fixture.Path(t, "proper-mask", "test")
	properOnce.Do(func() { properSet, properErr = dataset.ReadFileNames(dir, dataset.Options{}) })
	if properErr != nil {
		t.Fatal(properErr)
	}
	set := *properSet
	set.Records = append([]dataset.Record(nil), properSet.Records...)
	return &set
}

// vocSubset reads facemask/val with classes and keeps its first n images.
func vocSubset(t *testing.T, classes dataset.ClassMap, n int) *dataset.Set {
	t.Helper()
	set, err := dataset.ReadVOC(fixture.Path(t, "facemask", "val"),
		dataset.Options{Classes: classes})
	if err != nil {
		t.Fatal(err)
	}
	set.Records = set.Records[:n]
	return set
}

func run(t *testing.T, set *dataset.Set, batch int,
	answer func(int, *dataset.Record) []box.Detection) *Report {
	t.Helper()
	det := &scripted{set: set, batch: batch, answer: answer}
	rep, err := Run(context.Background(), det, set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if det.next != len(set.Records) {
		t.Fatalf("detector saw %d images of %d", det.next, len(set.Records))
	}
	return rep
}

// iou is the intersection over union of two boxes, computed here rather
// than by the box package.
func iou(a, b box.Box) float64 {
	w := math.Min(a.X2, b.X2) - math.Max(a.X1, b.X1)
	h := math.Min(a.Y2, b.Y2) - math.Max(a.Y1, b.Y1)
	if w <= 0 || h <= 0 {
		return 0
	}
	inter := w * h
	return inter / ((a.X2-a.X1)*(a.Y2-a.Y1) + (b.X2-b.X1)*(b.Y2-b.Y1) - inter)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// classCounts counts faces and one-face images by class.
func classCounts(set *dataset.Set) []int {
	counts := make([]int, len(set.Classes.Names))
	for _, r := range set.Records {
		for _, o := range r.Objects {
			counts[o.Class]++
		}
	}
	return counts
}

func TestTruthDetector(t *testing.T) {
	set := properTest(t)
	det := &scripted{set: set, batch: 7, answer: truth}
	var bar bytes.Buffer
	rep, err := Run(context.Background(), det, set, Options{Progress: &bar, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}

	if det.maxBatch != 7 || det.calls != (len(set.Records)+6)/7 {
		t.Errorf("detector called %d times with up to %d images; want batches of 7",
			det.calls, det.maxBatch)
	}
	if rep.Images != 255 || rep.Labelled != 255 {
		t.Errorf("images %d, labelled %d; want 255 each", rep.Images, rep.Labelled)
	}
	if rep.Accuracy != 1 || !near(rep.IoU, 1) || rep.MAP50 != 1 || !near(rep.MAP, 1) {
		t.Errorf("accuracy %v IoU %v mAP50 %v mAP %v; want 1 each",
			rep.Accuracy, rep.IoU, rep.MAP50, rep.MAP)
	}
	counts := classCounts(set)
	for c, row := range rep.Confusion {
		want := make([]int, len(counts)+1)
		want[c] = counts[c]
		if fmt.Sprint(row) != fmt.Sprint(want) {
			t.Errorf("confusion row %s: %v, want %v", rep.Classes[c], row, want)
		}
		if rep.PerClass[c].Faces != counts[c] || rep.PerClass[c].Name != set.Classes.Names[c] {
			t.Errorf("class %d: %+v, want %s with %d faces", c, rep.PerClass[c],
				set.Classes.Names[c], counts[c])
		}
	}
	if !strings.Contains(bar.String(), "255/255") {
		t.Errorf("progress bar did not finish: %q", bar.String())
	}
	if rep.Seconds <= 0 || rep.ImagesPerSecond <= 0 || rep.DetectSeconds > rep.Seconds {
		t.Errorf("timings: %v s, %v in Detect, %v img/s", rep.Seconds, rep.DetectSeconds,
			rep.ImagesPerSecond)
	}

	for i, p := range rep.Predictions {
		rec := set.Records[i]
		top, ok := p.Top()
		if p.Path != rec.Path || !ok || !p.Correct || top.Class != rec.Objects[0].Class ||
			top.Box != rec.Objects[0].Box {
			t.Fatalf("prediction %d: %+v for record %+v", i, p, rec)
		}
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for l := range strings.Lines(text.String()) {
		lines[strings.Join(strings.Fields(l), " ")] = true
	}
	for _, want := range []string{
		"accuracy 1.0000 (255 of 255 images)",
		"mAP@0.5 1.0000",
		"class faces AP@0.5 AP@[.5:.95]",
		fmt.Sprintf("not_proper %d 1.0000 1.0000", counts[1]),
		"proper not_proper none",
		fmt.Sprintf("proper %d 0 0", counts[0]),
		fmt.Sprintf("not_proper 0 %d 0", counts[1]),
	} {
		if !lines[want] {
			t.Errorf("text report lacks the line %q:\n%s", want, text.String())
		}
	}
}

func TestNothingDetector(t *testing.T) {
	set := properTest(t)
	rep := run(t, set, 16, nothing)
	if rep.Accuracy != 0 || rep.IoU != 0 || rep.MAP50 != 0 || rep.MAP != 0 {
		t.Errorf("accuracy %v IoU %v mAP50 %v mAP %v; want 0 each",
			rep.Accuracy, rep.IoU, rep.MAP50, rep.MAP)
	}
	counts := classCounts(set)
	for c, row := range rep.Confusion {
		if row[len(row)-1] != counts[c] {
			t.Errorf("class %d: %d images without detections, want %d", c,
				row[len(row)-1], counts[c])
		}
	}

	path := filepath.Join(t.TempDir(), "prediction.csv")
	if err := rep.WritePredictions(path); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, path)
	if len(rows) != 256 {
		t.Fatalf("%d rows, want header and 255", len(rows))
	}
	for _, row := range rows[1:] {
		if strings.Join(row[1:], ",") != "0,0,0,0," {
			t.Fatalf("an image without detections writes %q", row)
		}
	}
}

func TestShiftedWrongDetector(t *testing.T) {
	set := properTest(t)
	rep := run(t, set, 32, shiftedWrong(2))

	// Each image has one face; every third image is wrong.
	n := len(set.Records)
	correct, gts := make([]int, 2), make([]int, 2)
	iouSum, right := 0.0, 0
	confusion := [2][3]int{}
	for i, r := range set.Records {
		o := r.Objects[0]
		gts[o.Class]++
		iouSum += iou(shift(o.Box), o.Box)
		if i%3 == 0 {
			confusion[o.Class][1-o.Class]++
			continue
		}
		right++
		correct[o.Class]++
		confusion[o.Class][o.Class]++
	}
	if want := float64(right) / float64(n); !near(rep.Accuracy, want) {
		t.Errorf("accuracy %v, want %v", rep.Accuracy, want)
	}
	if want := iouSum / float64(n); !near(rep.IoU, want) || math.Abs(want-2.0/3) > 1e-6 {
		t.Errorf("IoU %v, want %v (2/3)", rep.IoU, want)
	}
	if fmt.Sprint(rep.Confusion) != fmt.Sprint([][]int{confusion[0][:], confusion[1][:]}) {
		t.Errorf("confusion %v, want %v", rep.Confusion, confusion)
	}

	// Right detections outscore wrong ones in every class, so precision is 1
	// up to recall correct/gts: VOC AP is that recall; COCO counts it at the
	// four thresholds 0.50..0.65 below IoU 2/3, at the 101 recall points up to it.
	var map50, mapCOCO float64
	for c := range 2 {
		recall := float64(correct[c]) / float64(gts[c])
		points := 0
		for k := 0; k <= 100; k++ {
			if float64(k)/100 <= recall {
				points++
			}
		}
		ap := 4.0 / 10 * float64(points) / 101
		if !near(rep.PerClass[c].AP50, recall) || !near(rep.PerClass[c].AP, ap) {
			t.Errorf("class %d: AP50 %v AP %v, want %v and %v", c,
				rep.PerClass[c].AP50, rep.PerClass[c].AP, recall, ap)
		}
		map50 += recall / 2
		mapCOCO += ap / 2
	}
	if !near(rep.MAP50, map50) || !near(rep.MAP, mapCOCO) {
		t.Errorf("mAP50 %v mAP %v, want %v and %v", rep.MAP50, rep.MAP, map50, mapCOCO)
	}

	line, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil || bytes.ContainsRune(line, '\n') {
		t.Fatalf("JSON %s: %v", line, err)
	}
	for key, want := range map[string]float64{"accuracy": rep.Accuracy, "iou": rep.IoU,
		"map50": map50, "map": mapCOCO, "images": 255} {
		if v, ok := got[key].(float64); !ok || !near(v, want) {
			t.Errorf("JSON %s = %v, want %v", key, got[key], want)
		}
	}
}

func TestVOCSubset(t *testing.T) {
	for _, tc := range []struct {
		name    string
		classes dataset.ClassMap
	}{
		{"three classes", dataset.ThreeClass()},
		{"two classes", dataset.TwoClass()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := vocSubset(t, tc.classes, 12)
			// An image without faces: the detector finds none there either.
			blank := set.Records[0]
			blank.Objects = nil
			set.Records = append(set.Records, blank)

			rep := run(t, set, 5, truth)
			if rep.Images != 13 || rep.Labelled != 12 {
				t.Errorf("images %d labelled %d, want 13 and 12", rep.Images, rep.Labelled)
			}
			if rep.Accuracy != 1 || !near(rep.IoU, 1) || rep.MAP50 != 1 || !near(rep.MAP, 1) {
				t.Errorf("accuracy %v IoU %v mAP50 %v mAP %v; want 1 each",
					rep.Accuracy, rep.IoU, rep.MAP50, rep.MAP)
			}
			if p := rep.Predictions[12]; p.Found || p.TrueClass != -1 || p.Correct {
				t.Errorf("image without faces: %+v", p)
			}
			counts := classCounts(set)
			line, err := rep.JSON()
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Classes []struct {
					Name  string   `json:"name"`
					Faces int      `json:"faces"`
					AP50  *float64 `json:"ap50"`
				} `json:"classes"`
			}
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("JSON %s: %v", line, err)
			}
			if len(got.Classes) != len(tc.classes.Names) {
				t.Fatalf("JSON has %d classes, want %d", len(got.Classes), len(tc.classes.Names))
			}
			for c, g := range got.Classes {
				if g.Name != tc.classes.Names[c] || g.Faces != counts[c] ||
					(counts[c] == 0) != (g.AP50 == nil) {
					t.Errorf("JSON class %d: %+v with %d faces", c, g, counts[c])
				}
			}

			// Shifted faces, every third image's top face of the wrong class.
			numClasses := len(tc.classes.Names)
			rep = run(t, set, 4, shiftedWrong(numClasses))
			right, iouSum := 0, 0.0
			for i, r := range set.Records[:12] {
				dets := shiftedWrong(numClasses)(i, &r)
				top := dets[0]
				for _, d := range dets[1:] {
					if d.Score > top.Score {
						top = d
					}
				}
				best, bestIoU := r.Objects[0], 0.0
				for _, o := range r.Objects {
					if v := iou(top.Box, o.Box); v > bestIoU {
						best, bestIoU = o, v
					}
				}
				iouSum += bestIoU
				if top.Class == best.Class+1 {
					right++
				}
			}
			if !near(rep.Accuracy, float64(right)/12) || !near(rep.IoU, iouSum/12) {
				t.Errorf("accuracy %v IoU %v, want %v and %v", rep.Accuracy, rep.IoU,
					float64(right)/12, iouSum/12)
			}
		})
	}
}

func TestEmptySet(t *testing.T) {
	set := properTest(t)
	set.Records = nil
	rep := run(t, set, 4, truth)
	if rep.Images != 0 || !math.IsNaN(rep.Accuracy) || !math.IsNaN(rep.MAP50) {
		t.Errorf("empty set: %+v", rep)
	}
	line, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"accuracy":null`, `"iou":null`, `"map50":null`,
		`"map":null`, `"images":0`} {
		if !bytes.Contains(line, []byte(want)) {
			t.Errorf("JSON lacks %s: %s", want, line)
		}
	}
	if err := rep.WriteText(&bytes.Buffer{}); err != nil {
		t.Error(err)
	}
}

func TestRunErrors(t *testing.T) {
	set := properTest(t)
	set.Records = set.Records[:10]

	t.Run("vanished image", func(t *testing.T) {
		gone := *set
		gone.Records = append([]dataset.Record(nil), set.Records...)
		missing := filepath.Join(t.TempDir(), "000001__[1, 2, 30, 40]__True.jpg")
		gone.Records[6].Path = missing
		_, err := Run(context.Background(), &scripted{set: &gone, batch: 4, answer: truth},
			&gone, Options{})
		if err == nil || !strings.Contains(err.Error(), missing) ||
			!errors.Is(err, os.ErrNotExist) {
			t.Errorf("err %v, want one naming %s", err, missing)
		}
	})
	t.Run("background class", func(t *testing.T) {
		answer := func(int, *dataset.Record) []box.Detection {
			return []box.Detection{{Box: box.Box{X2: 5, Y2: 5}, Class: 0, Score: 1}}
		}
		_, err := Run(context.Background(), &scripted{set: set, batch: 4, answer: answer},
			set, Options{})
		if err == nil || !strings.Contains(err.Error(), "class 0") {
			t.Errorf("err %v, want one about class 0", err)
		}
	})
	t.Run("class past the set's", func(t *testing.T) {
		answer := func(int, *dataset.Record) []box.Detection {
			return []box.Detection{{Box: box.Box{X2: 5, Y2: 5}, Class: 3, Score: 1}}
		}
		_, err := Run(context.Background(), &scripted{set: set, batch: 4, answer: answer},
			set, Options{})
		if err == nil || !strings.Contains(err.Error(), "class 3") {
			t.Errorf("err %v, want one about class 3", err)
		}
	})
	t.Run("short result", func(t *testing.T) {
		_, err := Run(context.Background(), shortDetector{}, set, Options{})
		if err == nil || !strings.Contains(err.Error(), "results for") {
			t.Errorf("err %v, want one about the number of results", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Run(ctx, &scripted{set: set, batch: 4, answer: truth}, set, Options{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", err)
		}
	})
}

// shortDetector returns one result fewer than it is given images.
type shortDetector struct{}

func (shortDetector) BatchSize() int { return 3 }

func (shortDetector) Detect(_ context.Context, imgs []image.Image) ([][]box.Detection, error) {
	return make([][]box.Detection, len(imgs)-1), nil
}

// TestTopDetection checks that a NaN score never makes the top detection and
// that the kept detections are sorted and capped.
func TestTopDetection(t *testing.T) {
	set := properTest(t)
	set.Records = set.Records[:3]
	answer := func(_ int, rec *dataset.Record) []box.Detection {
		o := rec.Objects[0]
		dets := []box.Detection{{Box: o.Box, Class: 2 - o.Class, Score: math.NaN()}}
		for k := range MaxKept + 5 {
			dets = append(dets, box.Detection{Box: shift(o.Box), Class: 2 - o.Class,
				Score: 0.1 + 0.001*float64(k)})
		}
		return append(dets, box.Detection{Box: o.Box, Class: o.Class + 1, Score: 0.8})
	}
	rep := run(t, set, 2, answer)
	if rep.Accuracy != 1 || !near(rep.IoU, 1) {
		t.Errorf("accuracy %v IoU %v, want 1 each", rep.Accuracy, rep.IoU)
	}
	for _, p := range rep.Predictions {
		if len(p.Detections) != MaxKept || p.Detections[0].Score != 0.8 ||
			p.Detections[1].Score <= p.Detections[2].Score {
			t.Fatalf("kept %d detections, first %v, %v", len(p.Detections),
				p.Detections[0], p.Detections[1])
		}
	}
}
