// Package loader turns a data set's records into batches of normalised float32
// NHWC tensors for training and evaluation: it decodes and letterboxes each image
// once, caches it, and augments it deterministically from a seed.
package loader

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // the data sets' photographs
	_ "image/png"
	"iter"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/train/dataset"
)

// Config sets how a Loader batches and augments. DefaultConfig fills every field.
type Config struct {
	Size  int // side of the square model input in pixels (224)
	Batch int // images a batch holds; a short last batch is padded to it
	// Workers build batches in parallel; 0 means runtime.NumCPU().
	Workers int
	// Prefetch bounds the batches built ahead of the consumer; 0 means 2 x Workers.
	Prefetch int
	Seed     uint64 // with the epoch, fixes the order and every random draw
	Shuffle  bool   // visit the records in a fresh random order each epoch
	// Augment is applied to every sample; the zero value (for evaluation) leaves
	// samples as Preprocess makes them.
	Augment   Augment
	Normalize Normalize // use ImageNet() unless the model was trained otherwise
	// NoCache decodes every image each time it is used instead of keeping its
	// letterboxed pixels ((Size+2)² x 3 bytes, 150 KiB at 224, for each record).
	// For data sets too large for memory; decoding then bounds the speed.
	NoCache bool
}

// DefaultConfig is the training configuration: 224 px inputs, batches of 8,
// shuffled, with DefaultAugment and ImageNet normalisation.
func DefaultConfig() Config {
	return Config{
		Size: 224, Batch: 8, Shuffle: true,
		Augment: DefaultAugment(), Normalize: ImageNet(),
	}
}

// Validate names the first invalid field and what to set it to.
func (c Config) Validate() error {
	switch {
	case c.Size <= 0 || c.Size > 4096:
		return fmt.Errorf("Config.Size is %d: set it to the model input's side in pixels, "+
			"1 to 4096 (224 for the detector)", c.Size)
	case c.Batch <= 0:
		return fmt.Errorf("Config.Batch is %d: set it to the images a step takes, 1 or more "+
			"(DefaultConfig uses 8)", c.Batch)
	case c.Workers < 0:
		return fmt.Errorf("Config.Workers is %d: set it to 1 or more, or 0 for one a CPU",
			c.Workers)
	case c.Prefetch < 0:
		return fmt.Errorf("Config.Prefetch is %d: set it to 1 or more, or 0 for twice the "+
			"workers", c.Prefetch)
	}
	if err := c.Augment.Validate(); err != nil {
		return fmt.Errorf("Config.%w", err)
	}
	if err := c.Normalize.Validate(); err != nil {
		return fmt.Errorf("Config.%w", err)
	}
	return nil
}

// Loader makes batches from a fixed list of records. It is safe for concurrent use;
// each call of Batches has its own workers.
//
// Records whose Dropped is above 0 hold faces a reader could not label; they are
// kept, and those faces count as background. Filter them out before New to avoid
// that. Records with no objects are kept as all-background samples.
type Loader struct {
	cfg     Config
	records []dataset.Record
	entries []entry
	lut     [3][256]float32
	pad     [3]uint8
}

// entry is one record's cached, letterboxed pixels.
type entry struct {
	mu     sync.Mutex
	canvas []uint8 // Size x Size RGB with a one-pixel border of padding
	fit    box.Letterbox
	cw, ch int     // the image content's size in the canvas
	grey   float64 // the content's mean grey in [0, 1]
}

// New makes a Loader for records, which it keeps (and does not copy); it decodes
// nothing until the images are used or Preload is called.
func New(records []dataset.Record, cfg Config) (*Loader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if len(records) == 0 {
		return nil, errors.New("loader: no records: read a data set with at least one image")
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 2 * cfg.Workers
	}
	return &Loader{
		cfg: cfg, records: records, entries: make([]entry, len(records)),
		lut: cfg.Normalize.table(), pad: padColour(cfg.Normalize),
	}, nil
}

// Config returns the configuration, with Workers and Prefetch resolved.
func (l *Loader) Config() Config { return l.cfg }

// Len is the number of records.
func (l *Loader) Len() int { return len(l.records) }

// Steps is the number of batches in an epoch, the last possibly short.
func (l *Loader) Steps() int { return (len(l.records) + l.cfg.Batch - 1) / l.cfg.Batch }

