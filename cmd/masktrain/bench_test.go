package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// BenchmarkAccuracy is the accuracy table of the default model's bundles:
// for each precision (the default model's own, the others exported again
// from its float weights, int8 calibrated on 200 photographs of
// proper-mask/train) and engine, accuracy, IoU and mAP@0.5 on
// proper-mask/test, and images per second of the whole evaluation on one
// thread (decoding included).
func BenchmarkAccuracy(b *testing.B) {
	test := fixture.Path(b, "proper-mask", "test")
	def, err := defaultmodel.Load()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	paths := map[string]string{def.Meta.Precision: "default"}
	for _, p := range []string{"fp32", "fp16", "int8"} {
		if paths[p] != "" {
			continue
		}
		paths[p] = filepath.Join(dir, p+".mwb")
		code, _, stderr := runCLI(context.Background(), "export", "--model", "default",
			"--precision", p, "--calib", fixture.Path(b, "proper-mask", "train"),
			"--out", paths[p])
		if code != exitOK {
			b.Fatalf("export %s: %s", p, stderr)
		}
	}
	for _, p := range []string{"fp32", "fp16", "int8"} {
		size := int64(0)
		if info, err := os.Stat(paths[p]); err == nil {
			size = info.Size()
		} else if raw, err := defaultmodel.Bytes(); err == nil && paths[p] == "default" {
			size = int64(len(raw))
		}
		for _, engine := range []string{"tflite", "gomlx"} {
			b.Run(fmt.Sprintf("%s/%s", p, engine), func(b *testing.B) {
				for range b.N {
					code, stdout, stderr := runCLI(context.Background(), "eval", "--json",
						"--samples", "0", "--threads", "1", "--model", paths[p], "--engine",
						engine, "--data", test)
					if code != exitOK {
						b.Fatalf("eval: %s", stderr)
					}
					var r struct {
						Accuracy, IoU, MAP50 float64
						PerSecond            float64 `json:"images_per_second"`
					}
					if err := json.Unmarshal([]byte(stdout), &r); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(r.Accuracy, "accuracy")
					b.ReportMetric(r.IoU, "iou")
					b.ReportMetric(r.MAP50, "map50")
					b.ReportMetric(r.PerSecond, "img/s")
					if size > 0 {
						b.ReportMetric(float64(size)/1e6, "bundle-MB")
					}
				}
			})
		}
	}
}
