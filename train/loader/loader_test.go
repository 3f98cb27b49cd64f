package loader

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/fixture"
)

var (
	grey = color.RGBA{90, 90, 90, 255}
	red  = color.RGBA{230, 20, 20, 255}
)

// synthetic writes PNGs of w x h grey images, each with a red rectangle that is its
// one labelled face, and returns their records.
func synthetic(t testing.TB, n, w, h int) []dataset.Record {
	t.Helper()
	dir := t.TempDir()
	var recs []dataset.Record
	for i := range n {
		// Rectangles of different sizes and places, some at an edge.
		x1, y1 := (i*37)%(w/2), (i*23)%(h/2)
		b := box.Box{X1: float64(x1), Y1: float64(y1),
			X2: float64(x1 + w/4 + i%5*7), Y2: float64(y1 + h/4 + i%3*9)}
		if i%4 == 3 {
			b.X1 = 0
		}
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(img, img.Rect, image.NewUniform(grey), image.Point{}, draw.Src)
		draw.Draw(img, image.Rect(int(b.X1), int(b.Y1), int(b.X2), int(b.Y2)),
			image.NewUniform(red), image.Point{}, draw.Src)
		path := filepath.Join(dir, "img"+string(rune('a'+i%26))+string(rune('a'+i/26))+".png")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, dataset.Record{Path: path, Width: w, Height: h,
			Objects: []dataset.Object{{Box: b, Class: i % 2, Source: "True"}}})
	}
	return recs
}

// collect runs an epoch to the end and fails on an error.
func collect(t testing.TB, l *Loader, epoch int) []Batch {
	t.Helper()
	var out []Batch
	for b, err := range l.Batches(context.Background(), epoch) {
		if err != nil {
			t.Fatalf("epoch %d: %v", epoch, err)
		}
		out = append(out, b)
	}
	return out
}

