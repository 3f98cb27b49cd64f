//go:build !(cgo && openblas)

package matmul

const implementation = "go"

func native(m, n, k int, a, b, c []float32) { Go(m, n, k, a, b, c) }
