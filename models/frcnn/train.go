package frcnn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/maskwatch/maskwatch/models/net"
)

// Losses are the study's four losses of one batch, their sum, and the norm
// of the gradient before clipping (0 where no gradient was taken).
type Losses struct {
	RPNObjectness, RPNBox, RoIClass, RoIBox, Total float64
	GradNorm                                       float64
}

// TrainOptions configure a Trainer. The study's: Adam at 1e-3, batch 32,
// gradient norm clipped at 10.
type TrainOptions struct {
	Batch        int
	LearningRate float64
	// Clip is the largest global gradient norm; larger gradients are scaled
	// down to it. 0 turns clipping off.
	Clip float64
	// Seed drives the sampling of anchors and RoIs, step by step.
	Seed uint64
}

// gradientUpdater is the part of GoMLX's Adam that takes gradients computed
// elsewhere (here: clipped).
type gradientUpdater interface {
	UpdateGraphWithGradients(ctx *context.Context, grads []*graph.Node, lossDType dtypes.DType)
}

// Trainer trains a Model's weights in place with Adam. A training step runs
// two graphs: stage 1 forward (batch statistics, nothing updated), whose
// proposals package box turns into sampled RoIs, then the whole detector
// with its four losses, their gradient and the optimizer's update.
type Trainer struct {
	m       *Model
	opt     TrainOptions
	adam    optimizers.Interface
	targets *targetBuilder

	propose, step, evaluate *context.Exec
}

// NewTrainer prepares training of m. The optimizer's state lives in m.Ctx
// and is saved with it, so a loaded checkpoint resumes where it stopped.
func (m *Model) NewTrainer(opt TrainOptions) (*Trainer, error) {
	if opt.Batch <= 0 {
		return nil, fmt.Errorf("trainer: batch %d: must be positive", opt.Batch)
	}
	if !(opt.LearningRate > 0) {
		return nil, fmt.Errorf("trainer: learning rate %v: must be positive", opt.LearningRate)
	}
	if !(opt.Clip >= 0) {
		return nil, fmt.Errorf("trainer: clip %v: must be 0 (off) or positive", opt.Clip)
	}
	adam := optimizers.Adam().LearningRate(opt.LearningRate).Done()
	if _, ok := adam.(gradientUpdater); !ok {
		return nil, fmt.Errorf("trainer: GoMLX's Adam (%T) takes no gradients; "+
			"this package was written for GoMLX v0.26.0", adam)
	}
	t := &Trainer{
		m: m, opt: opt,
		adam:    adam,
		targets: newTargetBuilder(m.Config, m.anchors),
	}
	var err error
	if t.propose, err = m.newExec("rpn forward", t.proposeGraph); err != nil {
		return nil, err
	}
	if t.step, err = m.newExec("train step", t.stepGraph); err != nil {
		return nil, err
	}
	if t.evaluate, err = m.newExec("validation losses", t.lossOnlyGraph); err != nil {
		return nil, err
	}
	return t, nil
}

// SetLearningRate changes the learning rate from the next step on.
func (t *Trainer) SetLearningRate(lr float64) {
	v := optimizers.LearningRateVar(t.m.Ctx, dtypes.Float32, lr)
	v.MustSetValue(tensors.FromScalar(float32(lr)))
}

// GlobalStep is the number of steps taken, saved with the weights.
func (t *Trainer) GlobalStep() int64 { return optimizers.GetGlobalStep(t.m.Ctx) }

func (t *Trainer) proposeGraph(ctx *context.Context, in []*graph.Node) []*graph.Node {
	_, objectness, deltas := t.m.stage1(ctx, net.TrainingFrozen, in[0])
	return []*graph.Node{objectness, deltas}
}

// Step trains on one batch: images hold opt.Batch normalised images
// [Batch, Size, Size, 3] and truths their boxes (a shorter truths leaves
// the rest background). It returns the batch's losses.
func (t *Trainer) Step(images []float32, truths []Truth) (Losses, error) {
	inputs, err := t.inputs(images, truths, t.propose)
	if err != nil {
		return Losses{}, err
	}
	return t.run(t.step, inputs)
}

// Losses computes the losses of one batch with the running batch-norm
// statistics, as the model will detect, changing nothing.
func (t *Trainer) Losses(images []float32, truths []Truth) (Losses, error) {
	inputs, err := t.inputs(images, truths, nil)
	if err != nil {
		return Losses{}, err
	}
	return t.run(t.evaluate, inputs)
}

