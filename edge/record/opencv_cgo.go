//go:build cgo

package record

import (
	"fmt"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"github.com/maskwatch/maskwatch/camera"
)

const haveOpenCV = true

// videoFile writes through cv::VideoWriter; each frame is wrapped in a Mat
// header that is closed after the write.
type videoFile struct {
	vw *gocv.VideoWriter
}

// fourccs lists the codecs tried for each extension, best first.
var fourccs = map[string][]string{
	".mp4": {"avc1", "mp4v"},
	".mov": {"avc1", "mp4v"},
	".mkv": {"H264", "mp4v"},
	".avi": {"MJPG"},
}

func open(path string, fps float64, w, h int) (sink, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext == ".mjpeg" || ext == ".mjpg" {
		return mjpegSink(path)
	}
	var lastErr error
	for _, cc := range fourccs[ext] {
		vw, err := gocv.VideoWriterFile(path, cc, fps, w, h, true)
		if err == nil && vw.IsOpened() {
			return &videoFile{vw: vw}, nil
		}
		if vw != nil {
			vw.Close()
		}
		lastErr = err
	}
	return nil, fmt.Errorf("record %s: opencv cannot write it (%v): try .avi or .mjpeg",
		path, lastErr)
}

func (v *videoFile) write(f *camera.Frame) error {
	m, err := gocv.NewMatFromBytes(f.Height, f.Width, gocv.MatTypeCV8UC3,
		f.Pix[:f.Stride*f.Height])
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	defer m.Close()
	if err := v.vw.Write(m); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

func (v *videoFile) close() error { return v.vw.Close() }
