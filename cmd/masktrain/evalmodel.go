package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/train/evaluate"
	"github.com/maskwatch/maskwatch/train/fit"
)

// evalModel is what eval measures: a checkpoint run by GoMLX as trained,
// or a bundle run by an edge engine.
type evalModel struct {
	detector evaluate.Detector
	classes  []string
	engine   string
	close    func()
}

// openEvalModel opens --model: "default" and bundle files through package
// detect with --engine, checkpoints through frcnn (--engine gomlx or unset).
func openEvalModel(o *evalOptions) (*evalModel, error) {
	isBundle, err := looksLikeBundle(o.model)
	if err != nil {
		return nil, err
	}
	if isBundle {
		d, err := detect.Open(o.model, detect.Options{Engine: o.engine, Threads: o.threads,
			Delegate: o.delegate, DelegateFallback: o.fallback})
		if err != nil {
			return nil, err
		}
		bd, ok := d.(detect.BoxDetector)
		if !ok {
			d.Close()
			return nil, fmt.Errorf("detector %T gives no boxes to evaluate", d)
		}
		info := d.Info()
		return &evalModel{detector: &bundleDetector{d: bd},
			classes: info.Classes, engine: info.Engine, close: func() { d.Close() }}, nil
	}
	if o.engine != "" && o.engine != detect.EngineGoMLX {
		return nil, fmt.Errorf("%s is a checkpoint, which runs on GoMLX only: export it "+
			"(masktrain export) to run it with --engine %s", o.model, o.engine)
	}
	be, err := backend.New("")
	if err != nil {
		return nil, err
	}
	m, _, err := frcnn.Load(o.model, be)
	if err != nil {
		return nil, err
	}
	return &evalModel{detector: fit.NewDetector(m, o.batch), classes: m.Config.Classes,
		engine: "gomlx (checkpoint)", close: func() {}}, nil
}

// looksLikeBundle tells a model bundle from a checkpoint by its first bytes.
func looksLikeBundle(path string) (bool, error) {
	if path == detect.DefaultModel {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return true, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(bundle.Magic))
	if _, err := io.ReadFull(f, head); err != nil {
		return false, fmt.Errorf("%s: too short for a checkpoint or a bundle", path)
	}
	return bytes.Equal(head, []byte(bundle.Magic)), nil
}

// bundleDetector serves evaluate.Run with an edge detector, one image at a
// time, as frames.
type bundleDetector struct {
	d   detect.BoxDetector
	pix []byte
}

// BatchSize is 1: the edge detects frame by frame.
func (b *bundleDetector) BatchSize() int { return 1 }

// Detect converts each image to a frame and detects its faces.
func (b *bundleDetector) Detect(ctx context.Context, imgs []image.Image) ([][]box.Detection,
	error) {
	out := make([][]box.Detection, len(imgs))
	for i, img := range imgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var f detect.Frame
		f, b.pix = detect.FrameFromImage(img, b.pix)
		dets, err := b.d.DetectBoxes(f)
		if err != nil {
			return nil, err
		}
		out[i] = append([]box.Detection(nil), dets...)
	}
	return out, nil
}
