package backend

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/maskwatch/maskwatch/models/backend/gradcheck"
)

// TestGatherGradient covers the gathers whose gradient this package replaces (GatherSlices
// with slices smaller than their axes, and Interpolate, which uses them) and one it leaves to
// GoMLX (Gather of whole rows).
func TestGatherGradient(t *testing.T) {
	x := gradcheck.Uniform(1, 2, 5, 6)
	checkGradient(t, "GatherSlices, one axis", func(in []*graph.Node) *graph.Node {
		start := graph.Const(in[0].Graph(), [][]int32{{3}, {1}, {0}})
		return graph.GatherSlices(in[0], []int{1}, start, []int{2}, false)
	}, x)
	checkGradient(t, "GatherSlices, two axes, clamped start", func(in []*graph.Node) *graph.Node {
		start := graph.Const(in[0].Graph(), [][]int32{{0, 3}, {1, 2}, {4, 0}, {2, 5}})
		return graph.GatherSlices(in[0], []int{1, 2}, start, []int{2, 3}, false)
	}, x)
	checkGradient(t, "Gather of rows", func(in []*graph.Node) *graph.Node {
		return graph.Gather(in[0], graph.Const(in[0].Graph(), [][]int32{{1}, {0}, {1}}))
	}, x)

	image := gradcheck.Uniform(2, 1, 5, 6, 2)
	checkGradient(t, "bilinear upsampling", func(in []*graph.Node) *graph.Node {
		return graph.Interpolate(in[0], -1, 9, 11, -1).Bilinear().Done()
	}, image)
	checkGradient(t, "bilinear downsampling", func(in []*graph.Node) *graph.Node {
		return graph.Interpolate(in[0], -1, 3, 4, -1).Bilinear().Done()
	}, image)
}
