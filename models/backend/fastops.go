package backend

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// This file gives simplego's float32 data movement and elementwise operations loops that
// run in strided blocks instead of one iterator step per element: binary arithmetic with
// broadcasting (Add, Sub, Mul, Div, Max, Min), Slice, BroadcastInDim, Transpose, ReduceSum
// and ReduceMax. simplego walks every element through a per-axis odometer (its
// broadcastIterator, the Slice loop), which made them three quarters of a training step of
// the detector; here adjacent axes that move together are merged, the odometer turns once
// per innermost run, and the run is a plain loop (or copy). Large operations are split
// over the cores.
//
// The executors replace entries of simplego's executor table, as blasdot.go does for
// DotGeneral, and only for backends created by New: other simplego backends, and dtypes
// other than float32, go to simplego's own executor.

// fastBackends holds the *simplego.Backend of every Backend created by New.
var fastBackends sync.Map

// fastFallback holds simplego's executors that the fast ones replaced.
var fastFallback [backends.OpTypeLast]nodeExecutor

var (
	fastOnce sync.Once
	fastErr  error
	// fastCalls counts the nodes the strided executors ran (tests check they run).
	fastCalls atomic.Int64
)

// binaryOps are the elementwise operations with a fast float32 executor.
var binaryOps = []backends.OpType{
	backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv,
	backends.OpTypeMax, backends.OpTypeMin,
}

// installFastOps checks the simplego internals the executors read and puts them in the
// table, once.
func installFastOps() error {
	fastOnce.Do(func() {
		if fastErr = checkFastLayout(); fastErr != nil {
			fastErr = fmt.Errorf("models/backend: cannot install the strided float32 "+
				"executors: %w; this code reads GoMLX %s internals (backends/simplego): update "+
				"models/backend/fastops.go", fastErr, gomlxVersion)
			return
		}
		install := func(op backends.OpType, exec nodeExecutor) {
			fastFallback[op] = simplegoNodeExecutors[op]
			simplegoNodeExecutors[op] = exec
		}
		for _, op := range binaryOps {
			install(op, fastBinary)
		}
		install(backends.OpTypeSlice, fastSlice)
		install(backends.OpTypeBroadcastInDim, fastBroadcastInDim)
		install(backends.OpTypeTranspose, fastTranspose)
		install(backends.OpTypeReduceSum, fastReduce)
		install(backends.OpTypeReduceMax, fastReduce)
	})
	return fastErr
}

// sliceFields are the indices of the fields of simplego's sliceNode.
var sliceFields struct{ starts, strides int }

// checkFastLayout checks the fields of simplego.Node (see checkNodeLayout) and, on a graph
// built for the purpose, the node data the executors read: a sliceNode's starts and
// strides, and the []int of BroadcastInDim, Transpose and the reductions.
func checkFastLayout() error {
	if err := checkNodeLayout(); err != nil {
		return err
	}
	goBackend, err := simplego.New("")
	if err != nil {
		return err
	}
	defer goBackend.Finalize()
	builder, ok := goBackend.Builder("maskwatch-fastops-check").(*simplego.Builder)
	if !ok {
		return fmt.Errorf("simplego's Builder is not *simplego.Builder")
	}
	defer builder.Finalize()
	x, err := builder.Parameter("x", shapes.Make(dtypes.Float32, 4, 6), nil)
	if err != nil {
		return err
	}
	sliced, err := builder.Slice(x, []int{1, 2}, []int{4, 6}, []int{2, 1})
	if err != nil {
		return err
	}
	node, ok := sliced.(*simplego.Node)
	if !ok {
		return fmt.Errorf("simplego's Slice returned %T, not *simplego.Node", sliced)
	}
	data := reflect.ValueOf(node).Elem().Field(sgNodeFields.data).Elem()
	if data.Kind() != reflect.Pointer || data.Elem().Kind() != reflect.Struct ||
		data.Elem().Type().Name() != "sliceNode" {
		return fmt.Errorf("simplego's Slice Node.data is %s, not *sliceNode", data.Type())
	}
	intSlice := reflect.TypeFor[[]int]()
	for _, f := range []struct {
		name  string
		index *int
	}{{"starts", &sliceFields.starts}, {"strides", &sliceFields.strides}} {
		field, ok := data.Elem().Type().FieldByName(f.name)
		if !ok || field.Type != intSlice || len(field.Index) != 1 {
			return fmt.Errorf("simplego's sliceNode has no field %s of type []int", f.name)
		}
		*f.index = field.Index[0]
	}
	starts, strides := readSliceParams(node)
	if fmt.Sprint(starts, strides) != "[1 2] [2 1]" {
		return fmt.Errorf("simplego's sliceNode holds starts %v, strides %v for starts [1 2], "+
			"strides [2 1]", starts, strides)
	}
	if got := nodeShape(node); !got.Equal(shapes.Make(dtypes.Float32, 2, 4)) {
		return fmt.Errorf("simplego's Slice node has shape %s, want (Float32)[2 4]", got)
	}

	transposed, err := builder.Transpose(x, 1, 0)
	if err != nil {
		return err
	}
	if got := nodeInts(transposed.(*simplego.Node)); fmt.Sprint(got) != "[1 0]" {
		return fmt.Errorf("simplego's Transpose Node.data holds %v, want the permutation [1 0]",
			got)
	}
	summed, err := builder.ReduceSum(x, 0)
	if err != nil {
		return err
	}
	if got := nodeInts(summed.(*simplego.Node)); fmt.Sprint(got) != "[0]" {
		return fmt.Errorf("simplego's ReduceSum Node.data holds %v, want the axes [0]", got)
	}
	broadcast, err := builder.BroadcastInDim(x, shapes.Make(dtypes.Float32, 4, 3, 6), []int{0, 2})
	if err != nil {
		return err
	}
	if got := nodeInts(broadcast.(*simplego.Node)); fmt.Sprint(got) != "[0 2]" {
		return fmt.Errorf("simplego's BroadcastInDim Node.data holds %v, want the axes [0 2]",
			got)
	}
	return nil
}

