package backend

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// SelectAndScatterMax implements backends.Builder; it is the gradient of max pooling: each
// value of source is added to the position of the largest operand value in its window (the
// first one in window order on ties), and every other position gets zero.
func (b *Builder) SelectAndScatterMax(operand, source backends.Op,
	windowDimensions, windowStrides []int, paddings [][2]int) (out backends.Op, err error) {
	defer recoverCompose(&err, "SelectAndScatterMax")
	c := composer{b.Builder}
	return c.selectAndScatter(operand, source, windowDimensions, windowStrides, paddings, true), nil
}

// SelectAndScatterMin implements backends.Builder like SelectAndScatterMax, selecting the
// smallest value of each window.
func (b *Builder) SelectAndScatterMin(operand, source backends.Op,
	windowDimensions, windowStrides []int, paddings [][2]int) (out backends.Op, err error) {
	defer recoverCompose(&err, "SelectAndScatterMin")
	c := composer{b.Builder}
	return c.selectAndScatter(operand, source, windowDimensions, windowStrides, paddings, false), nil
}

// selectAndScatter visits the window offsets one by one: the operand, padded with the value
// that never wins, is sliced at each offset with the window strides, giving one candidate
// per window; the first candidate equal to the window's extreme takes the source value, and
// Pad with interior padding puts it back at its position in the operand.
func (c composer) selectAndScatter(operand, source backends.Op,
	window, strides []int, paddings [][2]int, isMax bool) backends.Op {
	shape := c.shape(operand)
	rank := shape.Rank()
	dtype := shape.DType
	if len(window) != rank {
		c.fail("window has %d dimensions for operand %s", len(window), shape)
	}
	if len(strides) == 0 {
		strides = window
	}
	if len(strides) != rank || (len(paddings) != 0 && len(paddings) != rank) {
		c.fail("strides %v or paddings %v do not match operand %s", strides, paddings, shape)
	}
	if len(paddings) == 0 {
		paddings = make([][2]int, rank)
	}
	outDims := c.dims(source)

	// Pad with the value that never wins.
	loser := dtype.LowestValue()
	if !isMax {
		loser = dtype.HighestValue()
	}
	loserOp := c.must(c.b.Constant(sliceOf(dtype, loser)))
	padConf := make([]backends.PadAxis, rank)
	for i, p := range paddings {
		padConf[i] = backends.PadAxis{Start: p[0], End: p[1]}
	}
	padded := c.pad(operand, loserOp, padConf)
	paddedDims := c.dims(padded)

	// One candidate per window offset.
	var offsets [][]int
	forEachIndex(window, func(idx []int) { offsets = append(offsets, append([]int(nil), idx...)) })
	candidates := make([]backends.Op, len(offsets))
	var extreme backends.Op
	for i, off := range offsets {
		starts := make([]int, rank)
		limits := make([]int, rank)
		for axis := range rank {
			starts[axis] = off[axis]
			limits[axis] = off[axis] + (outDims[axis]-1)*strides[axis] + 1
		}
		candidates[i] = c.slice(padded, starts, limits, strides)
		switch {
		case extreme == nil:
			extreme = candidates[i]
		case isMax:
			extreme = c.must(c.b.Max(extreme, candidates[i]))
		default:
			extreme = c.must(c.b.Min(extreme, candidates[i]))
		}
	}

	// The first candidate equal to the extreme takes the source value.
	zero := c.scalar(dtype, 0)
	zeros := c.full(zero, shapes.Make(dtype, outDims...))
	var taken, total backends.Op
	for i, off := range offsets {
		chosen := c.must(c.b.Equal(candidates[i], extreme))
		if taken != nil {
			chosen = c.must(c.b.LogicalAnd(chosen, c.must(c.b.LogicalNot(taken))))
			taken = c.must(c.b.LogicalOr(taken, chosen))
		} else {
			taken = chosen
		}
		contribution := c.must(c.b.Where(chosen, source, zeros))
		scatter := make([]backends.PadAxis, rank)
		for axis := range rank {
			used := (outDims[axis]-1)*strides[axis] + 1
			scatter[axis] = backends.PadAxis{
				Start:    off[axis],
				End:      paddedDims[axis] - off[axis] - used,
				Interior: strides[axis] - 1,
			}
		}
		placed := c.pad(contribution, zero, scatter)
		if total == nil {
			total = placed
		} else {
			total = c.add(total, placed)
		}
	}

	// Drop the padding.
	for i, p := range paddings {
		padConf[i] = backends.PadAxis{Start: -p[0], End: -p[1]}
	}
	return c.pad(total, zero, padConf)
}

// forEachIndex calls fn with every multi-index of an array with the given dimensions, in
// row-major order. fn must not keep idx.
func forEachIndex(dims []int, fn func(idx []int)) {
	for _, d := range dims {
		if d <= 0 {
			return
		}
	}
	idx := make([]int, len(dims))
	for {
		fn(idx)
		axis := len(dims) - 1
		for ; axis >= 0; axis-- {
			idx[axis]++
			if idx[axis] < dims[axis] {
				break
			}
			idx[axis] = 0
		}
		if axis < 0 {
			return
		}
	}
}

// sliceOf returns a one-element Go slice of the dtype holding value, for Builder.Constant.
func sliceOf(dtype dtypes.DType, value any) any {
	switch v := value.(type) {
	case float32:
		return []float32{v}
	case float64:
		return []float64{v}
	case int8:
		return []int8{v}
	case int16:
		return []int16{v}
	case int32:
		return []int32{v}
	case int64:
		return []int64{v}
	case uint8:
		return []uint8{v}
	case uint16:
		return []uint16{v}
	case uint32:
		return []uint32{v}
	case uint64:
		return []uint64{v}
	}
	panic(composeError{errUnsupportedDType(dtype)})
}

func errUnsupportedDType(dtype dtypes.DType) error {
	return fmt.Errorf("dtype %s is not supported here; use a float or integer dtype", dtype)
}
