package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge"
)

// syncBuffer collects output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// liveRun is a maskwatch run started in this process.
type liveRun struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan int
	stdout *syncBuffer
	stderr *syncBuffer
	url    string
	code   int
	ended  bool
}

// startLive runs maskwatch run with args in the background and, when it
// serves a page, waits for the address it prints.
func startLive(t *testing.T, args ...string) *liveRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &liveRun{t: t, cancel: cancel, done: make(chan int, 1), stdout: &syncBuffer{},
		stderr: &syncBuffer{}}
	go func() {
		l.done <- run(ctx, append([]string{"run"}, args...), l.stdout, l.stderr)
	}()
	t.Cleanup(func() { l.stop() })
	if !contains(args, "--listen") || contains(args, "off") {
		return l
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := l.stdout.String()
		if i := strings.Index(out, "page at "); i >= 0 {
			line := out[i+len("page at "):]
			l.url = strings.TrimRight(strings.TrimSpace(strings.SplitN(line, "\n", 2)[0]), "/")
			return l
		}
		select {
		case code := <-l.done:
			l.ended, l.code = true, code
			t.Fatalf("maskwatch ended with %d before serving:\n%s", code, l.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("maskwatch printed no page address:\n%s", l.stderr.String())
		}
	}
}

func contains(args []string, s string) bool {
	for _, a := range args {
		if a == s {
			return true
		}
	}
	return false
}

// wait waits for the run to end by itself and returns its exit status.
func (l *liveRun) wait() int {
	if !l.ended {
		select {
		case l.code = <-l.done:
		case <-time.After(10 * time.Minute):
			l.t.Fatalf("maskwatch did not end:\n%s", l.stderr.String())
		}
		l.ended = true
	}
	return l.code
}

// stop cancels the run (as SIGTERM does) and returns its exit status.
func (l *liveRun) stop() int {
	l.cancel()
	return l.wait()
}

// status fetches /api/status.
func (l *liveRun) status() edge.Status {
	l.t.Helper()
	var s edge.Status
	l.getJSON("/api/status", &s)
	return s
}

func (l *liveRun) getJSON(path string, v any) {
	l.t.Helper()
	resp, err := http.Get(l.url + path)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		l.t.Fatalf("%s: %v", path, err)
	}
}

func (l *liveRun) get(path string) string {
	l.t.Helper()
	resp, err := http.Get(l.url + path)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitStatus polls /api/status until cond holds; the pipeline has no other
// way to say that its state changed.
func (l *liveRun) waitStatus(what string, cond func(edge.Status) bool) edge.Status {
	l.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		s := l.status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("waited 3 minutes for %s; status %+v\n%s", what, s, l.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// post sends a POST with an optional bearer token and returns the status code.
func (l *liveRun) post(path, token string) (int, string) {
	l.t.Helper()
	req, err := http.NewRequest(http.MethodPost, l.url+path, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// broker is a mosquitto process the test started (make deps installs it).
type broker struct {
	cmd  *exec.Cmd
	url  string
	port int
	logs chan string
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n"+
		"persistence false\nuser %s\n", port, me.Username)), 0o644)
	cmd := exec.Command("/usr/sbin/mosquitto", "-v", "-c", conf)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto (make deps installs it): %v", err)
	}
	b := &broker{cmd: cmd, port: port, url: fmt.Sprintf("mqtt://127.0.0.1:%d", port),
		logs: make(chan string, 10000)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case b.logs <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (b *broker) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case line := <-b.logs:
			if strings.Contains(line, s) {
				return
			}
		case <-deadline:
			t.Fatalf("mosquitto never logged %q", s)
		}
	}
}

// subscribe starts mosquitto_sub for topic and returns a channel of the
// messages, once the broker has the subscription.
func (b *broker) subscribe(t *testing.T, topic string) <-chan string {
	t.Helper()
	cmd := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", fmt.Sprint(b.port),
		"-t", topic, "-q", "1", "-i", "e2e-sub")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	b.waitLog(t, "Received SUBSCRIBE from e2e-sub")
	msgs := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			msgs <- sc.Text()
		}
		close(msgs)
	}()
	return msgs
}
