package backend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/maskwatch/maskwatch/models/backend/gradcheck"
	"github.com/maskwatch/maskwatch/models/backend/matmul"
)

// blasPair returns a backend whose DotGeneral runs blasDotGeneral and one that keeps
// simplego's. Without cgo, the hook is installed here and matmul runs in Go, which still
// tests the layouts.
var blasPair = sync.OnceValues(func() (withBLAS, without backends.Backend) {
	if err := installBLASDot(); err != nil {
		panic(err)
	}
	var err error
	if withBLAS, err = New(""); err != nil {
		panic(err)
	}
	if without, err = New(noBLASOption); err != nil {
		panic(err)
	}
	if !withBLAS.(*Backend).UsesBLAS() || without.(*Backend).UsesBLAS() {
		panic("New ignored the noblas option")
	}
	return withBLAS, without
})

// execBoth runs fn on both backends, on copies of the input tensors, and returns the flat float64 outputs.
func execBoth(t *testing.T, fn any, inputs ...*tensors.Tensor) (got, want [][]float64) {
	t.Helper()
	withBLAS, without := blasPair()
	for i, b := range []backends.Backend{withBLAS, without} {
		exec, err := graph.NewExecAny(b, fn)
		if err != nil {
			t.Fatalf("building: %v", err)
		}
		clones := make([]any, len(inputs))
		for j, in := range inputs {
			clones[j] = mustClone(in)
		}
		out, err := exec.Exec(clones...)
		exec.Finalize()
		if err != nil {
			t.Fatalf("running: %v", err)
		}
		flats := make([][]float64, len(out))
		for j, o := range out {
			for _, v := range tensors.MustCopyFlatData[float32](o) {
				flats[j] = append(flats[j], float64(v))
			}
		}
		if i == 0 {
			got = flats
		} else {
			want = flats
		}
	}
	return got, want
}

// assertSameFloat32 compares float32 results accumulated in different orders: errors grow
// with the square root of the contracted size and with the size of the values.
func assertSameFloat32(t *testing.T, what string, got, want [][]float64, k int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d outputs, want %d", what, len(got), len(want))
	}
	for o := range got {
		if len(got[o]) != len(want[o]) {
			t.Fatalf("%s: output %d has %d values, want %d", what, o, len(got[o]), len(want[o]))
		}
		scale := 0.0
		for _, v := range want[o] {
			scale = max(scale, math.Abs(v))
		}
		tol := 1e-5 * math.Sqrt(float64(max(k, 1))) * (1 + scale)
		for i := range got[o] {
			if !(math.Abs(got[o][i]-want[o][i]) <= tol) {
				t.Fatalf("%s: output %d element %d is %g with OpenBLAS, %g with simplego",
					what, o, i, got[o][i], want[o][i])
			}
		}
	}
}

func float32Uniform(rng *rand.Rand, dims ...int) *tensors.Tensor {
	size := 1
	for _, d := range dims {
		size *= d
	}
	values := make([]float32, size)
	for i := range values {
		values[i] = 2*rng.Float32() - 1
	}
	return tensors.FromFlatDataAndDimensions(values, dims...)
}

// randomDotGeneral is a DotGeneral with axes of each kind put at random places and listed
// in random order.
type randomDotGeneral struct {
	lhsDims, rhsDims      []int
	lhsContract, lhsBatch []int
	rhsContract, rhsBatch []int
	contractingSize       int
}

func newRandomDotGeneral(rng *rand.Rand) randomDotGeneral {
	dim := func() int { return 1 + rng.IntN(6) }
	nBatch, nContract := rng.IntN(3), 1+rng.IntN(2)
	nLhsCross, nRhsCross := rng.IntN(3), rng.IntN(3)
	batchDims, contractDims := make([]int, nBatch), make([]int, nContract)
	var g randomDotGeneral
	g.contractingSize = 1
	for i := range batchDims {
		batchDims[i] = dim()
	}
	for i := range contractDims {
		contractDims[i] = dim()
		g.contractingSize *= contractDims[i]
	}
	// place puts batch axes, contracting axes and cross axes at a random permutation of
	// the operand's axes (half the time, in an order BLAS reads in place) and returns its dimensions and where each batch and contracting
	// axis went.
	place := func(nCross int) (dims, batch, contract []int) {
		rank := nBatch + nContract + nCross
		perm := rng.Perm(rank)
		if rng.IntN(2) == 0 { // [batch, cross, contracting] or [batch, contracting, cross]
			for i := range perm {
				perm[i] = i
			}
			if rng.IntN(2) == 0 {
				for i := range nContract {
					perm[nBatch+i] = nBatch + nCross + i
				}
				for i := range nCross {
					perm[nBatch+nContract+i] = nBatch + i
				}
			}
		}
		dims = make([]int, rank)
		batch, contract = make([]int, nBatch), make([]int, nContract)
		for i := range nBatch {
			batch[i] = perm[i]
			dims[perm[i]] = batchDims[i]
		}
		for i := range nContract {
			contract[i] = perm[nBatch+i]
			dims[perm[nBatch+i]] = contractDims[i]
		}
		for i := range nCross {
			dims[perm[nBatch+nContract+i]] = dim()
		}
		return dims, batch, contract
	}
	g.lhsDims, g.lhsBatch, g.lhsContract = place(nLhsCross)
	g.rhsDims, g.rhsBatch, g.rhsContract = place(nRhsCross)
	return g
}

