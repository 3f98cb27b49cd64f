package gradcheck

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func TestCheckAcceptsCorrectGradient(t *testing.T) {
	fn := func(in []*graph.Node) *graph.Node {
		return graph.Mul(graph.Sin(in[0]), graph.Exp(in[1])) // elementwise, non-scalar output
	}
	report, err := Check(simplego.GetBackend(), fn,
		[]*tensors.Tensor{Uniform(1, 3, 4), Uniform(2, 3, 4)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if report.WorstRelErr > 1e-7 {
		t.Fatalf("correct gradient rejected: %v", report)
	}
	if report.Probes != 24 {
		t.Fatalf("probed %d elements, want all 24", report.Probes)
	}
}

func TestCheckFindsWrongGradient(t *testing.T) {
	// The custom gradient is 1.01 times the true one on element 5 only.
	fn := func(in []*graph.Node) *graph.Node {
		x := graph.IdentityWithCustomGradient(in[0], func(x, v *graph.Node) *graph.Node {
			scale := make([]float64, 12)
			for i := range scale {
				scale[i] = 1
			}
			scale[5] = 1.01
			return graph.Mul(v, graph.Const(x.Graph(), scale))
		})
		return graph.ReduceAllSum(graph.Square(x))
	}
	report, err := Check(simplego.GetBackend(), fn, []*tensors.Tensor{Uniform(3, 12)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if report.Index != 5 || report.WorstRelErr < 0.009 || report.WorstRelErr > 0.011 {
		t.Fatalf("wrong gradient at element 5 not reported: %v", report)
	}
}

func TestCheckSamplesLargeInputs(t *testing.T) {
	fn := func(in []*graph.Node) *graph.Node {
		return graph.ReduceAllSum(graph.Mul(in[0], graph.Square(in[0])))
	}
	report, err := Check(simplego.GetBackend(), fn, []*tensors.Tensor{Uniform(4, 50, 50)},
		Options{MaxProbes: 7})
	if err != nil {
		t.Fatal(err)
	}
	if report.Probes != 7 || report.WorstRelErr > 1e-7 {
		t.Fatalf("sampled check: %v", report)
	}
}

func TestCheckRejectsFloat32(t *testing.T) {
	fn := func(in []*graph.Node) *graph.Node { return graph.ReduceAllSum(in[0]) }
	input := tensors.FromFlatDataAndDimensions([]float32{1, 2}, 2)
	_, err := Check(simplego.GetBackend(), fn, []*tensors.Tensor{input}, Options{})
	if err == nil || !strings.Contains(err.Error(), "float64") {
		t.Fatalf("float32 input: got error %v, want one asking for float64", err)
	}
}
