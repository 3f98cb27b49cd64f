package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Files beside the model file PATH:
//
//	PATH                 the running bundle
//	PATH.prev            the bundle that ran before it (the previous good one)
//	PATH.rejected        a bundle found unusable at start, set aside
//	PATH.history.json    the last deployments and their outcomes
//	.PATH.incoming-*     an upload being written (removed at start)
//
// The running file is only ever replaced by a rename, so a device that
// loses power at any point finds either the old bundle or the new one.
const (
	prevSuffix     = ".prev"
	rejectedSuffix = ".rejected"
	historySuffix  = ".history.json"
	incomingInfix  = ".incoming-"
)

// store manages the model file and the files beside it.
type store struct {
	path string
}

func (s store) prev() string     { return s.path + prevSuffix }
func (s store) rejected() string { return s.path + rejectedSuffix }
func (s store) history() string  { return s.path + historySuffix }
func (s store) dir() string      { return filepath.Dir(s.path) }

// stage writes data to a new file beside the model, synced, and returns
// its name.
func (s store) stage(data []byte) (string, error) {
	f, err := os.CreateTemp(s.dir(), "."+filepath.Base(s.path)+incomingInfix+"*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	if err := os.Chmod(name, 0o644); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// install makes the staged file the model, keeping the model it replaces
// as the previous one. Each step is a rename or a link, so the model file
// is always whole.
func (s store) install(staged string) error {
	if _, err := os.Stat(s.path); err == nil {
		if err := s.copyOver(s.path, s.prev()); err != nil {
			return fmt.Errorf("keeping the previous bundle: %w", err)
		}
	}
	if err := os.Rename(staged, s.path); err != nil {
		return err
	}
	return syncDir(s.dir())
}

// restore puts the previous bundle back as the model; the previous one
// stays.
func (s store) restore() error {
	if err := s.copyOver(s.prev(), s.path); err != nil {
		return err
	}
	return syncDir(s.dir())
}

// copyOver makes dst a copy of src atomically: a hard link (or a copy
// where links are not supported) under a temporary name, renamed.
func (s store) copyOver(src, dst string) error {
	tmp := filepath.Join(s.dir(), "."+filepath.Base(dst)+incomingInfix+"copy")
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		if err := copyFile(src, tmp); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// cleanup removes uploads an earlier process left half written, and
// returns how many.
func (s store) cleanup() int {
	entries, err := os.ReadDir(s.dir())
	if err != nil {
		return 0
	}
	prefix := "." + filepath.Base(s.path)
	n := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, prefix) && strings.Contains(name, incomingInfix) {
			if os.Remove(filepath.Join(s.dir(), name)) == nil {
				n++
			}
		}
	}
	return n
}

// readHistory reads the saved outcomes; a missing or damaged file is an
// empty history.
func (s store) readHistory() []Outcome {
	raw, err := os.ReadFile(s.history())
	if err != nil {
		return nil
	}
	var h []Outcome
	if json.Unmarshal(raw, &h) != nil {
		return nil
	}
	return h
}

// writeHistory saves the outcomes atomically.
func (s store) writeHistory(h []Outcome) error {
	raw, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	staged, err := s.stage(append(raw, '\n'))
	if err != nil {
		return err
	}
	if err := os.Rename(staged, s.history()); err != nil {
		os.Remove(staged)
		return err
	}
	return nil
}

// InstallFile makes data the bundle at path the way a deployment does: a
// new file beside it, synced, renamed over it, the bundle it replaces kept
// as PATH.prev. A maskwatch watching path then loads it (and checks it).
// data is not checked here: check it before.
func InstallFile(path string, data []byte) error {
	s := store{path: path}
	staged, err := s.stage(data)
	if err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	defer os.Remove(staged)
	if err := s.install(staged); err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	return nil
}
