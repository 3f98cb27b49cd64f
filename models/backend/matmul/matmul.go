// Package matmul multiplies row-major float32 matrices: with OpenBLAS's cblas_sgemm whenever
// cgo is enabled (Debian's libopenblas-dev), in pure Go otherwise, so that CGO_ENABLED=0
// builds keep working. Implementation says which one a binary runs.
//
// Product is the general form: a batch of products of strided matrices, each operand
// optionally transposed, as BLAS takes them. Package backend runs GoMLX's float32 DotGeneral
// with it when cgo is enabled.
//
// Threads: OpenBLAS is set to one thread at start-up (openblas_set_num_threads(1)); Product
// splits a product into parts (batches, else blocks of rows or columns) and runs each part
// on its own goroutine, at most GOMAXPROCS parts at once across all the products running in
// the process. So products that several goroutines start at the same time share the cores
// instead of each asking OpenBLAS for all of them.
package matmul

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Float32 computes c = a·b, overwriting c, for row-major a [m, k], b [k, n] and c [m, n].
// It uses OpenBLAS in cgo builds (see Implementation) and Go otherwise.
func Float32(m, n, k int, a, b, c []float32) error {
	if m < 0 || n < 0 || k < 0 || len(a) != m*k || len(b) != k*n || len(c) != m*n {
		return fmt.Errorf("matmul: [%d,%d]x[%d,%d] needs slices of %d, %d and %d values, "+
			"got %d, %d and %d", m, k, k, n, m*k, k*n, m*n, len(a), len(b), len(c))
	}
	p := Product{Batch: 1, M: m, N: n, K: k,
		A: a, LDA: max(k, 1), B: b, LDB: max(n, 1), C: c, LDC: max(n, 1)}
	return p.Run()
}

// Implementation names what Float32 and Product run: "openblas" or "go".
func Implementation() string { return implementation }

// Native reports whether Product runs OpenBLAS (cgo builds).
func Native() bool { return implementation == "openblas" }

// Product describes Batch matrix products C_i = op(A_i)·op(B_i), i < Batch, of row-major
// strided matrices, as BLAS's sgemm takes them: op(A_i) is [M, K] and op(B_i) is [K, N].
//
// A_i starts at A[i*StrideA]. Without TransA it is stored [M, K], row r at offset r*LDA
// (LDA >= K); with TransA it is stored [K, M] (LDA >= M) and used transposed. B_i likewise
// ([K, N] with LDB >= N, or [N, K] with LDB >= K under TransB). C_i, [M, N], starts at
// C[i*StrideC] with rows LDC >= N apart; it is overwritten. The strides may be 0 when Batch
// is 1; A and B may be shared between products (StrideA or StrideB 0), C may not.
type Product struct {
	Batch, M, N, K int

	A       []float32
	TransA  bool
	LDA     int
	StrideA int

	B       []float32
	TransB  bool
	LDB     int
	StrideB int

	C       []float32
	LDC     int
	StrideC int
}

// span is the number of values a stored matrix of rows x cols with leading dimension ld
// covers, in batch copies strided apart.
func span(batch, stride, rows, cols, ld int) int {
	if batch == 0 || rows == 0 || cols == 0 {
		return 0
	}
	return (batch-1)*stride + (rows-1)*ld + cols
}

