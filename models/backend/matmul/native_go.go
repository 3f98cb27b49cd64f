//go:build !cgo

package matmul

const implementation = "go"

// gemm computes one strided product (see Product) in Go.
func gemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int,
	c []float32, ldc int) {
	goGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
}
