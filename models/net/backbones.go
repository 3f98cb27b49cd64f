package net

import "fmt"

// Features are the feature maps a backbone hands to the detector's neck.
type Features struct {
	// C4 is the last map at stride 16 and C5 the last at stride 32.
	C4, C5 int
}

// Backbone names a backbone Describe knows.
type Backbone string

// The backbones maskwatch trains.
const (
	ResNet50         Backbone = "resnet50"
	MobileNetV3Large Backbone = "mobilenetv3"
)

// ParseBackbone checks a backbone name.
func ParseBackbone(name string) (Backbone, error) {
	switch Backbone(name) {
	case ResNet50, MobileNetV3Large:
		return Backbone(name), nil
	}
	return "", fmt.Errorf("backbone %q: use %s or %s", name, ResNet50, MobileNetV3Large)
}

// Describe adds the backbone's layers on image x, in the scope "backbone".
func (bb Backbone) Describe(b *Builder, x int) (Features, error) {
	b.Push("backbone")
	defer b.Pop()
	switch bb {
	case ResNet50:
		return resNet50(b, x), nil
	case MobileNetV3Large:
		return mobileNetV3Large(b, x), nil
	}
	return Features{}, fmt.Errorf("backbone %q: use %s or %s", bb, ResNet50, MobileNetV3Large)
}

// convBN is a convolution without bias, batch norm and an optional activation.
func convBN(b *Builder, name string, x, out, k, stride, groups int, act Op) int {
	b.Push(name)
	defer b.Pop()
	y := b.Conv("conv", x, out, k, stride, groups, false)
	y = b.BN("bn", y)
	if act != Input {
		y = b.Act(act.String(), y, act)
	}
	return y
}

// bneck is one of MobileNetV3's inverted residual blocks.
type bneck struct {
	kernel, expand, out int
	squeeze             bool
	act                 Op
	stride              int
}

// mobileNetV3Large is the architecture of "Searching for MobileNetV3"
// (Howard et al., 2019), table 1, as torchvision builds it: SAME padding
// here, the classifier left out.
func mobileNetV3Large(b *Builder, x int) Features {
	blocks := []bneck{
		{3, 16, 16, false, ReLU, 1},
		{3, 64, 24, false, ReLU, 2},
		{3, 72, 24, false, ReLU, 1},
		{5, 72, 40, true, ReLU, 2},
		{5, 120, 40, true, ReLU, 1},
		{5, 120, 40, true, ReLU, 1},
		{3, 240, 80, false, HardSwish, 2},
		{3, 200, 80, false, HardSwish, 1},
		{3, 184, 80, false, HardSwish, 1},
		{3, 184, 80, false, HardSwish, 1},
		{3, 480, 112, true, HardSwish, 1},
		{3, 672, 112, true, HardSwish, 1},
		{5, 672, 160, true, HardSwish, 2},
		{5, 960, 160, true, HardSwish, 1},
		{5, 960, 160, true, HardSwish, 1},
	}
	var f Features
	y := convBN(b, "stem", x, 16, 3, 2, 1, HardSwish)
	for i, blk := range blocks {
		y = invertedResidual(b, fmt.Sprintf("block%d", i), y, blk)
		if b.Stride(y) == 16 {
			f.C4 = y
		}
	}
	f.C5 = convBN(b, "last", y, 960, 1, 1, 1, HardSwish)
	return f
}

func invertedResidual(b *Builder, name string, x int, blk bneck) int {
	b.Push(name)
	defer b.Pop()
	in := b.Channels(x)
	y := x
	if blk.expand != in {
		y = convBN(b, "expand", y, blk.expand, 1, 1, 1, blk.act)
	}
	y = convBN(b, "depthwise", y, blk.expand, blk.kernel, blk.stride, blk.expand, blk.act)
	if blk.squeeze {
		y = squeezeExcite(b, y)
	}
	y = convBN(b, "project", y, blk.out, 1, 1, 1, Input)
	if blk.stride == 1 && in == blk.out {
		y = b.Add("residual", x, y)
	}
	return y
}

// squeezeExcite gates x's channels by a function of their means, with
// torchvision's squeeze width: a quarter of the channels, rounded to 8.
func squeezeExcite(b *Builder, x int) int {
	b.Push("se")
	defer b.Pop()
	c := b.Channels(x)
	squeeze := makeDivisible(c/4, 8)
	s := b.GlobalAvgPool("pool", x)
	s = b.Conv("reduce", s, squeeze, 1, 1, 1, true)
	s = b.Act("relu", s, ReLU)
	s = b.Conv("expand", s, c, 1, 1, 1, true)
	s = b.Act("gate", s, HardSigmoid)
	return b.Scale("scale", x, s)
}

// makeDivisible rounds v to a multiple of d, never below 90% of v.
func makeDivisible(v, d int) int {
	r := max(d, (v+d/2)/d*d)
	if float64(r) < 0.9*float64(v) {
		r += d
	}
	return r
}

// resNet50 is "Deep Residual Learning for Image Recognition" (He et al.,
// 2015) with the stride in the 3x3 convolution (torchvision's v1.5),
// SAME padding here, the classifier left out.
func resNet50(b *Builder, x int) Features {
	y := convBN(b, "stem", x, 64, 7, 2, 1, ReLU)
	y = b.MaxPool("pool", y, 3, 2)
	var f Features
	for stage, n := range []int{3, 4, 6, 3} {
		width := 64 << stage
		for i := range n {
			stride := 1
			if i == 0 && stage > 0 {
				stride = 2
			}
			y = bottleneck(b, fmt.Sprintf("layer%d/block%d", stage+1, i), y, width, stride)
		}
		if stage == 2 {
			f.C4 = y
		}
	}
	f.C5 = y
	return f
}

func bottleneck(b *Builder, name string, x, width, stride int) int {
	b.Push(name)
	defer b.Pop()
	out := 4 * width
	y := convBN(b, "reduce", x, width, 1, 1, 1, ReLU)
	y = convBN(b, "conv", y, width, 3, stride, 1, ReLU)
	y = convBN(b, "expand", y, out, 1, 1, 1, Input)
	shortcut := x
	if stride != 1 || b.Channels(x) != out {
		shortcut = convBN(b, "downsample", x, out, 1, stride, 1, Input)
	}
	y = b.Add("residual", shortcut, y)
	return b.Act("relu", y, ReLU)
}
