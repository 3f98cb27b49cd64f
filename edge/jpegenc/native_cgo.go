//go:build cgo

package jpegenc

import (
	"fmt"

	"gocv.io/x/gocv"

	"github.com/maskwatch/maskwatch/camera"
)

// opencv encodes with cv::imencode. Each call wraps the frame's pixels in a
// Mat header that it closes before returning.
type opencv struct{}

func newNative() Encoder { return opencv{} }

func (opencv) Name() string { return "opencv" }

func (opencv) Encode(dst []byte, f *camera.Frame, quality int) ([]byte, error) {
	if f.Stride != 3*f.Width || len(f.Pix) < f.Stride*f.Height {
		return dst, fmt.Errorf("jpeg encode: frame %dx%d stride %d is not packed",
			f.Width, f.Height, f.Stride)
	}
	m, err := gocv.NewMatFromBytes(f.Height, f.Width, gocv.MatTypeCV8UC3,
		f.Pix[:f.Stride*f.Height])
	if err != nil {
		return dst, fmt.Errorf("jpeg encode: %w", err)
	}
	defer m.Close()
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m,
		[]int{gocv.IMWriteJpegQuality, quality})
	if err != nil {
		return dst, fmt.Errorf("jpeg encode: %w", err)
	}
	defer buf.Close()
	return append(dst[:0], buf.GetBytes()...), nil
}
