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

// BenchmarkFloat32 reports GFLOP/s of Float32 (OpenBLAS with -tags openblas) and of Go on
// square matrices and on the products of two MobileNetV3-like convolutions.
// Run with: go test ./models/backend/matmul -run NONE -bench . -benchtime 5x [-tags openblas]
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
