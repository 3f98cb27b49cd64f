package camera

import (
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Folder plays the JPEG and PNG images of a folder in name order, one frame
// each, then returns io.EOF. An image that does not decode is skipped with
// an error wrapping ErrBadFrame naming the file. Images may differ in size.
type Folder struct {
	dir   string
	names []string
	next  int
}

// OpenFolder lists the images of dir; a folder without any is an error.
func OpenFolder(dir string) (*Folder, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("source folder: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png":
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("source folder %s: no .jpg, .jpeg or .png images in it", dir)
	}
	slices.Sort(names)
	return &Folder{dir: dir, names: names}, nil
}

// Len is the number of images.
func (d *Folder) Len() int { return len(d.names) }

// Read decodes the next image into f.
func (d *Folder) Read(f *Frame) error {
	if d.next >= len(d.names) {
		return io.EOF
	}
	path := filepath.Join(d.dir, d.names[d.next])
	d.next++
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	defer r.Close()
	img, _, err := image.Decode(r)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadFrame, path, err)
	}
	ToBGR(img, f)
	f.Time = time.Now()
	return nil
}

// Close does nothing: the folder holds no open file between reads.
func (d *Folder) Close() error { return nil }
