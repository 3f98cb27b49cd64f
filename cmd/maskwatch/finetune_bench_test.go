package main

import (
	"encoding/json"
	"image"
	_ "image/jpeg" // calibration photographs
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/edge/finetune"
	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/export"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/tflite"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// Benchmarks of on-device fine-tuning, each fine-tune run as a maskwatch
// finetune process of its own (this test binary re-executed) so that its
// peak resident memory is its own:
//
//	MASKWATCH_BENCH_FT_SAMPLES  proper-mask/train images fine-tuned on (default 100)
//	MASKWATCH_BENCH_FT_EPOCHS   epochs (default 3)
//	MASKWATCH_BENCH_FRAMES      frames of the live run measured (default 60)

// benchFinetuneArgs runs maskwatch finetune with args and returns its
// result and peak resident memory in MB.
func benchFinetune(b *testing.B, args ...string) (*finetune.Result, float64) {
	b.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"finetune", "--no-deploy", "--json",
		"--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), "MASKWATCH_TEST_MAIN=1")
	var errOut, stdout strings.Builder
	cmd.Stderr, cmd.Stdout = &errOut, &stdout
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// The peak is read from /proc while it runs: a child's rusage keeps the
	// high-water mark of the parent it was forked from.
	var peak int64
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			peak = max(peak, procHWM(cmd.Process.Pid))
		}
	}
	if err != nil {
		b.Fatalf("maskwatch finetune %v: %v\n%s", args, err, errOut.String())
	}
	out := []byte(stdout.String())
	var v struct {
		Result *finetune.Result `json:"result"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Result == nil {
		b.Fatalf("maskwatch finetune printed %q: %v", out, err)
	}
	return v.Result, float64(peak) / (1 << 20)
}

// procHWM reads a process's peak resident set size (VmHWM).
func procHWM(pid int) int64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// BenchmarkFinetune measures a fine-tune of MASKWATCH_BENCH_FT_SAMPLES
// proper-mask crops (a fifth held out) starting from a model whose box head
// mixes up the classes: training time per image and epoch, the whole run's
// time per image (reading, stage 1, training, export, the two held-out
// evaluations), the peak resident memory of the process (the Pi 4 goal:
// under 1 GB), and held-out accuracy before and after. Configurations: the
// box head of an fp16 bundle; the head, RPN and neck of it; and the head of
// an int8 bundle (its export calibrates on the images).
func BenchmarkFinetune(b *testing.B) {
	dir := b.TempDir()
	data := benchLabelled(b, benchEnv("MASKWATCH_BENCH_FT_SAMPLES", 100))
	epochs := strconv.Itoa(benchEnv("MASKWATCH_BENCH_FT_EPOCHS", 3))
	weak := filepath.Join(dir, "weak.mwb")
	weakenedBundle(b, weak)
	weak8 := filepath.Join(dir, "weak8.mwb")
	weakenedAs(b, weak8, int8Options(b, data))
	for _, c := range []struct{ name, model, layers string }{
		{"fp16-head", weak, "head"},
		{"fp16-head,rpn,neck", weak, "head,rpn,neck"},
		{"int8-head", weak8, "head"},
	} {
		b.Run(c.name, func(b *testing.B) {
			res, peak := benchFinetune(b, "--model", c.model, "--data", data, "--layers",
				c.layers, "--epochs", epochs, "--threads", "2", "--nice", "0",
				"--state", filepath.Join(b.TempDir(), "state"))
			n := float64(res.Samples + res.HeldOut)
			b.ReportMetric(res.PerSampleMs, "train_ms/img/epoch")
			b.ReportMetric(res.Seconds*1000/n, "total_ms/img")
			b.ReportMetric(res.Seconds, "total_s")
			b.ReportMetric(peak, "peak_rss_MB")
			b.ReportMetric(res.Baseline.Accuracy, "acc_before")
			if res.Candidate != nil {
				b.ReportMetric(res.Candidate.Accuracy, "acc_after")
			}
		})
	}
}

// int8Options export an int8 bundle calibrated on the images of dir.
func int8Options(b *testing.B, dir string) export.Options {
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	be, err := backend.New("")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(be.Finalize)
	next := 0
	return export.Options{Precision: tflite.INT8, CalibrationImages: len(entries), Backend: be,
		CalibrationSource: dir, Calibration: func() (input.Source, bool, error) {
			if next == len(entries) {
				return input.Source{}, false, nil
			}
			f, err := os.Open(filepath.Join(dir, entries[next].Name()))
			next++
			if err != nil {
				return input.Source{}, false, err
			}
			defer f.Close()
			img, _, err := image.Decode(f)
			if err != nil {
				return input.Source{}, false, err
			}
			fr, _ := detect.FrameFromImage(img, nil)
			return input.Source{Pix: fr.Pix, Width: fr.Width, Height: fr.Height,
				Stride: fr.Stride, BGR: true}, true, nil
		}}
}

// benchLabelled is n proper-mask/train crops, linked into a folder.
func benchLabelled(b *testing.B, n int) string {
	src := fixture.Path(b, "proper-mask", "train")
	entries, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	step := max(len(entries)/n, 1)
	for i := 0; i < len(entries) && n > 0; i += step {
		name := entries[i].Name()
		if strings.HasSuffix(name, ".jpg") {
			os.Symlink(filepath.Join(src, name), filepath.Join(dir, name))
			n--
		}
	}
	return dir
}

// BenchmarkDetectWhileFinetuning measures live detection (the int8 default
// bundle on demo.mp4, every frame detected, 2 threads) alone and while a
// fine-tune of the box head trains in another process, at nice 19 (the
// default: also the idle scheduling class) with 1 thread (the default from
// the page on 2 cores) and 2, nice 10 and nice 0 with 2 threads: detection
// p50 and p99 in ms, fps, and how much slower p50 is than alone.
func BenchmarkDetectWhileFinetuning(b *testing.B) {
	demo := fixture.Path(b, "video", "demo.mp4")
	frames := strconv.Itoa(benchEnv("MASKWATCH_BENCH_FRAMES", 60))
	dir := b.TempDir()
	weak := filepath.Join(dir, "weak.mwb")
	weakenedBundle(b, weak)
	data := benchLabelled(b, benchEnv("MASKWATCH_BENCH_FT_SAMPLES", 100))
	live := func() edge.RunStats {
		return benchRun(b, "--source", demo, "--pace", "all", "--exit-at-end",
			"--max-frames", frames, "--model", "default", "--threads", "2")
	}
	// Alone is measured before and after, and the faster kept: other work
	// on the machine would otherwise pass for the fine-tune's.
	alone := live()
	type result struct {
		tag    string
		during edge.RunStats
	}
	var results []result
	for _, c := range []struct{ nice, threads int }{{19, 1}, {19, 2}, {10, 2}, {0, 2}} {
		state := filepath.Join(b.TempDir(), "state")
		progress := filepath.Join(state, "progress.json")
		cmd := exec.Command(os.Args[0], "finetune", "--no-deploy", "--log-level", "warn",
			"--model", weak, "--data", data, "--epochs", "200",
			"--threads", strconv.Itoa(c.threads), "--nice", strconv.Itoa(c.nice),
			"--state", state, "--progress-json", progress)
		cmd.Env = append(os.Environ(), "MASKWATCH_TEST_MAIN=1")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitTraining(b, progress)
		during := live()
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		results = append(results, result{"nice" + strconv.Itoa(c.nice) + "_t" +
			strconv.Itoa(c.threads), during})
	}
	if again := live(); again.Stages[edge.StageDetect].P50 <
		alone.Stages[edge.StageDetect].P50 {
		alone = again
	}
	base := alone.Stages[edge.StageDetect]
	b.ReportMetric(base.P50, "alone_p50_ms")
	b.ReportMetric(base.P99, "alone_p99_ms")
	b.ReportMetric(alone.FPS, "alone_fps")
	for _, r := range results {
		q := r.during.Stages[edge.StageDetect]
		b.ReportMetric(q.P50, r.tag+"_p50_ms")
		b.ReportMetric(q.P99, r.tag+"_p99_ms")
		b.ReportMetric(q.P50/base.P50, r.tag+"_p50_x")
		b.ReportMetric(r.during.FPS, r.tag+"_fps")
	}
}

// waitTraining waits until the fine-tune writing progress is in its
// training phase.
func waitTraining(b *testing.B, progress string) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		raw, err := os.ReadFile(progress)
		if err == nil && strings.Contains(string(raw), `"phase":"training"`) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Fatal("the fine-tune never reached its training phase")
}
