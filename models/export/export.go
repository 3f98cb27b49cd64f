// Package export turns a trained detector into a model bundle: both stage
// networks written as TFLite graphs of the precision asked (int8 calibrated
// on real images run through the float model), with the metadata and float
// weights package bundle defines.
package export

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/gomlx/gomlx/backends"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite"
)

// Options configure Export.
type Options struct {
	Precision tflite.Precision
	// MaxSide is input.Spec's; 0 means input.DefaultMaxSide.
	MaxSide int
	// WeightsType stores the float weights as "float32", "float16", or
	// "none" (a bundle only the TFLite engine can run); "" picks float32
	// for FP32 bundles and float16 otherwise (half the size, for the GoMLX
	// engine and fine-tuning).
	WeightsType string
	// Calibration yields the images int8 ranges are measured on, one at a
	// time, until it returns false; required for INT8, ignored otherwise.
	// CalibrationImages is how many it will yield (for progress), and
	// CalibrationSource says where they came from (recorded in the bundle).
	Calibration       func() (input.Source, bool, error)
	CalibrationImages int
	CalibrationSource string
	// CalibrationMethod pools the images' ranges; "" means
	// tflite.DefaultMethod.
	CalibrationMethod tflite.Method
	// Progress, when set, is told of each calibration image done.
	Progress func(done int)
	// Source and Exporter are recorded in the bundle.
	Source   bundle.Source
	Exporter string
	// Backend runs the float model for calibration.
	Backend backends.Backend
}

// Frame is the frame size the stage 1 graph is written for: a runtime
// resizes it for other sizes, at some cost on the first frame.
const frameWidth, frameHeight = 640, 480

// Colours of the boxes: green for masks worn properly, red otherwise.
const (
	properColour = "#00c000"
	otherColour  = "#e00000"
)

// Export writes m as a bundle. The context stops a long calibration.
func Export(ctx context.Context, m *frcnn.Model, opt Options) (*bundle.Bundle, error) {
	scope := m.Ctx.In(frcnn.Scope)
	w, err := m.Stage1.Weights(scope)
	if err != nil {
		return nil, fmt.Errorf("export: stage 1: %w", err)
	}
	w2, err := m.Stage2.Weights(scope)
	if err != nil {
		return nil, fmt.Errorf("export: stage 2: %w", err)
	}
	maps.Copy(w, w2)
	return FromWeights(ctx, m.Config, w, opt)
}

// FromWeights writes the detector of cfg with weights w (both stages, as
// net.Weights names them) as a bundle.
func FromWeights(ctx context.Context, cfg frcnn.Config, w net.Weights, opt Options) (
	*bundle.Bundle, error) {
	stage1, stage2, err := cfg.Stages()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if _, err := tflite.ParsePrecision(string(opt.Precision)); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	weightsType := opt.WeightsType
	switch weightsType {
	case "":
		weightsType = "float16"
		if opt.Precision == tflite.FP32 {
			weightsType = "float32"
		}
	case "none":
		weightsType = ""
	case "float32", "float16":
	default:
		return nil, fmt.Errorf("export: weights %q: use float32, float16 or none", weightsType)
	}
	spec := input.Spec{MaxSide: opt.MaxSide, Multiple: 32, Mean: cfg.Mean, Std: cfg.Std}
	if spec.MaxSide == 0 {
		spec.MaxSide = input.DefaultMaxSide
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}

	for _, n := range []*net.Net{stage1, stage2} {
		if err := w.Check(n); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}

	plan, err := spec.Plan(frameWidth, frameHeight)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	o1 := tflite.Options{Precision: opt.Precision,
		InputShapes: [][]int{{1, plan.Height, plan.Width, 3}},
		Description: fmt.Sprintf("maskwatch %s stage 1 (backbone, neck, RPN), %s",
			cfg.Backbone, opt.Precision)}
	o2 := tflite.Options{Precision: opt.Precision,
		InputShapes: [][]int{{cfg.EvalProposals.PostNMSTopN, cfg.RoIAlign.OutH,
			cfg.RoIAlign.OutW, cfg.NeckChannels}},
		Description: fmt.Sprintf("maskwatch %s stage 2 (box head), %s", cfg.Backbone,
			opt.Precision)}
	var calibration *bundle.Calibration
	if opt.Precision == tflite.INT8 {
		r1, r2, n, err := calibrate(ctx, cfg, stage1, stage2, w, spec, opt)
		if err != nil {
			return nil, err
		}
		o1.Ranges, o2.Ranges = r1, r2
		method := opt.CalibrationMethod
		if method == "" {
			method = tflite.DefaultMethod
		}
		calibration = &bundle.Calibration{Images: n, Source: opt.CalibrationSource,
			Method: string(method)}
	}
	g1, err := tflite.Write(stage1, w, o1)
	if err != nil {
		return nil, fmt.Errorf("export: stage 1: %w", err)
	}
	g2, err := tflite.Write(stage2, w, o2)
	if err != nil {
		return nil, fmt.Errorf("export: stage 2: %w", err)
	}

	classes := make([]bundle.Class, len(cfg.Classes))
	for i, name := range cfg.Classes {
		classes[i] = bundle.Class{Name: name, Colour: otherColour, Proper: i == cfg.Proper}
		if i == cfg.Proper {
			classes[i].Colour = properColour
		}
	}
	b := &bundle.Bundle{
		Meta: bundle.Meta{
			Created:     time.Now().UTC().Truncate(time.Second),
			Exporter:    opt.Exporter,
			Backbone:    string(cfg.Backbone),
			Precision:   string(opt.Precision),
			Classes:     classes,
			Model:       cfg,
			Input:       spec,
			Stage1:      bundle.Stage{Inputs: g1.Inputs, Outputs: g1.Outputs},
			Stage2:      bundle.Stage{Inputs: g2.Inputs, Outputs: g2.Outputs},
			WeightsType: weightsType,
			Source:      opt.Source,
			Calibration: calibration,
		},
		Stage1: g1.Model,
		Stage2: g2.Model,
	}
	if weightsType != "" {
		b.Weights = w
	}
	return b, nil
}

