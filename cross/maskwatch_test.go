package cross

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// runStats holds the fields of `maskwatch run --stats-json` that tell what
// was detected.
type runStats struct {
	Frames     int               `json:"frames"`
	Detections map[string]int    `json:"detections"`
	Entered    map[string]int    `json:"faces_entered"`
	Events     int               `json:"events"`
	Errors     int               `json:"detection_errors"`
	Version    string            `json:"version"`
	Stages     map[string]stages `json:"stages_ms"`
}

type stages struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// watch runs maskwatch (cmd, already holding the binary and the source) on
// every frame, with no window and no web page, and returns its statistics.
func watch(t testing.TB, cmd *exec.Cmd, args ...string) runStats {
	t.Helper()
	stats := filepath.Join(t.TempDir(), "stats.json")
	cmd.Args = append(cmd.Args, "--display", "none", "--listen", "off", "--pace", "all",
		"--exit-at-end", "--stats-json", stats)
	cmd.Args = append(cmd.Args, args...)
	output(t, cmd)
	raw, err := os.ReadFile(stats)
	if err != nil {
		t.Fatal(err)
	}
	var st runStats
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("%s: %v", stats, err)
	}
	if st.Version != testVersion {
		t.Errorf("stats name version %q, want the stamped %q", st.Version, testVersion)
	}
	if st.Errors != 0 {
		t.Errorf("%d detection errors", st.Errors)
	}
	return st
}

// mjpegFrames starts ffmpeg writing the first n frames of demo.mp4 as an
// MJPEG stream and connects it to cmd's standard input.
func mjpegFrames(t testing.TB, cmd *exec.Cmd, n int) {
	t.Helper()
	ff := exec.Command("ffmpeg", "-loglevel", "error", "-i",
		fixture.Path(t, "video", "demo.mp4"), "-frames:v", strconv.Itoa(n),
		"-q:v", "3", "-f", "mjpeg", "pipe:1")
	pipe, err := ff.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ff.Start(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	// ffmpeg ends by itself once maskwatch has read everything; a maskwatch
	// that failed early would leave it blocked on the pipe.
	t.Cleanup(func() {
		_ = ff.Process.Kill()
		_ = ff.Wait()
	})
	cmd.Stdin = pipe
}

// sameDetections fails the test when got and want detected differently.
func sameDetections(t *testing.T, name string, got, want runStats) {
	t.Helper()
	if want.Frames == 0 || len(want.Detections) == 0 {
		t.Fatalf("the amd64 reference saw %d frames and detected %v: the comparison "+
			"would prove little", want.Frames, want.Detections)
	}
	if got.Frames != want.Frames || !reflect.DeepEqual(got.Detections, want.Detections) ||
		!reflect.DeepEqual(got.Entered, want.Entered) || got.Events != want.Events {
		t.Errorf("%s: %d frames, detections %v, faces entered %v, %d events;\n"+
			"amd64: %d frames, detections %v, faces entered %v, %d events", name,
			got.Frames, got.Detections, got.Entered, got.Events,
			want.Frames, want.Detections, want.Entered, want.Events)
	}
}

// The static build reads demo.mp4's frames as MJPEG on stdin (as from
// rpicam-vid) and detects with the GoMLX engine: arm64 under qemu detects
// what amd64 does.
func TestMaskwatchStaticStdinSameOnArm64(t *testing.T) {
	amd64 := build(t, "static", "amd64", "./cmd/maskwatch")
	arm := build(t, "static", "arm64", "./cmd/maskwatch")
	const frames = 3
	args := []string{"run", "--source", "-", "--engine", "gomlx", "--model", "default"}

	ref := exec.Command(amd64, args...)
	mjpegFrames(t, ref, frames)
	want := watch(t, ref)
	cmd := arm64(t, arm, args...)
	mjpegFrames(t, cmd, frames)
	got := watch(t, cmd)
	if want.Frames != frames {
		t.Errorf("amd64 read %d frames from stdin, want %d", want.Frames, frames)
	}
	sameDetections(t, "static arm64", got, want)
}

// The full build, under qemu with the sysroot's libraries, detects what the
// amd64 build detects on the same frames: demo.mp4's frames as MJPEG on
// stdin, with a float32 bundle, give the same detections exactly.
//
// On demo.mp4 itself, read through OpenCV and FFmpeg, and with the int8
// default model, the two builds are compared within a margin: FFmpeg's
// conversion of the decoded frames to BGR rounds differently on ARM and
// x86, and so do TFLite's int8 kernels, so a face near the score threshold
// may count on one and not on the other.
func TestMaskwatchFullSameOnArm64(t *testing.T) {
	amd64 := build(t, "full", "amd64", "./cmd/maskwatch")
	arm := build(t, "full", "arm64", "./cmd/maskwatch")
	masktrain := build(t, "full", "amd64", "./cmd/masktrain")
	fp32 := filepath.Join(t.TempDir(), "fp32.mwb")
	output(t, exec.Command(masktrain, "export", "--model", "default", "--precision", "fp32",
		"--out", fp32))

	const frames = 6
	args := []string{"run", "--source", "-", "--model", fp32, "--engine", "tflite"}
	ref := exec.Command(amd64, args...)
	mjpegFrames(t, ref, frames)
	want := watch(t, ref)
	cmd := arm64(t, arm, args...)
	mjpegFrames(t, cmd, frames)
	got := watch(t, cmd)
	sameDetections(t, "full arm64, fp32, stdin", got, want)

	args = []string{"run", "--source", fixture.Path(t, "video", "demo.mp4"),
		"--model", "default", "--engine", "tflite", "--max-frames", "8"}
	want = watch(t, exec.Command(amd64, args...))
	got = watch(t, arm64(t, arm, args...))
	if got.Frames != want.Frames || want.Frames != 8 {
		t.Errorf("demo.mp4: %d frames on arm64, %d on amd64, want 8", got.Frames, want.Frames)
	}
	total := func(m map[string]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	g, w := total(got.Detections), total(want.Detections)
	if w == 0 || g < w*3/4 || g > w*5/4 {
		t.Errorf("demo.mp4, default model: %d detections on arm64 (%v), %d on amd64 (%v): "+
			"more than a quarter apart", g, got.Detections, w, want.Detections)
	}
}

// BenchmarkMaskwatchDetect times detection per frame of demo.mp4 in the
// two amd64 builds of maskwatch on this machine: TFLite in the full build,
// GoMLX in the static build (frames as MJPEG on stdin), both with the
// default model; the price of a binary that needs no shared library.
func BenchmarkMaskwatchDetect(b *testing.B) {
	full := build(b, "full", "amd64", "./cmd/maskwatch")
	static := build(b, "static", "amd64", "./cmd/maskwatch")
	const frames = 30
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tfl := watch(b, exec.Command(full, "run", "--source",
			fixture.Path(b, "video", "demo.mp4"), "--engine", "tflite",
			"--max-frames", fmt.Sprint(frames)))
		cmd := exec.Command(static, "run", "--source", "-", "--engine", "gomlx")
		mjpegFrames(b, cmd, frames)
		gomlx := watch(b, cmd)
		b.ReportMetric(tfl.Stages["detect"].P50, "ms/frame-tflite")
		b.ReportMetric(gomlx.Stages["detect"].P50, "ms/frame-static")
		b.ReportMetric(gomlx.Stages["detect"].P50/tfl.Stages["detect"].P50, "static/tflite")
	}
}