// check validates the dimensions against the slices, so that no call reads or writes
// outside them.
func (p *Product) check() error {
	if p.Batch < 0 || p.M < 0 || p.N < 0 || p.K < 0 {
		return fmt.Errorf("matmul: negative size in batch %d of [%d,%d]x[%d,%d]",
			p.Batch, p.M, p.K, p.K, p.N)
	}
	for _, v := range []int{p.M, p.N, p.K, p.LDA, p.LDB, p.LDC} {
		if v > math.MaxInt32 {
			return fmt.Errorf("matmul: size or leading dimension %d does not fit BLAS's int", v)
		}
	}
	if p.StrideA < 0 || p.StrideB < 0 || p.StrideC < 0 {
		return fmt.Errorf("matmul: negative batch stride (%d, %d, %d)", p.StrideA, p.StrideB, p.StrideC)
	}
	aRows, aCols := p.M, p.K
	if p.TransA {
		aRows, aCols = p.K, p.M
	}
	bRows, bCols := p.K, p.N
	if p.TransB {
		bRows, bCols = p.N, p.K
	}
	for _, op := range []struct {
		name                string
		rows, cols, ld, len int
		stride              int
	}{
		{"A", aRows, aCols, p.LDA, len(p.A), p.StrideA},
		{"B", bRows, bCols, p.LDB, len(p.B), p.StrideB},
		{"C", p.M, p.N, p.LDC, len(p.C), p.StrideC},
	} {
		if op.ld < max(1, op.cols) {
			return fmt.Errorf("matmul: leading dimension of %s is %d, below its %d columns",
				op.name, op.ld, op.cols)
		}
		if need := span(p.Batch, op.stride, op.rows, op.cols, op.ld); op.len < need {
			return fmt.Errorf("matmul: %s needs %d values for batch %d of [%d,%d] (ld %d, "+
				"stride %d), has %d", op.name, need, p.Batch, op.rows, op.cols, op.ld, op.stride,
				op.len)
		}
	}
	if p.Batch > 1 && p.M > 0 && p.N > 0 && p.StrideC < (p.M-1)*p.LDC+p.N {
		return fmt.Errorf("matmul: the %d outputs overlap: stride %d, each [%d,%d] with ld %d",
			p.Batch, p.StrideC, p.M, p.N, p.LDC)
	}
	return nil
}

// minFlopsPerPart is the work below which Run does not start another goroutine: about
// 10 µs of one core.
const minFlopsPerPart = 1 << 20

// Run computes the products. It returns an error, and touches nothing, when the
// dimensions do not fit the slices.
func (p *Product) Run() error {
	if err := p.check(); err != nil {
		return err
	}
	if p.Batch == 0 || p.M == 0 || p.N == 0 {
		return nil
	}
	if p.K == 0 {
		for i := range p.Batch {
			for r := range p.M {
				start := i*p.StrideC + r*p.LDC
				clear(p.C[start : start+p.N])
			}
		}
		return nil
	}
	flops := 2 * float64(p.Batch) * float64(p.M) * float64(p.N) * float64(p.K)
	want := min(runtime.GOMAXPROCS(0), int(flops/minFlopsPerPart)+1)
	if p.Batch == 1 {
		want = min(want, max(p.M, p.N))
	} else if p.Batch < want {
		want = min(want, max(p.Batch, p.M, p.N))
	}
	got := cores.acquire(want)
	defer cores.release(got)
	if got == 1 {
		p.part(0, p.Batch, 0, p.M, 0, p.N)
		return nil
	}
	var wg sync.WaitGroup
	split := func(size, part int) (int, int) {
		return size * part / got, size * (part + 1) / got
	}
	for part := range got {
		b0, b1, m0, m1, n0, n1 := 0, p.Batch, 0, p.M, 0, p.N
		switch {
		case p.Batch >= got:
			b0, b1 = split(p.Batch, part)
		case p.M >= p.N:
			m0, m1 = split(p.M, part)
		default:
			n0, n1 = split(p.N, part)
		}
		if part == got-1 {
			p.part(b0, b1, m0, m1, n0, n1)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.part(b0, b1, m0, m1, n0, n1)
		}()
	}
	wg.Wait()
	return nil
}

