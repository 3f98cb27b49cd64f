package finetune

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/maskwatch/maskwatch/edge/deploy"
)

// ManagerConfig wires fine-tunes started from the admin page.
type ManagerConfig struct {
	// Command makes the child process of a fine-tune: maskwatch finetune
	// with args (the binary itself, os.Executable).
	Command func(ctx context.Context, args []string) *exec.Cmd
	// Model is the running model file; Collect the collection folder.
	Model, Collect string
	// Engine is the device's (the new bundle is measured as it will run);
	// Threads the child's training threads (0: every core); Nice its
	// priority (19, the lowest, when 0).
	Engine  string
	Threads int
	Nice    int
	// SignKey signs the new bundle (needed when the device trusts only
	// signed bundles).
	SignKey string
	// Install deploys an accepted bundle on this device, with every check
	// a deployment gets (deploy.Deployer.Deploy).
	Install func(ctx context.Context, data []byte) deploy.Outcome
	// Unavailable, when set, is why no fine-tune can start here (Start
	// returns it).
	Unavailable string
	Log         *slog.Logger
}

// StartOptions are what the operator chooses for one fine-tune.
type StartOptions struct {
	Layers string `json:"layers"`
	Epochs int    `json:"epochs"`
	// Data are labelled folders on the device to train on besides the
	// collection's labelled frames.
	Data []string `json:"data,omitempty"`
}

