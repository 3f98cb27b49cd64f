package backend

import (
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/maskwatch/maskwatch/models/backend/matmul"
)

// This file runs simplego's float32 DotGeneral on OpenBLAS (package matmul).
//
// simplego executes a node by calling nodeExecutors[node.opType], an unexported package
// array of functions filled by its init functions and read at every execution. The
// go:linkname directives below name that array and simplego's own DotGeneral executor;
// installBLASDot replaces the DotGeneral entry with blasDotGeneral, which calls the previous
// entry for what it does not handle (other dtypes, backends not created by New or created
// with "noblas"). The node's parameters (its unexported dotGeneralNodeData) are read by
// reflection, buffers through simplego's exported methods.
//
// Nothing here is checked by the compiler against simplego: installBLASDot first checks
// the GoMLX version and, on a graph built for the purpose, the layout it relies on (see
// checkSimplegoLayout), and refuses to install otherwise.

// gomlxVersion is the GoMLX release whose simplego internals this file names.
const gomlxVersion = "v0.26.0"

// nodeExecutor has the signature of simplego's unexported nodeExecutor type.
type nodeExecutor func(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	inputsOwned []bool) (*simplego.Buffer, error)

// simplegoNodeExecutors is simplego's nodeExecutors: [backends.OpTypeLast]nodeExecutor.
//
//go:linkname simplegoNodeExecutors github.com/gomlx/gomlx/backends/simplego.nodeExecutors
var simplegoNodeExecutors [backends.OpTypeLast]nodeExecutor

// simplegoExecDotGeneral is simplego's execDotGeneral, only compared with the table entry.
//
//go:linkname simplegoExecDotGeneral github.com/gomlx/gomlx/backends/simplego.execDotGeneral
func simplegoExecDotGeneral(backend *simplego.Backend, node *simplego.Node,
	inputs []*simplego.Buffer, inputsOwned []bool) (*simplego.Buffer, error)

var (
	installOnce sync.Once
	installErr  error
	// blasInstalled is set once blasDotGeneral is in simplego's table.
	blasInstalled atomic.Bool
	// fallbackDotGeneral is the entry blasDotGeneral replaced.
	fallbackDotGeneral nodeExecutor
	// blasBackends holds the *simplego.Backend of every Backend that uses OpenBLAS.
	blasBackends sync.Map
	// blasDotCalls and blasDotCopies count the DotGenerals run with matmul and the operands
	// that had to be transposed into a copy first (tests check the hook runs).
	blasDotCalls, blasDotCopies atomic.Int64
)

// blasEnvVar, set to "off", keeps simplego's DotGeneral for the whole process.
const blasEnvVar = "MASKWATCH_BLAS"

func init() {
	if err := installBLASDotByDefault(); err != nil {
		panic(err)
	}
}

// installBLASDotByDefault installs the hook in cgo builds unless MASKWATCH_BLAS=off. init
// calls it, and New too, since package variables (a backend created by one) are
// initialised before init runs.
func installBLASDotByDefault() error {
	if matmul.Native() && os.Getenv(blasEnvVar) != "off" {
		return installBLASDot()
	}
	return nil
}

// installBLASDot checks simplego's layout and puts blasDotGeneral in its executor table,
// once. Backends created by New afterwards use it.
func installBLASDot() error {
	installOnce.Do(func() {
		if installErr = checkSimplegoLayout(); installErr != nil {
			installErr = fmt.Errorf("models/backend: cannot run DotGeneral on OpenBLAS: %w; this "+
				"code reads GoMLX %s internals (backends/simplego): update models/backend/blasdot.go "+
				"or set %s=off to keep simplego's matrix product", installErr, gomlxVersion, blasEnvVar)
			return
		}
		fallbackDotGeneral = simplegoNodeExecutors[backends.OpTypeDotGeneral]
		simplegoNodeExecutors[backends.OpTypeDotGeneral] = blasDotGeneral
		blasInstalled.Store(true)
	})
	return installErr
}

// sgNodeFields are the indices of the fields of simplego.Node read by reflection.
var sgNodeFields struct {
	opType, inputs, shape, data int
}

