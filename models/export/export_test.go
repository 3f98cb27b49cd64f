package export

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite"
)

func detector(t *testing.T) (frcnn.Config, net.Weights) {
	t.Helper()
	cfg := frcnn.DefaultConfig(net.MobileNetV3Large)
	s1, s2, err := cfg.Stages()
	if err != nil {
		t.Fatal(err)
	}
	w := net.Weights{}
	ctx := gctx.New()
	for _, n := range []*net.Net{s1, s2} {
		if err := n.Init(ctx, 1); err != nil {
			t.Fatal(err)
		}
		part, err := n.Weights(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range part {
			w[k] = v
		}
	}
	return cfg, w
}

func TestFromWeights(t *testing.T) {
	cfg, w := detector(t)
	b, err := FromWeights(context.Background(), cfg, w, Options{Precision: tflite.FP16,
		Exporter: "test"})
	if err != nil {
		t.Fatal(err)
	}
	m := b.Meta
	if m.Precision != "fp16" || m.WeightsType != "float16" || m.Backbone != "mobilenetv3" ||
		m.Input.MaxSide != input.DefaultMaxSide || m.Calibration != nil {
		t.Errorf("meta %+v", m)
	}
	if m.Classes[0].Colour != "#00c000" || !m.Classes[0].Proper || m.Classes[1].Proper {
		t.Errorf("classes %+v", m.Classes)
	}
	// Stage 1 is written for a 640x480 frame at half size; stage 2 for the
	// proposals an image keeps.
	if got := m.Stage1.Inputs[0].Shape; !slices.Equal(got, []int{1, 256, 320, 3}) {
		t.Errorf("stage 1 input %v", got)
	}
	if got := m.Stage2.Inputs[0].Shape; !slices.Equal(got, []int{100, 7, 7, 128}) {
		t.Errorf("stage 2 input %v", got)
	}
	if len(b.Weights) != len(w) {
		t.Errorf("%d weights carried of %d", len(b.Weights), len(w))
	}
	b, err = FromWeights(context.Background(), cfg, w, Options{Precision: tflite.FP32,
		WeightsType: "none", MaxSide: 640})
	if err != nil || b.Weights != nil || b.Meta.WeightsType != "" ||
		!slices.Equal(b.Meta.Stage1.Inputs[0].Shape, []int{1, 480, 640, 3}) {
		t.Errorf("fp32 without weights at 640: %v %+v", err, b.Meta.Stage1.Inputs)
	}
}

func TestFromWeightsRefuses(t *testing.T) {
	cfg, w := detector(t)
	ctx := context.Background()
	for _, tc := range []struct {
		opt  Options
		want string
	}{
		{Options{Precision: "int4"}, "int4"},
		{Options{Precision: tflite.FP32, WeightsType: "int8"}, "weights"},
		{Options{Precision: tflite.INT8}, "calibration images"},
		{Options{Precision: tflite.FP32, MaxSide: 16}, "max side"},
	} {
		if _, err := FromWeights(ctx, cfg, w, tc.opt); err == nil ||
			!strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opt, err, tc.want)
		}
	}
	// A calibration that is stopped stops the export.
	be, err := backend.New("")
	if err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	_, err = FromWeights(stopped, cfg, w, Options{Precision: tflite.INT8, Backend: be,
		Calibration: func() (input.Source, bool, error) {
			return input.Source{Pix: make([]byte, 3), Width: 1, Height: 1, Stride: 3}, true, nil
		}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled calibration: %v", err)
	}
	delete(w, "head/box/bias")
	if _, err := FromWeights(ctx, cfg, w, Options{Precision: tflite.FP32}); err == nil ||
		!strings.Contains(err.Error(), "head/box/bias") {
		t.Errorf("missing weight: %v", err)
	}
}
