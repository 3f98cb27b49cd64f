package finetune

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/safefile"
)

// Layer groups --layers names, by the prefixes of their layers' names.
var layerGroups = map[string]string{
	"head":     "head/",
	"rpn":      "rpn/",
	"neck":     "neck/",
	"backbone": "backbone/",
	"all":      "",
}

// ParseLayers reads --layers: a comma-separated list of head (the box
// head, the default), rpn, neck, backbone, all, or prefixes of layer names
// (backbone/block14). Each must name at least one layer with weights.
func ParseLayers(spec string, nets ...*net.Net) ([]string, error) {
	var prefixes []string
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		prefix, ok := layerGroups[part]
		if !ok {
			prefix = part
		}
		found := false
		for _, n := range nets {
			for _, v := range n.Vars() {
				if v.Trainable && strings.HasPrefix(v.FullName(), prefix) {
					found = true
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("--layers %q: %q names no layer with weights: use head, "+
				"rpn, neck, backbone, all, or a layer name such as backbone/block14", spec, part)
		}
		prefixes = append(prefixes, prefix)
	}
	if len(prefixes) == 0 {
		return nil, fmt.Errorf("--layers %q: name at least one layer group, such as head", spec)
	}
	return prefixes, nil
}

// CheckLayers reports a --layers spec that names no layer of b's model.
func CheckLayers(b *bundle.Bundle, spec string) error {
	n1, n2, err := b.Meta.Model.Stages()
	if err != nil {
		return err
	}
	_, err = ParseLayers(spec, n1, n2)
	return err
}

func opened(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// trainer fine-tunes the opened layers of a detector with Adam. Stage 2
// (the box head) always runs in the training graph, on RoIs pooled by
// matrix products from the feature map; when no layer of stage 1 is open
// the feature maps are computed once and fed in, otherwise stage 1 runs in
// the graph too (batch norm on its running statistics, as a frozen batch
// norm) and the RPN's losses join the head's.
type trainer struct {
	cfg            frcnn.Config
	stage1, stage2 *net.Net
	prefixes       []string
	stage1Open     bool
	ctx            *context.Context
	exec           *context.Exec
	batch, rois    int
	gh, gw         int // feature grid of the canvas
	h, w           int // canvas
	anchors        []box.Box
	seed           uint64
	table          *[3][256]float32

	roiMatch, rpnMatch box.Matcher
	roiCoder, rpnCoder box.Coder
	pos, neg, matches  []int
}

const modelScope = "model"

func newTrainer(be backends.Backend, cfg frcnn.Config, spec input.Spec, w net.Weights,
	prefixes []string, batch, rois, h, width int, lr float64, seed uint64) (*trainer, error) {
	stage1, stage2, err := cfg.Stages()
	if err != nil {
		return nil, err
	}
	t := &trainer{cfg: cfg, stage1: stage1, stage2: stage2, prefixes: prefixes,
		batch: batch, rois: rois, h: h, w: width, gh: (h + 15) / 16, gw: (width + 15) / 16,
		seed: seed, table: spec.FloatTable(), roiMatch: box.RoIMatcher(),
		rpnMatch: box.RPNMatcher(), roiCoder: box.RoICoder(), rpnCoder: box.RPNCoder()}
	for _, v := range stage1.Vars() {
		if v.Trainable && opened(v.FullName(), prefixes) {
			t.stage1Open = true
		}
	}
	t.anchors = box.Anchors(nil, cfg.Anchors, t.gh, t.gw)
	t.ctx = context.New()
	if err := t.setWeights(w); err != nil {
		return nil, err
	}
	adam := optimizers.Adam().LearningRate(lr).Done()
	updater, ok := adam.(interface {
		UpdateGraphWithGradients(*context.Context, []*graph.Node, dtypes.DType)
	})
	if !ok {
		return nil, fmt.Errorf("finetune: GoMLX's Adam (%T) takes no gradients", adam)
	}
	exec, err := context.NewExecAny(be, t.ctx, func(ctx *context.Context,
		in []*graph.Node) []*graph.Node {
		parts := t.losses(ctx, in)
		total := parts[0]
		for _, p := range parts[1:] {
			total = graph.Add(total, p)
		}
		grads := ctx.BuildTrainableVariablesGradientsGraph(total)
		var sum *graph.Node
		for _, g := range grads {
			s := graph.ReduceAllSum(graph.Square(g))
			if sum == nil {
				sum = s
			} else {
				sum = graph.Add(sum, s)
			}
		}
		norm := graph.Sqrt(sum)
		scale := graph.MinScalar(graph.Div(graph.ConstAsDType(norm.Graph(), norm.DType(),
			gradientClip), graph.AddScalar(norm, 1e-6)), 1)
		for i := range grads {
			grads[i] = graph.Mul(grads[i], scale)
		}
		updater.UpdateGraphWithGradients(ctx, grads, total.DType())
		for len(parts) < 4 {
			parts = append(parts, graph.ZerosLike(parts[0]))
		}
		return []*graph.Node{graph.Stack(append(parts, norm), 0)}
	})
	if err != nil {
		return nil, fmt.Errorf("finetune: building the training step: %w", err)
	}
	t.exec = exec
	return t, nil
}

// gradientClip is the largest global gradient norm, as in training.
const gradientClip = 10

// nets are the networks the training graph holds.
func (t *trainer) nets() []*net.Net {
	if t.stage1Open {
		return []*net.Net{t.stage1, t.stage2}
	}
	return []*net.Net{t.stage2}
}

// setWeights puts w's values in the context, trainable where opened.
func (t *trainer) setWeights(w net.Weights) error {
	scope := t.ctx.In(modelScope)
	for _, n := range t.nets() {
		if err := n.SetWeights(scope, w); err != nil {
			return fmt.Errorf("finetune: %w", err)
		}
		for _, v := range n.Vars() {
			net.In(scope, v.Layer).InspectVariableInScope(v.Name).SetTrainable(
				v.Trainable && opened(v.FullName(), t.prefixes))
		}
	}
	return nil
}

// weights returns the networks' current weights over base.
func (t *trainer) weights(base net.Weights) (net.Weights, error) {
	out := maps.Clone(base)
	for _, n := range t.nets() {
		w, err := n.Weights(t.ctx.In(modelScope))
		if err != nil {
			return nil, err
		}
		maps.Copy(out, w)
	}
	return out, nil
}

// roiAlign pools RoIs from feature [N, H, W, C] with RoIAlign's factored
// weights wy [N, R*OutH, H] and wx [N*R, OutW, W] (box.RoIAlign.AxisWeights),
// returning [N*R, OutH, OutW, C].
func roiAlign(feature, wy, wx *graph.Node, outH, outW int) *graph.Node {
	d := feature.Shape().Dimensions
	n, h, w, c := d[0], d[1], d[2], d[3]
	rows := graph.Einsum("nky,nyz->nkz", wy, graph.Reshape(feature, n, h, w*c))
	r := wy.Shape().Dimensions[1] / outH
	rows = graph.Reshape(rows, n*r, outH, w, c)
	return graph.Einsum("njx,nixc->nijc", wx, rows)
}

// losses are the box head's classification and box losses, and with stage
// 1 open the RPN's objectness and box losses, each as the detector's
// training computes them.
func (t *trainer) losses(ctx *context.Context, in []*graph.Node) []*graph.Node {
	scope := ctx.In(modelScope)
	feature := in[0]
	var objectness, rpnDeltas *graph.Node
	if t.stage1Open {
		out := t.stage1.Apply(scope, net.Inference, in[0])
		feature, objectness, rpnDeltas = out[0], out[1], out[2]
	}
	wy, wx, labels, weights, targets := in[1], in[2], in[3], in[4], in[5]
	k := t.cfg.NumClasses()
	pooled := roiAlign(feature, wy, wx, t.cfg.RoIAlign.OutH, t.cfg.RoIAlign.OutW)
	out := t.stage2.Apply(scope, net.Inference, pooled)
	classes, deltas := out[0], out[1]

	count := graph.MaxScalar(graph.ReduceAllSum(weights), 1)
	oneHot := graph.OneHot(labels, k, dtypes.Float32)
	picked := graph.ReduceSum(graph.Mul(graph.LogSoftmax(classes, -1), oneHot), -1)
	roiClass := graph.Div(graph.Neg(graph.ReduceAllSum(graph.Mul(picked, weights))), count)
	r := labels.Shape().Dimensions[0]
	own := graph.ReduceSum(graph.Mul(graph.Reshape(deltas, r, k, 4),
		graph.BroadcastToDims(graph.Reshape(oneHot, r, k, 1), r, k, 4)), 1)
	foreground := graph.Mul(graph.ConvertDType(graph.GreaterThan(labels,
		graph.ZerosLike(labels)), dtypes.Float32), weights)
	roiBox := graph.Div(graph.ReduceAllSum(graph.Mul(graph.ReduceSum(
		smoothL1(graph.Sub(own, targets), 1.0/9), -1), foreground)), count)
	parts := []*graph.Node{roiClass, roiBox}
	if !t.stage1Open {
		return parts
	}

	rpnLabels, rpnTargets := in[6], in[7]
	n, a := rpnLabels.Shape().Dimensions[0], rpnLabels.Shape().Dimensions[1]
	objectness = graph.Reshape(objectness, n, a)
	rpnDeltas = graph.Reshape(rpnDeltas, n, a, 4)
	zero := graph.ZerosLike(rpnLabels)
	sampled := graph.ConvertDType(graph.GreaterOrEqual(rpnLabels, zero), dtypes.Float32)
	positive := graph.ConvertDType(graph.GreaterThan(rpnLabels, zero), dtypes.Float32)
	sampledCount := graph.MaxScalar(graph.ReduceAllSum(sampled), 1)
	bce := graph.Add(graph.Sub(graph.MaxScalar(objectness, 0), graph.Mul(objectness, positive)),
		graph.Log1p(graph.Exp(graph.Neg(graph.Abs(objectness)))))
	rpnObjectness := graph.Div(graph.ReduceAllSum(graph.Mul(bce, sampled)), sampledCount)
	rpnBox := graph.Div(graph.ReduceAllSum(graph.Mul(graph.ReduceSum(
		smoothL1(graph.Sub(rpnDeltas, rpnTargets), 1.0/9), -1), positive)), sampledCount)
	return append(parts, rpnObjectness, rpnBox)
}

// smoothL1 is 0.5 d²/beta where |d| < beta and |d| - 0.5 beta elsewhere.
func smoothL1(d *graph.Node, beta float64) *graph.Node {
	abs := graph.Abs(d)
	return graph.Where(graph.LessThan(abs, graph.ConstAsDType(d.Graph(), d.DType(), beta)),
		graph.MulScalar(graph.Square(d), 0.5/beta), graph.AddScalar(abs, -0.5*beta))
}

// cached is a training sample ready for steps: its feature map (stage 1
// frozen) or canvas pixels (stage 1 open), the running model's proposals,
// and its faces in input pixels with their model classes (1-based).
type cached struct {
	feature   []float32
	rgb       []uint8
	proposals []box.Box
	boxes     []box.Box
	classes   []int
}

// Losses of one step.
type Losses struct {
	RoIClass, RoIBox, RPNObjectness, RPNBox, Total, GradNorm float64
}

// step trains on one batch of samples (exactly t.batch of them).
func (t *trainer) step(batch []*cached, step uint64) (Losses, error) {
	rng := rand.New(rand.NewPCG(t.seed, step))
	n, r := t.batch, t.rois
	outH, outW := t.cfg.RoIAlign.OutH, t.cfg.RoIAlign.OutW
	wy := make([]float32, n*r*outH*t.gh)
	wx := make([]float32, n*r*outW*t.gw)
	labels := make([]int32, n*r)
	weights := make([]float32, n*r)
	targets := make([]float32, 4*n*r)
	sampler := box.Sampler{BatchSize: r, PositiveFraction: 0.25}
	var rois []box.Box
	for i, c := range batch {
		rois = append(append(rois[:0], c.proposals...), c.boxes...)
		t.matches = t.roiMatch.Match(t.matches[:0], rois, c.boxes)
		t.pos, t.neg = sampler.Sample(t.pos[:0], t.neg[:0], t.matches, rng)
		slot := i * r
		for _, k := range append(t.pos, t.neg...) {
			roi := rois[k]
			if err := t.cfg.RoIAlign.AxisWeights(wy[slot*outH*t.gh:(slot+1)*outH*t.gh],
				wx[slot*outW*t.gw:(slot+1)*outW*t.gw], t.gh, t.gw, roi); err != nil {
				return Losses{}, err
			}
			weights[slot] = 1
			if m := t.matches[k]; m >= 0 {
				labels[slot] = int32(c.classes[m])
				d := t.roiCoder.Encode(roi, c.boxes[m])
				copy(targets[4*slot:], []float32{float32(d.DX), float32(d.DY), float32(d.DW),
					float32(d.DH)})
			}
			slot++
		}
	}
	args := []any{nil,
		tensors.FromFlatDataAndDimensions(wy, n, r*outH, t.gh),
		tensors.FromFlatDataAndDimensions(wx, n*r, outW, t.gw),
		tensors.FromFlatDataAndDimensions(labels, n*r),
		tensors.FromFlatDataAndDimensions(weights, n*r),
		tensors.FromFlatDataAndDimensions(targets, n*r, 4),
	}
	c := t.cfg.NeckChannels
	if !t.stage1Open {
		features := make([]float32, 0, n*t.gh*t.gw*c)
		for _, s := range batch {
			features = append(features, s.feature...)
		}
		args[0] = tensors.FromFlatDataAndDimensions(features, n, t.gh, t.gw, c)
	} else {
		images := make([]float32, 0, n*t.h*t.w*3)
		for _, s := range batch {
			images = append(images, input.Normalize(nil, s.rgb, t.table)...)
		}
		args[0] = tensors.FromFlatDataAndDimensions(images, n, t.h, t.w, 3)
		rpnLabels, rpnTargets := t.rpnTargets(batch, rng)
		a := len(t.anchors)
		args = append(args, tensors.FromFlatDataAndDimensions(rpnLabels, n, a),
			tensors.FromFlatDataAndDimensions(rpnTargets, n, a, 4))
	}
	out, err := t.exec.Exec(args...)
	if err != nil {
		return Losses{}, fmt.Errorf("finetune: step: %w", err)
	}
	v, err := tensors.CopyFlatData[float32](out[0])
	out[0].MustFinalizeAll()
	if err != nil {
		return Losses{}, err
	}
	l := Losses{RoIClass: float64(v[0]), RoIBox: float64(v[1]), RPNObjectness: float64(v[2]),
		RPNBox: float64(v[3]), GradNorm: float64(v[4])}
	l.Total = l.RoIClass + l.RoIBox + l.RPNObjectness + l.RPNBox
	if math.IsNaN(l.Total) || math.IsInf(l.Total, 0) {
		return l, errors.New("finetune: the loss is not finite; lower --lr")
	}
	return l, nil
}

// rpnTargets samples anchors of each image as the detector's training does.
func (t *trainer) rpnTargets(batch []*cached, rng *rand.Rand) ([]float32, []float32) {
	a := len(t.anchors)
	labels := make([]float32, len(batch)*a)
	deltas := make([]float32, 4*len(batch)*a)
	sampler := box.Sampler{BatchSize: t.cfg.RPNBatch, PositiveFraction: 0.5}
	for i, c := range batch {
		l := labels[i*a : (i+1)*a]
		for k := range l {
			l[k] = -1
		}
		t.matches = t.rpnMatch.Match(t.matches[:0], t.anchors, c.boxes)
		t.pos, t.neg = sampler.Sample(t.pos[:0], t.neg[:0], t.matches, rng)
		for _, k := range t.neg {
			l[k] = 0
		}
		for _, k := range t.pos {
			l[k] = 1
			d := t.rpnCoder.Encode(t.anchors[k], c.boxes[t.matches[k]])
			copy(deltas[4*(i*a+k):], []float32{float32(d.DX), float32(d.DY), float32(d.DW),
				float32(d.DH)})
		}
	}
	return labels, deltas
}

// close releases the compiled step.
func (t *trainer) close() {
	if t.exec != nil {
		t.exec.Finalize()
		t.exec = nil
	}
}

// The training state file: a magic line, the length of a JSON header, the
// header (the variables' scopes, names, dtypes, shapes and places), their
// bytes, and a sha256 of everything before it.
const stateMagic = "MASKWATCH-FINETUNE\n"

type stateVar struct {
	Scope     string `json:"scope"`
	Name      string `json:"name"`
	DType     string `json:"dtype"`
	Shape     []int  `json:"shape"`
	Trainable bool   `json:"trainable"`
	Offset    int    `json:"offset"`
	Size      int    `json:"size"`
}

// save writes every variable of the training context (weights, Adam's
// moments, the step counters) to path atomically.
func (t *trainer) save(path string) error {
	var vars []stateVar
	var data bytes.Buffer
	for v := range t.ctx.IterVariables() {
		value, err := v.Value()
		if err != nil {
			return fmt.Errorf("finetune: saving %s: %w", v.ScopeAndName(), err)
		}
		sv := stateVar{Scope: v.Scope(), Name: v.Name(), DType: value.Shape().DType.String(),
			Shape: slices.Clone(value.Shape().Dimensions), Trainable: v.Trainable,
			Offset: data.Len()}
		if err := value.ConstBytes(func(b []byte) { data.Write(b) }); err != nil {
			return fmt.Errorf("finetune: saving %s: %w", v.ScopeAndName(), err)
		}
		sv.Size = data.Len() - sv.Offset
		vars = append(vars, sv)
	}
	head, err := json.Marshal(vars)
	if err != nil {
		return err
	}
	var file bytes.Buffer
	file.WriteString(stateMagic)
	binary.Write(&file, binary.LittleEndian, uint32(len(head)))
	file.Write(head)
	file.Write(data.Bytes())
	sum := sha256.Sum256(file.Bytes())
	file.Write(sum[:])
	return writeAtomic(path, file.Bytes())
}

var dtypeNames = map[string]dtypes.DType{}

func init() {
	for _, d := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int32,
		dtypes.Int64} {
		dtypeNames[d.String()] = d
	}
}

// load sets the training context's variables from a state file save
// wrote; the training graph then resumes where it stopped.
func (t *trainer) load(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fixed := len(stateMagic) + 4
	if len(raw) < fixed+sha256.Size || string(raw[:len(stateMagic)]) != stateMagic {
		return fmt.Errorf("finetune: %s is not a fine-tuning state", path)
	}
	body := raw[:len(raw)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], raw[len(body):]) {
		return fmt.Errorf("finetune: %s is damaged (sha256)", path)
	}
	n := int(binary.LittleEndian.Uint32(raw[len(stateMagic):]))
	if n > len(body)-fixed {
		return fmt.Errorf("finetune: %s is damaged (header)", path)
	}
	var vars []stateVar
	if err := json.Unmarshal(body[fixed:fixed+n], &vars); err != nil {
		return fmt.Errorf("finetune: %s: %w", path, err)
	}
	data := body[fixed+n:]
	for _, sv := range vars {
		dtype, ok := dtypeNames[sv.DType]
		if !ok {
			return fmt.Errorf("finetune: %s: variable %s of dtype %s", path, sv.Name, sv.DType)
		}
		shape := shapes.Make(dtype, sv.Shape...)
		if sv.Offset < 0 || uintptr(sv.Size) != shape.Memory() || sv.Offset+sv.Size > len(data) {
			return fmt.Errorf("finetune: %s: variable %s does not fit", path, sv.Name)
		}
		value := tensors.FromShape(shape)
		value.MutableBytes(func(b []byte) { copy(b, data[sv.Offset:sv.Offset+sv.Size]) })
		scope := t.ctx.InAbsPath(sv.Scope)
		if v := scope.InspectVariableInScope(sv.Name); v != nil {
			if err := v.SetValue(value); err != nil {
				return fmt.Errorf("finetune: %s: %w", path, err)
			}
			continue
		}
		scope.Checked(false).VariableWithValue(sv.Name, value).SetTrainable(sv.Trainable)
	}
	return nil
}

// writeAtomic writes data over path with safefile, making its folder first.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return safefile.Write(path, data, 0o644)
}