func (t *Trainer) run(e *context.Exec, inputs []any) (Losses, error) {
	out, err := e.Exec(inputs...)
	if err != nil {
		return Losses{}, fmt.Errorf("trainer: %w", err)
	}
	values, err := tensors.CopyFlatData[float32](out[0])
	if err != nil {
		return Losses{}, err
	}
	l := Losses{
		RPNObjectness: float64(values[0]), RPNBox: float64(values[1]),
		RoIClass: float64(values[2]), RoIBox: float64(values[3]), GradNorm: float64(values[4]),
	}
	l.Total = l.RPNObjectness + l.RPNBox + l.RoIClass + l.RoIBox
	if math.IsNaN(l.Total) || math.IsInf(l.Total, 0) {
		return l, errors.New("trainer: the loss is not finite; lower --lr or check the data")
	}
	return l, nil
}

// inputs builds a step's tensors: the images, and the targets assigned from
// stage 1's proposals (run by propose in training mode, or by the inference
// stage 1 when propose is nil).
func (t *Trainer) inputs(images []float32, truths []Truth, propose *context.Exec) ([]any, error) {
	cfg := t.m.Config
	n, s := t.opt.Batch, cfg.Size
	if len(images) != n*s*s*3 {
		return nil, fmt.Errorf("trainer: %d image values, want %d images of %dx%dx3",
			len(images), n, s, s)
	}
	if len(truths) > n {
		return nil, fmt.Errorf("trainer: %d truths for a batch of %d", len(truths), n)
	}
	if err := checkTruths(truths, cfg.NumClasses()); err != nil {
		return nil, err
	}
	imageTensor := tensors.FromFlatDataAndDimensions(images, n, s, s, 3)

	var objectness, deltas []float32
	var err error
	if propose != nil {
		objectness, deltas, err = t.rpnOutputs(propose, imageTensor)
	} else {
		objectness, deltas, err = t.m.rpnInference(imageTensor)
	}
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(t.opt.Seed, uint64(t.GlobalStep())))
	rpn := t.targets.rpn(truths, n, rng)
	roi, err := t.targets.roi(truths, n, objectness, deltas, rng)
	if err != nil {
		return nil, err
	}

	a, r, g := len(t.m.anchors), cfg.RoIBatch, cfg.Grid()
	outH, outW := cfg.RoIAlign.OutH, cfg.RoIAlign.OutW
	return []any{
		imageTensor,
		tensors.FromFlatDataAndDimensions(rpn.labels, n, a),
		tensors.FromFlatDataAndDimensions(rpn.deltas, n, a, 4),
		tensors.FromFlatDataAndDimensions(roi.wy, n, r*outH, g),
		tensors.FromFlatDataAndDimensions(roi.wx, n*r, outW, g),
		tensors.FromFlatDataAndDimensions(roi.labels, n*r),
		tensors.FromFlatDataAndDimensions(roi.weights, n*r),
		tensors.FromFlatDataAndDimensions(roi.deltas, n*r, 4),
	}, nil
}

func (t *Trainer) rpnOutputs(e *context.Exec, images *tensors.Tensor) (
	objectness, deltas []float32, err error) {
	out, err := e.Exec(images)
	if err != nil {
		return nil, nil, fmt.Errorf("trainer: stage 1: %w", err)
	}
	if objectness, err = tensors.CopyFlatData[float32](out[0]); err != nil {
		return nil, nil, err
	}
	deltas, err = tensors.CopyFlatData[float32](out[1])
	return objectness, deltas, err
}

