package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge/events"
)

// broker is a mosquitto process the test started (Debian's mosquitto,
// installed by scripts/deps.sh).
type broker struct {
	cmd  *exec.Cmd
	port int
	logs chan string
}

// freePort asks the kernel for a port nobody uses.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBroker runs mosquitto on port and returns once it accepts connections.
func startBroker(t *testing.T, port int, extra string) *broker {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	// mosquitto started as root drops to the user named here; the test's own
	// user can read the test's temporary files.
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nuser %s\n%s",
		port, me.Username, extra)
	if !strings.Contains(extra, "password_file") {
		body += "allow_anonymous true\n"
	}
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/sbin/mosquitto", "-v", "-c", conf)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto (make deps installs it): %v", err)
	}
	b := &broker{cmd: cmd, port: port, logs: make(chan string, 1000)}
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case b.logs <- sc.Text():
			default:
			}
		}
		close(exited)
	}()
	t.Cleanup(b.stop)
	// Ready when a connection is accepted; polled, as a port has nothing to
	// wait on.
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("mosquitto exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("mosquitto did not start listening")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return b
}

func (b *broker) stop() {
	if b.cmd.Process != nil && b.cmd.ProcessState == nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	}
}

// waitLog waits for a broker log line holding s.
func (b *broker) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
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

// subscribe runs mosquitto_sub for n messages on topic and returns once the
// broker has registered the subscription.
func subscribe(t *testing.T, b *broker, topic string, n int) <-chan []string {
	t.Helper()
	cmd := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", fmt.Sprint(b.port),
		"-t", topic, "-q", "1", "-C", fmt.Sprint(n), "-i", "test-sub", "-W", "60")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.waitLog(t, "Received SUBSCRIBE from test-sub")
	got := make(chan []string, 1)
	go func() {
		cmd.Wait()
		got <- strings.Split(strings.TrimSpace(out.String()), "\n")
	}()
	return got
}

func TestPublisherDeliversAndRetries(t *testing.T) {
	port := freePort(t)
	b := startBroker(t, port, "")
	bus := events.NewBus()
	var logs bytes.Buffer
	pub, err := NewPublisher(Config{URL: fmt.Sprintf("mqtt://127.0.0.1:%d", port),
		ClientID: "maskwatch-test", QoS: 1, KeepAlive: 2 * time.Second},
		"maskwatch/door/events", bus, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { pub.Run(ctx); close(done) }()
	b.waitLog(t, "New client connected from 127.0.0.1")

	got := subscribe(t, b, "maskwatch/#", 2)
	bus.Publish(events.Event{Type: "enter", Track: 1, Label: "not_proper", Score: 0.9})
	bus.Publish(events.Event{Type: "leave", Track: 1, Label: "not_proper", Score: 0.9})
	lines := <-got
	if len(lines) != 2 {
		t.Fatalf("subscriber got %q", lines)
	}
	var e events.Event
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Type != "enter" ||
		e.Label != "not_proper" {
		t.Errorf("first message %q (%v)", lines[0], err)
	}

	// The broker goes away; the publisher notices when it next sends, and
	// events published meanwhile wait in its queue.
	b.stop()
	for i := 0; i < 3; i++ {
		bus.Publish(events.Event{Type: "enter", Track: uint64(10 + i), Label: "proper"})
	}
	waitFor(t, func() bool { return !pub.Status().Up })
	b = startBroker(t, port, "")
	b.waitLog(t, "New client connected from 127.0.0.1")
	got = subscribe(t, b, "maskwatch/#", 3)
	// The publisher may have sent some before the subscription: send more
	// until three arrive.
	for i := 0; ; i++ {
		bus.Publish(events.Event{Type: "enter", Track: uint64(20 + i), Label: "proper"})
		select {
		case lines = <-got:
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	if len(lines) != 3 {
		t.Fatalf("after the broker came back the subscriber got %q", lines)
	}
	// The subscriber may have a message before the publisher has its PUBACK.
	waitFor(t, func() bool { return pub.Status().Delivered >= 5 })
	cancel()
	<-done
	st := pub.Status()
	if st.Delivered < 5 || st.Failed == 0 {
		t.Errorf("status %+v", st)
	}
	if n := strings.Count(logs.String(), "mqtt broker unreachable"); n != 1 {
		t.Errorf("unreachable logged %d times, want once:\n%s", n, logs.String())
	}
}

// waitFor polls cond until it holds, for state that has no channel to wait on.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConnectWithPassword(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	out, err := exec.Command("mosquitto_passwd", "-c", "-b", pw, "door", "s3cret").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	os.Chmod(pw, 0o600)
	startBroker(t, port, "allow_anonymous false\npassword_file "+pw+"\n")
	ctx := context.Background()
	c, err := Dial(ctx, Config{URL: fmt.Sprintf("mqtt://door:s3cret@127.0.0.1:%d", port),
		ClientID: "pw-ok"})
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := c.Publish("t", []byte("x"), 1); err != nil {
		t.Errorf("publish: %v", err)
	}
	if err := c.Ping(); err != nil {
		t.Errorf("ping: %v", err)
	}
	c.Close()
	_, err = Dial(ctx, Config{URL: fmt.Sprintf("mqtt://door:wrong@127.0.0.1:%d", port),
		ClientID: "pw-bad"})
	if err == nil || !strings.Contains(err.Error(), "not authorised") &&
		!strings.Contains(err.Error(), "bad user name or password") {
		t.Errorf("wrong password: %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	bus := events.NewBus()
	for _, u := range []string{"http://broker", "mqtt://", "::"} {
		if _, err := NewPublisher(Config{URL: u}, "t", bus, nil); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if _, err := NewPublisher(Config{URL: "mqtt://b", QoS: 2}, "t", bus, nil); err == nil {
		t.Error("QoS 2 accepted")
	}
}

func TestConnectPacket(t *testing.T) {
	ep, err := parseURL("mqtt://u:p@h")
	if err != nil || ep.addr != "h:1883" {
		t.Fatalf("%+v %v", ep, err)
	}
	got := connectPacket("id", ep, 30*time.Second)
	want := []byte{0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 30,
		0, 2, 'i', 'd', 0, 1, 'u', 0, 1, 'p'}
	if !bytes.Equal(got, want) {
		t.Errorf("CONNECT % x\nwant    % x", got, want)
	}
	long := appendPacket(nil, 0x30, make([]byte, 321))
	if !bytes.Equal(long[:3], []byte{0x30, 0xC1, 0x02}) {
		t.Errorf("remaining length 321 encoded as % x", long[1:3])
	}
	n, err := readLength(bufio.NewReader(bytes.NewReader(long[1:3])))
	if err != nil || n != 321 {
		t.Errorf("read back %d %v", n, err)
	}
}