// dotFields are the indices of the fields of simplego's dotGeneralNodeData.
var dotFields struct {
	lhsContracting, lhsBatch, rhsContracting, rhsBatch int
	batch, lhsCross, rhsCross, contracting             int
}

// checkSimplegoLayout checks what blasDotGeneral relies on: the GoMLX version, that the
// linked table holds simplego's DotGeneral executor, the fields of Node and
// dotGeneralNodeData, and that a DotGeneral node's inputs are the operands as given.
func checkSimplegoLayout() error {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path != "github.com/gomlx/gomlx" {
				continue
			}
			if dep.Replace != nil {
				dep = dep.Replace
			}
			if dep.Version != gomlxVersion {
				return fmt.Errorf("the binary has GoMLX %s", dep.Version)
			}
		}
	}
	entry := simplegoNodeExecutors[backends.OpTypeDotGeneral]
	if entry == nil || reflect.ValueOf(entry).Pointer() != reflect.ValueOf(simplegoExecDotGeneral).Pointer() {
		return fmt.Errorf("simplego.nodeExecutors[OpTypeDotGeneral] is not simplego.execDotGeneral " +
			"(the table or its element type changed)")
	}
	if err := checkNodeLayout(); err != nil {
		return err
	}
	// Build lhs [2,3,4] · rhs [2,5,4], batch axis 0, contracting axis 2 on both.
	goBackend, err := simplego.New("")
	if err != nil {
		return err
	}
	defer goBackend.Finalize()
	builder, ok := goBackend.Builder("maskwatch-blasdot-check").(*simplego.Builder)
	if !ok {
		return fmt.Errorf("simplego's Builder is not *simplego.Builder")
	}
	defer builder.Finalize()
	lhs, err := builder.Parameter("lhs", shapes.Make(dtypes.Float32, 2, 3, 4), nil)
	if err != nil {
		return err
	}
	rhs, err := builder.Parameter("rhs", shapes.Make(dtypes.Float32, 2, 5, 4), nil)
	if err != nil {
		return err
	}
	out, err := builder.DotGeneral(lhs, []int{2}, []int{0}, rhs, []int{2}, []int{0})
	if err != nil {
		return err
	}
	node, ok := out.(*simplego.Node)
	if !ok {
		return fmt.Errorf("simplego's DotGeneral returned %T, not *simplego.Node", out)
	}
	nodePtr := reflect.ValueOf(node)
	if backends.OpType(nodePtr.Elem().Field(sgNodeFields.opType).Int()) != backends.OpTypeDotGeneral {
		inputs := nodePtr.Elem().Field(sgNodeFields.inputs)
		if inputs.Len() != 1 {
			return fmt.Errorf("simplego's DotGeneral returned a node with %d inputs, "+
				"not a Reshape of the DotGeneral node", inputs.Len())
		}
		nodePtr = inputs.Index(0)
	}
	nodeValue := nodePtr.Elem()
	if op := backends.OpType(nodeValue.Field(sgNodeFields.opType).Int()); op != backends.OpTypeDotGeneral {
		return fmt.Errorf("simplego's DotGeneral node has Node.opType %s", op)
	}
	dotNode := (*simplego.Node)(unsafe.Pointer(nodePtr.Pointer()))
	inputs := nodeValue.Field(sgNodeFields.inputs)
	if inputs.Len() != 2 || inputs.Index(0).Pointer() != reflect.ValueOf(lhs).Pointer() ||
		inputs.Index(1).Pointer() != reflect.ValueOf(rhs).Pointer() {
		return fmt.Errorf("simplego's DotGeneral node's Node.inputs are not its two operands")
	}
	wantShape := shapes.Make(dtypes.Float32, 2, 3, 5)
	if got, err := builder.OpShape(dotNode); err != nil || !got.Equal(wantShape) {
		return fmt.Errorf("simplego's DotGeneral node has shape %s (%v), want %s", got, err, wantShape)
	}
	data := nodeValue.Field(sgNodeFields.data).Elem()
	if data.Kind() != reflect.Pointer || data.Elem().Kind() != reflect.Struct ||
		data.Elem().Type().Name() != "dotGeneralNodeData" {
		return fmt.Errorf("simplego's DotGeneral Node.data is %s, not *dotGeneralNodeData", data.Type())
	}
	dataType := data.Elem().Type()
	intSlice, intType := reflect.TypeFor[[]int](), reflect.TypeFor[int]()
	for _, f := range []struct {
		name  string
		index *int
		want  reflect.Type
	}{
		{"lhsContractingAxes", &dotFields.lhsContracting, intSlice},
		{"lhsBatchAxes", &dotFields.lhsBatch, intSlice},
		{"rhsContractingAxes", &dotFields.rhsContracting, intSlice},
		{"rhsBatchAxes", &dotFields.rhsBatch, intSlice},
		{"batchSize", &dotFields.batch, intType},
		{"lhsCrossSize", &dotFields.lhsCross, intType},
		{"rhsCrossSize", &dotFields.rhsCross, intType},
		{"contractingSize", &dotFields.contracting, intType},
	} {
		field, ok := dataType.FieldByName(f.name)
		if !ok || field.Type != f.want || len(field.Index) != 1 {
			return fmt.Errorf("simplego's dotGeneralNodeData has no field %s of type %s", f.name, f.want)
		}
		*f.index = field.Index[0]
	}
	p := readDotParams(dotNode)
	if p.batch != 2 || p.lhsCross != 3 || p.rhsCross != 5 || p.contracting != 4 ||
		fmt.Sprint(p.lhsContracting, p.lhsBatch, p.rhsContracting, p.rhsBatch) != "[2] [0] [2] [0]" {
		return fmt.Errorf("simplego's dotGeneralNodeData holds %+v for lhs [2,3,4] · rhs [2,5,4] "+
			"with batch axis 0 and contracting axis 2", p)
	}
	if got := dotOutputShape(p); !got.Equal(wantShape) {
		return fmt.Errorf("simplego's dotGeneralNodeData gives shape %s, want %s", got, wantShape)
	}
	return nil
}

