package detect

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"

	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
)

// gomlxEngine runs the bundle's float weights with GoMLX on maskwatch's
// pure-Go backend (OpenBLAS matrix products in cgo builds): slower than
// TFLite, but it needs no native library. It compiles each stage once per
// input size it meets (a camera's frames have one) and stage 2 once per
// bucket of RoIs. An int8 or fp16 bundle runs its float weights here, so
// its detections are those of the float model, not of its TFLite graphs.
// It uses every core whatever Options.Threads says: GoMLX v0.26.0's
// pure-Go backend deadlocks with a limit on its parallelism.
type gomlxEngine struct {
	backend                    backends.Backend
	stage1Runner, stage2Runner *net.Runner
	table                      *[3][256]float32
	image                      []float32
	h, w                       int
	roi                        [3]int // OutH, OutW, channels of a pooled RoI
}

func newGoMLXEngine(b *bundle.Bundle, opt Options) (*gomlxEngine, error) {
	if b.Weights == nil {
		return nil, fmt.Errorf("gomlx engine: bundle %s carries no float weights; export it "+
			"with --weights float16 or float32, or use the tflite engine", b.ShortVersion())
	}
	be, err := backend.New("")
	if err != nil {
		return nil, fmt.Errorf("gomlx engine: %w", err)
	}
	n1, n2, err := b.Meta.Model.Stages()
	if err != nil {
		return nil, fmt.Errorf("gomlx engine: %w", err)
	}
	cfg := b.Meta.Model
	e := &gomlxEngine{backend: be, table: b.Meta.Input.FloatTable(),
		roi: [3]int{cfg.RoIAlign.OutH, cfg.RoIAlign.OutW, cfg.NeckChannels}}
	if e.stage1Runner, err = net.NewRunner(be, n1, b.Weights, nil); err != nil {
		be.Finalize()
		return nil, fmt.Errorf("gomlx engine: stage 1: %w", err)
	}
	if e.stage2Runner, err = net.NewRunner(be, n2, b.Weights, nil); err != nil {
		e.stage1Runner.Close()
		be.Finalize()
		return nil, fmt.Errorf("gomlx engine: stage 2: %w", err)
	}
	return e, nil
}

func (e *gomlxEngine) name() string { return EngineGoMLX }

// bucket is large: each batch size compiles a graph.
func (e *gomlxEngine) bucket() int { return 16 }

func (e *gomlxEngine) setInput(rgb []uint8, h, w int) error {
	e.image = input.Normalize(e.image, rgb, e.table)
	e.h, e.w = h, w
	return nil
}

func (e *gomlxEngine) stage1() (feature, objectness, deltas []float32, gh, gw int, err error) {
	out, err := e.stage1Runner.Run(net.Tensor{Shape: []int{1, e.h, e.w, 3}, Values: e.image})
	if err != nil {
		return nil, nil, nil, 0, 0, err
	}
	return out[0].Values, out[1].Values, out[2].Values, out[0].Shape[1], out[0].Shape[2], nil
}

func (e *gomlxEngine) stage2(pooled []float32, r, n int) (logits, deltas []float32, err error) {
	shape := []int{r, e.roi[0], e.roi[1], e.roi[2]}
	out, err := e.stage2Runner.Run(net.Tensor{Shape: shape, Values: pooled})
	if err != nil {
		return nil, nil, err
	}
	k := len(out[0].Values) / r
	return out[0].Values[:n*k], out[1].Values[:n*4*k], nil
}

// close releases the compiled graphs, then the backend's buffers.
func (e *gomlxEngine) close() error {
	e.stage1Runner.Close()
	e.stage2Runner.Close()
	e.backend.Finalize()
	return nil
}
