package backend

import (
	"fmt"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/maskwatch/maskwatch/models/backend/gradcheck"
)

// mobileNetLayer is one convolution of a MobileNetV3-like backbone at 224x224 input, NHWC.
type mobileNetLayer struct {
	name               string
	h, w, cin, cout, k int
	stride, groups     int
}

var mobileNetLayers = []mobileNetLayer{
	{"1x1 56x56x24->72", 56, 56, 24, 72, 1, 1, 1},
	{"3x3 depthwise 56x56x72 s2", 56, 56, 72, 72, 3, 2, 72},
	{"3x3 depthwise 28x28x72 s2", 28, 28, 72, 72, 3, 2, 72},
	{"3x3 28x28x40->40", 28, 28, 40, 40, 3, 1, 1},
}

func (l mobileNetLayer) conv(x, k *graph.Node) *graph.Node {
	conv := graph.Convolve(x, k).StridePerAxis(l.stride, l.stride).PadSame()
	if l.groups > 1 {
		// simplego's own grouped convolution crashes unless kernel dilations are set.
		conv = conv.ChannelGroupCount(l.groups).DilationPerAxis(1, 1)
	}
	return conv.Done()
}

func (l mobileNetLayer) inputs() (x, k *tensors.Tensor) {
	x = float32Tensor(gradcheck.Uniform(1, 1, l.h, l.w, l.cin))
	k = float32Tensor(gradcheck.Uniform(2, l.k, l.k, l.cin/l.groups, l.cout))
	return x, k
}

