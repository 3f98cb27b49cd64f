package record

import (
	"bufio"
	"fmt"
	"os"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/jpegenc"
)

// mjpegFile writes JPEG images back to back.
type mjpegFile struct {
	f   *os.File
	bw  *bufio.Writer
	enc jpegenc.Encoder
	buf []byte
}

// mjpegSink opens path for MJPEG; a nil sink on error, never a typed nil.
func mjpegSink(path string) (sink, error) {
	m, err := openMJPEG(path)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func openMJPEG(path string) (*mjpegFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	return &mjpegFile{f: f, bw: bufio.NewWriterSize(f, 1<<20), enc: jpegenc.New()}, nil
}

func (m *mjpegFile) write(fr *camera.Frame) error {
	var err error
	if m.buf, err = m.enc.Encode(m.buf, fr, 85); err != nil {
		return err
	}
	if _, err := m.bw.Write(m.buf); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

func (m *mjpegFile) close() error {
	err := m.bw.Flush()
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}
