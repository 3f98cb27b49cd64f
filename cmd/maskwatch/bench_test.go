package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/models/export"
	"github.com/maskwatch/maskwatch/models/tflite"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// Benchmarks of the whole live pipeline, each run as its own maskwatch
// process (this test binary re-executed) so that its resident memory is its
// own. They run once whatever b.N is, and report figures with
// ReportMetric:
//
//	MASKWATCH_BENCH_FRAMES  frames of demo.mp4 (640x480) per run (default 60)
//	MASKWATCH_BENCH_THREADS inference threads (default 2, the goal's cores)
//	MASKWATCH_BENCH_LOOP    length of the memory-flatness loop (default 30s;
//	                        10m for the goal's check)

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchBundles writes the default bundle and fp32 and fp16 exports of its
// float weights into dir, by precision.
func benchBundles(b *testing.B, dir string) map[string]string {
	b.Helper()
	raw, err := defaultmodel.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	def, err := bundle.Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]string{}
	path := filepath.Join(dir, def.Meta.Precision+".mwb")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	out[def.Meta.Precision] = path
	if def.Weights == nil {
		b.Logf("the default bundle carries no float weights: only %s measured",
			def.Meta.Precision)
		return out
	}
	for _, p := range []tflite.Precision{tflite.FP32, tflite.FP16} {
		if _, ok := out[string(p)]; ok {
			continue
		}
		nb, err := export.FromWeights(context.Background(), def.Meta.Model, def.Weights,
			export.Options{Precision: p, MaxSide: def.Meta.Input.MaxSide,
				Exporter: "maskwatch bench"})
		if err != nil {
			b.Fatalf("export %s: %v", p, err)
		}
		nb.Meta.Classes = def.Meta.Classes
		path := filepath.Join(dir, string(p)+".mwb")
		if err := bundle.Write(path, nb); err != nil {
			b.Fatal(err)
		}
		out[string(p)] = path
	}
	return out
}

// benchRun runs maskwatch as a process with args and returns its stats.
func benchRun(b *testing.B, args ...string) edge.RunStats {
	b.Helper()
	stats := filepath.Join(b.TempDir(), "stats.json")
	cmd := exec.Command(os.Args[0], append([]string{"run", "--listen", "off",
		"--stats-json", stats, "--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), "MASKWATCH_TEST_MAIN=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("maskwatch %v: %v\n%s", args, err, out)
	}
	var st edge.RunStats
	raw, err := os.ReadFile(stats)
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkLive measures end-to-end frames per second, frame latency
// (capture to output) p50 and p99, and resident memory, per engine and
// precision, on demo.mp4 with every frame detected (--pace all).
func BenchmarkLive(b *testing.B) {
	demo := fixture.Path(b, "video", "demo.mp4")
	frames := benchEnv("MASKWATCH_BENCH_FRAMES", 60)
	threads := benchEnv("MASKWATCH_BENCH_THREADS", 2)
	models := benchBundles(b, b.TempDir())
	type config struct{ engine, precision string }
	var configs []config
	for _, p := range []string{"int8", "fp16", "fp32"} {
		if _, ok := models[p]; ok {
			configs = append(configs, config{"tflite", p})
		}
	}
	// The GoMLX engine runs the float weights; a third of the frames, as
	// pure Go is slower.
	configs = append(configs, config{"gomlx", "float"})
	for _, c := range configs {
		b.Run(c.engine+"-"+c.precision, func(b *testing.B) {
			n := frames
			model := models[c.precision]
			if c.engine == "gomlx" {
				n = max(10, frames/3)
				model = models["int8"]
				if model == "" {
					for _, m := range models {
						model = m
					}
				}
			}
			st := benchRun(b, "--source", demo, "--pace", "all", "--exit-at-end",
				"--max-frames", strconv.Itoa(n), "--model", model, "--engine", c.engine,
				"--threads", strconv.Itoa(threads))
			b.ReportMetric(st.FPS, "fps")
			b.ReportMetric(st.Latency.P50, "p50_ms")
			b.ReportMetric(st.Latency.P99, "p99_ms")
			b.ReportMetric(st.Stages[edge.StageDetect].P50, "detect_p50_ms")
			b.ReportMetric(st.PeakRSSMB, "peak_rss_MB")
			b.ReportMetric(st.AnonRSSMB, "anon_rss_MB")
		})
	}
}

// BenchmarkMemoryLoop runs maskwatch on demo.mp4 in a loop for
// MASKWATCH_BENCH_LOOP with the stream served to a viewer, and reports the
// resident memory after a warm-up third of the run, at the end, and its
// growth per minute, read from /proc while it runs.
func BenchmarkMemoryLoop(b *testing.B) {
	loop := 30 * time.Second
	if v, err := time.ParseDuration(os.Getenv("MASKWATCH_BENCH_LOOP")); err == nil && v > 0 {
		loop = v
	}
	demo := fixture.Path(b, "video", "demo.mp4")
	cmd := exec.Command(os.Args[0], "run", "--source", demo, "--pace", "live",
		"--listen", "127.0.0.1:0", "--log-level", "warn",
		"--threads", strconv.Itoa(benchEnv("MASKWATCH_BENCH_THREADS", 2)))
	cmd.Env = append(os.Environ(), "MASKWATCH_TEST_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.Contains(sc.Text(), "page at ") {
		b.Fatalf("maskwatch printed %q, not its page", sc.Text())
	}
	url := strings.TrimSpace(sc.Text()[strings.Index(sc.Text(), "http"):])
	viewer := exec.Command("curl", "-s", "-o", "/dev/null", url+"stream.mjpg")
	if err := viewer.Start(); err == nil {
		defer func() { viewer.Process.Kill(); viewer.Wait() }()
	}

	start := time.Now()
	var warm, last, peak int64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for now := range tick.C {
		rss := procRSS(cmd.Process.Pid)
		peak = max(peak, rss)
		if warm == 0 && now.Sub(start) >= loop/3 {
			warm = rss
		}
		last = rss
		if now.Sub(start) >= loop {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("maskwatch after SIGTERM: %v", err)
	}
	mb := func(v int64) float64 { return float64(v) / (1 << 20) }
	minutes := (loop - loop/3).Minutes()
	b.ReportMetric(loop.Seconds(), "loop_s")
	b.ReportMetric(mb(warm), "rss_warm_MB")
	b.ReportMetric(mb(last), "rss_end_MB")
	b.ReportMetric(mb(peak), "rss_peak_MB")
	b.ReportMetric((mb(last)-mb(warm))/minutes, "growth_MB/min")
}

// procRSS reads another process's resident set size.
func procRSS(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
