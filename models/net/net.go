// Package net describes convolutional networks as a list of layers that two
// readers share: Apply builds the layers as a GoMLX graph for training and
// inference, and the TFLite writer turns the same list into a flatbuffer, so
// the model trained is the model exported.
//
// A network is built with a Builder, layer by layer, each layer naming the
// layers it reads. Tensors are NHWC (batch, height, width, channels);
// convolutions and pooling pad like TensorFlow's SAME (an odd cell of
// padding goes after), as TFLite's CONV_2D, DEPTHWISE_CONV_2D and
// MAX_POOL_2D do, so no explicit padding layers are needed.
package net

import (
	"fmt"
	"strings"
)

// Op is what a layer computes.
type Op int

// The operations a Net is made of.
const (
	// Input is a graph input of Channels channels.
	Input Op = iota
	// Conv is a 2-D convolution with a [Kernel, Kernel, in/Groups, Channels]
	// kernel, SAME padding and an optional bias. Groups equal to the input
	// channels and to Channels makes it depthwise.
	Conv
	// BatchNorm normalises each channel with batch statistics in training
	// and running statistics otherwise, then scales and shifts it.
	BatchNorm
	// ReLU is max(x, 0).
	ReLU
	// HardSwish is x * relu6(x+3) / 6.
	HardSwish
	// HardSigmoid is relu6(x+3) / 6.
	HardSigmoid
	// Add sums two tensors of one shape.
	Add
	// Scale multiplies a [N,H,W,C] tensor by a [N,1,1,C] gate (squeeze-excite).
	Scale
	// GlobalAvgPool averages over height and width, keeping them as 1 x 1.
	GlobalAvgPool
	// MaxPool takes the maximum over Kernel x Kernel windows at Stride, SAME padding.
	MaxPool
	// Upsample2x repeats each cell twice along height and width (nearest neighbour).
	Upsample2x
	// Flatten turns [N,H,W,C] into [N, H*W*C].
	Flatten
	// Dense is a fully connected layer [in, Channels] with bias on [N, in].
	Dense
)

var opNames = [...]string{"input", "conv", "batchnorm", "relu", "hardswish", "hardsigmoid",
	"add", "scale", "globalavgpool", "maxpool", "upsample2x", "flatten", "dense"}

// String names the operation.
func (op Op) String() string {
	if op < 0 || int(op) >= len(opNames) {
		return fmt.Sprintf("op(%d)", int(op))
	}
	return opNames[op]
}

// Layer is one operation of a Net.
type Layer struct {
	// Name is unique in its Net; variables live in a scope of this name.
	Name string
	Op   Op
	// Inputs are the indices in Net.Layers of the layers read, in order.
	Inputs []int
	// Channels is the number of output channels (features for Dense).
	Channels int
	// Kernel, Stride and Groups configure Conv and MaxPool.
	Kernel, Stride, Groups int
	// Bias adds a learned bias to Conv.
	Bias bool
	// Init is how Conv and Dense weights start: "he" (the default, normal with
	// variance 2/fan-out) or "normal:STD".
	Init string
	// TotalStride is how many input pixels one cell of the layer's output
	// spans (for Flatten and Dense, that of their input).
	TotalStride int
}

// Net is a network: layers in an order where each reads only earlier ones.
type Net struct {
	Layers []Layer
	// Inputs and Outputs are indices in Layers, in the order Apply takes and
	// returns them.
	Inputs, Outputs []int
}

// Builder appends layers to a Net, naming them within nested scopes
// ("backbone/block3/expand"). A mistake in the description (an unknown
// input, an impossible group count) is kept and returned by Net, so a
// description reads as straight-line code.
type Builder struct {
	net   Net
	scope []string
	names map[string]bool
	err   error
}

// NewBuilder starts an empty Net.
func NewBuilder() *Builder { return &Builder{names: map[string]bool{}} }

// Push enters a scope: later layers are named "scope/name" until Pop.
func (b *Builder) Push(scope string) { b.scope = append(b.scope, scope) }

