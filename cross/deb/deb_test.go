package deb

import (
	"strings"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0", "1.0+b1", -1},
		{"1.0a", "1.0+", -1}, // letters sort before other characters
		{"1:1.0", "2.0", 1},  // the epoch wins
		{"0:2.0", "2.0", 0},
		{"2.36-9+deb12u14", "2.38", -1},
		{"2.43-7", "2.38", 1},
		{"12.2.0-14+deb12u1", "13.1", -1},
		{"16.2.0-4", "13.1", 1},
		{"4.6.0+dfsg-12", "4.7", -1},
		{"2.14.1+dfsg-3.1+b1", "2.14.2", -1},
		{"2.14.1+dfsg-3.1+b1", "2.14.1", 1},
		{"0.0~git20220617.082deff-1+deb12u1", "0.0~git20220617.082deff-2", -1},
		{"1.2-3", "1.2-10", -1},
		{"007", "7", 0},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestParseRelations(t *testing.T) {
	groups, err := ParseRelations("libc6 (>= 2.34), libblas3 | libblas.so.3, " +
		"python3:any, libfoo [amd64] (<< 2), libold (> 1)")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(groups))
	for i, g := range groups {
		got[i] = relString(g)
	}
	want := []string{"libc6 (>= 2.34)", "libblas3 | libblas.so.3", "python3",
		"libfoo (<< 2)", "libold (>= 1)"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"libc6 (>= 2.34", "libc6 (2.34)", "lib c6", "libc6 (>=)"} {
		if _, err := ParseRelations(bad); err == nil {
			t.Errorf("ParseRelations(%q) accepted", bad)
		}
	}
}

