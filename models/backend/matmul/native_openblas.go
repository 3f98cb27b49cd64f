//go:build cgo

package matmul

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "unsafe"

const implementation = "openblas"

func init() {
	// Product runs one OpenBLAS thread per part and limits the parts to GOMAXPROCS: OpenBLAS's
	// own threads would multiply that when several products run at once.
	C.openblas_set_num_threads(1)
}

// setThreads sets OpenBLAS's number of threads (benchmarks compare its threading with
// Product's).
func setThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

func transpose(t bool) C.enum_CBLAS_TRANSPOSE {
	if t {
		return C.CblasTrans
	}
	return C.CblasNoTrans
}

// gemm calls OpenBLAS's sgemm for one strided product (see Product); m, n, k > 0 and the
// slices are long enough (Product.check). beta = 0: OpenBLAS zeroes c rather than scaling
// it, so what c held before (NaN included) does not matter.
func gemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int,
	c []float32, ldc int) {
	C.cblas_sgemm(C.CblasRowMajor, transpose(transA), transpose(transB),
		C.blasint(m), C.blasint(n), C.blasint(k), 1,
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb), 0,
		(*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}
