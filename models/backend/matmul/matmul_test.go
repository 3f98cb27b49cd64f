package matmul

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func random(rng *rand.Rand, size int) []float32 {
	out := make([]float32, size)
	for i := range out {
		out[i] = 2*rng.Float32() - 1
	}
	return out
}

// reference is the definition, accumulated in float64.
func reference(m, n, k int, a, b []float32) []float32 {
	c := make([]float32, m*n)
	for i := range m {
		for j := range n {
			sum := 0.0
			for p := range k {
				sum += float64(a[i*k+p]) * float64(b[p*n+j])
			}
			c[i*n+j] = float32(sum)
		}
	}
	return c
}

func TestFloat32MatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dims := range [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 9, 300}, {64, 33, 513}, {5, 1, 4}} {
		m, n, k := dims[0], dims[1], dims[2]
		a, b := random(rng, m*k), random(rng, k*n)
		want := reference(m, n, k, a, b)
		for name, fn := range map[string]func(c []float32) error{
			Implementation(): func(c []float32) error { return Float32(m, n, k, a, b, c) },
			"go":             func(c []float32) error { Go(m, n, k, a, b, c); return nil },
		} {
			c := random(rng, m*n) // Float32 must overwrite, not accumulate
			if err := fn(c); err != nil {
				t.Fatal(err)
			}
			for i := range c {
				if math.Abs(float64(c[i]-want[i])) > 1e-4*math.Sqrt(float64(k)) {
					t.Fatalf("%s %v: element %d is %g, want %g", name, dims, i, c[i], want[i])
				}
			}
		}
	}
}

func TestFloat32RejectsWrongLengths(t *testing.T) {
	a, b, c := make([]float32, 4), make([]float32, 3), make([]float32, 4)
	if err := Float32(2, 2, 2, a, b, c); err == nil {
		t.Fatal("Float32 accepted b with 3 values for a 2x2 matrix")
	}
}

