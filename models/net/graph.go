package net

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Mode says how Apply treats batch normalisation.
type Mode int

const (
	// Inference normalises with the running statistics.
	Inference Mode = iota
	// Training normalises with the batch's statistics and moves the running
	// statistics towards them.
	Training
	// TrainingFrozen normalises with the batch's statistics, as Training,
	// but leaves the running statistics alone: a forward pass that must see
	// what the training step will see without counting the batch twice.
	TrainingFrozen
)

// Batch normalisation's settings: torchvision's momentum, and an epsilon
// large enough for float16 export.
const (
	BNMomentum = 0.1
	BNEpsilon  = 1e-3
)

// Variable names within a layer's scope.
const (
	VarWeights  = "weights"
	VarBias     = "bias"
	VarGamma    = "gamma"
	VarBeta     = "beta"
	VarMean     = "mean"
	VarVariance = "variance"
)

// WeightShape is the shape of a Conv or Dense layer's weights: [k, k, in/groups, out]
// or [in, out].
func (n *Net) WeightShape(l Layer) []int {
	in := n.Layers[l.Inputs[0]].Channels
	if l.Op == Dense {
		return []int{in, l.Channels}
	}
	return []int{l.Kernel, l.Kernel, in / l.Groups, l.Channels}
}

// Init creates the network's variables in ctx, each layer in the scope of its
// name, with values drawn from seed: He-normal weights (or Layer.Init's),
// zero biases, unit batch-norm scales. Variables that already exist keep
// their values, so Init after loading a checkpoint only fills what it lacked.
func (n *Net) Init(ctx *context.Context, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x6d61736b))
	for _, l := range n.Layers {
		scope := In(ctx, l.Name)
		switch l.Op {
		case Conv, Dense:
			shape := n.WeightShape(l)
			std, err := initStd(l, shape)
			if err != nil {
				return err
			}
			values := make([]float32, product(shape))
			for i := range values {
				values[i] = float32(rng.NormFloat64() * std)
			}
			setIfMissing(scope, VarWeights, tensors.FromFlatDataAndDimensions(values, shape...))
			if l.Bias || l.Op == Dense {
				setIfMissing(scope, VarBias, tensors.FromFlatDataAndDimensions(
					make([]float32, l.Channels), l.Channels))
			}
		case BatchNorm:
			ones := make([]float32, l.Channels)
			for i := range ones {
				ones[i] = 1
			}
			setIfMissing(scope, VarGamma, tensors.FromFlatDataAndDimensions(ones, l.Channels))
			setIfMissing(scope, VarBeta, tensors.FromFlatDataAndDimensions(
				make([]float32, l.Channels), l.Channels))
			setIfMissing(scope, VarMean, tensors.FromFlatDataAndDimensions(
				make([]float32, l.Channels), l.Channels)).SetTrainable(false)
			setIfMissing(scope, VarVariance, tensors.FromFlatDataAndDimensions(
				append([]float32(nil), ones...), l.Channels)).SetTrainable(false)
		}
	}
	return nil
}

// In returns ctx in the scope of a layer name, one scope per "/"-separated part.
func In(ctx *context.Context, name string) *context.Context {
	for part := range strings.SplitSeq(name, "/") {
		ctx = ctx.In(part)
	}
	return ctx
}

func setIfMissing(scope *context.Context, name string, value *tensors.Tensor) *context.Variable {
	if v := scope.InspectVariableInScope(name); v != nil {
		return v
	}
	return scope.VariableWithValue(name, value)
}

// initStd is the standard deviation of a layer's initial weights.
func initStd(l Layer, shape []int) (float64, error) {
	if rest, ok := strings.CutPrefix(l.Init, "normal:"); ok {
		std, err := strconv.ParseFloat(rest, 64)
		if err != nil || !(std > 0) {
			return 0, fmt.Errorf("net: layer %q: init %q: want normal:STD with STD > 0",
				l.Name, l.Init)
		}
		return std, nil
	}
	if l.Init != "" && l.Init != "he" {
		return 0, fmt.Errorf("net: layer %q: unknown init %q: use he or normal:STD",
			l.Name, l.Init)
	}
	// As torch's kaiming_normal_(mode="fan_out"): output channels times the
	// kernel's area, whatever the groups.
	fanOut := shape[len(shape)-1]
	if len(shape) == 4 {
		fanOut = shape[0] * shape[1] * shape[3]
	}
	return math.Sqrt(2 / float64(max(fanOut, 1))), nil
}

func product(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}