func newLoader(t testing.TB, recs []dataset.Record, change func(*Config)) *Loader {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Batch, cfg.Workers, cfg.Seed = 4, 2, 7
	if change != nil {
		change(&cfg)
	}
	l, err := New(recs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBatchShapes(t *testing.T) {
	recs := synthetic(t, 10, 160, 120)
	l := newLoader(t, recs, nil)
	batches := collect(t, l, 0)
	if len(batches) != 3 || l.Steps() != 3 {
		t.Fatalf("%d batches (Steps %d) from 10 records of 4, want 3", len(batches), l.Steps())
	}
	seen := map[int]bool{}
	for k, b := range batches {
		if len(b.Images) != 4*224*224*3 || b.Size != 224 || b.Step != k {
			t.Fatalf("batch %d: %d values, size %d, step %d", k, len(b.Images), b.Size, b.Step)
		}
		for _, s := range [][]int{{len(b.Boxes), len(b.Classes), len(b.Records), len(b.Paths),
			len(b.Letterbox), len(b.Flipped)}} {
			for _, n := range s {
				if n != b.N {
					t.Fatalf("batch %d: per-sample lengths %v, want N = %d", k, s, b.N)
				}
			}
		}
		for i, r := range b.Records {
			seen[r] = true
			if b.Paths[i] != recs[r].Path || len(b.Boxes[i]) != len(b.Classes[i]) {
				t.Fatalf("batch %d sample %d: path %s for record %d", k, i, b.Paths[i], r)
			}
		}
	}
	if len(seen) != 10 {
		t.Errorf("an epoch visited %d distinct records, want all 10", len(seen))
	}
}

func TestShortLastBatchIsPadded(t *testing.T) {
	recs := synthetic(t, 5, 100, 100)
	batches := collect(t, newLoader(t, recs, nil), 0)
	last := batches[len(batches)-1]
	if last.N != 1 || len(last.Images) != 4*224*224*3 {
		t.Fatalf("last batch N = %d with %d values, want 1 real image of 4", last.N,
			len(last.Images))
	}
	for i := 1; i < 4; i++ {
		for _, v := range last.Image(i) {
			if v != 0 {
				t.Fatalf("padding image %d holds %v, want zeros", i, v)
			}
		}
	}
}

func TestDeterministicAcrossWorkers(t *testing.T) {
	recs := synthetic(t, 11, 200, 150)
	var runs [][]Batch
	for _, workers := range []int{1, 2, 2} {
		l := newLoader(t, recs, func(c *Config) { c.Workers = workers; c.Prefetch = 1 })
		runs = append(runs, collect(t, l, 3))
	}
	for r := 1; r < len(runs); r++ {
		for k := range runs[0] {
			a, b := runs[0][k], runs[r][k]
			if !slices.Equal(a.Images, b.Images) || !slices.Equal(a.Records, b.Records) ||
				!slices.Equal(a.Flipped, b.Flipped) || !slices.Equal(a.Letterbox, b.Letterbox) {
				t.Fatalf("run %d batch %d differs from the first run", r, k)
			}
			for i := range a.Boxes {
				if !slices.Equal(a.Boxes[i], b.Boxes[i]) {
					t.Fatalf("run %d batch %d sample %d: boxes differ", r, k, i)
				}
			}
		}
	}
}

func TestEpochsDiffer(t *testing.T) {
	recs := synthetic(t, 12, 200, 150)
	l := newLoader(t, recs, nil)
	if slices.Equal(l.Order(0), l.Order(1)) {
		t.Errorf("epochs 0 and 1 visit the records in the same order %v", l.Order(0))
	}
	if !slices.Equal(l.Order(5), l.Order(5)) {
		t.Errorf("epoch 5's order is not repeatable")
	}
	a, b := collect(t, l, 0), collect(t, l, 1)
	if slices.Equal(a[0].Images, b[0].Images) {
		t.Errorf("epochs 0 and 1 start with the same images")
	}

	// Without shuffling the order is fixed but the augmentation still differs.
	l = newLoader(t, recs, func(c *Config) { c.Shuffle = false })
	if !slices.Equal(l.Order(0), l.Order(1)) || l.Order(0)[3] != 3 {
		t.Errorf("unshuffled orders %v, %v", l.Order(0), l.Order(1))
	}
	a, b = collect(t, l, 0), collect(t, l, 1)
	if slices.Equal(a[0].Images, b[0].Images) {
		t.Errorf("unshuffled epochs 0 and 1 augment alike")
	}
}

// denorm returns sample i's pixel x, y as RGB in [0, 1].
func denorm(b Batch, norm Normalize, i, x, y int) [3]float64 {
	p := b.Image(i)[(y*b.Size+x)*3:]
	var c [3]float64
	for k := range 3 {
		c[k] = float64(p[k]*norm.Std[k] + norm.Mean[k])
	}
	return c
}

func isRed(c [3]float64) bool { return c[0] > 0.6 && c[1] < 0.35 && c[2] < 0.35 }

// TestBoxesFollowGeometry checks, pixel by pixel, that after zoom, crop and flip
// every pixel well inside a box is the rectangle's red and every pixel well outside
// is not.
func TestBoxesFollowGeometry(t *testing.T) {
	recs := synthetic(t, 24, 300, 200)
	a := DefaultAugment()
	a.FlipProb, a.ScaleMin, a.ScaleMax, a.MinVisible = 0.5, 0.6, 1.6, 0
	a.Brightness, a.Contrast, a.Saturation, a.Hue = 0, 0, 0, 0
	l := newLoader(t, recs, func(c *Config) { c.Augment = a })
	const margin = 2.0 // resampling blurs an edge over a pixel or so
	flips, drops := 0, 0
	for epoch := range 3 {
		for _, b := range collect(t, l, epoch) {
			for i := range b.N {
				if b.Flipped[i] {
					flips++
				}
				if len(b.Boxes[i]) == 0 {
					drops++ // zoomed out of view entirely
					continue
				}
				bx := b.Boxes[i][0]
				checkRedInside(t, b, l.cfg.Normalize, i, bx, margin)
			}
		}
	}
	if flips == 0 || flips == 3*24 {
		t.Errorf("%d of %d samples flipped", flips, 3*24)
	}
	t.Logf("%d flipped, %d boxes cropped away, of %d samples", flips, drops, 3*24)
}

func checkRedInside(t *testing.T, b Batch, norm Normalize, i int, bx box.Box, margin float64) {
	t.Helper()
	for y := range b.Size {
		for x := range b.Size {
			cx, cy := float64(x)+0.5, float64(y)+0.5
			inside := cx > bx.X1+margin && cx < bx.X2-margin && cy > bx.Y1+margin &&
				cy < bx.Y2-margin
			outside := cx < bx.X1-margin || cx > bx.X2+margin || cy < bx.Y1-margin ||
				cy > bx.Y2+margin
			c := denorm(b, norm, i, x, y)
			if inside && !isRed(c) || outside && isRed(c) {
				t.Fatalf("epoch %d batch %d sample %d (record %d, flipped %v, %+v): pixel "+
					"%d,%d is %.2f, box %v", b.Epoch, b.Step, i, b.Records[i], b.Flipped[i],
					b.Letterbox[i], x, y, c, bx)
			}
		}
	}
}

func TestToImageUndoesAugmentation(t *testing.T) {
	recs := synthetic(t, 16, 300, 200)
	a := DefaultAugment()
	a.MinVisible = 0
	l := newLoader(t, recs, func(c *Config) { c.Augment = a })
	checked := 0
	for _, b := range collect(t, l, 2) {
		for i := range b.N {
			if len(b.Boxes[i]) == 0 {
				continue
			}
			orig := recs[b.Records[i]].Objects[0].Box
			back := b.ToImage(i, b.Boxes[i][0])
			// A box cut by the crop comes back cut; check the sides the crop left alone.
			whole := b.Letterbox[i].ToModel(orig)
			if whole.X1 >= 0 && whole.Y1 >= 0 && whole.X2 <= 224 && whole.Y2 <= 224 {
				if math.Abs(back.X1-orig.X1)+math.Abs(back.Y1-orig.Y1)+
					math.Abs(back.X2-orig.X2)+math.Abs(back.Y2-orig.Y2) > 1e-6 {
					t.Fatalf("sample %d: %v came back as %v", i, orig, back)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("no box stayed whole in view")
	}
}

func TestNormalisationNumbers(t *testing.T) {
	n := ImageNet()
	if n.Mean != [3]float32{0.485, 0.456, 0.406} || n.Std != [3]float32{0.229, 0.224, 0.225} {
		t.Fatalf("ImageNet() = %+v", n)
	}
	// A uniform 224 x 224 image: every value is (v/255 - mean)/std.
	dir := t.TempDir()
	path := filepath.Join(dir, "uniform.png")
	img := image.NewRGBA(image.Rect(0, 0, 224, 224))
	draw.Draw(img, img.Rect, image.NewUniform(color.RGBA{255, 0, 128, 255}), image.Point{},
		draw.Src)
	f, _ := os.Create(path)
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	recs := []dataset.Record{{Path: path, Width: 224, Height: 224}}
	l := newLoader(t, recs, func(c *Config) { c.Augment = Augment{}; c.Batch = 1 })
	b := collect(t, l, 0)[0]
	want := [3]float64{(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128.0/255 - 0.406) / 0.225}
	for i, v := range b.Images {
		if math.Abs(float64(v)-want[i%3]) > 1e-5 {
			t.Fatalf("value %d is %v, want %v", i, v, want[i%3])
		}
	}
	if len(b.Boxes[0]) != 0 {
		t.Errorf("a record with no objects got boxes %v", b.Boxes[0])
	}
	// The padding colour normalises to about zero.
	p := padColour(n)
	for c := range 3 {
		if v := (float64(p[c])/255 - float64(n.Mean[c])) / float64(n.Std[c]); math.Abs(v) > 0.01 {
			t.Errorf("padding channel %d normalises to %v, want about 0", c, v)
		}
	}
}

func TestPreprocessMatchesUnaugmentedTraining(t *testing.T) {
	dir := fixture.Path(t, "facemask", "val")
	set, err := dataset.Open(dir, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := set.Records[:6]
	l := newLoader(t, recs, func(c *Config) { c.Augment = Augment{}; c.Shuffle = false })
	var buf []float32
	for _, b := range collect(t, l, 0) {
		for i := range b.N {
			f, err := os.Open(b.Paths[i])
			if err != nil {
				t.Fatal(err)
			}
			img, _, err := image.Decode(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			var lb box.Letterbox
			buf, lb = Preprocess(img, 224, ImageNet(), buf)
			if !slices.Equal(buf, b.Image(i)) {
				t.Fatalf("%s: Preprocess differs from the training path", b.Paths[i])
			}
			if lb != b.Letterbox[i] || b.Flipped[i] {
				t.Fatalf("%s: letterbox %+v, training has %+v", b.Paths[i], lb, b.Letterbox[i])
			}
		}
	}
}

func TestMissingFile(t *testing.T) {
	recs := synthetic(t, 6, 100, 80)
	gone := recs[4].Path
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	l := newLoader(t, recs, func(c *Config) { c.Shuffle = false })
	var got error
	for _, err := range l.Batches(context.Background(), 0) {
		if err != nil {
			got = err
		}
	}
	if got == nil || !errors.Is(got, fs.ErrNotExist) || !strings.Contains(got.Error(), gone) {
		t.Fatalf("error %v, want one naming %s that is fs.ErrNotExist", got, gone)
	}
	if err := l.Preload(context.Background()); err == nil || !strings.Contains(err.Error(), gone) {
		t.Errorf("Preload: %v, want an error naming %s", err, gone)
	}

	// A file replaced by one of another size is named too.
	recs = synthetic(t, 2, 100, 80)
	recs[1].Width = 120
	l = newLoader(t, recs, nil)
	if err := l.Preload(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "record says 120x80") {
		t.Errorf("Preload of a changed file: %v", err)
	}
}

// TestCancelStopsWorkers runs in a synctest bubble, which fails the test if any
// goroutine the loader started is still blocked when the function returns.
func TestCancelStopsWorkers(t *testing.T) {
	recs := synthetic(t, 40, 120, 90)
	synctest.Test(t, func(t *testing.T) {
		l := newLoader(t, recs, func(c *Config) { c.Batch = 2; c.Prefetch = 2 })
		ctx, cancel := context.WithCancel(context.Background())
		var n int
		var last error
		for _, err := range l.Batches(ctx, 0) {
			if err != nil {
				last = err
				break
			}
			n++
			if n == 3 {
				cancel()
			}
		}
		if !errors.Is(last, context.Canceled) {
			t.Errorf("after cancel: %v, want context.Canceled", last)
		}
		if n != 3 {
			t.Errorf("%d batches after cancelling at the third", n)
		}

		// Breaking out of the loop stops the workers too.
		for range l.Batches(context.Background(), 1) {
			break
		}
		// So does cancelling Preload.
		ctx, cancel = context.WithCancel(context.Background())
		cancel()
		if err := l.Preload(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Preload: %v", err)
		}
	})
}

func TestConfigErrorsNameTheField(t *testing.T) {
	recs := synthetic(t, 1, 10, 10)
	bad := []struct {
		change func(*Config)
		field  string
	}{
		{func(c *Config) { c.Size = 0 }, "Config.Size"},
		{func(c *Config) { c.Batch = -1 }, "Config.Batch"},
		{func(c *Config) { c.Workers = -2 }, "Config.Workers"},
		{func(c *Config) { c.Augment.Contrast = 2 }, "Config.Augment.Contrast"},
		{func(c *Config) { c.Normalize = Normalize{} }, "Config.Normalize.Std[0]"},
	}
	for _, b := range bad {
		cfg := DefaultConfig()
		b.change(&cfg)
		if _, err := New(recs, cfg); err == nil || !strings.Contains(err.Error(), b.field) {
			t.Errorf("error %v, want one naming %s", err, b.field)
		}
	}
	if _, err := New(nil, DefaultConfig()); err == nil {
		t.Error("New with no records: no error")
	}
}

func TestNoCacheMatchesCache(t *testing.T) {
	recs := synthetic(t, 6, 150, 130)
	a := collect(t, newLoader(t, recs, nil), 4)
	b := collect(t, newLoader(t, recs, func(c *Config) { c.NoCache = true }), 4)
	for k := range a {
		if !slices.Equal(a[k].Images, b[k].Images) {
			t.Fatalf("batch %d differs without the cache", k)
		}
	}
}

func openProperMask(t testing.TB) *dataset.Set {
	t.Helper()
	set, err := dataset.Open(fixture.Path(t, "proper-mask", "train"), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestProperMaskBoxesInsideInput(t *testing.T) {
	set := openProperMask(t)
	l := newLoader(t, set.Records, func(c *Config) { c.Batch = 16 })
	samples, boxes, dropped := 0, 0, 0
	for _, b := range collect(t, l, 0) {
		samples += b.N
		for i := range b.N {
			want := len(set.Records[b.Records[i]].Objects)
			boxes += len(b.Boxes[i])
			dropped += want - len(b.Boxes[i])
			for j, bx := range b.Boxes[i] {
				if !bx.Valid() || bx.X1 < 0 || bx.Y1 < 0 || bx.X2 > 224 || bx.Y2 > 224 {
					t.Fatalf("%s: box %v outside the 224 px input", b.Paths[i], bx)
				}
				if c := b.Classes[i][j]; c < 0 || c > 1 {
					t.Fatalf("%s: class %d", b.Paths[i], c)
				}
			}
		}
	}
	if samples != len(set.Records) {
		t.Errorf("%d samples from %d records", samples, len(set.Records))
	}
	// Faces fill much of each crop; zoom seldom hides one.
	if dropped > samples/10 {
		t.Errorf("%d of %d boxes dropped", dropped, dropped+boxes)
	}
	t.Logf("%d samples, %d boxes kept, %d dropped by the crop", samples, boxes, dropped)
}

func BenchmarkEpoch(b *testing.B) {
	set := openProperMask(b)
	cfg := DefaultConfig()
	cfg.Workers = 2
	l, err := New(set.Records, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Preload(context.Background()); err != nil {
		b.Fatal(err)
	}
	images := 0
	for i := 0; b.Loop(); i++ {
		for batch, err := range l.Batches(context.Background(), i) {
			if err != nil {
				b.Fatal(err)
			}
			images += batch.N
		}
	}
	b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkPreload measures decoding and letterboxing, the cost of a first epoch
// or of every epoch with NoCache, on the larger Pascal VOC photographs.
func BenchmarkPreload(b *testing.B) {
	set, err := dataset.Open(fixture.Path(b, "facemask", "train"), dataset.Options{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Workers = 2
	images := 0
	for b.Loop() {
		l, err := New(set.Records, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Preload(context.Background()); err != nil {
			b.Fatal(err)
		}
		images += l.Len()
	}
	b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
}
