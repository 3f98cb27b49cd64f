//go:build cgo && openblas

package matmul

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "unsafe"

const implementation = "openblas"

// native calls OpenBLAS's sgemm; OpenBLAS picks its own number of threads
// (OPENBLAS_NUM_THREADS sets it).
func native(m, n, k int, a, b, c []float32) {
	C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasNoTrans,
		C.blasint(m), C.blasint(n), C.blasint(k), 1,
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(k),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(n), 0,
		(*C.float)(unsafe.Pointer(&c[0])), C.blasint(n))
}
