package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/train/fit"
	"github.com/maskwatch/maskwatch/train/fixture"
	"github.com/maskwatch/maskwatch/train/history"
)

// TestMain lets a test start this test binary as masktrain itself, to
// kill it as a user's Ctrl-C or a crash would.
func TestMain(m *testing.M) {
	if os.Getenv("MASKTRAIN_TEST_AS_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// masktrain starts this binary as masktrain with args.
func masktrain(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MASKTRAIN_TEST_AS_MAIN=1")
	return cmd
}

func TestTrainFlagErrors(t *testing.T) {
	data := fixture.Path(t, "seed-samples")
	out := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no backbone", []string{"--data", data, "--out", out}, "no --backbone"},
		{"bad backbone", []string{"--backbone", "vgg", "--data", data, "--out", out},
			`backbone "vgg"`},
		{"bad preset", []string{"--preset", "study-vgg", "--data", data, "--out", out},
			`--preset "study-vgg"`},
		{"no data", []string{"--backbone", "mobilenetv3", "--out", out}, "no --data"},
		{"missing data", []string{"--backbone", "mobilenetv3", "--data", "/no/such",
			"--out", out}, "--data /no/such"},
		{"no out", []string{"--backbone", "mobilenetv3", "--data", data}, "no --out"},
		{"bad size", []string{"--backbone", "mobilenetv3", "--data", data, "--out", out,
			"--size", "100"}, "--size 100"},
		{"bad lr", []string{"--backbone", "mobilenetv3", "--data", data, "--out", out,
			"--lr", "-1"}, "--lr -1"},
		{"bad schedule", []string{"--backbone", "mobilenetv3", "--data", data, "--out", out,
			"--schedule", "steps"}, `schedule "steps"`},
		{"bad recalibrate", []string{"--backbone", "mobilenetv3", "--data", data, "--out",
			out, "--recalibrate", "-2"}, "--recalibrate -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(context.Background(), append([]string{"train"},
				tc.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}

// A run killed after its first epoch loses nothing saved: --resume goes on
// from epoch 2, every epoch appears once in the history, a second start
// without --resume is refused, and eval reads the best checkpoint.
func TestTrainKilledThenResumed(t *testing.T) {
	data := fixture.Path(t, "seed-samples")
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"train", "--backbone", "mobilenetv3", "--data", data, "--val", data,
		"--out", out, "--size", "64", "--batch", "2", "--epochs", "3", "--train-eval", "2",
		"--recalibrate", "2", "--workers", "1"}

	cmd := masktrain(t, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("masktrain train printed no epoch line: %v", cmd.Wait())
	}
	var first history.Epoch
	if err := json.Unmarshal(lines.Bytes(), &first); err != nil || first.Epoch != 1 {
		t.Fatalf("first line %q: %v, want epoch 1", lines.Text(), err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	_, meta, err := frcnn.LoadMeta(filepath.Join(out, fit.LastCheckpoint))
	if err != nil {
		t.Fatalf("after the kill: %v", err)
	}
	if meta.Epoch < 1 || meta.Epoch > 2 {
		t.Fatalf("last checkpoint at epoch %d after a kill in epoch 2, want 1 or 2", meta.Epoch)
	}

	code, _, stderr := runCLI(context.Background(), args...)
	if code == exitOK || !strings.Contains(stderr, "--resume") {
		t.Fatalf("a second start without --resume: exit %d, %s", code, stderr)
	}
	resumed := masktrain(t, append(args, "--resume")...)
	output, err := resumed.CombinedOutput()
	if err != nil {
		t.Fatalf("--resume: %v\n%s", err, output)
	}
	if !strings.Contains(string(output), "resuming") {
		t.Errorf("--resume did not say it resumed:\n%s", output)
	}
	epochs, err := history.Read(filepath.Join(out, fit.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(epochs) != 3 {
		t.Fatalf("history holds %d epochs, want 3", len(epochs))
	}
	for i, e := range epochs {
		if e.Epoch != i+1 {
			t.Errorf("history line %d is epoch %d", i+1, e.Epoch)
		}
	}
	for _, name := range []string{"losses.png", "accuracy.png", fit.BestCheckpoint} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	if _, meta, err = frcnn.LoadMeta(filepath.Join(out, fit.LastCheckpoint)); err != nil ||
		meta.Epoch != 3 {
		t.Errorf("last checkpoint: epoch %d, %v; want 3", meta.Epoch, err)
	}

	evalOut := filepath.Join(out, "eval")
	code, jsonOut, stderr := runCLI(context.Background(), "eval", "--model",
		filepath.Join(out, fit.BestCheckpoint), "--data", data, "--json", "--out", evalOut)
	if code != exitOK {
		t.Fatalf("eval: exit %d: %s", code, stderr)
	}
	var report struct {
		Images         int
		Accuracy, IoU  float64
		MAP50          float64 `json:"map50"`
		HasMAP50, Have bool
	}
	if err := json.Unmarshal([]byte(jsonOut), &report); err != nil {
		t.Fatalf("eval --json printed %q: %v", jsonOut, err)
	}
	if report.Images != 4 || !strings.Contains(jsonOut, `"map50":`) ||
		!strings.Contains(jsonOut, `"iou":`) || !strings.Contains(jsonOut, `"accuracy":`) {
		t.Errorf("eval --json: %s", jsonOut)
	}
	csv, err := os.ReadFile(filepath.Join(evalOut, "prediction.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Split(strings.TrimSpace(string(csv)), "\n"); len(rows) != 5 ||
		rows[0] != "filename,x,y,w,h,proper_mask" {
		t.Errorf("prediction.csv:\n%s", csv)
	}
}

func TestMemTotal(t *testing.T) {
	total, err := memTotal()
	if err != nil {
		t.Fatal(err)
	}
	// Every machine this runs on has between 256 MiB and 64 TiB.
	if total < 256<<20 || total > 64<<40 {
		t.Errorf("MemTotal read as %d bytes", total)
	}
}
