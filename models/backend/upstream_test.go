package backend

import (
	"testing"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/maskwatch/maskwatch/models/backend/gradcheck"
)

// TestSimplegoStillLacksAddedOps fails once a GoMLX upgrade gives simplego the operations
// this package composes: then the compositions can go.
func TestSimplegoStillLacksAddedOps(t *testing.T) {
	b := simplego.GetBackend().Builder("gaps")
	x, err := b.Parameter("x", shapes.Make(dtypes.Float32, 1, 4, 4, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	zero, err := b.Constant([]float32{0})
	if err != nil {
		t.Fatal(err)
	}
	window, strides := []int{1, 2, 2, 1}, []int{1, 2, 2, 1}
	source, err := b.Parameter("source", shapes.Make(dtypes.Float32, 1, 2, 2, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reverse(x, 1); err == nil {
		t.Error("simplego implements Reverse now")
	}
	if _, err := b.Pad(x, zero); err == nil {
		t.Error("simplego implements Pad now")
	}
	if _, err := b.SelectAndScatterMax(x, source, window, strides, nil); err == nil {
		t.Error("simplego implements SelectAndScatterMax now")
	}
}

// TestConvolveWithoutStrides builds a convolution with no strides set, which simplego rejects.
func TestConvolveWithoutStrides(t *testing.T) {
	x, k := gradcheck.Uniform(1, 1, 5, 5, 2), gradcheck.Uniform(2, 3, 3, 2, 3)
	_, dims := run(t, func(in []*graph.Node) *graph.Node {
		return graph.Convolve(in[0], in[1]).PadSame().Done()
	}, x, k)
	if dims[1] != 5 || dims[2] != 5 || dims[3] != 3 {
		t.Fatalf("output dims %v, want [1 5 5 3]", dims)
	}
}

// TestConcurrentMatmulsFinish runs a graph whose eight matrix products can run at once: with
// simplego's default worker limit it deadlocks; with this backend's default it finishes.
func TestConcurrentMatmulsFinish(t *testing.T) {
	inputs := []*tensors.Tensor{gradcheck.Uniform(1, 64, 128), gradcheck.Uniform(2, 128, 64)}
	got, _ := run(t, func(in []*graph.Node) *graph.Node {
		var sum *graph.Node
		for i := range 8 {
			product := graph.Dot(graph.AddScalar(in[0], float64(i)), in[1])
			if sum == nil {
				sum = product
			} else {
				sum = graph.Add(sum, product)
			}
		}
		return graph.ReduceAllSum(sum)
	}, inputs...)
	want, _ := run(t, func(in []*graph.Node) *graph.Node {
		// sum_i (a + i) . b = 8 a.b + 28 ones.b
		product := graph.Dot(in[0], in[1])
		ones := graph.OnesLike(in[0])
		return graph.ReduceAllSum(graph.Add(graph.MulScalar(product, 8),
			graph.MulScalar(graph.Dot(ones, in[1]), 28)))
	}, inputs...)
	assertClose(t, "sum of products", got, want, 1e-9)
}