// calibrate measures the ranges of both stages' activations on the
// calibration images, each run as the edge runs a frame: stage 1 on the
// input, proposals and RoIAlign in Go, stage 2 on the pooled RoIs.
func calibrate(ctx context.Context, cfg frcnn.Config, stage1, stage2 *net.Net, w net.Weights,
	spec input.Spec, opt Options) (tflite.Ranges, tflite.Ranges, int, error) {
	if opt.Calibration == nil {
		return nil, nil, 0, fmt.Errorf("export: int8 needs calibration images: give a " +
			"folder of real photographs (such as proper-mask/train)")
	}
	if opt.Backend == nil {
		return nil, nil, 0, fmt.Errorf("export: int8 calibration needs a GoMLX backend")
	}
	c1, err := tflite.NewCalibrator(opt.Backend, stage1, w)
	if err != nil {
		return nil, nil, 0, err
	}
	defer c1.Close()
	c2, err := tflite.NewCalibrator(opt.Backend, stage2, w)
	if err != nil {
		return nil, nil, 0, err
	}
	defer c2.Close()

	var resizer input.Resizer
	table := spec.FloatTable()
	proposer := box.NewProposer(cfg.EvalProposals)
	var rgb []uint8
	var normalized []float32
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, 0, fmt.Errorf("export: calibration stopped: %w", err)
		}
		src, ok, err := opt.Calibration()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("export: calibration image: %w", err)
		}
		if !ok {
			break
		}
		plan, err := spec.Plan(src.Width, src.Height)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("export: calibration image: %w", err)
		}
		if rgb, err = resizer.Resize(rgb, src, plan, spec.PadColour()); err != nil {
			return nil, nil, 0, fmt.Errorf("export: calibration image: %w", err)
		}
		normalized = input.Normalize(normalized, rgb, table)
		out, err := c1.Add(net.Tensor{Shape: []int{1, plan.Height, plan.Width, 3},
			Values: normalized})
		if err != nil {
			return nil, nil, 0, err
		}
		feature, objectness, deltas := out[0], out[1], out[2]
		gh, gw := feature.Shape[1], feature.Shape[2]
		anchors := box.Anchors(nil, cfg.Anchors, gh, gw)
		proposals, err := proposer.Propose(nil, anchors, objectness.Values, deltas.Values, nil,
			float64(plan.ContentWidth), float64(plan.ContentHeight))
		if err != nil {
			return nil, nil, 0, fmt.Errorf("export: calibration: %w", err)
		}
		if len(proposals) > 0 {
			c := cfg.NeckChannels
			pooled := make([]float32, len(proposals)*cfg.RoIAlign.OutH*cfg.RoIAlign.OutW*c)
			if err := cfg.RoIAlign.Pool(pooled, feature.Values, gh, gw, c, proposals); err != nil {
				return nil, nil, 0, fmt.Errorf("export: calibration: %w", err)
			}
			if _, err := c2.Add(net.Tensor{Shape: []int{len(proposals), cfg.RoIAlign.OutH,
				cfg.RoIAlign.OutW, c}, Values: pooled}); err != nil {
				return nil, nil, 0, err
			}
		}
		if opt.Progress != nil {
			opt.Progress(c1.Count())
		}
	}
	if c1.Count() == 0 || c2.Count() == 0 {
		return nil, nil, 0, fmt.Errorf("export: calibration saw %d images and %d with "+
			"proposals: give real photographs", c1.Count(), c2.Count())
	}
	method := opt.CalibrationMethod
	if method == "" {
		method = tflite.DefaultMethod
	}
	r1, err := c1.Ranges(method)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("export: %w", err)
	}
	r2, err := c2.Ranges(method)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("export: %w", err)
	}
	lo, hi := spec.Range()
	r1[stage1.Layers[stage1.Inputs[0]].Name] = tflite.Range{Min: lo, Max: hi}
	// Pooled RoIs are weighted means of the feature map: they take its
	// quantisation, so the edge pools dequantised features and quantises
	// the result with the same scale.
	feature := r1[stage1.Layers[stage1.Outputs[0]].Name]
	r2[stage2.Layers[stage2.Inputs[0]].Name] = feature
	return r1, r2, c1.Count(), nil
}