// checkNodeLayout finds the fields of simplego.Node that the executors of this package read
// (sgNodeFields), checking their types.
func checkNodeLayout() error {
	nodeType := reflect.TypeFor[simplego.Node]()
	for _, f := range []struct {
		name  string
		index *int
		want  reflect.Type
	}{
		{"opType", &sgNodeFields.opType, reflect.TypeFor[backends.OpType]()},
		{"inputs", &sgNodeFields.inputs, reflect.TypeFor[[]*simplego.Node]()},
		{"shape", &sgNodeFields.shape, reflect.TypeFor[shapes.Shape]()},
		{"data", &sgNodeFields.data, reflect.TypeFor[any]()},
	} {
		field, ok := nodeType.FieldByName(f.name)
		if !ok || field.Type != f.want || len(field.Index) != 1 {
			return fmt.Errorf("simplego.Node has no field %s of type %s", f.name, f.want)
		}
		*f.index = field.Index[0]
	}
	return nil
}

// dotParams are the parameters of a DotGeneral node: the output is
// [batch, lhsCross, rhsCross], batch axes flattened in the order listed, cross axes in axis
// order, contracting axes paired in the order listed.
type dotParams struct {
	lhsContracting, lhsBatch, rhsContracting, rhsBatch []int
	batch, lhsCross, rhsCross, contracting             int
}

// readDotParams reads a DotGeneral node's dotGeneralNodeData (fields found by
// checkSimplegoLayout).
func readDotParams(node *simplego.Node) dotParams {
	data := reflect.ValueOf(node).Elem().Field(sgNodeFields.data).Elem().Elem()
	ints := func(i int) []int {
		v := data.Field(i)
		out := make([]int, v.Len())
		for j := range out {
			out[j] = int(v.Index(j).Int())
		}
		return out
	}
	return dotParams{
		lhsContracting: ints(dotFields.lhsContracting),
		lhsBatch:       ints(dotFields.lhsBatch),
		rhsContracting: ints(dotFields.rhsContracting),
		rhsBatch:       ints(dotFields.rhsBatch),
		batch:          int(data.Field(dotFields.batch).Int()),
		lhsCross:       int(data.Field(dotFields.lhsCross).Int()),
		rhsCross:       int(data.Field(dotFields.rhsCross).Int()),
		contracting:    int(data.Field(dotFields.contracting).Int()),
	}
}