func TestParseIndex(t *testing.T) {
	const index = `Package: libfoo1
Version: 1:1.2-3
Architecture: arm64
Section: libs
Depends: libc6 (>= 2.34),
 libbar | libbaz
Pre-Depends: libzero
Provides: libfoo.so.1 (= 1.2)
Filename: pool/main/f/foo/libfoo1_1.2-3_arm64.deb
Size: 1234
Description: a library
 with a long description

Package: libbar
Version: 2.0
Architecture: all
Section: oldlibs
`
	pkgs, err := ParseIndex(strings.NewReader(index), "bookworm", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 {
		t.Fatalf("%d packages, want 2", len(pkgs))
	}
	p := pkgs[0]
	if p.Name != "libfoo1" || p.Version != "1:1.2-3" || p.Size != 1234 || p.Suite != "bookworm" {
		t.Errorf("first package %+v", p)
	}
	if p.DebName() != "libfoo1_1%3a1.2-3_arm64.deb" {
		t.Errorf("DebName %q", p.DebName())
	}
	var deps []string
	for _, g := range p.Depends {
		deps = append(deps, relString(g))
	}
	if want := "libzero, libc6 (>= 2.34), libbar | libbaz"; strings.Join(deps, ", ") != want {
		t.Errorf("Depends %q, want %q (Pre-Depends first, continuation lines joined)",
			strings.Join(deps, ", "), want)
	}
	if len(p.Provides) != 1 || p.Provides[0].String() != "libfoo.so.1 (= 1.2)" {
		t.Errorf("Provides %v", p.Provides)
	}

	_, err = ParseIndex(strings.NewReader("Package: x\nVersion: 1\nDepends: y (>= 1\n"),
		"sid", 1)
	if err == nil || !strings.Contains(err.Error(), "sid index, stanza at line 1") {
		t.Errorf("bad Depends: %v, want an error naming the index and the line", err)
	}
	_, err = ParseIndex(strings.NewReader("Version: 1\n\n"), "sid", 1)
	if err == nil {
		t.Error("a stanza without Package was accepted")
	}
}

// index builds an index from "suite name version section depends" lines.
func index(t *testing.T, lines ...string) *Index {
	t.Helper()
	x := NewIndex()
	tiers := map[string]int{"stable": 0, "unstable": 1}
	for _, line := range lines {
		f := strings.SplitN(line, " ", 5)
		for len(f) < 5 {
			f = append(f, "")
		}
		p := &Package{Suite: f[0], Tier: tiers[f[0]], Name: f[1], Version: f[2],
			Section: f[3], Arch: "arm64"}
		deps, err := ParseRelations(f[4])
		if err != nil {
			t.Fatal(err)
		}
		p.Depends = deps
		if p.Name == "openblas" {
			p.Provides = []Relation{{Name: "libblas.so.3"}}
		}
		x.Add([]*Package{p})
	}
	return x
}

func names(pkgs []*Package) string {
	var s []string
	for _, p := range pkgs {
		s = append(s, p.Name+"="+p.Version+"@"+p.Suite)
	}
	return strings.Join(s, " ")
}

// The situation of the real sysroot: OpenCV only in stable, TFLite only in
// unstable, whose libc and libstdc++ stable cannot satisfy; libc-dev of
// stable pins stable's libc exactly, so it has to move to unstable too.
func TestClosurePrefersStableUntilOnlyUnstableWill(t *testing.T) {
	x := index(t,
		"stable opencv-dev 4.6 libdevel opencv4.6, libc6-dev",
		"unstable opencv-dev 4.10 libdevel opencv4.10",
		"stable opencv4.6 4.6 libs libc6 (>= 2.34), libstdc++6 (>= 12), libblas3 | libblas.so.3",
		"stable libstdc++6 12.2 libs libc6 (>= 2.34)",
		"unstable libstdc++6 16.2 libs libc6 (>= 2.38)",
		"stable libc6 2.36 libs",
		"unstable libc6 2.43 libs",
		"stable libc6-dev 2.36 libdevel libc6 (= 2.36), libc-dev-bin",
		"unstable libc6-dev 2.43 libdevel libc6 (= 2.43)",
		"stable libc-dev-bin 2.36 libdevel",
		"unstable tflite-dev 2.14.1 libdevel tflite2.14, abseil-dev",
		"unstable tflite2.14 2.14.1 libs libstdc++6 (>= 13.1), libc6 (>= 2.38)",
		"unstable abseil-dev 1 libdevel",
		"stable openblas 0.3 libs libc6",
		"stable libblas3 3.11 libs",
		"stable python3 3.11 python",
	)
	keep := func(p *Package) bool {
		return p.Section == "libs" ||
			(p.Section == "libdevel" && (strings.HasPrefix(p.Name, "opencv") ||
				strings.HasPrefix(p.Name, "tflite") || p.Name == "libc6-dev"))
	}
	got, err := x.Closure("opencv-dev (<< 4.7), tflite-dev, python3", keep)
	if err != nil {
		t.Fatal(err)
	}
	want := "libblas3=3.11@stable libc6=2.43@unstable libc6-dev=2.43@unstable " +
		"libstdc++6=16.2@unstable opencv-dev=4.6@stable opencv4.6=4.6@stable " +
		"python3=3.11@stable tflite-dev=2.14.1@unstable tflite2.14=2.14.1@unstable"
	if names(got) != want {
		t.Errorf("closure\n got %s\nwant %s", names(got), want)
	}
}

func TestClosureVirtualAndErrors(t *testing.T) {
	x := index(t,
		"stable app 1 libs libblas.so.3",
		"stable openblas 0.3 libs",
		"stable needy 1 libs libmissing (>= 2)",
		"stable libmissing 1 libs",
		"stable pinned 1 libs libc6 (= 2.36)",
		"stable libc6 2.43 libs",
	)
	got, err := x.Closure("app", nil)
	if err != nil || names(got) != "app=1@stable openblas=0.3@stable" {
		t.Errorf("virtual package: %s, %v; want openblas providing it", names(got), err)
	}
	_, err = x.Closure("needy", nil)
	if err == nil || !strings.Contains(err.Error(), "needy=1 (stable) needs libmissing (>= 2)") {
		t.Errorf("unsatisfiable dependency: %v, want an error naming who needs what", err)
	}
	_, err = x.Closure("nothing-like-it", nil)
	if err == nil || !strings.Contains(err.Error(), "roots needs nothing-like-it") {
		t.Errorf("unknown root: %v", err)
	}
	_, err = x.Closure("pinned", nil)
	if err == nil {
		t.Error("an exact version that no suite has was accepted")
	}
	if _, err := x.Closure("app (>= ", nil); err == nil {
		t.Error("a malformed root was accepted")
	}
}