// nodeShape reads a node's output shape (Node.shape, unexported).
func nodeShape(node *simplego.Node) shapes.Shape {
	field := reflect.ValueOf(node).Elem().Field(sgNodeFields.shape)
	return *(*shapes.Shape)(unsafe.Pointer(field.UnsafeAddr()))
}

// nodeInts reads a node's data when it is an []int (axes or a permutation).
func nodeInts(node *simplego.Node) []int {
	data := reflect.ValueOf(node).Elem().Field(sgNodeFields.data).Elem()
	if data.Kind() != reflect.Slice || data.Type().Elem().Kind() != reflect.Int {
		return nil
	}
	out := make([]int, data.Len())
	for i := range out {
		out[i] = int(data.Index(i).Int())
	}
	return out
}

// readSliceParams reads a Slice node's starts and strides.
func readSliceParams(node *simplego.Node) (starts, strides []int) {
	data := reflect.ValueOf(node).Elem().Field(sgNodeFields.data).Elem().Elem()
	ints := func(i int) []int {
		v := data.Field(i)
		out := make([]int, v.Len())
		for j := range out {
			out[j] = int(v.Index(j).Int())
		}
		return out
	}
	return ints(sliceFields.starts), ints(sliceFields.strides)
}

// fastInputs returns the float32 data of the inputs, or ok false when the executor should
// leave the node to simplego (another backend, another dtype).
func fastInputs(backend *simplego.Backend, inputs []*simplego.Buffer) (
	flats [][]float32, shapesOut []shapes.Shape, ok bool) {
	if _, mine := fastBackends.Load(backend); !mine {
		return nil, nil, false
	}
	flats = make([][]float32, len(inputs))
	shapesOut = make([]shapes.Shape, len(inputs))
	for i, in := range inputs {
		s, err := backend.BufferShape(in)
		if err != nil || s.DType != dtypes.Float32 {
			return nil, nil, false
		}
		data, err := backend.BufferData(in)
		if err != nil {
			return nil, nil, false
		}
		flats[i], shapesOut[i] = data.([]float32), s
	}
	fastCalls.Add(1)
	return flats, shapesOut, true
}

// newOutput takes a buffer of shape from the backend's pool.
func newOutput(backend *simplego.Backend, shape shapes.Shape) (*simplego.Buffer, []float32,
	error) {
	out := backend.NewBuffer(shape)
	if out == nil {
		return nil, nil, fmt.Errorf("backend is finalized")
	}
	data, err := backend.BufferData(out)
	if err != nil {
		return nil, nil, err
	}
	return out, data.([]float32), nil
}

// rowMajorStrides are the element strides of a contiguous tensor of dims.
func rowMajorStrides(dims []int) []int {
	strides := make([]int, len(dims))
	s := 1
	for a := len(dims) - 1; a >= 0; a-- {
		strides[a] = s
		s *= dims[a]
	}
	return strides
}

