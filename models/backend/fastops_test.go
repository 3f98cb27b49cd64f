package backend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// runOn runs fn on backend b and returns its float32 outputs.
func runOn(t *testing.T, b backends.Backend, fn func(xs []*graph.Node) []*graph.Node,
	inputs ...*tensors.Tensor) [][]float32 {
	t.Helper()
	exec, err := graph.NewExecAny(b, func(xs []*graph.Node) []*graph.Node {
		return fn(xs)
	})
	if err != nil {
		t.Fatalf("building: %v", err)
	}
	defer exec.Finalize()
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = mustClone(in)
	}
	out, err := exec.Exec(args...)
	if err != nil {
		t.Fatalf("running: %v", err)
	}
	flats := make([][]float32, len(out))
	for i, o := range out {
		flats[i] = tensors.MustCopyFlatData[float32](o)
	}
	return flats
}

func randomTensor(r *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	flat := make([]float32, n)
	for i := range flat {
		flat[i] = float32(r.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(flat, dims...)
}

// The strided executors give what simplego's own give, on every broadcast pattern the
// detector uses and on sizes large enough to be split over the cores.
func TestFastOpsMatchSimplego(t *testing.T) {
	ours, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Finalize()
	plain, err := simplego.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Finalize()
	r := rand.New(rand.NewPCG(1, 2))
	calls := fastCalls.Load()
	defer func() {
		if fastCalls.Load() == calls {
			t.Error("the strided executors never ran")
		}
	}()

	binary := map[string]func(a, b *graph.Node) *graph.Node{
		"Add": graph.Add, "Sub": graph.Sub, "Mul": graph.Mul, "Div": graph.Div,
		"Max": graph.Max, "Min": graph.Min,
	}
	pairs := [][2][]int{
		{{2, 5, 7, 16}, {2, 5, 7, 16}}, // same shape
		{{2, 5, 7, 16}, {1, 1, 1, 16}}, // per channel
		{{2, 5, 7, 16}, {2, 1, 1, 16}}, // squeeze-excite gate
		{{2, 5, 7, 16}, {2, 5, 7, 1}},  // per position
		{{1, 1, 1, 16}, {2, 5, 7, 16}}, // broadcast on the left
		{{4, 1, 3}, {1, 6, 1}},         // both broadcast
		{{3, 1}, {1, 1}},               // a scalar in disguise
		{{64, 32, 32}, {64, 1, 32}},    // large: split over the cores
	}
	for name, op := range binary {
		for _, p := range pairs {
			a, b := randomTensor(r, p[0]...), randomTensor(r, p[1]...)
			fn := func(xs []*graph.Node) []*graph.Node {
				return []*graph.Node{op(xs[0], xs[1])}
			}
			got, want := runOn(t, ours, fn, a, b), runOn(t, plain, fn, a, b)
			assertBitEqual(t, fmt.Sprintf("%s %v %v", name, p[0], p[1]), got, want)
		}
	}

	x := randomTensor(r, 3, 17, 19, 24)
	unary := map[string]func(x *graph.Node) *graph.Node{
		"slice strided": func(x *graph.Node) *graph.Node {
			return graph.Slice(x, graph.AxisRange(), graph.AxisRange(1, 16).Stride(2),
				graph.AxisRange(0, 19).Stride(3), graph.AxisRange(4, 20))
		},
		"slice inner strided": func(x *graph.Node) *graph.Node {
			return graph.Slice(x, graph.AxisRange(1, 3), graph.AxisRange(),
				graph.AxisRange(2, 5), graph.AxisRange(1, 24).Stride(5))
		},
		"slice whole rows": func(x *graph.Node) *graph.Node {
			return graph.Slice(x, graph.AxisRange(), graph.AxisRange(3, 9))
		},
		"transpose NHWC to NCHW": func(x *graph.Node) *graph.Node {
			return graph.TransposeAllDims(x, 0, 3, 1, 2)
		},
		"transpose swap middle": func(x *graph.Node) *graph.Node {
			return graph.TransposeAllDims(x, 0, 2, 1, 3)
		},
		"broadcast in dim": func(x *graph.Node) *graph.Node {
			v := graph.Slice(x, graph.AxisRange(0, 1), graph.AxisRange(0, 1),
				graph.AxisRange(), graph.AxisRange())
			v = graph.Reshape(v, 19, 24)
			return graph.BroadcastToDims(graph.InsertAxes(v, 0, 0), 3, 5, 19, 24)
		},
		"broadcast scalar": func(x *graph.Node) *graph.Node {
			s := graph.ReduceAllMax(x)
			return graph.BroadcastToDims(s, 4, 6)
		},
		"reduce max inner": func(x *graph.Node) *graph.Node { return graph.ReduceMax(x, -1) },
		"reduce max outer": func(x *graph.Node) *graph.Node { return graph.ReduceMax(x, 0, 1) },
	}
	for name, op := range unary {
		fn := func(xs []*graph.Node) []*graph.Node { return []*graph.Node{op(xs[0])} }
		assertBitEqual(t, name, runOn(t, ours, fn, x), runOn(t, plain, fn, x))
	}

	// Sums run in another order: equal within float32 rounding.
	sums := map[string][]int{
		"all but channels": {0, 1, 2}, "channels": {3}, "middle": {1, 2}, "alternate": {0, 2},
		"all": {0, 1, 2, 3},
	}
	for name, axes := range sums {
		fn := func(xs []*graph.Node) []*graph.Node {
			return []*graph.Node{graph.ReduceSum(xs[0], axes...)}
		}
		got, want := runOn(t, ours, fn, x), runOn(t, plain, fn, x)
		for i := range want[0] {
			if d := math.Abs(float64(got[0][i] - want[0][i])); d > 1e-3 {
				t.Fatalf("ReduceSum %s: value %d is %v, simplego's %v", name, i, got[0][i],
					want[0][i])
			}
		}
	}
}

// The executors only take over backends made by New: a plain simplego backend keeps its own.
func TestFastOpsOnlyOnOurBackends(t *testing.T) {
	ours, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Finalize()
	plain, err := simplego.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Finalize()
	if _, ok := fastBackends.Load(ours.(*Backend).Backend); !ok {
		t.Fatal("a backend from New is not registered for the strided executors")
	}
	if _, ok := fastBackends.Load(plain); ok {
		t.Fatal("a plain simplego backend is registered for the strided executors")
	}
}

func assertBitEqual(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	for o := range want {
		if len(got[o]) != len(want[o]) {
			t.Fatalf("%s: %d values, want %d", what, len(got[o]), len(want[o]))
		}
		for i := range want[o] {
			if got[o][i] != want[o][i] && !(got[o][i] != got[o][i] && want[o][i] != want[o][i]) {
				t.Fatalf("%s: value %d is %v, simplego's %v", what, i, got[o][i], want[o][i])
			}
		}
	}
}
