package backend

import (
	"fmt"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/maskwatch/maskwatch/models/backend/gradcheck"
)

// maxRelErr is the largest relative error accepted between graph.Gradient and central
// differences: in float64 with a 1e-5 step, correct gradients agree to about 1e-8.
const maxRelErr = 1e-6

func checkGradient(t *testing.T, name string, fn gradcheck.Func, inputs ...*tensors.Tensor) {
	t.Helper()
	report, err := gradcheck.Check(testBackend, fn, inputs, gradcheck.Options{})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Logf("%s: %v", name, report)
	if report.WorstRelErr > maxRelErr {
		t.Errorf("%s: %v", name, report)
	}
}

func TestConvolveGradient(t *testing.T) {
	for i, cc := range convCases {
		x, k := cc.inputs(uint64(10 + i))
		checkGradient(t, cc.String(), cc.build, x, k)
	}
}

func TestConvolveGradientChannelsFirst(t *testing.T) {
	axes := backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2, 3},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3},
	}
	fn := func(in []*graph.Node) *graph.Node {
		return graph.ConvGeneral(in[0], in[1], axes, []int{2, 1}, [][2]int{{1, 0}, {1, 1}},
			nil, nil, 2, 1)
	}
	checkGradient(t, "channels first, groups 2", fn,
		gradcheck.Uniform(1, 2, 4, 6, 5), gradcheck.Uniform(2, 4, 2, 3, 3))
}

func TestSliceAndSplitGradient(t *testing.T) {
	x := gradcheck.Uniform(3, 4, 7)
	checkGradient(t, "strided slice", func(in []*graph.Node) *graph.Node {
		return graph.Slice(in[0], graph.AxisRange(1, 4), graph.AxisRange(1, 7).Stride(2))
	}, x)
	checkGradient(t, "split", func(in []*graph.Node) *graph.Node {
		parts := graph.Split(in[0], 0, 2)
		return graph.Mul(parts[0], graph.Square(parts[1]))
	}, x)
}

func TestPoolGradient(t *testing.T) {
	x := gradcheck.Uniform(4, 2, 6, 7, 3)
	cases := []struct {
		name string
		fn   gradcheck.Func
	}{
		{"mean 2x2", func(in []*graph.Node) *graph.Node {
			return graph.MeanPool(in[0]).Window(2).Done()
		}},
		{"mean 3x3 stride 2 same", func(in []*graph.Node) *graph.Node {
			return graph.MeanPool(in[0]).Window(3).Strides(2).PadSame().Done()
		}},
		{"sum 3x3 stride 1", func(in []*graph.Node) *graph.Node {
			return graph.SumPool(in[0]).Window(3).Strides(1).Done()
		}},
		{"max 2x2", func(in []*graph.Node) *graph.Node {
			return graph.MaxPool(in[0]).Window(2).Done()
		}},
		{"max 3x3 stride 2 same", func(in []*graph.Node) *graph.Node {
			return graph.MaxPool(in[0]).Window(3).Strides(2).PadSame().Done()
		}},
		{"min 2x2 stride 1", func(in []*graph.Node) *graph.Node {
			return graph.MinPool(in[0]).Window(2).Strides(1).Done()
		}},
	}
	for _, tc := range cases {
		checkGradient(t, tc.name, tc.fn, x)
	}
}

func TestDotGradient(t *testing.T) {
	cases := []struct {
		name     string
		lhs, rhs []int
		lc, lb   []int
		rc, rb   []int
	}{
		{"matmul", []int{3, 4}, []int{4, 5}, []int{1}, nil, []int{0}, nil},
		{"batched", []int{2, 3, 4}, []int{2, 4, 5}, []int{2}, []int{0}, []int{1}, []int{0}},
		{"transposed operands", []int{4, 3}, []int{5, 4}, []int{0}, nil, []int{1}, nil},
		{"scattered axes", []int{4, 2, 3}, []int{5, 4, 2}, []int{0}, []int{1}, []int{1}, []int{2}},
		{"two contractions", []int{3, 4, 2}, []int{2, 5, 4}, []int{2, 1}, nil, []int{0, 2}, nil},
		{"vector", []int{6}, []int{6, 2}, []int{0}, nil, []int{0}, nil},
	}
	for i, tc := range cases {
		checkGradient(t, "DotGeneral "+tc.name, func(in []*graph.Node) *graph.Node {
			return graph.DotGeneral(in[0], tc.lc, tc.lb, in[1], tc.rc, tc.rb)
		}, gradcheck.Uniform(uint64(20+i), tc.lhs...), gradcheck.Uniform(uint64(40+i), tc.rhs...))
	}
	for _, dims := range [][2][]int{{{3, 4}, {4, 5}}, {{3, 4}, {4}}, {{4}, {4}}} {
		checkGradient(t, fmt.Sprintf("Dot %v", dims), func(in []*graph.Node) *graph.Node {
			return graph.Dot(in[0], in[1])
		}, gradcheck.Uniform(5, dims[0]...), gradcheck.Uniform(6, dims[1]...))
	}
}

// TestDotGradientHasNoOuterProduct builds the gradient of a [M,K]x[K,N] product and fails if
// any node of the graph is as large as the [M,K,N] outer product GoMLX v0.26.0's VJP builds.
func TestDotGradientHasNoOuterProduct(t *testing.T) {
	const m, k, n = 16, 32, 8
	g := graph.NewGraph(testBackend, "dot gradient")
	defer g.Finalize()
	lhs := graph.Parameter(g, "lhs", gradcheck.Uniform(1, m, k).Shape())
	rhs := graph.Parameter(g, "rhs", gradcheck.Uniform(1, k, n).Shape())
	for _, product := range []*graph.Node{
		graph.Dot(lhs, rhs), graph.DotGeneral(lhs, []int{1}, nil, rhs, []int{0}, nil),
	} {
		graph.Gradient(graph.ReduceAllSum(product), lhs, rhs)
	}
	for _, node := range g.Nodes() {
		if node.Shape().Size() >= m*k*n {
			t.Fatalf("gradient graph holds node %s of %d elements", node, node.Shape().Size())
		}
	}
}

func TestPadAndReverseGradient(t *testing.T) {
	x := gradcheck.Uniform(8, 3, 4)
	checkGradient(t, "pad", func(in []*graph.Node) *graph.Node {
		fill := graph.Scalar(in[0].Graph(), in[0].DType(), 0.5)
		return graph.Pad(in[0], fill, backends.PadAxis{Start: 1, End: -1, Interior: 2},
			backends.PadAxis{Start: -1, End: 2})
	}, x)
	checkGradient(t, "reverse", func(in []*graph.Node) *graph.Node {
		return graph.Mul(graph.Reverse(in[0], 0, 1), in[0])
	}, x)
}
