package backend

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// composer emits simplego operations for the composed ones. It panics with a composeError on
// the first failure; every exported Builder method turns that back into an error with
// recoverCompose.
type composer struct {
	b backends.Builder
}

// composeError carries a backend error through a panic inside this package.
type composeError struct {
	err error
}

// recoverCompose stores a composeError raised in the calling method into *errp.
// Other panics are not ours and keep going.
func recoverCompose(errp *error, what string) {
	r := recover()
	if r == nil {
		return
	}
	ce, ok := r.(composeError)
	if !ok {
		panic(r)
	}
	*errp = fmt.Errorf("backend %s: %s: %w", Name, what, ce.err)
}

func (c composer) must(op backends.Op, err error) backends.Op {
	if err != nil {
		panic(composeError{err})
	}
	return op
}

func (c composer) fail(format string, args ...any) {
	panic(composeError{fmt.Errorf(format, args...)})
}

func (c composer) shape(x backends.Op) shapes.Shape {
	s, err := c.b.OpShape(x)
	if err != nil {
		panic(composeError{err})
	}
	return s
}

func (c composer) dims(x backends.Op) []int {
	return c.shape(x).Dimensions
}

// scalar returns a scalar constant of the given dtype.
func (c composer) scalar(dtype dtypes.DType, value float64) backends.Op {
	op := c.must(c.b.Constant([]float64{value}))
	if dtype == dtypes.Float64 {
		return op
	}
	return c.must(c.b.ConvertDType(op, dtype))
}

// full returns a tensor of the given shape filled with the scalar op fill.
func (c composer) full(fill backends.Op, shape shapes.Shape) backends.Op {
	return c.must(c.b.BroadcastInDim(fill, shape, nil))
}

func (c composer) reshape(x backends.Op, dims ...int) backends.Op {
	if equalInts(c.dims(x), dims) {
		return x
	}
	return c.must(c.b.Reshape(x, dims...))
}

// transpose permutes the axes of x: output axis i is input axis perm[i].
// The identity permutation emits nothing.
func (c composer) transpose(x backends.Op, perm ...int) backends.Op {
	identity := true
	for i, p := range perm {
		if i != p {
			identity = false
			break
		}
	}
	if identity {
		return x
	}
	return c.must(c.b.Transpose(x, perm...))
}

func (c composer) slice(x backends.Op, starts, limits, strides []int) backends.Op {
	return c.must(c.b.Slice(x, starts, limits, strides))
}

func (c composer) concat(axis int, xs ...backends.Op) backends.Op {
	if len(xs) == 1 {
		return xs[0]
	}
	return c.must(c.b.Concatenate(axis, xs...))
}

func (c composer) add(a, b backends.Op) backends.Op { return c.must(c.b.Add(a, b)) }
func (c composer) mul(a, b backends.Op) backends.Op { return c.must(c.b.Mul(a, b)) }

func (c composer) dot(lhs backends.Op, lhsContracting, lhsBatch []int,
	rhs backends.Op, rhsContracting, rhsBatch []int) backends.Op {
	return c.must(c.b.DotGeneral(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch))
}

// pad implements XLA's Pad: per axis, Interior copies of fill go between neighbouring
// elements, then Start and End copies go before and after; negative Start or End remove
// elements instead. Axes beyond len(config) are left alone.
func (c composer) pad(x, fill backends.Op, config []backends.PadAxis) backends.Op {
	shape := c.shape(x)
	if len(config) > shape.Rank() {
		c.fail("Pad: %d axes configured for operand %s", len(config), shape)
	}
	for axis, conf := range config {
		if conf.Interior < 0 {
			c.fail("Pad: negative interior padding %d on axis %d", conf.Interior, axis)
		}
		if conf.Interior > 0 {
			x = c.padInterior(x, fill, axis, conf.Interior)
		}
		x = c.padEdges(x, fill, axis, conf.Start, conf.End)
	}
	return x
}