// Apply builds the network on the given inputs (one node per Net.Inputs, in
// order) and returns its outputs. The variables must exist (see Init): ctx
// is used with Reuse. Apply panics, as GoMLX graph code does, on shapes that
// do not fit; context.Exec turns that into an error.
func (n *Net) Apply(ctx *context.Context, mode Mode, inputs ...*graph.Node) []*graph.Node {
	outputs, _ := n.apply(ctx, mode, false, inputs)
	return outputs
}

// ApplyWithStatistics builds the network as Apply does in TrainingFrozen
// mode and also returns the batch's per-channel mean and (biased) variance
// of every batch-norm layer, in the order of BatchNormLayers, as one
// [2, channels of all layers] node: what a Recalibration pools.
func (n *Net) ApplyWithStatistics(ctx *context.Context, inputs ...*graph.Node) (
	outputs []*graph.Node, statistics *graph.Node) {
	outputs, stats := n.apply(ctx, TrainingFrozen, true, inputs)
	if len(stats) == 0 {
		panic("net: ApplyWithStatistics on a network without batch norm")
	}
	return outputs, graph.Concatenate(stats, 1)
}

// BatchNormLayers lists the indices in Layers of the batch-norm layers.
func (n *Net) BatchNormLayers() []int {
	var bn []int
	for i, l := range n.Layers {
		if l.Op == BatchNorm {
			bn = append(bn, i)
		}
	}
	return bn
}

func (n *Net) apply(ctx *context.Context, mode Mode, collect bool, inputs []*graph.Node) (
	outputs, statistics []*graph.Node) {
	if len(inputs) != len(n.Inputs) {
		panic(fmt.Sprintf("net: %d inputs given, the network takes %d", len(inputs), len(n.Inputs)))
	}
	ctx = ctx.Reuse()
	values := make([]*graph.Node, len(n.Layers))
	for i, at := range n.Inputs {
		values[at] = inputs[i]
	}
	for i, l := range n.Layers {
		if l.Op == Input {
			continue
		}
		x := values[l.Inputs[0]]
		scope := In(ctx, l.Name)
		if l.Op == BatchNorm {
			var mean, variance *graph.Node
			values[i], mean, variance = batchNorm(scope, mode, x)
			if collect {
				statistics = append(statistics, graph.Stack([]*graph.Node{mean, variance}, 0))
			}
			continue
		}
		values[i] = n.layer(scope, l, x, values)
	}
	outputs = make([]*graph.Node, len(n.Outputs))
	for i, at := range n.Outputs {
		outputs[i] = values[at]
	}
	return outputs, statistics
}

func (n *Net) layer(scope *context.Context, l Layer, x *graph.Node,
	values []*graph.Node) *graph.Node {
	g := x.Graph()
	switch l.Op {
	case Conv:
		w := scope.InspectVariableInScope(VarWeights).ValueGraph(g)
		conv := graph.Convolve(x, w).StridePerAxis(l.Stride, l.Stride).
			PaddingPerDim(samePadding(x, l.Kernel, l.Stride))
		if l.Groups > 1 {
			conv = conv.ChannelGroupCount(l.Groups).DilationPerAxis(1, 1)
		}
		y := conv.Done()
		if l.Bias {
			y = graph.Add(y, perChannel(scope.InspectVariableInScope(VarBias).ValueGraph(g), y))
		}
		return y
	case ReLU:
		return graph.MaxScalar(x, 0)
	case HardSwish:
		return graph.Mul(x, hardSigmoid(x))
	case HardSigmoid:
		return hardSigmoid(x)
	case Add:
		return graph.Add(x, values[l.Inputs[1]])
	case Scale:
		gate := values[l.Inputs[1]]
		return graph.Mul(x, graph.BroadcastToDims(gate, x.Shape().Dimensions...))
	case GlobalAvgPool:
		return graph.ReduceAndKeep(x, graph.ReduceMean, 1, 2)
	case MaxPool:
		return graph.MaxPool(x).Window(l.Kernel).Strides(l.Stride).
			PaddingPerDim(samePadding(x, l.Kernel, l.Stride)).Done()
	case Upsample2x:
		d := x.Shape().Dimensions
		y := graph.Reshape(x, d[0], d[1], 1, d[2], 1, d[3])
		y = graph.BroadcastToDims(y, d[0], d[1], 2, d[2], 2, d[3])
		return graph.Reshape(y, d[0], 2*d[1], 2*d[2], d[3])
	case Flatten:
		return graph.Reshape(x, x.Shape().Dimensions[0], -1)
	case Dense:
		w := scope.InspectVariableInScope(VarWeights).ValueGraph(g)
		y := graph.MatMul(x, w)
		return graph.Add(y, perChannel(scope.InspectVariableInScope(VarBias).ValueGraph(g), y))
	}
	panic(fmt.Sprintf("net: layer %q: cannot apply %s", l.Name, l.Op))
}

