package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/camera"
)

func TestVersionAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &out, &errb); code != exitOK ||
		out.String() != "maskwatch dev\n" {
		t.Errorf("--version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"help", "run"}, &out, &errb); code != exitOK ||
		!strings.Contains(out.String(), "--mqtt-url") {
		t.Errorf("help run: %d", code)
	}
	if code := run(context.Background(), []string{"fly"}, &out, &errb); code != exitUsage {
		t.Errorf("unknown command: %d", code)
	}
	if code := run(context.Background(), nil, &out, &errb); code != exitUsage {
		t.Errorf("no command: %d", code)
	}
}

// TestSettingsPrecedence: command line over environment over config file
// over defaults.
func TestSettingsPrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "maskwatch.conf")
	os.WriteFile(cfg, []byte(`# a device
source = /dev/video2
mqtt-url: "mqtt://broker:1883"
max-frames = 7
--blur-faces = true
kiosk-warn-text = "Masque, s'il vous plaît"
`), 0o644)
	env := []string{"MASKWATCH_MQTT_URL=mqtt://env-broker", "MASKWATCH_MAX_FRAMES=9",
		"MASKWATCH_CONFIG=" + cfg, "MASKWATCH_DATA=/elsewhere", "PATH=/bin"}
	_, o, err := parseRun([]string{"--max-frames", "11"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if o.source != "/dev/video2" || o.mqttURL != "mqtt://env-broker" || o.maxFrames != 11 ||
		!o.blur || o.kioskBad != "Masque, s'il vous plaît" || o.model != "default" {
		t.Errorf("options %+v", o)
	}
}

func TestSettingsErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(cfg, []byte("sauce = 0\n"), 0o644)
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("  \n"), 0o600)
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--config", cfg}, nil, `unknown setting "sauce"`},
		{[]string{"--config", "/no/such.conf"}, nil, "no such file"},
		{nil, []string{"MASKWATCH_MAX_FRAMES=lots"}, "MASKWATCH_MAX_FRAMES"},
		{[]string{"--engine", "onnx"}, nil, "--engine"},
		{[]string{"--pace", "fast"}, nil, "--pace"},
		{[]string{"--display", "hologram"}, nil, "--display"},
		{[]string{"--headless", "--kiosk"}, nil, "choose one"},
		{[]string{"--listen", "8080"}, nil, "HOST:PORT"},
		{[]string{"--admin-token", "short"}, nil, "shorter than 12"},
		{[]string{"--admin-token-file", token}, nil, "is empty"},
		{[]string{"--snapshot-quota", "lots"}, nil, "--snapshot-quota"},
		{[]string{"--mqtt-qos", "2"}, nil, "--mqtt-qos"},
		{[]string{"--min-score", "3"}, nil, "--min-score"},
		{[]string{"--face-overlap", "1"}, nil, "--face-overlap"},
		{[]string{"--jpeg-quality", "0"}, nil, "--jpeg-quality"},
		{[]string{"--record", "out.gif", "--source", "x.mp4"}, nil, ".gif"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
	} {
		var out, errb bytes.Buffer
		code := runLive(context.Background(), tc.args, &out, &errb, tc.env)
		if code == exitOK || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v %v: exit %d, stderr %q, want it to say %q", tc.args, tc.env, code,
				errb.String(), tc.want)
		}
	}
}

func TestBadModelAndSource(t *testing.T) {
	var out, errb bytes.Buffer
	code := runLive(context.Background(), []string{"--model", "/no/such/model.mwb",
		"--listen", "off"}, &out, &errb, nil)
	if code != exitFailed || !strings.Contains(errb.String(), "model.mwb") {
		t.Errorf("missing model: exit %d %q", code, errb.String())
	}
	errb.Reset()
	code = runLive(context.Background(), []string{"--source", "/no/such/clip.mp4",
		"--listen", "off"}, &out, &errb, nil)
	if code != exitFailed || !strings.Contains(errb.String(), "clip.mp4") {
		t.Errorf("missing source: exit %d %q", code, errb.String())
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100MB": 100e6, "2GiB": 2 << 30, "512k": 512 << 10,
		"1048576": 1 << 20, "1.5 GB": 1.5e9} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1MB", "0", "many"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestPaceAuto(t *testing.T) {
	dir := t.TempDir()
	for src, want := range map[string]camera.Pace{"clip.mp4": camera.PaceNative,
		dir: camera.PaceNative, "/dev/video0": camera.PaceLive, "-": camera.PaceLive,
		"http://cam/video.mjpg": camera.PaceLive} {
		_, o, err := parseRun([]string{"--source", src}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := o.check()
		if err != nil {
			t.Fatal(err)
		}
		if s.pace != want {
			t.Errorf("--source %s: pace %v, want %v", src, s.pace, want)
		}
	}
}

// TestStdinSourceEndsRun: an MJPEG stream on stdin is read to its end and
// the run stops there, as with rpicam-vid piped in.
func TestStdinSourceEndsRun(t *testing.T) {
	frames := demoJPEGs(t, 8)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	go func() {
		for _, f := range frames {
			w.Write(f)
		}
		w.Close()
	}()
	stats := filepath.Join(t.TempDir(), "stats.json")
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runLive(context.Background(), []string{"--source", "-", "--pace", "all",
			"--listen", "off", "--stats-json", stats}, &out, &errb, nil)
	}()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("the run did not end with its stdin")
	}
	b, _ := os.ReadFile(stats)
	if !strings.Contains(string(b), `"frames": 8,`) {
		t.Errorf("stats %s", b)
	}
}
