package detect

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/models/export"
	"github.com/maskwatch/maskwatch/models/tflite"
)

// benchBundles returns the default model at each precision: fp32 and fp16
// exported again from the float weights it carries, int8 as committed.
func benchBundles(b *testing.B) map[tflite.Precision]*bundle.Bundle {
	b.Helper()
	def, err := defaultmodel.Load()
	if err != nil {
		b.Fatal(err)
	}
	be, err := backend.New("")
	if err != nil {
		b.Fatal(err)
	}
	out := map[tflite.Precision]*bundle.Bundle{tflite.Precision(def.Meta.Precision): def}
	for _, p := range []tflite.Precision{tflite.FP32, tflite.FP16} {
		if _, ok := out[p]; ok {
			continue
		}
		e, err := export.FromWeights(context.Background(), def.Meta.Model, def.Weights,
			export.Options{Precision: p, MaxSide: def.Meta.Input.MaxSide, Backend: be})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bundle.Encode(e); err != nil { // sets the sizes and digest
			b.Fatal(err)
		}
		out[p] = e
	}
	return out
}

// BenchmarkDetect640x480 times the detector on a 640x480 frame (a
// photograph of facemask/val letterboxed to a camera's size), for each
// precision of the default model and each engine, TFLite on 1 and 2
// threads, GoMLX on every core (threads=0): the stages in ms per frame
// (pre: resize and normalise or quantise; stage1: backbone, neck, RPN;
// stage2: RoIAlign and the box head; post: proposals, box decoding and NMS
// in Go), their total, and the bundle's size. Times are wall clock: other
// work on the machine slows them, threads the most (a TFLite worker waiting
// for a busy core holds the others).
func BenchmarkDetect640x480(b *testing.B) {
	frame := frame640(b)
	bundles := benchBundles(b)
	engines := []string{EngineGoMLX}
	if tfliteAvailable {
		engines = append([]string{EngineTFLite}, engines...)
	}
	for _, p := range []tflite.Precision{tflite.FP32, tflite.FP16, tflite.INT8} {
		bu := bundles[p]
		raw, err := bundle.Encode(bu)
		if err != nil {
			b.Fatal(err)
		}
		for _, engine := range engines {
			threadCounts := []int{1, 2}
			if engine == EngineGoMLX {
				threadCounts = []int{0} // every core: see gomlxEngine
			}
			for _, threads := range threadCounts {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", p, engine, threads), func(b *testing.B) {
					d, err := OpenBundle(bu, string(p), Options{Engine: engine, Threads: threads})
					if err != nil {
						b.Fatal(err)
					}
					defer d.Close()
					frames := 20
					if engine == EngineGoMLX {
						frames = 5
					}
					for range 2 { // compile, allocate, warm the caches
						if _, err := d.Detect(frame); err != nil {
							b.Fatal(err)
						}
					}
					var sum Timings
					b.ResetTimer()
					for range b.N * frames {
						if _, err := d.Detect(frame); err != nil {
							b.Fatal(err)
						}
						t := d.LastTimings()
						sum.Preprocess += t.Preprocess
						sum.Stage1 += t.Stage1
						sum.Stage2 += t.Stage2
						sum.Post += t.Post
					}
					n := float64(b.N * frames)
					ms := func(d time.Duration) float64 { return float64(d) / 1e6 / n }
					b.ReportMetric(ms(sum.Preprocess), "pre-ms")
					b.ReportMetric(ms(sum.Stage1), "stage1-ms")
					b.ReportMetric(ms(sum.Stage2), "stage2-ms")
					b.ReportMetric(ms(sum.Post), "post-ms")
					b.ReportMetric(ms(sum.Total()), "ms/frame")
					b.ReportMetric(float64(len(raw))/1e6, "bundle-MB")
				})
			}
		}
	}
}