// Order returns the record indices in the order epoch visits them: a permutation
// drawn from (Seed, epoch) when Shuffle is set, so a resumed run repeats it, or
// else 0, 1, 2, ...
func (l *Loader) Order(epoch int) []int {
	if !l.cfg.Shuffle {
		order := make([]int, len(l.records))
		for i := range order {
			order[i] = i
		}
		return order
	}
	r := rand.New(rand.NewPCG(mix(l.cfg.Seed, uint64(epoch)), 0x6f72646572)) // "order"
	return r.Perm(len(l.records))
}

// Preload decodes and caches every image now, with Workers in parallel, so the
// first epoch runs as fast as the rest. It returns the first error (an image that
// is missing or changed) and does nothing when NoCache is set.
func (l *Loader) Preload(ctx context.Context) error {
	if l.cfg.NoCache {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errs := make(chan error, l.cfg.Workers)
	var wg sync.WaitGroup
	for range l.cfg.Workers {
		wg.Go(func() {
			for i := range next {
				if _, err := l.load(i); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
feed:
	for i := range l.records {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}

// load returns record i's letterboxed canvas, decoding it unless cached. The
// canvas is shared and must not be written.
func (l *Loader) load(i int) (*entry, error) {
	if l.cfg.NoCache {
		e := &entry{}
		return e, l.decode(i, e)
	}
	e := &l.entries[i]
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.canvas == nil {
		if err := l.decode(i, e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// decode reads record i's image and letterboxes it into e.
func (l *Loader) decode(i int, e *entry) error {
	rec := &l.records[i]
	f, err := os.Open(rec.Path)
	if err != nil {
		return fmt.Errorf("loader: record %d: %w", i, err)
	}
	img, _, err := image.Decode(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("loader: record %d: decode %s: %w", i, rec.Path, err)
	}
	rgb, w, h := toRGB(img)
	if w != rec.Width || h != rec.Height {
		return fmt.Errorf("loader: record %d: %s is %dx%d but its record says %dx%d: "+
			"the file changed since the data set was read; read it again",
			i, rec.Path, w, h, rec.Width, rec.Height)
	}

	size := l.cfg.Size
	fit := box.FitLetterbox(w, h, size)
	canvas := make([]uint8, canvasLen(size))
	fitCanvas(canvas, rgb, w, h, size, fit.Scale, l.pad)
	e.canvas, e.fit = canvas, fit
	e.cw, e.ch = contentSize(w, fit.Scale, size), contentSize(h, fit.Scale, size)
	e.grey = meanGrey(canvas, size, e.cw, e.ch)
	return nil
}

// meanGrey is the mean luma, in [0, 1], of the cw x ch content of a canvas.
func meanGrey(canvas []uint8, size, cw, ch int) float64 {
	stride := (size + 2) * 3
	var sum float64
	for y := range ch {
		row := canvas[(y+1)*stride+3:]
		for x := range cw {
			p := row[x*3:]
			sum += lumaWeights[0]*float64(p[0]) + lumaWeights[1]*float64(p[1]) +
				lumaWeights[2]*float64(p[2])
		}
	}
	return sum / float64(cw*ch) / 255
}

// Batch is one step's images and targets. Images always holds a full batch so
// that tensor shapes stay fixed; only the first N are real. The per-sample
// slices (Boxes, Classes, Records, Paths, Letterbox, Flipped) have N entries;
// images N and above are zero (the mean colour after normalisation) and have none.
type Batch struct {
	Epoch, Step int
	Size        int         // input side in pixels
	Images      []float32   // Config.Batch x Size x Size x 3, NHWC, RGB, normalised
	N           int         // real images: Config.Batch, or fewer in an epoch's last batch
	Boxes       [][]box.Box // each sample's faces in input pixels, inside [0, Size]
	Classes     [][]int     // each face's class, as Object.Class
	Records     []int       // index of each sample's record
	Paths       []string    // each sample's image file
	// Letterbox maps each sample's input back to its image: Scale and Pad include
	// the augmentation's zoom and crop. Where Flipped is set, the input was also
	// mirrored: ToImage undoes both.
	Letterbox []box.Letterbox
	Flipped   []bool
}

// Image returns sample i's Size x Size x 3 values.
func (b Batch) Image(i int) []float32 {
	n := b.Size * b.Size * 3
	return b.Images[i*n : (i+1)*n]
}

// ToImage maps a box in sample i's input pixels back to its image's pixels,
// undoing the mirror (if any) and then the letterbox.
func (b Batch) ToImage(i int, bx box.Box) box.Box {
	if b.Flipped[i] {
		s := float64(b.Size)
		bx.X1, bx.X2 = s-bx.X2, s-bx.X1
	}
	return b.Letterbox[i].ToImage(bx)
}

// Batches returns epoch's batches in order, built ahead by Workers goroutines
// with at most Prefetch batches waiting. Breaking out of the loop, or cancelling
// ctx, stops the workers before the loop returns; cancelling yields ctx's error
// once. A record whose image cannot be read yields its error once and ends the
// sequence. Each Batch owns its slices.
//
// The same Seed and epoch give the same batches whatever the number of workers:
// sample augmentation is drawn from (Seed, epoch, record index).
func (l *Loader) Batches(ctx context.Context, epoch int) iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		order := l.Order(epoch)
		steps := l.Steps()
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() {
			cancel()
			wg.Wait()
		}()

		type result struct {
			b   Batch
			err error
		}
		results := make([]chan result, steps)
		for k := range results {
			results[k] = make(chan result, 1)
		}
		jobs := make(chan int)
		slots := make(chan struct{}, l.cfg.Prefetch)
		wg.Go(func() {
			defer close(jobs)
			for k := range steps {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				select {
				case jobs <- k:
				case <-ctx.Done():
					return
				}
			}
		})
		for range min(l.cfg.Workers, steps) {
			wg.Go(func() {
				for k := range jobs {
					b, err := l.build(ctx, epoch, k, order)
					results[k] <- result{b, err}
				}
			})
		}

		stopped := func(k int) {
			yield(Batch{}, fmt.Errorf("loader: epoch %d stopped at batch %d: %w",
				epoch, k, context.Cause(ctx)))
		}
		for k := range steps {
			if ctx.Err() != nil { // a cancel wins over a batch already built
				stopped(k)
				return
			}
			var r result
			select {
			case r = <-results[k]:
			case <-ctx.Done():
				stopped(k)
				return
			}
			<-slots
			if r.err != nil {
				yield(Batch{}, r.err)
				return
			}
			if !yield(r.b, nil) {
				return
			}
		}
	}
}

// build makes batch k of epoch from order.
func (l *Loader) build(ctx context.Context, epoch, k int, order []int) (Batch, error) {
	size, n := l.cfg.Size, l.cfg.Batch
	idxs := order[k*n : min((k+1)*n, len(order))]
	b := Batch{
		Epoch: epoch, Step: k, Size: size, N: len(idxs),
		Images:    make([]float32, n*size*size*3),
		Boxes:     make([][]box.Box, len(idxs)),
		Classes:   make([][]int, len(idxs)),
		Records:   make([]int, len(idxs)),
		Paths:     make([]string, len(idxs)),
		Letterbox: make([]box.Letterbox, len(idxs)),
		Flipped:   make([]bool, len(idxs)),
	}
	for j, ri := range idxs {
		if err := ctx.Err(); err != nil {
			return Batch{}, err
		}
		if err := l.sample(epoch, ri, &b, j); err != nil {
			return Batch{}, err
		}
	}
	return b, nil
}

// sample renders record ri as sample j of b.
func (l *Loader) sample(epoch, ri int, b *Batch, j int) error {
	e, err := l.load(ri)
	if err != nil {
		return err
	}
	rec := &l.records[ri]
	size := l.cfg.Size
	dst := b.Image(j)
	b.Records[j], b.Paths[j] = ri, rec.Path

	boxes := make([]box.Box, len(rec.Objects))
	for i, o := range rec.Objects {
		boxes[i] = e.fit.ToModel(o.Box)
	}
	s := sampleAug{scale: 1}
	if a := l.cfg.Augment; a.Enabled() {
		r := rand.New(rand.NewPCG(mix(l.cfg.Seed, uint64(epoch)), mix(uint64(ri), 0x617567))) // "aug"
		s = drawAug(r, a, size, e.cw, e.ch, e.grey)
		render(dst, e.canvas, size, s, l.cfg.Normalize)
	} else {
		normalizeCanvas(dst, e.canvas, size, &l.lut)
	}

	kept, idx := mapBoxes(boxes, s, size, l.cfg.Augment.MinVisible)
	b.Boxes[j] = kept
	b.Classes[j] = make([]int, len(idx))
	for i, k := range idx {
		b.Classes[j][i] = rec.Objects[k].Class
	}
	b.Letterbox[j] = e.fit.Then(s.geometry())
	b.Flipped[j] = s.flip
	return nil
}

// mix hashes two words into a seed (SplitMix64's finaliser over their combination).
func mix(a, b uint64) uint64 {
	z := a ^ (b+0x9e3779b97f4a7c15)*0xbf58476d1ce4e5b9
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