// stridedLoop walks a row-major index space of dims, reading operands through their own
// element strides per axis (0 on a broadcast axis). Axes of size 1 are dropped and
// neighbouring axes along which every operand moves contiguously are merged, so the
// innermost run is as long as it can be.
type stridedLoop struct {
	dims    []int
	strides [][]int // per operand, per axis
}

func newStridedLoop(dims []int, strides ...[]int) stridedLoop {
	var l stridedLoop
	l.strides = make([][]int, len(strides))
	for a, d := range dims {
		if d == 1 {
			continue
		}
		if n := len(l.dims); n > 0 {
			merge := true
			for k := range strides {
				if l.strides[k][n-1] != strides[k][a]*d {
					merge = false
					break
				}
			}
			if merge {
				l.dims[n-1] *= d
				for k := range strides {
					l.strides[k][n-1] = strides[k][a]
				}
				continue
			}
		}
		l.dims = append(l.dims, d)
		for k := range strides {
			l.strides[k] = append(l.strides[k], strides[k][a])
		}
	}
	if len(l.dims) == 0 { // a single element
		l.dims = []int{1}
		for k := range strides {
			l.strides[k] = []int{0}
		}
	}
	return l
}

// inner returns the innermost run's length and each operand's stride along it.
func (l stridedLoop) inner() (n int, strides []int) {
	last := len(l.dims) - 1
	strides = make([]int, len(l.strides))
	for k := range l.strides {
		strides[k] = l.strides[k][last]
	}
	return l.dims[last], strides
}

// outer is the number of innermost runs.
func (l stridedLoop) outer() int {
	n := 1
	for _, d := range l.dims[:len(l.dims)-1] {
		n *= d
	}
	return n
}

// run calls fn with each operand's offset at the start of runs first..last-1 of the outer
// index space, in order.
func (l stridedLoop) run(first, last int, fn func(offsets []int)) {
	rank := len(l.dims) - 1
	idx := make([]int, rank)
	offsets := make([]int, len(l.strides))
	rem := first
	for a := rank - 1; a >= 0; a-- {
		idx[a] = rem % l.dims[a]
		rem /= l.dims[a]
		for k := range offsets {
			offsets[k] += idx[a] * l.strides[k][a]
		}
	}
	for r := first; r < last; r++ {
		fn(offsets)
		for a := rank - 1; a >= 0; a-- {
			idx[a]++
			for k := range offsets {
				offsets[k] += l.strides[k][a]
			}
			if idx[a] < l.dims[a] {
				break
			}
			for k := range offsets {
				offsets[k] -= idx[a] * l.strides[k][a]
			}
			idx[a] = 0
		}
	}
}

// parallelMin is the element count from which an operation is split over the cores.
const parallelMin = 1 << 15

// parallel runs the outer runs of l in contiguous parts, one goroutine each, when the
// operation has size elements or more and there is more than one core.
func (l stridedLoop) parallel(size int, fn func(offsets []int)) {
	runs := l.outer()
	parts := min(runtime.GOMAXPROCS(0), runs)
	if size < parallelMin || parts < 2 {
		l.run(0, runs, fn)
		return
	}
	var wg sync.WaitGroup
	for p := range parts {
		first, last := runs*p/parts, runs*(p+1)/parts
		wg.Go(func() { l.run(first, last, fn) })
	}
	wg.Wait()
}

// broadcastStrides are the strides with which an operand of dims is read at each axis of
// an output of the same rank: 0 where the operand has size 1 and the output does not.
func broadcastStrides(dims, outDims []int) []int {
	strides := rowMajorStrides(dims)
	for a := range dims {
		if dims[a] == 1 && outDims[a] != 1 {
			strides[a] = 0
		}
	}
	return strides
}

// fastBinary is the executor of the elementwise binary operations.
func fastBinary(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	inputsOwned []bool) (*simplego.Buffer, error) {
	op := backends.OpType(reflect.ValueOf(node).Elem().Field(sgNodeFields.opType).Int())
	flats, ins, ok := fastInputs(backend, inputs)
	if !ok || len(inputs) != 2 || ins[0].Rank() != ins[1].Rank() {
		return fastFallback[op](backend, node, inputs, inputsOwned)
	}
	outShape := nodeShape(node)

	// Write over an operand that this is the last use of, as simplego does.
	var out *simplego.Buffer
	var outFlat []float32
	for k := range 2 {
		if inputsOwned[k] && ins[k].Equal(outShape) {
			out, outFlat = inputs[k], flats[k]
			inputs[k] = nil
			break
		}
	}
	if out == nil {
		var err error
		if out, outFlat, err = newOutput(backend, outShape); err != nil {
			return nil, err
		}
	}
	a, b := flats[0], flats[1]
	dims := outShape.Dimensions
	l := newStridedLoop(dims, rowMajorStrides(dims), broadcastStrides(ins[0].Dimensions, dims),
		broadcastStrides(ins[1].Dimensions, dims))
	n, s := l.inner()
	l.parallel(len(outFlat), func(o []int) {
		binaryRun(op, outFlat[o[0]:o[0]+n], a[o[1]:], b[o[2]:], s[1], s[2])
	})
	return out, nil
}

