package cross

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// readTarball returns the regular files of a .tar.gz by name, with their modes.
func readTarball(t *testing.T, path string) (map[string][]byte, map[string]int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	files, modes := map[string][]byte{}, map[string]int64{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %s owned by %d:%d, want root", path, h.Name, h.Uid, h.Gid)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], modes[h.Name] = data, h.Mode
	}
	return files, modes
}

// checkSums verifies every "SUM  NAME" line of sums against files (by
// name, below dir) and that every file but the sums is listed.
func checkSums(t *testing.T, what, sums string, files map[string][]byte, dir string) {
	t.Helper()
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(sums), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		data, found := files[dir+name]
		if !ok || !found {
			t.Errorf("%s: line %q names no file", what, line)
			continue
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: %s has another sum", what, name)
		}
		listed[dir+name] = true
	}
	for name := range files {
		if !listed[name] && filepath.Base(name) != "SHA256SUMS" {
			t.Errorf("%s does not list %s", what, name)
		}
	}
}

// make release writes one tarball a target with both builds stamped with
// the version, the model, the unit, the README and sums that check out.
func TestRelease(t *testing.T) {
	dist := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(repoRoot, "cross", "release.sh"))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "VERSION="+testVersion, "DIST="+dist, "TRIMPATH=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cross/release.sh: %v\n%s", err, tail(string(out), 3000))
	}

	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	base := "maskwatch-" + testVersion
	want := []string{base + "-linux-amd64.tar.gz", base + "-linux-arm64.tar.gz", base + ".sha256"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("dist holds %v, want %v", names, want)
	}
	tarballs := map[string][]byte{}
	for _, name := range want[:2] {
		if tarballs[name], err = os.ReadFile(filepath.Join(dist, name)); err != nil {
			t.Fatal(err)
		}
	}
	sums, err := os.ReadFile(filepath.Join(dist, base+".sha256"))
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, base+".sha256", string(sums), tarballs, "")

	model, err := os.ReadFile(filepath.Join(repoRoot, "models", "defaultmodel", "data",
		"default.mwb"))
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"arm64", "amd64"} {
		dir := base + "-linux-" + arch + "/"
		files, modes := readTarball(t, filepath.Join(dist, base+"-linux-"+arch+".tar.gz"))
		var got []string
		for name := range files {
			got = append(got, strings.TrimPrefix(name, dir))
		}
		sort.Strings(got)
		wantFiles := "README.md SHA256SUMS default.mwb maskwatch maskwatch-static " +
			"maskwatch.service"
		if strings.Join(got, " ") != wantFiles {
			t.Errorf("%s tarball holds %v, want %s", arch, got, wantFiles)
			continue
		}
		checkSums(t, dir+"SHA256SUMS", string(files[dir+"SHA256SUMS"]), files, dir)
		if string(files[dir+"default.mwb"]) != string(model) {
			t.Errorf("%s: default.mwb is not the default model", arch)
		}
		if !strings.Contains(string(files[dir+"maskwatch.service"]), "ExecStart=") {
			t.Errorf("%s: maskwatch.service is no systemd unit", arch)
		}

		unpacked := t.TempDir()
		for _, bin := range []string{"maskwatch", "maskwatch-static"} {
			if modes[dir+bin]&0o111 == 0 {
				t.Errorf("%s: %s is not executable (mode %o)", arch, bin, modes[dir+bin])
			}
			path := filepath.Join(unpacked, bin)
			if err := os.WriteFile(path, files[dir+bin], 0o755); err != nil {
				t.Fatal(err)
			}
			desc, err := exec.Command("file", "-b", path).Output()
			if err != nil {
				t.Fatal(err)
			}
			machine := map[string]string{"arm64": "ARM aarch64", "amd64": "x86-64"}[arch]
			static := strings.Contains(string(desc), "statically linked")
			if !strings.Contains(string(desc), machine) || static != (bin == "maskwatch-static") {
				t.Errorf("%s: %s is %s", arch, bin, desc)
			}
			run := exec.Command(path, "--version")
			if arch == "arm64" {
				run = arm64(t, path, "--version")
			}
			out := strings.TrimSpace(string(output(t, run)))
			if out != "maskwatch "+testVersion {
				t.Errorf("%s %s --version printed %q", arch, bin, out)
			}
		}
	}
}
