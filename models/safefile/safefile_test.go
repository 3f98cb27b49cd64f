package safefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplacesWholeAndLeavesNothingBeside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	for _, content := range []string{"first", "second, longer"} {
		if err := Write(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Errorf("read back %q, %v; want %q", got, err, content)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left beside the file: %v", entries)
	}
}

func TestWriteFailureKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	err := Write(filepath.Join(dir, "missing", "f.txt"), nil, 0o644)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("writing into a missing folder: %v, want an error naming it", err)
	}
	// A folder where the file should be: the rename fails, the folder stays
	// and no temporary file is left.
	target := filepath.Join(dir, "taken")
	os.Mkdir(target, 0o755)
	os.WriteFile(filepath.Join(target, "inside"), []byte("keep"), 0o644)
	if err := Write(target, []byte("new"), 0o644); err == nil ||
		!strings.Contains(err.Error(), "taken") {
		t.Errorf("writing over a folder: %v, want an error naming it", err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "inside")); string(b) != "keep" {
		t.Error("the folder's content changed")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left beside: %v", entries)
	}
}
