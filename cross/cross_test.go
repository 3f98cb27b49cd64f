package cross

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testVersion is stamped into every binary these tests build.
const testVersion = "v0.0.0-crosstest"

var (
	repoRoot string
	buildDir string

	buildMu sync.Mutex
	built   = map[string]bool{}

	sysrootOnce sync.Once
	sysrootPath string
	sysrootErr  error
)

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	repoRoot = filepath.Dir(wd)
	buildDir, err = os.MkdirTemp("", "maskwatch-cross-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

// build returns pkg ("./cmd/masktrain") built by build.sh in flavour (full
// or static) for goarch, building it once per test run.
func build(tb testing.TB, flavour, goarch, pkg string) string {
	tb.Helper()
	out := filepath.Join(buildDir, flavour+"-"+goarch)
	bin := filepath.Join(out, filepath.Base(pkg))
	buildMu.Lock()
	defer buildMu.Unlock()
	if built[bin] {
		return bin
	}
	cmd := exec.Command("bash", filepath.Join(repoRoot, "cross", "build.sh"),
		flavour, goarch, out, pkg)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "VERSION="+testVersion)
	if output, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("cross/build.sh %s %s %s: %v\n%s", flavour, goarch, pkg, err, output)
	}
	built[bin] = true
	return bin
}

// sysroot returns the arm64 sysroot, assembling it if needed.
func sysroot(tb testing.TB) string {
	tb.Helper()
	sysrootOnce.Do(func() {
		cmd := exec.Command("bash", filepath.Join(repoRoot, "cross", "sysroot.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			sysrootErr = fmt.Errorf("cross/sysroot.sh: %w\n%s", err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		sysrootPath = lines[len(lines)-1]
	})
	if sysrootErr != nil {
		tb.Fatal(sysrootErr)
	}
	return sysrootPath
}

// arm64 runs an arm64 binary under qemu-aarch64. A dynamically linked one
// finds its loader and libraries in the sysroot (QEMU_LD_PREFIX); a static
// one gets an empty folder there, so a library it needed would be missed.
func arm64(tb testing.TB, bin string, args ...string) *exec.Cmd {
	tb.Helper()
	prefix := tb.TempDir()
	if !isStatic(tb, bin) {
		prefix = sysroot(tb)
	}
	cmd := exec.Command("qemu-aarch64", append([]string{bin}, args...)...)
	cmd.Env = append(os.Environ(), "QEMU_LD_PREFIX="+prefix)
	return cmd
}

// isStatic asks file(1) whether bin is statically linked.
func isStatic(tb testing.TB, bin string) bool {
	tb.Helper()
	out, err := exec.Command("file", "-b", bin).Output()
	if err != nil {
		tb.Fatalf("file %s: %v", bin, err)
	}
	return strings.Contains(string(out), "statically linked")
}

// output runs cmd and returns its standard output, failing the test with
// its standard error if it fails.
func output(tb testing.TB, cmd *exec.Cmd) []byte {
	tb.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, tail(stderr.String(), 3000))
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func TestStaticBuildIsStatic(t *testing.T) {
	bin := build(t, "static", "arm64", "./cmd/masktrain")
	desc, err := exec.Command("file", "-b", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ARM aarch64", "statically linked"} {
		if !strings.Contains(string(desc), want) {
			t.Errorf("file says %q, want %q", desc, want)
		}
	}
	out := output(t, arm64(t, bin, "--version"))
	if got := strings.TrimSpace(string(out)); got != "masktrain "+testVersion {
		t.Errorf("--version printed %q, want the stamped version %q", got, testVersion)
	}
}

// A second assembly of an assembled sysroot downloads and unpacks nothing,
// and leaves the tree as it was.
func TestSysrootSecondRunChangesNothing(t *testing.T) {
	root := sysroot(t)
	before, err := os.ReadFile(filepath.Join(root, ".complete"))
	if err != nil {
		t.Fatal(err)
	}
	infoBefore, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(repoRoot, "cross", "sysroot.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cross/sysroot.sh: %v\n%s", err, stderr.String())
	}
	if got := strings.TrimSpace(string(out)); got != root {
		t.Errorf("second run printed %q, want the sysroot %q", got, root)
	}
	log := stderr.String()
	if !strings.Contains(log, "sysroot up to date") {
		t.Errorf("second run did not find the sysroot up to date:\n%s", log)
	}
	for _, work := range []string{"downloading", "unpacking"} {
		if strings.Contains(log, work) {
			t.Errorf("second run was %s:\n%s", work, log)
		}
	}
	after, err := os.ReadFile(filepath.Join(root, ".complete"))
	if err != nil {
		t.Fatal(err)
	}
	infoAfter, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) || !infoAfter.ModTime().Equal(infoBefore.ModTime()) {
		t.Error("second run replaced the sysroot")
	}
}
