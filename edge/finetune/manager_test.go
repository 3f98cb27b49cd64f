package finetune

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge/deploy"
)

// fakeChild is a Command that runs a shell script instead of maskwatch
// finetune, and records the arguments it was given.
func fakeChild(script string, args *[]string, mu *sync.Mutex) func(context.Context,
	[]string) *exec.Cmd {
	return func(ctx context.Context, a []string) *exec.Cmd {
		mu.Lock()
		*args = a
		mu.Unlock()
		return exec.CommandContext(ctx, "sh", "-c", script)
	}
}

func waitEnded(t *testing.T, m *Manager) ManagerStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if st := m.Status(); !st.Running {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the fine-tune did not end")
	return ManagerStatus{}
}

func TestManagerInstallsAnAcceptedBundle(t *testing.T) {
	collect := t.TempDir()
	state := StateDir(collect)
	os.MkdirAll(state, 0o755)
	candidate := filepath.Join(state, "candidate.mwb")
	os.WriteFile(candidate, []byte("new bundle"), 0o644)
	script := fmt.Sprintf(`echo '{"running": true,
  "progress": {"phase": "training", "epoch": 2}}' > %[1]s/progress.json
echo "epoch 2/8 ..." >&2
echo '{"result": {"accepted": true, "reason": "held-out accuracy 0.9, was 0.5",
  "baseline": {"accuracy": 0.5}, "candidate": {"accuracy": 0.9}}, "bundle": "%[2]s"}'`,
		state, candidate)
	var args []string
	var mu sync.Mutex
	var installed []byte
	m := NewManager(ManagerConfig{Model: "/var/lib/maskwatch/model.mwb", Collect: collect,
		Engine: "tflite", Threads: 2, Nice: 12, SignKey: "/etc/maskwatch/device.key",
		Command: fakeChild(script, &args, &mu), Log: testLog(t),
		Install: func(_ context.Context, data []byte) deploy.Outcome {
			installed = data
			return deploy.Outcome{OK: true, Code: 200, Version: "abc123", Source: "finetune"}
		}})
	if err := m.Start(context.Background(), StartOptions{Layers: "head,rpn", Epochs: 3,
		Data: []string{collect}}); err != nil {
		t.Fatal(err)
	}
	st := waitEnded(t, m)
	if st.Error != "" || st.Result == nil || !st.Result.Accepted || st.Deployed == nil ||
		!st.Deployed.OK || string(installed) != "new bundle" {
		t.Fatalf("status %+v, installed %q", st, installed)
	}
	if st.Progress == nil || st.Progress.Epoch != 2 {
		t.Errorf("progress %+v, want the child's last", st.Progress)
	}
	mu.Lock()
	line := strings.Join(args, " ")
	mu.Unlock()
	for _, want := range []string{"finetune", "--model /var/lib/maskwatch/model.mwb",
		"--collect " + collect, "--no-deploy", "--layers head,rpn", "--epochs 3",
		"--nice 12", "--engine tflite", "--sign /etc/maskwatch/device.key",
		"--data " + collect} {
		if !strings.Contains(line, want) {
			t.Errorf("child arguments %q lack %q", line, want)
		}
	}
}

func TestManagerRefusesAndStops(t *testing.T) {
	collect := t.TempDir()
	var args []string
	var mu sync.Mutex
	installs := 0
	m := NewManager(ManagerConfig{Model: "m.mwb", Collect: collect,
		Command: fakeChild("exec sleep 30", &args, &mu), Log: testLog(t),
		Install: func(context.Context, []byte) deploy.Outcome {
			installs++
			return deploy.Outcome{}
		}})
	if err := m.Start(context.Background(), StartOptions{Epochs: 500}); err == nil {
		t.Error("500 epochs taken")
	}
	missing := StartOptions{Data: []string{"/no/such/dir"}}
	if err := m.Start(context.Background(), missing); err == nil {
		t.Error("a missing data folder taken")
	}
	if err := m.Start(context.Background(), StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background(), StartOptions{}); err != ErrBusy {
		t.Errorf("a second fine-tune: %v, want ErrBusy", err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	st := m.Status()
	if st.Running || !strings.Contains(st.Error, "stopped") || installs != 0 {
		t.Errorf("after Stop: %+v, %d installs", st, installs)
	}

	// A child that fails reports its last line.
	m.cfg.Command = fakeChild("echo 'finetune: too few labelled images' >&2; exit 1", &args,
		&mu)
	if err := m.Start(context.Background(), StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := waitEnded(t, m); !strings.Contains(st.Error, "too few labelled images") {
		t.Errorf("failed child: %+v", st)
	}

	unavailable := NewManager(ManagerConfig{Unavailable: "needs --finetune-key"})
	if err := unavailable.Start(context.Background(), StartOptions{}); err == nil ||
		!strings.Contains(err.Error(), "--finetune-key") {
		t.Errorf("an unavailable manager: %v", err)
	}
}