// TestBLASDotGeneralRandomLayouts compares OpenBLAS and simplego on DotGenerals with batch,
// cross and contracting axes anywhere.
func TestBLASDotGeneralRandomLayouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	callsBefore, copiesBefore := blasDotCalls.Load(), blasDotCopies.Load()
	for i := range 300 {
		g := newRandomDotGeneral(rng)
		lhs, rhs := float32Uniform(rng, g.lhsDims...), float32Uniform(rng, g.rhsDims...)
		got, want := execBoth(t, func(x, y *graph.Node) *graph.Node {
			return graph.DotGeneral(x, g.lhsContract, g.lhsBatch, y, g.rhsContract, g.rhsBatch)
		}, lhs, rhs)
		assertSameFloat32(t, fmt.Sprintf("case %d: lhs %v c%v b%v, rhs %v c%v b%v", i,
			g.lhsDims, g.lhsContract, g.lhsBatch, g.rhsDims, g.rhsContract, g.rhsBatch),
			got, want, g.contractingSize)
	}
	calls, copies := blasDotCalls.Load()-callsBefore, blasDotCopies.Load()-copiesBefore
	t.Logf("%d DotGenerals ran on %s, %d operands copied", calls, matmul.Implementation(), copies)
	if calls < 300 {
		t.Errorf("only %d of 300 DotGenerals ran through the OpenBLAS hook", calls)
	}
	if copies == 0 || copies > 2*calls-100 {
		t.Errorf("%d of %d operands copied: the random layouts should mix both paths",
			copies, 2*calls)
	}
}

// TestBLASDotGeneralShapes compares larger products, in the layouts of im2col convolutions
// and dense layers and of their gradients, large enough to be split between cores.
func TestBLASDotGeneralShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, c := range []struct {
		name                   string
		lhsDims, rhsDims       []int
		lhsC, lhsB, rhsC, rhsB []int
		k                      int
	}{
		{"im2col [2*28*28, 9*16]x[9*16, 32]", []int{2 * 28 * 28, 144}, []int{144, 32},
			[]int{1}, nil, []int{0}, nil, 144},
		{"kernel gradient xᵀ·dy", []int{2 * 28 * 28, 144}, []int{2 * 28 * 28, 32},
			[]int{0}, nil, []int{0}, nil, 2 * 28 * 28},
		{"input gradient dy·kᵀ", []int{2 * 28 * 28, 32}, []int{144, 32},
			[]int{1}, nil, []int{1}, nil, 32},
		{"dense [64, 1568]x[1568, 96]", []int{64, 1568}, []int{1568, 96},
			[]int{1}, nil, []int{0}, nil, 1568},
		{"NHWC rank 4 contracted on channels", []int{2, 14, 14, 64}, []int{64, 48},
			[]int{3}, nil, []int{0}, nil, 64},
		{"batched attention-like [8, 50, 40]x[8, 30, 40]", []int{8, 50, 40}, []int{8, 30, 40},
			[]int{2}, []int{0}, []int{2}, []int{0}, 40},
		{"batch axis last", []int{50, 40, 6}, []int{40, 30, 6},
			[]int{1}, []int{2}, []int{0}, []int{2}, 40},
		{"two contracting axes reversed", []int{3, 5, 60}, []int{5, 3, 70},
			[]int{0, 1}, nil, []int{1, 0}, nil, 15},
		{"vector·vector", []int{300}, []int{300}, []int{0}, nil, []int{0}, nil, 300},
		{"matrix·vector", []int{70, 300}, []int{300}, []int{1}, nil, []int{0}, nil, 300},
	} {
		lhs, rhs := float32Uniform(rng, c.lhsDims...), float32Uniform(rng, c.rhsDims...)
		got, want := execBoth(t, func(x, y *graph.Node) *graph.Node {
			return graph.DotGeneral(x, c.lhsC, c.lhsB, y, c.rhsC, c.rhsB)
		}, lhs, rhs)
		assertSameFloat32(t, c.name, got, want, c.k)
	}
}

