package backend

import (
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// upstreamGatherVJP is GoMLX's gradient of Gather, used for the gathers gatherVJP leaves
// to it.
var upstreamGatherVJP graph.VJP

// gatherVJP replaces the gradient of the Gather node for GatherSlices with slices smaller
// than the operand: GoMLX scatters them with one ScatterSum whose windows are smaller than
// the operand, and simplego's ScatterSum walks such windows with the operand's strides, so
// the gradient lands in the wrong places. Here every position of the slice window is
// scattered as its own single-element index instead (one ScatterSum in all), which only
// needs windows that span whole axes. Other gathers keep GoMLX's gradient.
func gatherVJP(node *graph.Node, vjps []*graph.Node, outputShape shapes.Shape) []*graph.Node {
	if !isPartialGatherSlices(node) {
		return upstreamGatherVJP(node, vjps, outputShape)
	}
	return []*graph.Node{gatherSlicesVJP(node, vjps[0]), nil}
}

// isPartialGatherSlices reports whether node has GatherSlices' layout (index vector last,
// no collapsed axes, output = [index prefix..., operand axes...]), slices only the indexed
// axes, and some slice is smaller than its axis.
func isPartialGatherSlices(node *graph.Node) bool {
	params := nodeParams(node)
	operand, indices := node.Inputs()[0], node.Inputs()[1]
	prefix := indices.Rank() - 1
	if params.int("indexVectorAxis") != prefix || len(params.ints("collapsedSliceAxes")) != 0 {
		return false
	}
	if !slices.Equal(params.ints("offsetOutputAxes"), rangeOf(prefix, operand.Rank())) {
		return false
	}
	indexed := params.ints("startIndexMap")
	sizes := params.ints("sliceSizes")
	partial := false
	for axis, dim := range operand.Shape().Dimensions {
		if sizes[axis] < dim {
			if !slices.Contains(indexed, axis) {
				return false
			}
			partial = true
		}
	}
	return partial
}

// gatherSlicesVJP scatters v back into the operand. The operand is transposed so that the
// indexed axes come first; then, for each position w in the slice window, v's values at w
// go to index start+w, and a single ScatterSum adds them all.
func gatherSlicesVJP(node, v *graph.Node) *graph.Node {
	params := nodeParams(node)
	operand, indices := node.Inputs()[0], node.Inputs()[1]
	g := operand.Graph()
	dims := operand.Shape().Dimensions
	indexed := params.ints("startIndexMap")
	sizes := params.ints("sliceSizes")
	prefixDims := indices.Shape().Dimensions[:indices.Rank()-1]
	prefix := len(prefixDims)

	// Indexed axes first.
	var rest []int
	for axis := range dims {
		if !slices.Contains(indexed, axis) {
			rest = append(rest, axis)
		}
	}
	perm := append(append([]int(nil), indexed...), rest...)
	restDims := make([]int, len(rest))
	for i, axis := range rest {
		restDims[i] = dims[axis]
	}

	// Start indices clamped as Gather clamps them, so that each slice fits its axis.
	highest := make([]int32, len(indexed))
	windowDims := make([]int, len(indexed))
	for i, axis := range indexed {
		highest[i] = int32(dims[axis] - sizes[axis])
		windowDims[i] = sizes[axis]
	}
	// asIndex shapes a constant index vector to broadcast against the indices.
	asIndex := func(values []int32) *graph.Node {
		return graph.ExpandLeftToRank(graph.Const(g, values), indices.Rank())
	}
	start := graph.ConvertDType(indices, dtypes.Int32)
	start = graph.Min(graph.Max(start, graph.ScalarZero(g, dtypes.Int32)), asIndex(highest))

	var allIndices, allUpdates []*graph.Node
	forEachIndex(windowDims, func(w []int) {
		offset := make([]int32, len(w))
		specs := make([]graph.SliceAxisSpec, v.Rank())
		for i := range specs {
			specs[i] = graph.AxisRange()
		}
		for i, axis := range indexed {
			offset[i] = int32(w[i])
			specs[prefix+axis] = graph.AxisElem(w[i])
		}
		allIndices = append(allIndices, graph.InsertAxes(graph.Add(start, asIndex(offset)), 0))

		// v at window position w: [prefix..., dims with 1 on the indexed axes] ->
		// [1, prefix..., rest dims...].
		update := graph.Slice(v, specs...)
		update = transposeIfNeeded(update, append(iota(prefix), shiftedBy(perm, prefix)...))
		update = graph.Reshape(update, append(append([]int{1}, prefixDims...), restDims...)...)
		allUpdates = append(allUpdates, update)
	})
	scatterIndices := graph.Concatenate(allIndices, 0)
	updates := graph.Concatenate(allUpdates, 0)

	permutedDims := make([]int, len(perm))
	for i, axis := range perm {
		permutedDims[i] = dims[axis]
	}
	zeros := graph.Zeros(g, shapes.Make(operand.DType(), permutedDims...))
	grad := graph.ScatterSum(zeros, scatterIndices, updates, false, false)

	inverse := make([]int, len(perm))
	for i, axis := range perm {
		inverse[axis] = i
	}
	return transposeIfNeeded(grad, inverse)
}

// shiftedBy returns values with n added to each.
func shiftedBy(values []int, n int) []int {
	out := make([]int, len(values))
	for i, v := range values {
		out[i] = v + n
	}
	return out
}