// Pop leaves the innermost scope.
func (b *Builder) Pop() { b.scope = b.scope[:len(b.scope)-1] }

// Channels returns the number of channels layer i outputs.
func (b *Builder) Channels(i int) int {
	if i < 0 || i >= len(b.net.Layers) {
		return 0
	}
	return b.net.Layers[i].Channels
}

// Stride returns layer i's total stride relative to the input.
func (b *Builder) Stride(i int) int {
	if i < 0 || i >= len(b.net.Layers) {
		return 0
	}
	return b.net.Layers[i].TotalStride
}

func (b *Builder) fail(format string, args ...any) int {
	if b.err == nil {
		b.err = fmt.Errorf("net: "+format, args...)
	}
	return -1
}

func (b *Builder) add(l Layer) int {
	if b.err != nil {
		return -1
	}
	l.Name = strings.Join(append(b.scope[:len(b.scope):len(b.scope)], l.Name), "/")
	if b.names[l.Name] {
		return b.fail("two layers named %q", l.Name)
	}
	for _, in := range l.Inputs {
		if in < 0 || in >= len(b.net.Layers) {
			return b.fail("layer %q reads layer %d, which does not exist", l.Name, in)
		}
	}
	if l.Op != Input && len(l.Inputs) > 0 {
		in := b.net.Layers[l.Inputs[0]]
		if l.Channels == 0 {
			l.Channels = in.Channels
		}
		l.TotalStride = in.TotalStride * max(l.Stride, 1)
		if l.Op == Upsample2x {
			l.TotalStride = in.TotalStride / 2
		}
	}
	b.names[l.Name] = true
	b.net.Layers = append(b.net.Layers, l)
	return len(b.net.Layers) - 1
}

// Input adds an input of the given channels.
func (b *Builder) Input(name string, channels int) int {
	i := b.add(Layer{Name: name, Op: Input, Channels: channels, TotalStride: 1})
	if i >= 0 {
		b.net.Inputs = append(b.net.Inputs, i)
	}
	return i
}

// Output marks layer i as an output.
func (b *Builder) Output(i int) {
	if i >= 0 {
		b.net.Outputs = append(b.net.Outputs, i)
	}
}

// Conv adds a convolution of x with out channels, a k x k kernel, the stride
// and channel groups given, and a bias when bias is set.
func (b *Builder) Conv(name string, x, out, k, stride, groups int, bias bool) int {
	in := b.Channels(x)
	if groups < 1 || in%groups != 0 || out%groups != 0 {
		return b.fail("conv %q: %d groups do not divide %d inputs and %d outputs",
			name, groups, in, out)
	}
	return b.add(Layer{Name: name, Op: Conv, Inputs: []int{x}, Channels: out,
		Kernel: k, Stride: stride, Groups: groups, Bias: bias})
}

// ConvInit is Conv with a weight initialisation other than He's (see Layer.Init).
func (b *Builder) ConvInit(name string, x, out, k int, init string) int {
	i := b.Conv(name, x, out, k, 1, 1, true)
	if i >= 0 {
		b.net.Layers[i].Init = init
	}
	return i
}

// Depthwise adds a depthwise k x k convolution without bias.
func (b *Builder) Depthwise(name string, x, k, stride int) int {
	c := b.Channels(x)
	return b.Conv(name, x, c, k, stride, c, false)
}

// BN adds batch normalisation.
func (b *Builder) BN(name string, x int) int {
	return b.add(Layer{Name: name, Op: BatchNorm, Inputs: []int{x}})
}

// Act adds an activation (ReLU, HardSwish or HardSigmoid).
func (b *Builder) Act(name string, x int, op Op) int {
	if op != ReLU && op != HardSwish && op != HardSigmoid {
		return b.fail("layer %q: %s is not an activation", name, op)
	}
	return b.add(Layer{Name: name, Op: op, Inputs: []int{x}})
}

// Add sums x and y, which must have the same channels.
func (b *Builder) Add(name string, x, y int) int {
	if b.Channels(x) != b.Channels(y) {
		return b.fail("add %q: %d and %d channels", name, b.Channels(x), b.Channels(y))
	}
	return b.add(Layer{Name: name, Op: Add, Inputs: []int{x, y}})
}