func float32Tensor(t *tensors.Tensor) *tensors.Tensor {
	values := tensors.MustCopyFlatData[float64](t)
	out := make([]float32, len(values))
	for i, v := range values {
		out[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(out, t.Shape().Dimensions...)
}

func benchmarkExec(b *testing.B, backend backends.Backend, fn any, x, k *tensors.Tensor) {
	exec, err := graph.NewExecAny(backend, fn)
	if err != nil {
		b.Fatal(err)
	}
	defer exec.Finalize()
	if _, err := exec.Exec(x, k); err != nil { // compile outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		out, err := exec.Exec(x, k)
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range out {
			t.FinalizeAll()
		}
	}
}

// BenchmarkConvForward compares this backend's convolution with simplego's own, float32,
// batch 1. Run with: go test ./models/backend -run NONE -bench Conv -benchtime 10x
func BenchmarkConvForward(b *testing.B) {
	for _, l := range mobileNetLayers {
		fn := func(x, k *graph.Node) *graph.Node { return l.conv(x, k) }
		b.Run(l.name+"/maskwatch", func(b *testing.B) {
			x, k := l.inputs()
			benchmarkExec(b, testBackend, fn, x, k)
		})
		b.Run(l.name+"/maskwatch-noblas", func(b *testing.B) {
			x, k := l.inputs()
			benchmarkExec(b, noBLASBackend(), fn, x, k)
		})
		b.Run(l.name+"/simplego", func(b *testing.B) {
			x, k := l.inputs()
			benchmarkExec(b, simplego.GetBackend(), fn, x, k)
		})
	}
}

// BenchmarkConvGradient times forward and backward (input and kernel gradients) with this
// backend; simplego cannot compute them (it lacks Reverse).
func BenchmarkConvGradient(b *testing.B) {
	for _, l := range mobileNetLayers {
		fn := func(x, k *graph.Node) []*graph.Node {
			loss := graph.ReduceAllSum(graph.Square(l.conv(x, k)))
			return graph.Gradient(loss, x, k)
		}
		for _, be := range benchBackends() {
			b.Run(l.name+"/"+be.name, func(b *testing.B) {
				x, k := l.inputs()
				benchmarkExec(b, be.backend, fn, x, k)
			})
		}
	}
}

// noBLASBackend is this package's backend with simplego's matrix product ("noblas").
var noBLASBackend = sync.OnceValue(func() backends.Backend {
	b, err := New(noBLASOption)
	if err != nil {
		panic(err)
	}
	return b
})

// benchBackends are the backends the benchmarks compare: matrix products on OpenBLAS
// (named after matmul.Implementation: "go" in builds without cgo, where it is simplego's)
// and simplego's own.
func benchBackends() []struct {
	name    string
	backend backends.Backend
} {
	name := "openblas"
	if !testBackend.(*Backend).UsesBLAS() {
		name = "default-noblas"
	}
	return []struct {
		name    string
		backend backends.Backend
	}{{name, testBackend}, {"simplego-dot", noBLASBackend()}}
}

// dotShape is one DotGeneral of the benchmarks: lhs and rhs dimensions and their
// contracting axes (no batch axes); the product is [m, n] with contracted size k.
type dotShape struct {
	name             string
	lhsDims, rhsDims []int
	lhsC, rhsC       int
	m, n, k          int
}

// imToColShapes are the matrix products of im2col convolutions and a dense layer at 224 px
// input, batch 8, with the products of their gradients (input: dy·wᵀ, weights: xᵀ·dy).
var imToColShapes = func() []dotShape {
	var out []dotShape
	for _, s := range []struct {
		name    string
		m, k, n int
	}{
		{"conv3x3 56x56x64", 8 * 56 * 56, 9 * 64, 64},
		{"conv1x1 14x14x1024->256", 8 * 14 * 14, 1024, 256},
		{"dense 6272->256", 8 * 64, 6272, 256},
	} {
		out = append(out,
			dotShape{s.name + " fwd", []int{s.m, s.k}, []int{s.k, s.n}, 1, 0, s.m, s.n, s.k},
			dotShape{s.name + " dX", []int{s.m, s.n}, []int{s.k, s.n}, 1, 1, s.m, s.k, s.n},
			dotShape{s.name + " dW", []int{s.m, s.k}, []int{s.m, s.n}, 0, 0, s.k, s.n, s.m})
	}
	return out
}()

// BenchmarkDotGeneral reports GFLOP/s of DotGeneral, float32, with OpenBLAS and with
// simplego's matrix product, on the shapes of BenchmarkFloat32 in package matmul and on
// those of im2col convolutions and their gradients (imToColShapes).
// Run with: go test ./models/backend -run NONE -bench DotGeneral -benchtime 3x
func BenchmarkDotGeneral(b *testing.B) {
	shapes := imToColShapes
	for _, s := range [][3]int{{512, 512, 512}, {3136, 72, 24}, {784, 40, 360}} {
		m, n, k := s[0], s[1], s[2]
		shapes = append(shapes, dotShape{fmt.Sprintf("%dx%dx%d", m, n, k),
			[]int{m, k}, []int{k, n}, 1, 0, m, n, k})
	}
	for _, s := range shapes {
		lhs := float32Tensor(gradcheck.Uniform(1, s.lhsDims...))
		rhs := float32Tensor(gradcheck.Uniform(2, s.rhsDims...))
		fn := func(x, y *graph.Node) *graph.Node {
			return graph.DotGeneral(x, []int{s.lhsC}, nil, y, []int{s.rhsC}, nil)
		}
		for _, be := range benchBackends() {
			b.Run(s.name+"/"+be.name, func(b *testing.B) {
				benchmarkExec(b, be.backend, fn, mustClone(lhs), mustClone(rhs))
				flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkResidualBlocks times forward and backward (input and both kernels) of two
// ResNet basic blocks, 3x3 convolutions of 64 channels on 8x28x28x64, float32.
func BenchmarkResidualBlocks(b *testing.B) {
	x := float32Tensor(gradcheck.Uniform(1, 8, 28, 28, 64))
	k := float32Tensor(gradcheck.Uniform(2, 3, 3, 64, 64))
	fn := func(x, k *graph.Node) []*graph.Node {
		k2 := graph.MulScalar(k, 0.5)
		loss := graph.ReduceAllSum(graph.Square(residualBlocks(x, k, k2)))
		return graph.Gradient(loss, x, k)
	}
	// 4 convolutions, each a forward and two gradient products of 8*28*28 x 576 x 64.
	flops := 4 * 3 * 2 * float64(8*28*28*576*64)
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			benchmarkExec(b, be.backend, fn, mustClone(x), mustClone(k))
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "matmul-GFLOP/s")
		})
	}
}