// BenchmarkFloat32 reports GFLOP/s of Float32 (OpenBLAS in cgo builds) and of Go on
// square matrices and on the products of two MobileNetV3-like convolutions.
// Run with: go test ./models/backend/matmul -run NONE -bench . -benchtime 5x [CGO_ENABLED=0]
func BenchmarkFloat32(b *testing.B) {
	shapes := []struct {
		name    string
		m, n, k int
	}{
		{"256x256x256", 256, 256, 256},
		{"512x512x512", 512, 512, 512},
		{"conv1x1 3136x72x24", 3136, 72, 24},
		{"conv3x3 784x40x360", 784, 40, 360},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range shapes {
		a, bm, c := random(rng, s.m*s.k), random(rng, s.k*s.n), make([]float32, s.m*s.n)
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		for name, fn := range map[string]func(){
			Implementation(): func() { _ = Float32(s.m, s.n, s.k, a, bm, c) },
			"go":             func() { Go(s.m, s.n, s.k, a, bm, c) },
		} {
			if name == "go" && Implementation() == "go" {
				continue // same as Float32
			}
			b.Run(fmt.Sprintf("%s/%s", s.name, name), func(b *testing.B) {
				for range b.N {
					fn()
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// strided stores the [rows, cols] matrix m (row-major, dense) with leading dimension ld,
// transposed when trans, and returns the stored values; padding is NaN.
func strided(m []float32, rows, cols int, trans bool, ld int) []float32 {
	sRows, sCols := rows, cols
	if trans {
		sRows, sCols = cols, rows
	}
	out := make([]float32, (sRows-1)*ld+sCols)
	for i := range out {
		out[i] = float32(math.NaN())
	}
	for r := range rows {
		for c := range cols {
			if trans {
				out[c*ld+r] = m[r*cols+c]
			} else {
				out[r*ld+c] = m[r*cols+c]
			}
		}
	}
	return out
}

// TestProductLayouts checks every transpose combination, padded leading dimensions, batches
// and a shared operand against the definition; C starts as NaN, which must not leak.
func TestProductLayouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, dims := range [][4]int{{1, 1, 1, 1}, {1, 3, 5, 7}, {3, 17, 9, 300}, {2, 64, 33, 513},
		{4, 5, 1, 4}, {2, 1, 40, 3}, {1, 700, 30, 200}, {3, 20, 600, 70}} {
		batch, m, n, k := dims[0], dims[1], dims[2], dims[3]
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				for _, pad := range []int{0, 3} {
					for _, shareB := range []bool{false, true} {
						as, bs := make([][]float32, batch), make([][]float32, batch)
						p := Product{Batch: batch, M: m, N: n, K: k, TransA: transA, TransB: transB}
						p.LDA, p.LDB, p.LDC = k+pad, n+pad, n+pad
						if transA {
							p.LDA = m + pad
						}
						if transB {
							p.LDB = k + pad
						}
						var aAll, bAll []float32
						for i := range batch {
							as[i], bs[i] = random(rng, m*k), random(rng, k*n)
							if shareB && i > 0 {
								bs[i] = bs[0]
							}
							sa := strided(as[i], m, k, transA, p.LDA)
							p.StrideA = len(sa) + pad
							aAll = append(aAll, sa...)
							aAll = append(aAll, make([]float32, pad)...)
							if !shareB || i == 0 {
								sb := strided(bs[i], k, n, transB, p.LDB)
								p.StrideB = len(sb)
								bAll = append(bAll, sb...)
							}
						}
						if shareB {
							p.StrideB = 0
						}
						p.A, p.B = aAll, bAll
						p.StrideC = (m-1)*p.LDC + n + pad
						p.C = make([]float32, batch*p.StrideC)
						for i := range p.C {
							p.C[i] = float32(math.NaN())
						}
						if err := p.Run(); err != nil {
							t.Fatal(err)
						}
						for i := range batch {
							want := reference(m, n, k, as[i], bs[i])
							for r := range m {
								for c := range n {
									got := p.C[i*p.StrideC+r*p.LDC+c]
									if !(math.Abs(float64(got-want[r*n+c])) <= 1e-4*math.Sqrt(float64(k))) {
										t.Fatalf("%v transA=%v transB=%v pad=%d shareB=%v: C[%d][%d,%d] = %g, want %g",
											dims, transA, transB, pad, shareB, i, r, c, got, want[r*n+c])
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestProductRejectsShortSlices(t *testing.T) {
	base := Product{Batch: 2, M: 3, N: 4, K: 5, A: make([]float32, 30), LDA: 5, StrideA: 15,
		B: make([]float32, 40), LDB: 4, StrideB: 20, C: make([]float32, 24), LDC: 4, StrideC: 12}
	if err := base.Run(); err != nil {
		t.Fatalf("valid product rejected: %v", err)
	}
	for name, edit := range map[string]func(p *Product){
		"short A":        func(p *Product) { p.A = p.A[:29] },
		"short B":        func(p *Product) { p.B = p.B[:39] },
		"short C":        func(p *Product) { p.C = p.C[:23] },
		"small LDA":      func(p *Product) { p.LDA = 4 },
		"transposed LDA": func(p *Product) { p.TransA = true },
		"overlapping C":  func(p *Product) { p.StrideC = 11 },
		"negative":       func(p *Product) { p.M = -1 },
	} {
		p := base
		edit(&p)
		if err := p.Run(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestProductConcurrent runs products from several goroutines at once (OpenBLAS from
// several threads), each checked.
func TestProductConcurrent(t *testing.T) {
	const m, n, k = 150, 70, 260
	rng := rand.New(rand.NewPCG(7, 8))
	a, b := random(rng, m*k), random(rng, k*n)
	want := reference(m, n, k, a, b)
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			c := make([]float32, m*n)
			for range 20 {
				if err := Float32(m, n, k, a, b, c); err != nil {
					errs <- err
					return
				}
				for i := range c {
					if math.Abs(float64(c[i]-want[i])) > 1e-3 {
						errs <- fmt.Errorf("element %d is %g, want %g", i, c[i], want[i])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
