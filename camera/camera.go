// Package camera reads frames from cameras, video files, network streams and
// image folders, as 8-bit BGR pixels. Sources that need no cgo (MJPEG over
// HTTP, an MJPEG stream on stdin, a folder of images) work in every build;
// cameras, video files, RTSP and GStreamer pipelines go through GoCV and need
// a cgo build. A Capture keeps only the newest frame and reopens a source
// that disappears.
package camera

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Frame is one image: 8-bit pixels in BGR order, row by row, Stride bytes
// from one row to the next. A Frame owns Pix; sources fill it in place and
// reuse its memory from one frame to the next.
type Frame struct {
	Pix           []byte
	Width, Height int
	Stride        int
	// Seq numbers the frames of a Capture from 1; 0 for a frame no Capture made.
	Seq uint64
	// Time is when the source delivered the frame.
	Time time.Time
}

// Reset sizes f for a w×h image with rows packed (Stride = 3w), reusing Pix
// when it is large enough. The pixels are left as they were.
func (f *Frame) Reset(w, h int) {
	n := 3 * w * h
	if cap(f.Pix) < n {
		f.Pix = make([]byte, n)
	}
	f.Pix = f.Pix[:n]
	f.Width, f.Height, f.Stride = w, h, 3*w
}

// CopyFrom makes f a copy of src (pixels, size, Seq and Time), reusing f.Pix.
func (f *Frame) CopyFrom(src *Frame) {
	f.Reset(src.Width, src.Height)
	for y := 0; y < src.Height; y++ {
		copy(f.Pix[y*f.Stride:(y+1)*f.Stride], src.Pix[y*src.Stride:y*src.Stride+3*src.Width])
	}
	f.Seq, f.Time = src.Seq, src.Time
}

// Source delivers frames. Implementations are not safe for concurrent use:
// one goroutine reads and then closes.
type Source interface {
	// Read fills f with the next frame, reusing f.Pix. It returns io.EOF at
	// the end of a finite source (a file, a folder, stdin); any other error
	// means the source is lost and must be reopened.
	Read(f *Frame) error
	// Close releases the source.
	Close() error
}

// Rater is a Source that knows its native frame rate (a video file, a
// camera that reports it); Capture uses it to play files in real time.
type Rater interface {
	FrameRate() float64
}

// Kind is the sort of source a spec names.
type Kind int

// The kinds of source.
const (
	KindDevice   Kind = iota // a camera by index or /dev/videoN (GoCV, V4L2)
	KindFile                 // a video file (GoCV)
	KindURL                  // rtsp://, http:// or https:// (MJPEG in pure Go, else GoCV)
	KindPipeline             // a GStreamer pipeline ending in appsink (GoCV)
	KindStdin                // "-": an MJPEG stream on standard input (pure Go)
	KindFolder               // a folder of JPEG and PNG images (pure Go)
)

// String names the kind for logs and status pages.
func (k Kind) String() string {
	switch k {
	case KindDevice:
		return "device"
	case KindFile:
		return "file"
	case KindURL:
		return "url"
	case KindPipeline:
		return "pipeline"
	case KindStdin:
		return "stdin"
	case KindFolder:
		return "folder"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Finite reports whether a source of this kind ends (io.EOF) rather than
// being lost: files, folders and stdin.
func (k Kind) Finite() bool {
	return k == KindFile || k == KindFolder || k == KindStdin
}

// Options ask a source for a frame size and rate. Cameras and GStreamer
// sources honour them as far as the driver allows; files, folders and MJPEG
// streams deliver what they hold.
type Options struct {
	Width, Height int
	FPS           float64
	// Stdin is read by the "-" source; nil means os.Stdin.
	Stdin io.Reader
	// MaxFrameBytes bounds one JPEG of an MJPEG stream; 0 means 16 MiB.
	MaxFrameBytes int
}

// ErrNeedsCgo is returned for sources that only GoCV can open, in a build
// without cgo.
var ErrNeedsCgo = errors.New("this source needs a build with cgo and GoCV")

// Classify tells which kind of source spec names, from its form alone:
// "-" is stdin; a number or /dev/videoN a camera; a scheme:// a URL; a
// string with " ! " a GStreamer pipeline; an existing folder a folder;
// anything else a file.
func Classify(spec string) Kind {
	switch {
	case spec == "-":
		return KindStdin
	case isDeviceSpec(spec):
		return KindDevice
	case strings.Contains(spec, "://"):
		return KindURL
	case strings.Contains(spec, "!"):
		return KindPipeline
	}
	if st, err := os.Stat(spec); err == nil && st.IsDir() {
		return KindFolder
	}
	return KindFile
}

func isDeviceSpec(spec string) bool {
	if _, err := strconv.Atoi(spec); err == nil {
		return true
	}
	_, ok := deviceIndex(spec)
	return ok
}

// deviceIndex returns N for "N" or "/dev/videoN".
func deviceIndex(spec string) (int, bool) {
	s := strings.TrimPrefix(spec, "/dev/video")
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// Describe returns spec fit for logs and status pages: a URL's user name
// and password are replaced by "***".
func Describe(spec string) string {
	if Classify(spec) != KindURL {
		return spec
	}
	u, err := url.Parse(spec)
	if err != nil || u.User == nil {
		return spec
	}
	u.User = nil
	return strings.Replace(u.String(), "://", "://***@", 1)
}

// Open opens the source spec names (see Classify). Pure-Go sources open in
// every build; the others return an error wrapping ErrNeedsCgo without cgo.
// An http:// or https:// URL is read as MJPEG when the server sends
// multipart/x-mixed-replace or image/jpeg, and handed to GoCV otherwise.
func Open(spec string, opt Options) (Source, error) {
	switch k := Classify(spec); k {
	case KindStdin:
		r := opt.Stdin
		if r == nil {
			r = os.Stdin
		}
		return NewMJPEGReader(io.NopCloser(r), opt.MaxFrameBytes), nil
	case KindFolder:
		return OpenFolder(spec)
	case KindURL:
		u, err := url.Parse(spec)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", Describe(spec), err)
		}
		if u.Scheme == "http" || u.Scheme == "https" {
			src, err := OpenMJPEGURL(spec, opt.MaxFrameBytes)
			if errors.Is(err, errNotMJPEG) && gocvAvailable {
				return openGoCV(spec, k, opt)
			}
			return src, err
		}
		return openGoCV(spec, k, opt)
	case KindFile:
		if isMJPEGFile(spec) {
			f, err := os.Open(spec)
			if err != nil {
				return nil, fmt.Errorf("source: %w", err)
			}
			return NewMJPEGReader(f, opt.MaxFrameBytes), nil
		}
		if _, err := os.Stat(spec); err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		return openGoCV(spec, k, opt)
	default:
		return openGoCV(spec, k, opt)
	}
}

// isMJPEGFile reports whether a file holds a raw MJPEG stream (JPEG images
// back to back), which is read without GoCV.
func isMJPEGFile(path string) bool {
	switch strings.ToLower(path[strings.LastIndex(path, ".")+1:]) {
	case "mjpg", "mjpeg":
		return true
	}
	return false
}