// Scale multiplies x by a per-channel gate of the same channels.
func (b *Builder) Scale(name string, x, gate int) int {
	if b.Channels(x) != b.Channels(gate) {
		return b.fail("scale %q: %d channels gated by %d", name, b.Channels(x), b.Channels(gate))
	}
	return b.add(Layer{Name: name, Op: Scale, Inputs: []int{x, gate}})
}

// GlobalAvgPool averages x over height and width.
func (b *Builder) GlobalAvgPool(name string, x int) int {
	return b.add(Layer{Name: name, Op: GlobalAvgPool, Inputs: []int{x}})
}

// MaxPool takes k x k maxima at the stride given.
func (b *Builder) MaxPool(name string, x, k, stride int) int {
	return b.add(Layer{Name: name, Op: MaxPool, Inputs: []int{x}, Kernel: k, Stride: stride})
}

// Upsample2x doubles height and width by repeating cells.
func (b *Builder) Upsample2x(name string, x int) int {
	return b.add(Layer{Name: name, Op: Upsample2x, Inputs: []int{x}})
}

// Flatten turns x's cells into one feature vector; size is H*W*C.
func (b *Builder) Flatten(name string, x, size int) int {
	return b.add(Layer{Name: name, Op: Flatten, Inputs: []int{x}, Channels: size})
}

// Dense adds a fully connected layer of out features.
func (b *Builder) Dense(name string, x, out int, init string) int {
	return b.add(Layer{Name: name, Op: Dense, Inputs: []int{x}, Channels: out, Init: init})
}

// Net returns the network built, or the first mistake in its description.
func (b *Builder) Net() (*Net, error) {
	if b.err != nil {
		return nil, b.err
	}
	if len(b.net.Inputs) == 0 || len(b.net.Outputs) == 0 {
		return nil, fmt.Errorf("net: needs at least one input and one output")
	}
	n := b.net
	return &n, nil
}

// Params counts the network's learned parameters (batch-norm running
// statistics excluded).
func (n *Net) Params() int {
	total := 0
	for _, l := range n.Layers {
		switch l.Op {
		case Conv:
			in := n.Layers[l.Inputs[0]].Channels
			total += l.Kernel * l.Kernel * in / l.Groups * l.Channels
			if l.Bias {
				total += l.Channels
			}
		case BatchNorm:
			total += 2 * l.Channels
		case Dense:
			total += n.Layers[l.Inputs[0]].Channels*l.Channels + l.Channels
		}
	}
	return total
}

// MACs counts the multiply-accumulates of one forward pass of the
// convolutions and dense layers for one h x w input (every input of the net
// that size). Sizes follow SAME padding: a stride-s layer outputs
// ceil(in/s) cells a side. Training costs about three times as much: the
// forward pass and the two products of each layer's gradient.
func (n *Net) MACs(h, w int) int64 {
	type size struct{ h, w int }
	sizes := make([]size, len(n.Layers))
	var total int64
	for i, l := range n.Layers {
		var in size
		if len(l.Inputs) > 0 {
			in = sizes[l.Inputs[0]]
		}
		switch l.Op {
		case Input:
			sizes[i] = size{h, w}
		case Conv, MaxPool:
			s := max(l.Stride, 1)
			sizes[i] = size{(in.h + s - 1) / s, (in.w + s - 1) / s}
		case GlobalAvgPool, Flatten, Dense:
			sizes[i] = size{1, 1}
		case Upsample2x:
			sizes[i] = size{2 * in.h, 2 * in.w}
		default:
			sizes[i] = in
		}
		switch l.Op {
		case Conv:
			c := n.Layers[l.Inputs[0]].Channels
			total += int64(sizes[i].h*sizes[i].w) * int64(l.Kernel*l.Kernel*c/l.Groups*l.Channels)
		case Dense:
			total += int64(n.Layers[l.Inputs[0]].Channels * l.Channels)
		}
	}
	return total
}
