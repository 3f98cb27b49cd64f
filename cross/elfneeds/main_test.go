package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The host's own /bin/true, checked against the host as sysroot, needs
// nothing missing; against an empty sysroot its libc is reported missing.
func TestFindsAndMisses(t *testing.T) {
	const bin = "/bin/true"
	triplet := "x86_64-linux-gnu"
	if _, err := os.Stat("/usr/lib/" + triplet); err != nil {
		t.Fatalf("this test reads the amd64 host's libraries: %v", err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--root", "/", "--triplet", triplet, bin}, &stdout,
		&stderr); code != 0 {
		t.Fatalf("exit %d against the host: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "all found") {
		t.Errorf("stdout %q", stdout.String())
	}

	empty := t.TempDir()
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"--root", empty, "--triplet", triplet, bin}, &stdout,
		&stderr); code != 1 {
		t.Fatalf("exit %d against an empty sysroot, want 1", code)
	}
	if !strings.Contains(stderr.String(), "true needs libc.so.6: not in the sysroot") {
		t.Errorf("stderr %q, want libc.so.6 named as missing", stderr.String())
	}
}

// A library found through the sysroot's folders is followed in turn: its
// own missing dependency is reported with the chain that leads to it.
func TestFollowsLibraries(t *testing.T) {
	triplet := "x86_64-linux-gnu"
	root := t.TempDir()
	dir := filepath.Join(root, "usr", "lib", triplet)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	libc, err := filepath.EvalSymlinks("/usr/lib/" + triplet + "/libc.so.6")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(libc, filepath.Join(dir, "libc.so.6")); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"--root", root, "--triplet", triplet, "/bin/true"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(),
		"true -> libc.so.6 needs ld-linux-x86-64.so.2: not in the sysroot") {
		t.Errorf("exit %d, stderr %q; want the loader missing under libc.so.6", code,
			stderr.String())
	}

	code = run([]string{"--root", root, "no/such/file"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("a missing file: exit %d, want 1", code)
	}
	if code := run([]string{"/bin/true"}, &stdout, &stderr); code != 2 {
		t.Errorf("no --root: exit %d, want 2", code)
	}
}