func dotOutputShape(p dotParams) shapes.Shape {
	return shapes.Make(dtypes.Float32, p.batch, p.lhsCross, p.rhsCross)
}

// blasDotGeneral is the DotGeneral executor installed in simplego's table.
func blasDotGeneral(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	inputsOwned []bool) (*simplego.Buffer, error) {
	if _, ok := blasBackends.Load(backend); !ok || len(inputs) != 2 {
		return fallbackDotGeneral(backend, node, inputs, inputsOwned)
	}
	lhsShape, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	rhsShape, err := backend.BufferShape(inputs[1])
	if err != nil {
		return nil, err
	}
	if lhsShape.DType != dtypes.Float32 || rhsShape.DType != dtypes.Float32 {
		return fallbackDotGeneral(backend, node, inputs, inputsOwned)
	}
	lhsFlat, err := backend.BufferData(inputs[0])
	if err != nil {
		return nil, err
	}
	rhsFlat, err := backend.BufferData(inputs[1])
	if err != nil {
		return nil, err
	}
	p := readDotParams(node)
	out := backend.NewBuffer(dotOutputShape(p))
	if out == nil {
		return nil, fmt.Errorf("DotGeneral: backend is finalized")
	}
	outFlat, err := backend.BufferData(out)
	if err == nil {
		err = dotFloat32(backend, p, lhsShape.Dimensions, rhsShape.Dimensions,
			lhsFlat.([]float32), rhsFlat.([]float32), outFlat.([]float32))
	}
	if err != nil {
		_ = backend.BufferFinalize(out)
		return nil, fmt.Errorf("DotGeneral on OpenBLAS, lhs %s, rhs %s, %+v: %w", lhsShape, rhsShape, p, err)
	}
	blasDotCalls.Add(1)
	return out, nil
}

// operand is one side of a DotGeneral seen as a batch of [rows, cols] matrices, cross
// (rows) by contracting (cols) axes.
type operand struct {
	flat                        []float32
	trans                       bool // stored [cols, rows] (contracting axes first)
	ld, batchStride             int
	batch, rows, cols           int
	dims, batchAxes, crossAxes  []int
	contractingAxes, rowStrides []int
}

// newOperand classifies the axes of an operand of the given dimensions.
func newOperand(flat []float32, dims, batchAxes, contractingAxes []int, batch, rows, cols int) *operand {
	kind := make([]int, len(dims))
	for _, a := range batchAxes {
		kind[a] = 2
	}
	for _, a := range contractingAxes {
		kind[a] = 1
	}
	var cross []int
	for a, k := range kind {
		if k == 0 {
			cross = append(cross, a)
		}
	}
	strides := make([]int, len(dims))
	s := 1
	for a := len(dims) - 1; a >= 0; a-- {
		strides[a] = s
		s *= dims[a]
	}
	return &operand{flat: flat, batch: batch, rows: rows, cols: cols, dims: dims,
		batchAxes: batchAxes, crossAxes: cross, contractingAxes: contractingAxes, rowStrides: strides}
}

// groupStride returns the stride of the flattened index of the axes (in that order), when
// the axes flatten to one strided index: -1 when they hold one element, ok false when they
// do not flatten.
func (o *operand) groupStride(axes []int) (stride int, ok bool) {
	stride = -1
	last := -1
	for _, a := range axes {
		if o.dims[a] == 1 {
			continue
		}
		if last >= 0 && o.rowStrides[last] != o.dims[a]*o.rowStrides[a] {
			return 0, false
		}
		last = a
		stride = o.rowStrides[a]
	}
	return stride, true
}

