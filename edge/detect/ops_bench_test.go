//go:build cgo

package detect

import (
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite"
)

// BenchmarkTFLiteOps times single operators of MobileNetV3's kind, at the
// sizes a 320x256 input gives them, in fp32 and int8 on one thread: why
// the int8 graph is the slower one where TFLite's int8 kernels have no
// SIMD code (Debian's x86-64 build: HARD_SWISH, ADD, MUL and standalone
// activations are NEON-only in TFLite 2.14, depthwise convolutions too).
func BenchmarkTFLiteOps(b *testing.B) {
	cases := []struct {
		name  string
		shape []int
		build func(b *net.Builder, x int) int
	}{
		{"conv1x1_16to64_160x128", []int{1, 128, 160, 16},
			func(b *net.Builder, x int) int { return b.Conv("c", x, 64, 1, 1, 1, true) }},
		{"depthwise3x3_72_80x64", []int{1, 64, 80, 72},
			func(b *net.Builder, x int) int { return b.Depthwise("d", x, 3, 1) }},
		{"hardswish_16_160x128", []int{1, 128, 160, 16},
			func(b *net.Builder, x int) int { return b.Act("h", x, net.HardSwish) }},
		{"add_24_80x64", []int{1, 64, 80, 24},
			func(b *net.Builder, x int) int { return b.Add("a", x, x) }},
		{"squeeze_excite_mul_120_40x32", []int{1, 32, 40, 120},
			func(b *net.Builder, x int) int { return b.Scale("s", x, b.GlobalAvgPool("p", x)) }},
	}
	for _, c := range cases {
		nb := net.NewBuilder()
		nb.Output(c.build(nb, nb.Input("x", c.shape[3])))
		n, err := nb.Net()
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.New()
		if err := n.Init(ctx, 1); err != nil {
			b.Fatal(err)
		}
		w, err := n.Weights(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ranges := tflite.Ranges{}
		for _, l := range n.Layers {
			ranges[l.Name] = tflite.Range{Min: -3, Max: 3}
		}
		for _, p := range []tflite.Precision{tflite.FP32, tflite.INT8} {
			b.Run(c.name+"/"+string(p), func(b *testing.B) {
				g, err := tflite.Write(n, w, tflite.Options{Precision: p,
					InputShapes: [][]int{c.shape}, Ranges: ranges})
				if err != nil {
					b.Fatal(err)
				}
				s, err := newTFLiteStage(c.name, g.Model, bundle.Stage{Inputs: g.Inputs,
					Outputs: g.Outputs}, 1, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer s.close()
				const runs = 20
				if err := s.invoke(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				start := time.Now()
				for range b.N * runs {
					if err := s.invoke(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N*runs), "µs/op")
			})
		}
	}
}