// ManagerStatus is what the page and /api/status show of fine-tuning.
type ManagerStatus struct {
	Running  bool          `json:"running"`
	Started  time.Time     `json:"started,omitzero"`
	Ended    time.Time     `json:"ended,omitzero"`
	Options  *StartOptions `json:"options,omitempty"`
	Progress *Progress     `json:"progress,omitempty"`
	Result   *Result       `json:"result,omitempty"`
	// Deployed is the outcome of installing the new bundle.
	Deployed *deploy.Outcome `json:"deployed,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// Manager runs one fine-tune at a time for the live device, as a child
// process at a low priority: live detection keeps the CPU, a fine-tune
// that runs out of memory cannot take the pipeline with it, and the new
// bundle reaches the pipeline only through the deployer's checks.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger

	mu       sync.Mutex
	status   ManagerStatus
	cancel   context.CancelFunc
	done     chan struct{}
	stopping bool
}

// NewManager makes a Manager.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Nice == 0 {
		cfg.Nice = 19
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Manager{cfg: cfg, log: cfg.Log}
}

// ErrBusy is returned by Start while a fine-tune runs.
var ErrBusy = errors.New("a fine-tune is already running")

func (m *Manager) state() string { return StateDir(m.cfg.Collect) }

// Start begins a fine-tune in the background; ctx ends it (the live run's).
func (m *Manager) Start(ctx context.Context, o StartOptions) error {
	if o.Layers == "" {
		o.Layers = "head"
	}
	if o.Epochs <= 0 {
		o.Epochs = 8
	}
	if o.Epochs > 200 {
		return fmt.Errorf("epochs %d: give 1 to 200", o.Epochs)
	}
	if m.cfg.Unavailable != "" {
		return errors.New(m.cfg.Unavailable)
	}
	for _, d := range o.Data {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return fmt.Errorf("data %s: not a folder on this device", d)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.status.Running {
		return ErrBusy
	}
	state := m.state()
	args := []string{"finetune", "--model", m.cfg.Model, "--collect", m.cfg.Collect,
		"--state", state, "--out", filepath.Join(state, "candidate.mwb"), "--no-deploy",
		"--progress-json", filepath.Join(state, "progress.json"), "--json",
		"--layers", o.Layers, "--epochs", strconv.Itoa(o.Epochs),
		"--nice", strconv.Itoa(m.cfg.Nice), "--threads", strconv.Itoa(m.cfg.Threads)}
	if m.cfg.Engine != "" {
		args = append(args, "--engine", m.cfg.Engine)
	}
	for _, d := range o.Data {
		args = append(args, "--data", d)
	}
	if m.cfg.SignKey != "" {
		args = append(args, "--sign", m.cfg.SignKey)
	}
	os.Remove(filepath.Join(state, "progress.json"))
	cctx, cancel := context.WithCancel(ctx)
	cmd := m.cfg.Command(cctx, args)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		return err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return fmt.Errorf("finetune: starting %s: %w", cmd.Path, err)
	}
	m.status = ManagerStatus{Running: true, Started: time.Now(), Options: &o}
	m.stopping = false
	m.cancel, m.done = cancel, make(chan struct{})
	m.log.Info("finetune: started", "layers", o.Layers, "epochs", o.Epochs, "pid",
		cmd.Process.Pid, "nice", m.cfg.Nice)
	go m.wait(ctx, cmd, &stdout, stderr, cancel)
	return nil
}

// wait follows the child to its end and installs what it made.
func (m *Manager) wait(ctx context.Context, cmd *exec.Cmd, stdout *bytes.Buffer,
	stderr io.Reader, cancel context.CancelFunc) {
	defer cancel()
	var lastLine string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			lastLine = line
			m.log.Debug("finetune: child", "line", line)
		}
	}
	err := cmd.Wait()
	var out struct {
		Result *Result `json:"result"`
		Bundle string  `json:"bundle"`
	}
	if err == nil {
		err = json.Unmarshal(stdout.Bytes(), &out)
	}
	st := ManagerStatus{Ended: time.Now()}
	m.mu.Lock()
	stopped := m.stopping
	m.mu.Unlock()
	switch {
	case err != nil && (stopped || ctx.Err() != nil):
		st.Error = "stopped; start again to resume from the last whole epoch"
	case err != nil:
		st.Error = fmt.Sprintf("%v: %s", err, lastLine)
	case out.Result == nil:
		st.Error = "the fine-tune reported no result"
	default:
		st.Result = out.Result
		if out.Result.Accepted && out.Bundle != "" {
			data, rerr := os.ReadFile(out.Bundle)
			if rerr != nil {
				st.Error = rerr.Error()
				break
			}
			o := m.cfg.Install(ctx, data)
			st.Deployed = &o
			if !o.OK {
				st.Error = fmt.Sprintf("the new bundle was refused at %s: %s", o.Stage, o.Error)
			}
		}
	}
	if p := m.readProgress(); p != nil {
		st.Progress = p
	}
	m.mu.Lock()
	st.Started, st.Options = m.status.Started, m.status.Options
	m.status = st
	done := m.done
	m.mu.Unlock()
	close(done)
	m.log.Info("finetune: ended", "err", st.Error, "accepted",
		st.Result != nil && st.Result.Accepted, "deployed", st.Deployed != nil && st.Deployed.OK)
}

// Stop interrupts the running fine-tune (it keeps its last whole epoch)
// and waits for it to end.
func (m *Manager) Stop() error {
	m.mu.Lock()
	if !m.status.Running {
		m.mu.Unlock()
		return errors.New("no fine-tune is running")
	}
	cancel, done := m.cancel, m.done
	m.stopping = true
	m.mu.Unlock()
	cancel()
	<-done
	return nil
}

// Wait waits for the running fine-tune, if any, to end.
func (m *Manager) Wait() {
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	if done != nil {
		<-done
	}
}

func (m *Manager) readProgress() *Progress {
	raw, err := os.ReadFile(filepath.Join(m.state(), "progress.json"))
	if err != nil {
		return nil
	}
	var v struct {
		Progress *Progress `json:"progress"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v.Progress
}

// Status says what fine-tuning is doing or did last.
func (m *Manager) Status() ManagerStatus {
	m.mu.Lock()
	st := m.status
	m.mu.Unlock()
	if st.Running {
		st.Progress = m.readProgress()
	}
	return st
}
