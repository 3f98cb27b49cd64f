package frcnn

import (
	"fmt"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/net"
)

// torchvisionMsPerImage is torchvision's Faster R-CNN training time per image
// on two cores of these machines, with the study's settings (the reference
// the trainer must not be slower than).
var torchvisionMsPerImage = map[net.Backbone]float64{
	net.MobileNetV3Large: 1785,
	net.ResNet50:         1162,
}

// BenchmarkTrainStep times training steps of batch 8 on real 224 px faces for
// both backbones: ms/img, the GFLOP/s that makes (three times the forward
// multiply-adds of stage 1 and of stage 2 on the sampled RoIs, two flops
// each), and the ratio to torchvision's time on the same cores (below 1 is
// faster).
func BenchmarkTrainStep(b *testing.B) {
	const batch, steps = 8, 3
	for _, bb := range []net.Backbone{net.MobileNetV3Large, net.ResNet50} {
		b.Run(string(bb), func(b *testing.B) {
			be, err := backend.New("")
			if err != nil {
				b.Fatal(err)
			}
			cfg := DefaultConfig(bb)
			images, truths := overfitImages(b, cfg, batch)
			m, err := New(cfg, be, 1)
			if err != nil {
				b.Fatal(err)
			}
			tr, err := m.NewTrainer(TrainOptions{Batch: batch, LearningRate: 1e-3, Clip: 10,
				Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tr.Step(images, truths); err != nil { // compiles the graphs
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N * steps {
				if _, err := tr.Step(images, truths); err != nil {
					b.Fatal(err)
				}
			}
			perImage := time.Since(start).Seconds() / float64(b.N*steps*batch)
			macs := float64(m.Stage1.MACs(cfg.Size, cfg.Size)) +
				float64(cfg.RoIBatch)*float64(m.Stage2.MACs(cfg.RoIAlign.OutH, cfg.RoIAlign.OutW))
			b.ReportMetric(perImage*1000, "ms/img")
			b.ReportMetric(3*2*macs/perImage/1e9, "GFLOP/s")
			b.ReportMetric(perImage*1000/torchvisionMsPerImage[bb], "x_torchvision")
			b.Logf("%s: %.0f ms/img training (torchvision %.0f), %.2fM weights",
				bb, perImage*1000, torchvisionMsPerImage[bb], float64(m.Params())/1e6)
		})
	}
}

// BenchmarkDetect times inference on batches of 8 real 224 px faces: ms/img
// and the GFLOP/s of stage 1 and of stage 2 on every proposal.
func BenchmarkDetect(b *testing.B) {
	const batch = 8
	for _, bb := range []net.Backbone{net.MobileNetV3Large, net.ResNet50} {
		b.Run(string(bb), func(b *testing.B) {
			be, err := backend.New("")
			if err != nil {
				b.Fatal(err)
			}
			cfg := DefaultConfig(bb)
			images, _ := overfitImages(b, cfg, batch)
			m, err := New(cfg, be, 1)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.Detect(images, batch); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N * 2 {
				if _, err := m.Detect(images, batch); err != nil {
					b.Fatal(err)
				}
			}
			perImage := time.Since(start).Seconds() / float64(b.N*2*batch)
			macs := float64(m.Stage1.MACs(cfg.Size, cfg.Size)) +
				float64(cfg.EvalProposals.PostNMSTopN)*
					float64(m.Stage2.MACs(cfg.RoIAlign.OutH, cfg.RoIAlign.OutW))
			b.ReportMetric(perImage*1000, "ms/img")
			b.ReportMetric(2*macs/perImage/1e9, "GFLOP/s")
			b.Logf("%s: %s", bb, fmt.Sprintf("%.1f ms/img inference", perImage*1000))
		})
	}
}
