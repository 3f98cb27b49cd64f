package backend

import (
	"fmt"
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
		b.Run(l.name, func(b *testing.B) {
			x, k := l.inputs()
			benchmarkExec(b, testBackend, fn, x, k)
		})
	}
}

// BenchmarkDotGeneral reports GFLOP/s of simplego's matrix product (which this backend keeps)
// on the shapes of BenchmarkFloat32 in package matmul, float32.
func BenchmarkDotGeneral(b *testing.B) {
	for _, s := range [][3]int{{512, 512, 512}, {3136, 72, 24}, {784, 40, 360}} {
		m, n, k := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			lhs := float32Tensor(gradcheck.Uniform(1, m, k))
			rhs := float32Tensor(gradcheck.Uniform(2, k, n))
			benchmarkExec(b, testBackend, func(x, y *graph.Node) *graph.Node {
				return graph.Dot(x, y)
			}, lhs, rhs)
			flops := 2 * float64(m) * float64(n) * float64(k)
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
