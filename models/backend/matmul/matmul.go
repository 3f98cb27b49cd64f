// Package matmul multiplies row-major float32 matrices: with OpenBLAS when built with the
// openblas tag (cgo and Debian's libopenblas-dev), in pure Go otherwise, so that
// CGO_ENABLED=0 builds keep working. Its benchmark measures what OpenBLAS would bring.
//
// GoMLX v0.26.0's pure-Go backend has no hook for a native matrix product, so the
// backend package cannot use this one: GoMLX's graphs keep simplego's own.
package matmul

import (
	"fmt"
	"runtime"
	"sync"
)

// Float32 computes c = a·b, overwriting c, for row-major a [m, k], b [k, n] and c [m, n].
// It uses OpenBLAS in builds with the openblas tag (see Implementation) and Go otherwise.
func Float32(m, n, k int, a, b, c []float32) error {
	if m < 0 || n < 0 || k < 0 || len(a) != m*k || len(b) != k*n || len(c) != m*n {
		return fmt.Errorf("matmul: [%d,%d]x[%d,%d] needs slices of %d, %d and %d values, "+
			"got %d, %d and %d", m, k, k, n, m*k, k*n, m*n, len(a), len(b), len(c))
	}
	if m == 0 || n == 0 {
		return nil
	}
	if k == 0 {
		clear(c)
		return nil
	}
	native(m, n, k, a, b, c)
	return nil
}

// Implementation names what Float32 runs: "openblas" or "go".
func Implementation() string { return implementation }

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