// direct finds how BLAS can read the operand in place; ok false when it cannot. The
// matrices are [rows, cols] (trans false, leading dimension ld >= cols) or stored
// [cols, rows] (trans true, ld >= rows).
func (o *operand) direct() bool {
	sB, okB := o.groupStride(o.batchAxes)
	sR, okR := o.groupStride(o.crossAxes)
	sC, okC := o.groupStride(o.contractingAxes)
	if !okB || !okR || !okC {
		return false
	}
	o.batchStride = max(sB, 0)
	if o.cols == 1 || sC == 1 {
		o.trans, o.ld = false, o.cols
		if o.rows > 1 {
			o.ld = sR
		}
		if o.ld >= max(1, o.cols) {
			return true
		}
	}
	if o.rows == 1 || sR == 1 {
		o.trans, o.ld = true, o.rows
		if o.cols > 1 {
			o.ld = sC
		}
		if o.ld >= max(1, o.rows) {
			return true
		}
	}
	return false
}

// normalize copies the operand into dst as [batch, rows, cols], row-major.
func (o *operand) normalize(dst []float32) {
	perm := make([]int, 0, len(o.dims))
	perm = append(perm, o.batchAxes...)
	perm = append(perm, o.crossAxes...)
	perm = append(perm, o.contractingAxes...)
	dims := make([]int, len(perm))
	strides := make([]int, len(perm))
	for i, a := range perm {
		dims[i], strides[i] = o.dims[a], o.rowStrides[a]
	}
	permuteCopy(o.flat, dims, strides, dst)
	o.flat, o.trans, o.ld, o.batchStride = dst, false, o.cols, o.rows*o.cols
}

// permuteCopy writes into dst, row-major over dims, the values of src at offsets
// Σ index[i]*strides[i].
func permuteCopy(src []float32, dims, strides []int, dst []float32) {
	if len(dims) == 0 {
		dst[0] = src[0]
		return
	}
	last := len(dims) - 1
	n, stride := dims[last], strides[last]
	index := make([]int, last)
	base, out := 0, 0
	for {
		if stride == 1 {
			copy(dst[out:out+n], src[base:base+n])
		} else {
			for j := range n {
				dst[out+j] = src[base+j*stride]
			}
		}
		out += n
		// Advance the odometer over the outer axes.
		axis := last - 1
		for ; axis >= 0; axis-- {
			index[axis]++
			base += strides[axis]
			if index[axis] < dims[axis] {
				break
			}
			base -= index[axis] * strides[axis]
			index[axis] = 0
		}
		if axis < 0 {
			return
		}
	}
}

// dotFloat32 computes the DotGeneral into out, [batch, lhsCross, rhsCross].
func dotFloat32(backend *simplego.Backend, p dotParams, lhsDims, rhsDims []int,
	lhsFlat, rhsFlat, out []float32) error {
	lhs := newOperand(lhsFlat, lhsDims, p.lhsBatch, p.lhsContracting, p.batch, p.lhsCross, p.contracting)
	rhs := newOperand(rhsFlat, rhsDims, p.rhsBatch, p.rhsContracting, p.batch, p.rhsCross, p.contracting)
	for _, o := range []*operand{lhs, rhs} {
		if o.direct() {
			continue
		}
		scratch := backend.NewBuffer(shapes.Make(dtypes.Float32, o.batch*o.rows*o.cols))
		if scratch == nil {
			return fmt.Errorf("backend is finalized")
		}
		defer func() { _ = backend.BufferFinalize(scratch) }()
		flat, err := backend.BufferData(scratch)
		if err != nil {
			return err
		}
		o.normalize(flat.([]float32))
		blasDotCopies.Add(1)
	}
	if p.batch == 1 {
		lhs.batchStride, rhs.batchStride = 0, 0
	}
	// C = lhs · rhsᵀ: lhs is op(A) = [M, K]; rhs, [N, K], is op(B)ᵀ, so B is used with the
	// opposite transposition.
	prod := matmul.Product{Batch: p.batch, M: p.lhsCross, N: p.rhsCross, K: p.contracting,
		A: lhs.flat, TransA: lhs.trans, LDA: lhs.ld, StrideA: lhs.batchStride,
		B: rhs.flat, TransB: !rhs.trans, LDB: rhs.ld, StrideB: rhs.batchStride,
		C: out, LDC: p.rhsCross, StrideC: p.lhsCross * p.rhsCross}
	return prod.Run()
}
