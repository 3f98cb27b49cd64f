// Package safefile writes files so that a reader, or a restart after a
// crash or a power cut, sees the old content or the whole new one, never a
// part. Checkpoints, bundles, reports and state files all go through it.
package safefile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data: a temporary file beside it gets data and
// perm, is synced and renamed over path. The folder must exist. On any error
// path is left as it was and the temporary file is removed; the error names
// path.
func Write(path string, data []byte, perm os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
