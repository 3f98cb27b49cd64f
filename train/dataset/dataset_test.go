package dataset

import (
	"bytes"
	"errors"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// seedName is a real 167x224 JPEG of the seed samples, with one face inside it.
const seedName = "000024__[18, 84, 126, 135]__True.jpg"

// seedJPEG returns the bytes of a real photograph from the seed samples.
func seedJPEG(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixture.Path(t, "seed-samples"), seedName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// seedPNG returns the seed photograph re-encoded as PNG.
func seedPNG(t *testing.T) []byte {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(seedJPEG(t)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeFile writes data to dir/name, making folders as needed.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// findProblems returns the problems of set whose path ends in pathSuffix.
func findProblems(set *Set, pathSuffix string) []Problem {
	var out []Problem
	for _, p := range set.Problems {
		if strings.HasSuffix(p.Path, pathSuffix) {
			out = append(out, p)
		}
	}
	return out
}

// wantProblem fails unless set lists a problem for pathSuffix whose reason holds reason.
func wantProblem(t *testing.T, set *Set, pathSuffix, reason string) {
	t.Helper()
	for _, p := range findProblems(set, pathSuffix) {
		if strings.Contains(p.Reason, reason) {
			return
		}
	}
	t.Errorf("no problem for %s with %q; problems: %q", pathSuffix, reason, set.Problems)
}

// findRecord returns the record whose path ends in pathSuffix.
func findRecord(set *Set, pathSuffix string) (Record, bool) {
	for _, r := range set.Records {
		if strings.HasSuffix(r.Path, pathSuffix) {
			return r, true
		}
	}
	return Record{}, false
}

// wantStrictError fails unless err is a ProblemError for a path ending in pathSuffix.
func wantStrictError(t *testing.T, set *Set, err error, pathSuffix string) {
	t.Helper()
	var pe *ProblemError
	if !errors.As(err, &pe) {
		t.Fatalf("strict read gave %v, %v; want a *ProblemError", set, err)
	}
	if set != nil {
		t.Errorf("strict read gave a set with its error")
	}
	if !strings.HasSuffix(pe.Problem.Path, pathSuffix) {
		t.Errorf("strict error names %s, want the path ending in %s (%v)",
			pe.Problem.Path, pathSuffix, err)
	}
}

// checkSorted fails unless the records are in path order.
func checkSorted(t *testing.T, set *Set) {
	t.Helper()
	for i := 1; i < len(set.Records); i++ {
		if set.Records[i-1].Path >= set.Records[i].Path {
			t.Fatalf("records out of order: %s before %s",
				set.Records[i-1].Path, set.Records[i].Path)
		}
	}
}

// trees caches the real data read once with OpenTree and default options, since
// several tests look at the same sets and decoding them all takes seconds.
var trees struct {
	sync.Mutex
	sets map[string][]*Set
}

// realTree returns OpenTree(name) of the shared data, read once per test binary.
func realTree(t *testing.T, name string) []*Set {
	t.Helper()
	trees.Lock()
	defer trees.Unlock()
	if sets, ok := trees.sets[name]; ok {
		return sets
	}
	sets, err := OpenTree(fixture.Path(t, name), Options{})
	if err != nil {
		t.Fatalf("OpenTree(%s): %v", name, err)
	}
	if trees.sets == nil {
		trees.sets = map[string][]*Set{}
	}
	trees.sets[name] = sets
	return sets
}

// realSet returns the set of the shared data's name/split, from realTree.
func realSet(t *testing.T, name, split string) *Set {
	t.Helper()
	for _, s := range realTree(t, name) {
		if filepath.Base(s.Dir) == split {
			return s
		}
	}
	t.Fatalf("OpenTree(%s) has no set %s", name, split)
	return nil
}