// binaryRun computes out[i] = a[i*sa] op b[i*sb]; sa and sb are 0 or 1.
func binaryRun(op backends.OpType, out, a, b []float32, sa, sb int) {
	switch {
	case sa == 1 && sb == 1:
		a, b = a[:len(out)], b[:len(out)]
		switch op {
		case backends.OpTypeAdd:
			for i := range out {
				out[i] = a[i] + b[i]
			}
		case backends.OpTypeSub:
			for i := range out {
				out[i] = a[i] - b[i]
			}
		case backends.OpTypeMul:
			for i := range out {
				out[i] = a[i] * b[i]
			}
		case backends.OpTypeDiv:
			for i := range out {
				out[i] = a[i] / b[i]
			}
		case backends.OpTypeMax:
			for i := range out {
				out[i] = max(a[i], b[i])
			}
		case backends.OpTypeMin:
			for i := range out {
				out[i] = min(a[i], b[i])
			}
		}
	case sa == 0 && sb == 0:
		fill(out, binaryScalar(op, a[0], b[0]))
	case sb == 0:
		a, c := a[:len(out)], b[0]
		switch op {
		case backends.OpTypeAdd:
			for i := range out {
				out[i] = a[i] + c
			}
		case backends.OpTypeSub:
			for i := range out {
				out[i] = a[i] - c
			}
		case backends.OpTypeMul:
			for i := range out {
				out[i] = a[i] * c
			}
		case backends.OpTypeDiv:
			for i := range out {
				out[i] = a[i] / c
			}
		case backends.OpTypeMax:
			for i := range out {
				out[i] = max(a[i], c)
			}
		case backends.OpTypeMin:
			for i := range out {
				out[i] = min(a[i], c)
			}
		}
	default: // sa == 0, sb == 1
		c, b := a[0], b[:len(out)]
		switch op {
		case backends.OpTypeAdd:
			for i := range out {
				out[i] = c + b[i]
			}
		case backends.OpTypeSub:
			for i := range out {
				out[i] = c - b[i]
			}
		case backends.OpTypeMul:
			for i := range out {
				out[i] = c * b[i]
			}
		case backends.OpTypeDiv:
			for i := range out {
				out[i] = c / b[i]
			}
		case backends.OpTypeMax:
			for i := range out {
				out[i] = max(c, b[i])
			}
		case backends.OpTypeMin:
			for i := range out {
				out[i] = min(c, b[i])
			}
		}
	}
}

// binaryScalar is a op b for one pair.
func binaryScalar(op backends.OpType, a, b float32) float32 {
	switch op {
	case backends.OpTypeAdd:
		return a + b
	case backends.OpTypeSub:
		return a - b
	case backends.OpTypeMul:
		return a * b
	case backends.OpTypeDiv:
		return a / b
	case backends.OpTypeMax:
		return max(a, b)
	default:
		return min(a, b)
	}
}

func fill(out []float32, v float32) {
	for i := range out {
		out[i] = v
	}
}

// gatherRun copies n values from src, stride apart, into dst.
func gatherRun(dst, src []float32, n, stride int) {
	switch stride {
	case 1:
		copy(dst[:n], src[:n])
	case 0:
		fill(dst[:n], src[0])
	default:
		src = src[:(n-1)*stride+1]
		for i := range dst[:n] {
			dst[i] = src[i*stride]
		}
	}
}

// gatherInto fills a new buffer of the node's shape with operand values read at base plus,
// per output axis, the element strides src (0 repeats a value).
func gatherInto(backend *simplego.Backend, node *simplego.Node, operand []float32, base int,
	src []int) (*simplego.Buffer, error) {
	outShape := nodeShape(node)
	out, outFlat, err := newOutput(backend, outShape)
	if err != nil {
		return nil, err
	}
	dims := outShape.Dimensions
	l := newStridedLoop(dims, rowMajorStrides(dims), src)
	n, s := l.inner()
	operand = operand[base:]
	l.parallel(len(outFlat), func(o []int) {
		gatherRun(outFlat[o[0]:], operand[o[1]:], n, s[1])
	})
	return out, nil
}

