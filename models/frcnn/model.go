package frcnn

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/net"
)

// Scope is the context scope holding the model's weights; the optimizer
// keeps its state beside it.
const Scope = "model"

// Model is a detector: its config, its two networks and their weights in a
// GoMLX context, and the executables that run them. It is not safe for
// concurrent use.
type Model struct {
	Config         Config
	Stage1, Stage2 *net.Net
	// Ctx holds the weights (in Scope) and, when trained, the optimizer's state.
	Ctx     *context.Context
	Backend backends.Backend

	anchors    []box.Box
	detect     *detector
	statistics *context.Exec
}

// New returns a model of cfg with weights drawn from seed, on backend.
func New(cfg Config, backend backends.Backend, seed uint64) (*Model, error) {
	m, err := newModel(cfg, backend, context.New())
	if err != nil {
		return nil, err
	}
	if err := m.initWeights(seed); err != nil {
		return nil, err
	}
	return m, nil
}

// newModel builds the networks of cfg over ctx's weights, which are
// created or checked by the caller.
func newModel(cfg Config, backend backends.Backend, ctx *context.Context) (*Model, error) {
	stage1, stage2, err := cfg.Stages()
	if err != nil {
		return nil, err
	}
	g := cfg.Grid()
	return &Model{
		Config: cfg, Stage1: stage1, Stage2: stage2, Ctx: ctx, Backend: backend,
		anchors: box.Anchors(nil, cfg.Anchors, g, g),
	}, nil
}

func (m *Model) initWeights(seed uint64) error {
	scope := m.Ctx.In(Scope)
	if err := m.Stage1.Init(scope, seed); err != nil {
		return err
	}
	return m.Stage2.Init(scope, seed+1)
}

// Params counts the learned weights of both stages.
func (m *Model) Params() int { return m.Stage1.Params() + m.Stage2.Params() }

// Anchors returns the anchors of the feature map, in the RPN's output order.
func (m *Model) Anchors() []box.Box { return m.anchors }

// roiAlign pools rois from feature [N, G, G, C] with the factored RoIAlign
// weights wy [N, R*OutH, G] and wx [N*R, OutW, G] (box.RoIAlign.AxisWeights
// of each RoI), returning [N*R, OutH, OutW, C]. Two matrix products replace
// a gather of four corners per sample, and their gradients are matrix
// products too.
func roiAlign(feature, wy, wx *graph.Node, outH, outW int) *graph.Node {
	fd := feature.Shape().Dimensions
	n, h, w, c := fd[0], fd[1], fd[2], fd[3]
	rows := graph.Einsum("nky,nyz->nkz", wy, graph.Reshape(feature, n, h, w*c))
	r := wy.Shape().Dimensions[1] / outH
	rows = graph.Reshape(rows, n*r, outH, w, c)
	return graph.Einsum("njx,nixc->nijc", wx, rows)
}

// stage1 applies stage 1 to normalised images.
func (m *Model) stage1(ctx *context.Context, mode net.Mode, images *graph.Node) (
	feature, objectness, deltas *graph.Node) {
	out := m.Stage1.Apply(ctx.In(Scope), mode, images)
	return out[0], out[1], out[2]
}

// stage2 pools and classifies the RoIs described by wy and wx.
func (m *Model) stage2(ctx *context.Context, feature, wy, wx *graph.Node) (
	classes, deltas *graph.Node) {
	pooled := roiAlign(feature, wy, wx, m.Config.RoIAlign.OutH, m.Config.RoIAlign.OutW)
	out := m.Stage2.Apply(ctx.In(Scope), net.Inference, pooled)
	return out[0], out[1]
}

// newExec wraps context.NewExecAny for graph functions of a slice of inputs.
func (m *Model) newExec(name string,
	fn func(ctx *context.Context, in []*graph.Node) []*graph.Node) (*context.Exec, error) {
	e, err := context.NewExecAny(m.Backend, m.Ctx, fn)
	if err != nil {
		return nil, fmt.Errorf("detector: building %s: %w", name, err)
	}
	return e.WithName(name), nil
}

func (m *Model) stages() []*net.Net { return []*net.Net{m.Stage1, m.Stage2} }

// RecalibrateBatchNorm replaces stage 1's running batch-norm statistics by
// the statistics of the batches next returns, measured with the current
// weights (see net.Recalibration). next returns normalised images [n, Size,
// Size, 3] and n, or n == 0 when there are no more; batches should be of one
// size. Training calls it before each validation, so that the model
// validated and saved is the one trained.
func (m *Model) RecalibrateBatchNorm(next func() (images []float32, n int, err error)) error {
	r := m.Stage1.NewRecalibration()
	s := m.Config.Size
	for {
		images, n, err := next()
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if len(images) != n*s*s*3 {
			return fmt.Errorf("detector: recalibration batch of %d values for %d images "+
				"of %dx%dx3", len(images), n, s, s)
		}
		if m.statistics == nil {
			if m.statistics, err = m.newExec("batch statistics", func(ctx *context.Context,
				in []*graph.Node) []*graph.Node {
				_, stats := m.Stage1.ApplyWithStatistics(ctx.In(Scope), in[0])
				return []*graph.Node{stats}
			}); err != nil {
				return err
			}
		}
		out, err := m.statistics.Exec(tensors.FromFlatDataAndDimensions(images, n, s, s, 3))
		if err != nil {
			return fmt.Errorf("detector: batch statistics: %w", err)
		}
		err = r.Add(out[0])
		out[0].MustFinalizeAll()
		if err != nil {
			return err
		}
	}
	return r.Apply(m.Ctx.In(Scope))
}
