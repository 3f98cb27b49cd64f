package fit

import (
	"context"
	"fmt"
	"image"
	"sync"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/train/loader"
)

// Detector runs a GoMLX model on whole images: letterboxed to the model's
// input, detected, and mapped back to each image's pixels. It serves
// evaluate.Run. It is not safe for concurrent use.
type Detector struct {
	Model *frcnn.Model
	// Batch is how many images one call of the model takes.
	Batch int

	buf []float32
}

// NewDetector wraps m, detecting batch images at a time.
func NewDetector(m *frcnn.Model, batch int) *Detector {
	return &Detector{Model: m, Batch: max(batch, 1)}
}

// BatchSize is the number of images Detect is best given at once.
func (d *Detector) BatchSize() int { return d.Batch }

// Normalize is the model's input normalisation.
func normalize(cfg frcnn.Config) loader.Normalize {
	return loader.Normalize{Mean: cfg.Mean, Std: cfg.Std}
}

// Detect finds faces in imgs; boxes are in each image's pixels and classes
// in the model's numbering.
func (d *Detector) Detect(ctx context.Context, imgs []image.Image) ([][]box.Detection, error) {
	cfg := d.Model.Config
	out := make([][]box.Detection, 0, len(imgs))
	per := cfg.Size * cfg.Size * 3
	for start := 0; start < len(imgs); start += d.Batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk := imgs[start:min(start+d.Batch, len(imgs))]
		if cap(d.buf) < len(chunk)*per {
			d.buf = make([]float32, len(chunk)*per)
		}
		buf := d.buf[:len(chunk)*per]
		boxes := make([]box.Letterbox, len(chunk))
		var wg sync.WaitGroup
		for i, img := range chunk {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, boxes[i] = loader.Preprocess(img, cfg.Size, normalize(cfg), buf[i*per:i*per:(i+1)*per])
			}()
		}
		wg.Wait()
		dets, err := d.Model.Detect(buf, len(chunk))
		if err != nil {
			return nil, fmt.Errorf("detect: %w", err)
		}
		for i, img := range chunk {
			b := img.Bounds()
			for k := range dets[i] {
				dets[i][k].Box = boxes[i].ToImage(dets[i][k].Box).Clip(
					float64(b.Dx()), float64(b.Dy()))
			}
			out = append(out, dets[i])
		}
	}
	return out, nil
}
