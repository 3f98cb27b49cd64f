//go:build cgo

package matmul

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkThreads compares, on im2col-like products and their gradients, Product's
// threading (one OpenBLAS thread per part, GOMAXPROCS parts) with OpenBLAS's own threads
// (one sgemm call, openblas_set_num_threads(GOMAXPROCS)).
// Run with: go test ./models/backend/matmul -run NONE -bench Threads -benchtime 10x
func BenchmarkThreads(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, s := range []struct {
		name           string
		m, n, k        int
		transA, transB bool
	}{
		{"conv3x3 25088x64x576", 8 * 56 * 56, 64, 9 * 64, false, false},
		{"conv3x3 dW 576x64x25088", 9 * 64, 64, 8 * 56 * 56, true, false},
		{"conv3x3 dX 25088x576x64", 8 * 56 * 56, 9 * 64, 64, false, true},
		{"conv1x1 1568x256x1024", 8 * 14 * 14, 256, 1024, false, false},
		{"dense 512x256x6272", 8 * 64, 256, 6272, false, false},
		{"dense dW 6272x256x512", 6272, 256, 8 * 64, true, false},
	} {
		p := Product{Batch: 1, M: s.m, N: s.n, K: s.k, TransA: s.transA, TransB: s.transB,
			A: random(rng, s.m*s.k), B: random(rng, s.k*s.n), C: make([]float32, s.m*s.n),
			LDA: s.k, LDB: s.n, LDC: s.n}
		if s.transA {
			p.LDA = s.m
		}
		if s.transB {
			p.LDB = s.k
		}
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		report := func(b *testing.B) {
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		}
		b.Run(s.name+"/product", func(b *testing.B) {
			for range b.N {
				if err := p.Run(); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		b.Run(s.name+"/openblas-threads", func(b *testing.B) {
			setThreads(runtime.GOMAXPROCS(0))
			defer setThreads(1)
			for range b.N {
				gemm(p.TransA, p.TransB, p.M, p.N, p.K, p.A, p.LDA, p.B, p.LDB, p.C, p.LDC)
			}
			report(b)
		})
		b.Run(s.name+"/1-thread", func(b *testing.B) {
			for range b.N {
				gemm(p.TransA, p.TransB, p.M, p.N, p.K, p.A, p.LDA, p.B, p.LDB, p.C, p.LDC)
			}
			report(b)
		})
	}
}
