package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// runCLI runs one command line in-process and returns its exit status and output.
func runCLI(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "no command", code: exitUsage, stderr: []string{"Commands:", "eda"}},
		{name: "help", args: []string{"help"}, code: exitOK,
			stdout: []string{"Commands:", "  eda ", "  help ", "--version"}},
		{name: "--help", args: []string{"--help"}, code: exitOK, stdout: []string{"Commands:"}},
		{name: "help eda", args: []string{"help", "eda"}, code: exitOK,
			stdout: []string{"--data", "--out", "--json", "--strict", "--classes", "--samples"}},
		{name: "eda --help", args: []string{"eda", "--help"}, code: exitOK,
			stdout: []string{"--data DIR", "--samples N"}},
		{name: "help of an unknown command", args: []string{"help", "fly"}, code: exitUsage,
			stderr: []string{`unknown command "fly"`}},
		{name: "--version", args: []string{"--version"}, code: exitOK,
			stdout: []string{"masktrain dev"}},
		{name: "unknown command", args: []string{"fly"}, code: exitUsage,
			stderr: []string{`unknown command "fly"`, "masktrain help"}},
		{name: "unknown flag", args: []string{"eda", "--bogus"}, code: exitUsage,
			stderr: []string{"bogus", "masktrain help eda"}},
		{name: "no --data", args: []string{"eda", "--out", "x"}, code: exitUsage,
			stderr: []string{"no --data given"}},
		{name: "missing --data", args: []string{"eda", "--data", "/no/such/dir", "--out", "x"},
			code: exitUsage, stderr: []string{"--data /no/such/dir: no such directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(context.Background(), tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

// TestUsageListsOnlyExistingCommands keeps the usage text honest: it names no
// command that run does not carry out.
func TestUsageListsOnlyExistingCommands(t *testing.T) {
	_, listing, _ := strings.Cut(usage, "Commands:\n")
	listing, _, _ = strings.Cut(listing, "\n\n")
	for _, line := range strings.Split(listing, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		code, _, stderr := runCLI(context.Background(), "help", fields[0])
		if code != exitOK && fields[0] != "help" {
			t.Errorf("usage lists %q, which masktrain does not know: %s", fields[0], stderr)
		}
	}
}

func TestEDAFlagErrors(t *testing.T) {
	data := fixture.Path(t, "seed-samples")
	out := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no --out", []string{"--data", data}, "no --out given"},
		{"bad --classes", []string{"--data", data, "--out", out, "--classes", "nonsense"},
			"--classes"},
		{"negative --samples", []string{"--data", data, "--out", out, "--samples", "-1"},
			"--samples -1"},
		{"stray argument", []string{"--data", data, "--out", out, "extra"},
			`unexpected argument "extra"`},
		{"a file as --data", []string{"--data", filepath.Join(data, firstFile(t, data)),
			"--out", out}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(context.Background(), append([]string{"eda"}, tc.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d naming %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}

func firstFile(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("%s: %v, %d entries", dir, err, len(entries))
	}
	return entries[0].Name()
}

func TestEDASeedSamples(t *testing.T) {
	out := filepath.Join(t.TempDir(), "made", "by", "eda")
	code, _, stderr := runCLI(context.Background(), "eda",
		"--data", fixture.Path(t, "seed-samples"), "--out", out, "--json", "--samples", "2")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{"eda: start", "eda: done", "records=4", "seconds="} {
		if !strings.Contains(stderr, want) {
			t.Errorf("log lacks %q:\n%s", want, stderr)
		}
	}
	s := readSummary(t, out)
	if len(s.Dirs) != 1 || s.Dirs[0].Images != 4 || s.Dirs[0].Labels["True"] != 2 ||
		s.Dirs[0].Labels["False"] != 2 {
		t.Errorf("seed-samples summary = %+v; want 4 images, 2 True and 2 False", s)
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Errorf("no report: %v", err)
	}
}

type summary struct {
	Dirs []struct {
		Images   int            `json:"images"`
		Labels   map[string]int `json:"labels"`
		Problems int            `json:"problems"`
		Clipped  int            `json:"clipped"`
	} `json:"dirs"`
}

func readSummary(t *testing.T, out string) summary {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	return s
}

// problemSet writes a file-name data set of two images the test draws: one
// whose box fits, and one whose box runs far past its image.
func problemSet(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 100, 100))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{90, 120, 150, 255}),
		image.Point{}, draw.Src)
	for _, name := range []string{"000001__[10, 10, 50, 50]__True.png",
		"000002__[40, 40, 200, 200]__False.png"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestEDAStrict(t *testing.T) {
	data := problemSet(t)

	out := t.TempDir()
	code, _, stderr := runCLI(context.Background(), "eda", "--data", data, "--out", out,
		"--json")
	if code != exitOK {
		t.Fatalf("lenient read: exit %d:\n%s", code, stderr)
	}
	if s := readSummary(t, out); len(s.Dirs) != 1 || s.Dirs[0].Images != 2 ||
		s.Dirs[0].Problems != 1 || s.Dirs[0].Clipped != 1 {
		t.Errorf("lenient summary = %+v; want 2 images, 1 problem, 1 clipped box", s)
	}

	strictOut := filepath.Join(t.TempDir(), "strict")
	code, _, stderr = runCLI(context.Background(), "eda", "--data", data, "--out", strictOut,
		"--strict")
	if code != exitFailed || !strings.Contains(stderr, "000002") {
		t.Errorf("strict read: exit %d, stderr %q; want exit %d naming 000002",
			code, stderr, exitFailed)
	}
	if _, err := os.Stat(filepath.Join(strictOut, "report.html")); err == nil {
		t.Error("a failed strict read still wrote a report")
	}
}

func TestEDACancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, _, stderr := runCLI(ctx, "eda", "--data", fixture.Path(t, "seed-samples"),
		"--out", t.TempDir())
	if code != exitFailed || !strings.Contains(stderr, "interrupted") {
		t.Errorf("cancelled: exit %d, stderr %q; want exit %d and interrupted",
			code, stderr, exitFailed)
	}
}
