//go:build cgo

package camera

import (
	"errors"
	"fmt"
	"io"
	"time"

	"gocv.io/x/gocv"
)

const gocvAvailable = true

// gocvSource reads through OpenCV's VideoCapture. It owns two Mats: the one
// VideoCapture fills and, for sources that deliver other than 3 channels, a
// converted copy; both are closed by Close.
type gocvSource struct {
	vc     *gocv.VideoCapture
	mat    gocv.Mat
	conv   gocv.Mat
	kind   Kind
	desc   string
	fps    float64
	frames int
}

func openGoCV(spec string, k Kind, opt Options) (Source, error) {
	var (
		vc  *gocv.VideoCapture
		err error
	)
	switch k {
	case KindDevice:
		n, _ := deviceIndex(spec)
		vc, err = gocv.VideoCaptureDeviceWithAPI(n, gocv.VideoCaptureV4L2)
	case KindPipeline:
		vc, err = gocv.VideoCaptureFileWithAPI(spec, gocv.VideoCaptureGstreamer)
	default:
		vc, err = gocv.VideoCaptureFile(spec)
	}
	if err != nil {
		if vc != nil {
			vc.Close()
		}
		return nil, fmt.Errorf("source %s (%s): opencv cannot open it: %w", Describe(spec), k, err)
	}
	if k == KindDevice {
		if opt.Width > 0 && opt.Height > 0 {
			vc.Set(gocv.VideoCaptureFrameWidth, float64(opt.Width))
			vc.Set(gocv.VideoCaptureFrameHeight, float64(opt.Height))
		}
		if opt.FPS > 0 {
			vc.Set(gocv.VideoCaptureFPS, opt.FPS)
		}
		// One buffered frame: the Capture keeps the newest frame itself.
		vc.Set(gocv.VideoCaptureBufferSize, 1)
	}
	return &gocvSource{
		vc:   vc,
		mat:  gocv.NewMat(),
		conv: gocv.NewMat(),
		kind: k,
		desc: Describe(spec),
		fps:  vc.Get(gocv.VideoCaptureFPS),
	}, nil
}

// FrameRate is what OpenCV reports; 0 when it does not know.
func (s *gocvSource) FrameRate() float64 {
	if s.fps > 0 && s.fps < 1000 {
		return s.fps
	}
	return 0
}

var errNoFrame = errors.New("no frame: the camera or stream stopped delivering")

func (s *gocvSource) Read(f *Frame) error {
	if !s.vc.Read(&s.mat) || s.mat.Empty() {
		if s.kind == KindFile {
			return io.EOF
		}
		return fmt.Errorf("source %s: %w", s.desc, errNoFrame)
	}
	s.frames++
	m := &s.mat
	switch s.mat.Channels() {
	case 3:
	case 4:
		gocv.CvtColor(s.mat, &s.conv, gocv.ColorBGRAToBGR)
		m = &s.conv
	case 1:
		gocv.CvtColor(s.mat, &s.conv, gocv.ColorGrayToBGR)
		m = &s.conv
	default:
		return fmt.Errorf("%w: %d channels", ErrBadFrame, s.mat.Channels())
	}
	if err := MatToFrame(*m, f); err != nil {
		return err
	}
	f.Time = time.Now()
	return nil
}

// MatToFrame copies an 8-bit, 3-channel Mat into f.
func MatToFrame(m gocv.Mat, f *Frame) error {
	if m.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("%w: mat type %v, want 8-bit BGR", ErrBadFrame, m.Type())
	}
	w, h := m.Cols(), m.Rows()
	f.Reset(w, h)
	if m.IsContinuous() {
		data, err := m.DataPtrUint8()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadFrame, err)
		}
		copy(f.Pix, data)
		return nil
	}
	for y := 0; y < h; y++ {
		row := m.RowRange(y, y+1)
		data, err := row.DataPtrUint8()
		if err != nil {
			row.Close()
			return fmt.Errorf("%w: %w", ErrBadFrame, err)
		}
		copy(f.Pix[y*f.Stride:(y+1)*f.Stride], data)
		row.Close()
	}
	return nil
}

func (s *gocvSource) Close() error {
	s.mat.Close()
	s.conv.Close()
	return s.vc.Close()
}