// TestBLASGradients compares forward and gradients of convolutions (im2col: their
// DotGenerals and the Dot gradients of vjp.go) and of a dense layer, float32.
func TestBLASGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for i, cc := range convCases {
		x := float32Uniform(rng, cc.n, cc.h, cc.w, cc.cin)
		k := float32Uniform(rng, cc.kh, cc.kw, cc.cin/cc.groups, cc.cout)
		got, want := execBoth(t, func(x, k *graph.Node) []*graph.Node {
			y := cc.build([]*graph.Node{x, k})
			loss := graph.ReduceAllSum(graph.Square(y))
			return append([]*graph.Node{y}, graph.Gradient(loss, x, k)...)
		}, x, k)
		assertSameFloat32(t, fmt.Sprintf("conv case %d %s", i, cc), got, want,
			cc.kh*cc.kw*cc.cin*cc.h*cc.w)
	}
	x, w := float32Uniform(rng, 16, 7, 7, 8), float32Uniform(rng, 7*7*8, 24)
	got, want := execBoth(t, func(x, w *graph.Node) []*graph.Node {
		flat := graph.Reshape(x, 16, -1)
		y := graph.Tanh(graph.Dot(flat, w))
		loss := graph.ReduceAllSum(graph.Square(y))
		return append([]*graph.Node{y}, graph.Gradient(loss, x, w)...)
	}, x, w)
	assertSameFloat32(t, "dense", got, want, 7*7*8*16)
	got, want = execBoth(t, func(x, k1, k2 *graph.Node) []*graph.Node {
		loss := graph.ReduceAllSum(graph.Square(residualBlocks(x, k1, k2)))
		return graph.Gradient(loss, x, k1, k2)
	}, float32Uniform(rng, 2, 12, 12, 16), float32Uniform(rng, 3, 3, 16, 16),
		float32Uniform(rng, 3, 3, 16, 16))
	assertSameFloat32(t, "residual blocks", got, want, 2*12*12*16*9)
}

// TestBLASFallsBack checks that float64 products and "noblas" backends keep simplego's.
func TestBLASFallsBack(t *testing.T) {
	withBLAS, without := blasPair()
	before := blasDotCalls.Load()
	x := gradcheck.Uniform(1, 20, 30)
	y := gradcheck.Uniform(2, 30, 10)
	for _, b := range []backends.Backend{withBLAS, without} {
		out, err := graph.MustNewExec(b, graph.Dot).Exec(mustClone(x), mustClone(y))
		if err != nil {
			t.Fatal(err)
		}
		out[0].FinalizeAll()
	}
	xf := float32Uniform(rand.New(rand.NewPCG(1, 1)), 20, 30)
	yf := float32Uniform(rand.New(rand.NewPCG(1, 2)), 30, 10)
	if _, err := graph.MustNewExec(without, graph.Dot).Exec(xf, yf); err != nil {
		t.Fatal(err)
	}
	if calls := blasDotCalls.Load() - before; calls != 0 {
		t.Errorf("%d float64 or noblas products ran through OpenBLAS", calls)
	}
}

func TestPermuteCopy(t *testing.T) {
	// src is [2, 3, 4] row-major; dst is its transpose to axes (2, 0, 1).
	src := make([]float32, 24)
	for i := range src {
		src[i] = float32(i)
	}
	dst := make([]float32, 24)
	permuteCopy(src, []int{4, 2, 3}, []int{1, 12, 4}, dst)
	for c := range 4 {
		for a := range 2 {
			for b := range 3 {
				if got, want := dst[(c*2+a)*3+b], src[(a*3+b)*4+c]; got != want {
					t.Fatalf("dst[%d,%d,%d] = %g, want %g", c, a, b, got, want)
				}
			}
		}
	}
}

// residualBlocks is two ResNet-style basic blocks, NHWC, stride 1: relu(x + conv(relu(conv(x)))).
func residualBlocks(x, k1, k2 *graph.Node) *graph.Node {
	relu := func(x *graph.Node) *graph.Node { return graph.Max(x, graph.ZerosLike(x)) }
	conv := func(x, k *graph.Node) *graph.Node {
		return graph.Convolve(x, k).StridePerAxis(1, 1).PadSame().Done()
	}
	for range 2 {
		x = relu(graph.Add(x, conv(relu(conv(x, k1)), k2)))
	}
	return x
}

func mustClone(t *tensors.Tensor) *tensors.Tensor {
	clone, err := t.LocalClone()
	if err != nil {
		panic(err)
	}
	return clone
}