// part computes rows m0..m1-1 and columns n0..n1-1 of the products b0..b1-1.
func (p *Product) part(b0, b1, m0, m1, n0, n1 int) {
	if b0 >= b1 || m0 >= m1 || n0 >= n1 {
		return
	}
	aOff := m0 * p.LDA // first row of op(A)
	if p.TransA {
		aOff = m0 // first column of the stored [K, M]
	}
	bOff := n0 // first column of the stored [K, N]
	if p.TransB {
		bOff = n0 * p.LDB // first row of the stored [N, K]
	}
	cOff := m0*p.LDC + n0
	for i := b0; i < b1; i++ {
		gemm(p.TransA, p.TransB, m1-m0, n1-n0, p.K,
			p.A[i*p.StrideA+aOff:], p.LDA, p.B[i*p.StrideB+bOff:], p.LDB,
			p.C[i*p.StrideC+cOff:], p.LDC)
	}
}

// coreTokens limits the goroutines running products to GOMAXPROCS across the process.
type coreTokens struct {
	mu    sync.Mutex
	cond  sync.Cond
	inUse int
}

var cores = func() *coreTokens {
	c := &coreTokens{}
	c.cond.L = &c.mu
	return c
}()

// acquire waits for at least one token and takes up to want.
func (c *coreTokens) acquire(want int) int {
	want = max(want, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.inUse >= runtime.GOMAXPROCS(0) {
		c.cond.Wait()
	}
	got := min(want, runtime.GOMAXPROCS(0)-c.inUse)
	c.inUse += got
	return got
}

func (c *coreTokens) release(n int) {
	c.mu.Lock()
	c.inUse -= n
	c.mu.Unlock()
	c.cond.Broadcast()
}

// kBlock is the number of rows of b one pass of Go keeps hot in cache: 256 rows of a
// 512-wide float32 matrix are 512 KiB.
const kBlock = 256

// Go computes c = a·b like Float32, in pure Go, with one goroutine per block of rows of c
// up to GOMAXPROCS. The lengths are not checked.
func Go(m, n, k int, a, b, c []float32) {
	workers := min(runtime.GOMAXPROCS(0), m)
	rowsPer := (m + workers - 1) / workers
	var wg sync.WaitGroup
	for first := 0; first < m; first += rowsPer {
		last := min(first+rowsPer, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			goRows(first, last, n, k, a, b, c)
		}()
	}
	wg.Wait()
}

// goRows computes rows first..last-1 of c: each row is a sum of rows of b scaled by the row
// of a, accumulated over blocks of k so that the rows of b stay in cache.
func goRows(first, last, n, k int, a, b, c []float32) {
	clear(c[first*n : last*n])
	for p0 := 0; p0 < k; p0 += kBlock {
		p1 := min(p0+kBlock, k)
		for i := first; i < last; i++ {
			row := c[i*n : (i+1)*n]
			for p := p0; p < p1; p++ {
				s := a[i*k+p]
				if s == 0 {
					continue
				}
				axpy(s, b[p*n:(p+1)*n], row)
			}
		}
	}
}

// goGemm is gemm in Go for one strided product, row by row of c; m, n, k > 0 and the
// slices are long enough (Product.check).
func goGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int,
	c []float32, ldc int) {
	at := func(i, p int) float32 {
		if transA {
			return a[p*lda+i]
		}
		return a[i*lda+p]
	}
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if transB { // c[i,j] = Σ_p A(i,p)·b[j,p]
			for j := range n {
				bRow := b[j*ldb : j*ldb+k]
				var sum float32
				for p, v := range bRow {
					sum += at(i, p) * v
				}
				row[j] = sum
			}
			continue
		}
		clear(row)
		for p := range k {
			if s := at(i, p); s != 0 {
				axpy(s, b[p*ldb:p*ldb+n], row)
			}
		}
	}
}

// axpy adds s*x to y, four elements a step.
func axpy(s float32, x, y []float32) {
	y = y[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		y[i] += s * x[i]
		y[i+1] += s * x[i+1]
		y[i+2] += s * x[i+2]
		y[i+3] += s * x[i+3]
	}
	for ; i < len(x); i++ {
		y[i] += s * x[i]
	}
}