// padInterior inserts n copies of fill between the elements along axis.
func (c composer) padInterior(x, fill backends.Op, axis, n int) backends.Op {
	shape := c.shape(x)
	dims := shape.Dimensions
	size := dims[axis]
	if size <= 1 {
		return x
	}

	// [pre..., size, post...] -> [pre..., size, 1, post...], then append n fill rows on the
	// new axis, flatten it back, and drop the n rows that follow the last element.
	expanded := make([]int, 0, len(dims)+1)
	expanded = append(expanded, dims[:axis+1]...)
	expanded = append(expanded, 1)
	expanded = append(expanded, dims[axis+1:]...)
	x = c.reshape(x, expanded...)
	fillDims := append([]int(nil), expanded...)
	fillDims[axis+1] = n
	block := c.full(fill, shapes.Make(shape.DType, fillDims...))
	x = c.concat(axis+1, x, block)

	flat := append([]int(nil), dims...)
	flat[axis] = size * (n + 1)
	x = c.reshape(x, flat...)
	return c.sliceAxis(x, axis, 0, (size-1)*(n+1)+1, 1)
}

// padEdges adds (or, when negative, removes) start and end elements along axis.
func (c composer) padEdges(x, fill backends.Op, axis, start, end int) backends.Op {
	if start < 0 || end < 0 {
		size := c.dims(x)[axis]
		from, to := max(-start, 0), size-max(-end, 0)
		if to < from {
			c.fail("Pad: removing %d and %d elements from axis %d of size %d", -start, -end, axis, size)
		}
		x = c.sliceAxis(x, axis, from, to, 1)
	}
	var parts []backends.Op
	shape := c.shape(x)
	if start > 0 {
		dims := append([]int(nil), shape.Dimensions...)
		dims[axis] = start
		parts = append(parts, c.full(fill, shapes.Make(shape.DType, dims...)))
	}
	parts = append(parts, x)
	if end > 0 {
		dims := append([]int(nil), shape.Dimensions...)
		dims[axis] = end
		parts = append(parts, c.full(fill, shapes.Make(shape.DType, dims...)))
	}
	return c.concat(axis, parts...)
}

// sliceAxis slices only one axis, from..to with the given stride.
func (c composer) sliceAxis(x backends.Op, axis, from, to, stride int) backends.Op {
	dims := c.dims(x)
	if from == 0 && to == dims[axis] && stride == 1 {
		return x
	}
	starts := make([]int, len(dims))
	limits := append([]int(nil), dims...)
	strides := make([]int, len(dims))
	for i := range strides {
		strides[i] = 1
	}
	starts[axis], limits[axis], strides[axis] = from, to, stride
	return c.slice(x, starts, limits, strides)
}

// reverse reverses x along each of the axes with a Gather of descending indices.
func (c composer) reverse(x backends.Op, axes []int) backends.Op {
	for _, axis := range axes {
		dims := c.dims(x)
		if axis < 0 || axis >= len(dims) {
			c.fail("Reverse: axis %d out of range for rank %d", axis, len(dims))
		}
		size := dims[axis]
		if size <= 1 {
			continue
		}
		indices := make([]int32, size)
		for i := range indices {
			indices[i] = int32(size - 1 - i)
		}
		idx := c.must(c.b.Constant(indices, size, 1))

		// Gather one slice per index: the slice is x with the reversed axis collapsed, and
		// the index (batch) axis of the output is placed where the axis was.
		sliceSizes := append([]int(nil), dims...)
		sliceSizes[axis] = 1
		offsetAxes := make([]int, 0, len(dims)-1)
		for i := range dims {
			if i != axis {
				offsetAxes = append(offsetAxes, i)
			}
		}
		x = c.must(c.b.Gather(x, idx, 1, offsetAxes, []int{axis}, []int{axis}, sliceSizes, false))
	}
	return x
}

// Pad implements backends.Builder: see composer.pad.
func (b *Builder) Pad(x, fillValue backends.Op, axesConfig ...backends.PadAxis) (
	out backends.Op, err error) {
	defer recoverCompose(&err, "Pad")
	c := composer{b.Builder}
	if fill := c.shape(fillValue); fill.Rank() != 0 || fill.DType != c.shape(x).DType {
		c.fail("Pad: fill value must be a scalar of the operand's dtype, got %s", fill)
	}
	return c.pad(x, fillValue, axesConfig), nil
}

// Reverse implements backends.Builder with a Gather of descending indices per axis.
func (b *Builder) Reverse(x backends.Op, axes ...int) (out backends.Op, err error) {
	defer recoverCompose(&err, "Reverse")
	return composer{b.Builder}.reverse(x, axes), nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