// samePadding is TensorFlow's SAME padding of x [N,H,W,C] for a k x k
// window at stride s, which TFLite's CONV_2D, DEPTHWISE_CONV_2D and
// MAX_POOL_2D apply: the output has ceil(in/s) cells, and of the padding
// that takes, the odd cell goes after. (GoMLX's PadSame puts (k-1)/2 before
// whatever the stride, one cell off TensorFlow's for stride 2 on even sizes.)
func samePadding(x *graph.Node, k, s int) [][2]int {
	d := x.Shape().Dimensions
	pads := make([][2]int, 2)
	for i, in := range d[1:3] {
		out := (in + s - 1) / s
		total := max((out-1)*s+k-in, 0)
		pads[i] = [2]int{total / 2, total - total/2}
	}
	return pads
}

// perChannel broadcasts a [C] vector to y's shape, C being y's last axis.
func perChannel(v, y *graph.Node) *graph.Node {
	dims := y.Shape().Dimensions
	shape := make([]int, len(dims))
	for i := range shape {
		shape[i] = 1
	}
	shape[len(shape)-1] = dims[len(dims)-1]
	return graph.BroadcastToDims(graph.Reshape(v, shape...), dims...)
}

func hardSigmoid(x *graph.Node) *graph.Node {
	return graph.MulScalar(graph.ClipScalar(graph.AddScalar(x, 3), 0, 6), 1.0/6)
}

// batchNorm normalises x [N,H,W,C] (or [N,C]) per channel, and returns the
// mean and variance it used.
func batchNorm(scope *context.Context, mode Mode, x *graph.Node) (y, mean, variance *graph.Node) {
	g := x.Graph()
	gammaVar := scope.InspectVariableInScope(VarGamma)
	betaVar := scope.InspectVariableInScope(VarBeta)
	meanVar := scope.InspectVariableInScope(VarMean)
	varianceVar := scope.InspectVariableInScope(VarVariance)
	gamma, beta := gammaVar.ValueGraph(g), betaVar.ValueGraph(g)

	axes := make([]int, x.Rank()-1)
	for i := range axes {
		axes[i] = i
	}
	if mode == Inference {
		mean, variance = meanVar.ValueGraph(g), varianceVar.ValueGraph(g)
	} else {
		mean = graph.ReduceMean(x, axes...)
		centred := graph.Sub(x, perChannel(mean, x))
		variance = graph.ReduceMean(graph.Square(centred), axes...)
		if mode == Training {
			count := float64(x.Shape().Size() / x.Shape().Dimensions[x.Rank()-1])
			unbiased := graph.MulScalar(graph.StopGradient(variance), count/math.Max(count-1, 1))
			meanVar.SetValueGraph(graph.Add(graph.MulScalar(meanVar.ValueGraph(g), 1-BNMomentum),
				graph.MulScalar(graph.StopGradient(mean), BNMomentum)))
			varianceVar.SetValueGraph(graph.Add(graph.MulScalar(varianceVar.ValueGraph(g), 1-BNMomentum),
				graph.MulScalar(unbiased, BNMomentum)))
		}
	}
	scale := graph.Mul(gamma, graph.Reciprocal(graph.Sqrt(graph.AddScalar(variance, BNEpsilon))))
	shift := graph.Sub(beta, graph.Mul(mean, scale))
	return graph.Add(graph.Mul(x, perChannel(scale, x)), perChannel(shift, x)), mean, variance
}

// Check reports a variable the network needs that ctx lacks or holds with
// another shape: a checkpoint of another architecture.
func (n *Net) Check(ctx *context.Context) error {
	for _, l := range n.Layers {
		want := map[string][]int{}
		switch l.Op {
		case Conv, Dense:
			want[VarWeights] = n.WeightShape(l)
			if l.Bias || l.Op == Dense {
				want[VarBias] = []int{l.Channels}
			}
		case BatchNorm:
			for _, name := range []string{VarGamma, VarBeta, VarMean, VarVariance} {
				want[name] = []int{l.Channels}
			}
		}
		scope := In(ctx, l.Name)
		for name, dims := range want {
			v := scope.InspectVariableInScope(name)
			if v == nil {
				return fmt.Errorf("net: layer %q has no %s", l.Name, name)
			}
			if got := v.Shape().Dimensions; !slices.Equal(got, dims) {
				return fmt.Errorf("net: layer %q: %s of shape %v, want %v", l.Name, name, got, dims)
			}
		}
	}
	return nil
}
