package backend

import (
	"fmt"
	"math"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// testBackend is shared by the tests of this package: creating one starts worker pools.
var testBackend = func() backends.Backend {
	b, err := New("")
	if err != nil {
		panic(err)
	}
	return b
}()

// run executes fn on the inputs and returns its output as float64 values.
func run(t *testing.T, fn func(inputs []*graph.Node) *graph.Node, inputs ...*tensors.Tensor) (
	[]float64, []int) {
	t.Helper()
	exec, err := graph.NewExec(testBackend, fn)
	if err != nil {
		t.Fatalf("building: %v", err)
	}
	defer exec.Finalize()
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in
	}
	out, err := exec.Exec(args...)
	if err != nil {
		t.Fatalf("running: %v", err)
	}
	return tensors.MustCopyFlatData[float64](out[0]), out[0].Shape().Dimensions
}

func assertClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol*(1+math.Abs(want[i])) {
			t.Fatalf("%s: element %d is %g, want %g", what, i, got[i], want[i])
		}
	}
}

func TestBackendIsRegistered(t *testing.T) {
	b, err := backends.NewWithConfig(Name + ":ops_sequential")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != Name {
		t.Fatalf("GOMLX_BACKEND=%s gave backend %q", Name, b.Name())
	}
	caps := b.Capabilities()
	for _, op := range addedOps {
		if !caps.Operations[op] {
			t.Errorf("capabilities do not list %s", op)
		}
	}
	if _, err := New("no_such_option"); err == nil {
		t.Error("New accepted an unknown configuration option")
	}
}

func TestPad(t *testing.T) {
	x := tensors.FromFlatDataAndDimensions([]float64{1, 2, 3, 4, 5, 6}, 2, 3)
	cases := []struct {
		config []backends.PadAxis
		want   []float64
		dims   []int
	}{
		{[]backends.PadAxis{{Start: 1}}, []float64{9, 9, 9, 1, 2, 3, 4, 5, 6}, []int{3, 3}},
		{[]backends.PadAxis{{}, {End: 2}}, []float64{1, 2, 3, 9, 9, 4, 5, 6, 9, 9}, []int{2, 5}},
		{[]backends.PadAxis{{}, {Interior: 1}}, []float64{1, 9, 2, 9, 3, 4, 9, 5, 9, 6}, []int{2, 5}},
		{[]backends.PadAxis{{Start: -1}, {Start: 1, End: -1}}, []float64{9, 4, 5}, []int{1, 3}},
		{[]backends.PadAxis{{Interior: 2, End: -1}}, []float64{1, 2, 3, 9, 9, 9, 9, 9, 9}, []int{3, 3}},
	}
	for i, tc := range cases {
		got, dims := run(t, func(in []*graph.Node) *graph.Node {
			return graph.Pad(in[0], graph.Scalar(in[0].Graph(), in[0].DType(), 9), tc.config...)
		}, x)
		if fmt.Sprint(dims) != fmt.Sprint(tc.dims) {
			t.Fatalf("case %d: dims %v, want %v", i, dims, tc.dims)
		}
		assertClose(t, fmt.Sprintf("case %d", i), got, tc.want, 0)
	}
}

func TestReverse(t *testing.T) {
	x := tensors.FromFlatDataAndDimensions([]float64{1, 2, 3, 4, 5, 6}, 2, 3)
	got, _ := run(t, func(in []*graph.Node) *graph.Node { return graph.Reverse(in[0], 1) }, x)
	assertClose(t, "axis 1", got, []float64{3, 2, 1, 6, 5, 4}, 0)
	got, _ = run(t, func(in []*graph.Node) *graph.Node { return graph.Reverse(in[0], 0, 1) }, x)
	assertClose(t, "axes 0 and 1", got, []float64{6, 5, 4, 3, 2, 1}, 0)
}
