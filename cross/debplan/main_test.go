package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeIndex(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Packages")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Programs and data are left out, libraries and the named -dev packages
// kept, whatever suite they must come from.
func TestPlan(t *testing.T) {
	stable := writeIndex(t, `Package: libfoo-dev
Version: 1.0
Architecture: arm64
Section: libdevel
Depends: libfoo1 (= 1.0), libbar-dev, foo-tools

Package: libfoo1
Version: 1.0
Architecture: arm64
Section: libs
Depends: libc6 (>= 2.38), libmisfiled0, foo-data

Package: libc6
Version: 2.36
Architecture: arm64
Section: libs

Package: libmisfiled0
Version: 0.1
Architecture: arm64
Section: libdevel

Package: libbar-dev
Version: 1
Architecture: arm64
Section: libdevel

Package: foo-tools
Version: 1
Architecture: arm64
Section: utils

Package: foo-data
Version: 1
Architecture: all
Section: misc
`)
	unstable := writeIndex(t, `Package: libc6
Version: 2.43
Architecture: arm64
Section: libs
Filename: pool/main/g/glibc/libc6_2.43_arm64.deb
Size: 1000
`)
	var stdout, stderr bytes.Buffer
	code := run([]string{"--roots", "libfoo-dev", "--dev", "libfoo",
		"stable=" + stable, "unstable=" + unstable}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := "libc6\t2.43\tarm64\tunstable\tlibc6_2.43_arm64.deb\t1000\n" +
		"libfoo-dev\t1.0\tarm64\tstable\tlibfoo-dev_1.0_arm64.deb\t0\n" +
		"libfoo1\t1.0\tarm64\tstable\tlibfoo1_1.0_arm64.deb\t0\n" +
		"libmisfiled0\t0.1\tarm64\tstable\tlibmisfiled0_0.1_arm64.deb\t0\n"
	if stdout.String() != want {
		t.Errorf("plan\n%s\nwant\n%s", stdout.String(), want)
	}
}

func TestPlanErrors(t *testing.T) {
	index := writeIndex(t, "Package: a\nVersion: 1\nSection: libs\nDepends: b\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"stable=" + index}, 2, "want --roots"},
		{[]string{"--roots", "a", index}, 2, "want SUITE=INDEX"},
		{[]string{"--roots", "a", "stable=/no/such/index"}, 1, "/no/such/index"},
		{[]string{"--roots", "a", "stable=" + index}, 1, "a=1 (stable) needs b"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, stderr.String(),
				tc.code, tc.want)
		}
	}
}
