package cross

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// evalReport holds the fields of `masktrain eval --json` compared across builds.
type evalReport struct {
	Images    int     `json:"images"`
	Accuracy  float64 `json:"accuracy"`
	IoU       float64 `json:"iou"`
	MAP50     float64 `json:"map50"`
	MAP       float64 `json:"map"`
	Confusion struct {
		Counts [][]int `json:"counts"`
	} `json:"confusion"`
}

// someImages links the first n images of dir (sorted) into a new folder, a
// small data set of the same format.
func someImages(t testing.TB, dir string, n int) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".jpg") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) < n {
		t.Fatalf("%s holds %d images, want at least %d", dir, len(names), n)
	}
	out := t.TempDir()
	for _, name := range names[:n] {
		if err := os.Symlink(filepath.Join(dir, name), filepath.Join(out, name)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// The detector trained and evaluated by the amd64 build gives the same
// predictions and figures when evaluated by the arm64 builds under qemu:
// the full one (cgo, OpenBLAS from the sysroot) and the static one (pure Go).
func TestMasktrainEvalSameOnArm64(t *testing.T) {
	amd64 := build(t, "full", "amd64", "./cmd/masktrain")
	full := build(t, "full", "arm64", "./cmd/masktrain")
	static := build(t, "static", "arm64", "./cmd/masktrain")

	run := filepath.Join(t.TempDir(), "run")
	train := exec.Command(amd64, "train", "--backbone", "mobilenetv3",
		"--data", fixture.Path(t, "seed-samples"), "--out", run, "--size", "64",
		"--batch", "2", "--epochs", "8", "--train-eval", "2", "--recalibrate", "2",
		"--workers", "1", "--no-augment")
	output(t, train)
	model := filepath.Join(run, "best.ckpt")
	data := someImages(t, fixture.Path(t, "proper-mask", "test"), 6)

	eval := func(name string, cmd func(args ...string) *exec.Cmd) (evalReport, string) {
		out := filepath.Join(t.TempDir(), name)
		stdout := output(t, cmd("eval", "--model", model, "--data", data, "--json",
			"--out", out, "--workers", "1"))
		var rep evalReport
		if err := json.Unmarshal(stdout, &rep); err != nil {
			t.Fatalf("%s eval --json printed %q: %v", name, stdout, err)
		}
		csv, err := os.ReadFile(filepath.Join(out, "prediction.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return rep, string(csv)
	}
	wantRep, wantCSV := eval("amd64", func(args ...string) *exec.Cmd {
		return exec.Command(amd64, args...)
	})
	if wantRep.Images != 6 || !hasBox(wantCSV) {
		t.Fatalf("the amd64 reference found no face on %d images; the comparison would "+
			"prove little:\n%s", wantRep.Images, wantCSV)
	}

	for name, bin := range map[string]string{"full arm64": full, "static arm64": static} {
		rep, csv := eval(strings.ReplaceAll(name, " ", "-"), func(args ...string) *exec.Cmd {
			return arm64(t, bin, args...)
		})
		if csv != wantCSV {
			t.Errorf("%s predictions differ from amd64's:\n%s\nwant\n%s", name, csv, wantCSV)
		}
		if math.Abs(rep.IoU-wantRep.IoU) > 1e-4 {
			t.Errorf("%s IoU %.6f, amd64 %.6f", name, rep.IoU, wantRep.IoU)
		}
		rep.IoU = wantRep.IoU // float sums differ in the last digits between CPUs
		if !reflect.DeepEqual(rep, wantRep) {
			t.Errorf("%s figures %+v, amd64 %+v", name, rep, wantRep)
		}
	}
}

// hasBox reports whether a prediction.csv holds a box of some width.
func hasBox(csv string) bool {
	for _, row := range strings.Split(strings.TrimSpace(csv), "\n")[1:] {
		f := strings.Split(row, ",")
		if len(f) >= 6 && f[len(f)-3] != "0" {
			return true
		}
	}
	return false
}