// losses builds the four losses, torchvision's way: binary cross-entropy
// over the sampled anchors; smooth L1 (beta 1/9) over the positive anchors,
// divided by the sampled ones; cross-entropy over the sampled RoIs; smooth
// L1 of the true class's deltas over the positive RoIs, divided by the
// sampled ones.
func (t *Trainer) losses(ctx *context.Context, mode net.Mode, in []*graph.Node) []*graph.Node {
	images, rpnLabels, rpnTargets := in[0], in[1], in[2]
	wy, wx, roiLabels, roiWeights, roiTargets := in[3], in[4], in[5], in[6], in[7]
	n, a := rpnLabels.Shape().Dimensions[0], rpnLabels.Shape().Dimensions[1]
	k := t.m.Config.NumClasses()

	feature, objectness, deltas := t.m.stage1(ctx, mode, images)
	objectness = graph.Reshape(objectness, n, a)
	deltas = graph.Reshape(deltas, n, a, 4)
	sampled := graph.ConvertDType(graph.GreaterOrEqual(rpnLabels, graph.ZerosLike(rpnLabels)),
		dtypes.Float32)
	positive := graph.ConvertDType(graph.GreaterThan(rpnLabels, graph.ZerosLike(rpnLabels)),
		dtypes.Float32)
	sampledCount := graph.MaxScalar(graph.ReduceAllSum(sampled), 1)
	bce := binaryCrossEntropy(objectness, positive)
	rpnObjectness := graph.Div(graph.ReduceAllSum(graph.Mul(bce, sampled)), sampledCount)
	rpnBox := graph.Div(graph.ReduceAllSum(graph.Mul(
		graph.ReduceSum(smoothL1(graph.Sub(deltas, rpnTargets), 1.0/9), -1), positive)),
		sampledCount)

	classes, boxDeltas := t.m.stage2(ctx, feature, wy, wx)
	roiCount := graph.MaxScalar(graph.ReduceAllSum(roiWeights), 1)
	oneHot := graph.OneHot(roiLabels, k, dtypes.Float32)
	logProbs := graph.LogSoftmax(classes, -1)
	picked := graph.ReduceSum(graph.Mul(logProbs, oneHot), -1)
	roiClass := graph.Div(graph.Neg(graph.ReduceAllSum(graph.Mul(picked, roiWeights))), roiCount)
	r := roiLabels.Shape().Dimensions[0]
	classDeltas := graph.ReduceSum(graph.Mul(graph.Reshape(boxDeltas, r, k, 4),
		graph.BroadcastToDims(graph.Reshape(oneHot, r, k, 1), r, k, 4)), 1)
	foreground := graph.Mul(graph.ConvertDType(graph.GreaterThan(roiLabels,
		graph.ZerosLike(roiLabels)), dtypes.Float32), roiWeights)
	roiBox := graph.Div(graph.ReduceAllSum(graph.Mul(
		graph.ReduceSum(smoothL1(graph.Sub(classDeltas, roiTargets), 1.0/9), -1), foreground)),
		roiCount)
	return []*graph.Node{rpnObjectness, rpnBox, roiClass, roiBox}
}

// binaryCrossEntropy of logits x against targets z, computed without
// overflow: max(x, 0) - x*z + log(1 + exp(-|x|)).
func binaryCrossEntropy(x, z *graph.Node) *graph.Node {
	return graph.Add(graph.Sub(graph.MaxScalar(x, 0), graph.Mul(x, z)),
		graph.Log1p(graph.Exp(graph.Neg(graph.Abs(x)))))
}

// smoothL1 is 0.5 d²/beta where |d| < beta and |d| - 0.5 beta elsewhere.
func smoothL1(d *graph.Node, beta float64) *graph.Node {
	abs := graph.Abs(d)
	return graph.Where(graph.LessThan(abs, graph.ConstAsDType(d.Graph(), d.DType(), beta)),
		graph.MulScalar(graph.Square(d), 0.5/beta), graph.AddScalar(abs, -0.5*beta))
}

func (t *Trainer) stepGraph(ctx *context.Context, in []*graph.Node) []*graph.Node {
	parts := t.losses(ctx, net.Training, in)
	total := graph.Add(graph.Add(parts[0], parts[1]), graph.Add(parts[2], parts[3]))
	grads := ctx.BuildTrainableVariablesGradientsGraph(total)

	var sumSquares *graph.Node
	for _, grad := range grads {
		s := graph.ReduceAllSum(graph.Square(grad))
		if sumSquares == nil {
			sumSquares = s
		} else {
			sumSquares = graph.Add(sumSquares, s)
		}
	}
	norm := graph.Sqrt(sumSquares)
	if t.opt.Clip > 0 {
		// As torch's clip_grad_norm_: scale by clip / (norm + 1e-6) when below 1.
		scale := graph.MinScalar(graph.Div(
			graph.ConstAsDType(norm.Graph(), norm.DType(), t.opt.Clip),
			graph.AddScalar(norm, 1e-6)), 1)
		for i := range grads {
			grads[i] = graph.Mul(grads[i], scale)
		}
	}
	t.adam.(gradientUpdater).UpdateGraphWithGradients(ctx, grads, total.DType())
	return []*graph.Node{graph.Stack(append(parts, norm), 0)}
}

func (t *Trainer) lossOnlyGraph(ctx *context.Context, in []*graph.Node) []*graph.Node {
	parts := t.losses(ctx, net.Inference, in)
	zero := graph.ZerosLike(parts[0])
	return []*graph.Node{graph.Stack(append(parts, zero), 0)}
}