// fastSlice is the executor of Slice.
func fastSlice(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	inputsOwned []bool) (*simplego.Buffer, error) {
	flats, ins, ok := fastInputs(backend, inputs)
	if !ok {
		return fastFallback[backends.OpTypeSlice](backend, node, inputs, inputsOwned)
	}
	starts, steps := readSliceParams(node)
	src := rowMajorStrides(ins[0].Dimensions)
	base := 0
	for a := range src {
		base += starts[a] * src[a]
		src[a] *= steps[a]
	}
	return gatherInto(backend, node, flats[0], base, src)
}

// fastBroadcastInDim is the executor of BroadcastInDim: operand axis k becomes output axis
// axes[k]; the other output axes repeat it.
func fastBroadcastInDim(backend *simplego.Backend, node *simplego.Node,
	inputs []*simplego.Buffer, inputsOwned []bool) (*simplego.Buffer, error) {
	flats, ins, ok := fastInputs(backend, inputs)
	axes := nodeInts(node)
	if !ok || len(axes) != ins[0].Rank() {
		return fastFallback[backends.OpTypeBroadcastInDim](backend, node, inputs, inputsOwned)
	}
	dims := nodeShape(node).Dimensions
	src := make([]int, len(dims))
	operandStrides := rowMajorStrides(ins[0].Dimensions)
	for k, a := range axes {
		if ins[0].Dimensions[k] == dims[a] {
			src[a] = operandStrides[k]
		}
	}
	return gatherInto(backend, node, flats[0], 0, src)
}

// fastTranspose is the executor of Transpose: output axis i is operand axis perm[i].
func fastTranspose(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	inputsOwned []bool) (*simplego.Buffer, error) {
	flats, ins, ok := fastInputs(backend, inputs)
	perm := nodeInts(node)
	if !ok || len(perm) != ins[0].Rank() {
		return fastFallback[backends.OpTypeTranspose](backend, node, inputs, inputsOwned)
	}
	operandStrides := rowMajorStrides(ins[0].Dimensions)
	src := make([]int, len(perm))
	for i, p := range perm {
		src[i] = operandStrides[p]
	}
	return gatherInto(backend, node, flats[0], 0, src)
}

// fastReduce is the executor of ReduceSum and ReduceMax. It walks the operand in order and
// accumulates into the output, read with stride 0 along the reduced axes.
func fastReduce(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	inputsOwned []bool) (*simplego.Buffer, error) {
	op := backends.OpType(reflect.ValueOf(node).Elem().Field(sgNodeFields.opType).Int())
	flats, ins, ok := fastInputs(backend, inputs)
	axes := nodeInts(node)
	if !ok || len(axes) == 0 {
		return fastFallback[op](backend, node, inputs, inputsOwned)
	}
	outShape := nodeShape(node)
	out, outFlat, err := newOutput(backend, outShape)
	if err != nil {
		return nil, err
	}
	dims := ins[0].Dimensions
	reduced := make([]bool, len(dims))
	for _, a := range axes {
		reduced[a] = true
	}
	keptDims := make([]int, 0, len(dims))
	for a, d := range dims {
		if !reduced[a] {
			keptDims = append(keptDims, d)
		}
	}
	keptStrides := rowMajorStrides(keptDims)
	dst := make([]int, len(dims))
	k := 0
	for a := range dims {
		if !reduced[a] {
			dst[a] = keptStrides[k]
			k++
		}
	}
	start := float32(0)
	if op == backends.OpTypeReduceMax {
		start = float32(math.Inf(-1))
	}
	fill(outFlat, start)

	l := newStridedLoop(dims, rowMajorStrides(dims), dst)
	n, s := l.inner()
	x := flats[0]
	l.run(0, l.outer(), func(o []int) {
		src := x[o[0] : o[0]+n]
		switch {
		case s[1] == 0 && op == backends.OpTypeReduceSum:
			var sum float32
			for _, v := range src {
				sum += v
			}
			outFlat[o[1]] += sum
		case s[1] == 0:
			m := outFlat[o[1]]
			for _, v := range src {
				m = max(m, v)
			}
			outFlat[o[1]] = m
		case op == backends.OpTypeReduceSum:
			acc := outFlat[o[1] : o[1]+n]
			for i, v := range src {
				acc[i] += v
			}
		default:
			acc := outFlat[o[1] : o[1]+n]
			for i, v := range src {
				acc[i] = max(acc[i], v)
			}
		}
	})
	return out, nil
}
