package camera

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrBadFrame marks one frame that could not be decoded; the source itself
// is still good and the next Read may succeed.
var ErrBadFrame = errors.New("bad frame")

// errNotMJPEG is returned by OpenMJPEGURL when the server sends something
// other than MJPEG or a JPEG image.
var errNotMJPEG = errors.New("not an MJPEG stream")

const defaultMaxFrameBytes = 16 << 20

// MJPEGReader reads JPEG images sent back to back, as rpicam-vid --codec
// mjpeg and ffmpeg -f mjpeg write them, or as the parts of a
// multipart/x-mixed-replace HTTP response (anything between images, such as
// part headers, is skipped). It finds each image's end by walking the JPEG
// segments, so an EOI byte pair inside an embedded thumbnail does not cut
// an image short.
type MJPEGReader struct {
	rc       io.ReadCloser
	br       *bufio.Reader
	buf      []byte
	maxBytes int
}

// NewMJPEGReader reads MJPEG from rc and closes rc on Close. maxFrameBytes
// bounds one image (0 means 16 MiB); a larger one is an error.
func NewMJPEGReader(rc io.ReadCloser, maxFrameBytes int) *MJPEGReader {
	if maxFrameBytes <= 0 {
		maxFrameBytes = defaultMaxFrameBytes
	}
	return &MJPEGReader{rc: rc, br: bufio.NewReaderSize(rc, 64<<10), maxBytes: maxFrameBytes}
}

// Read decodes the next image into f. It returns io.EOF when the stream ends
// between images, and an error wrapping ErrBadFrame for an image that does
// not decode (the stream stays usable).
func (m *MJPEGReader) Read(f *Frame) error {
	var err error
	m.buf, err = readJPEG(m.br, m.buf[:0], m.maxBytes)
	if err != nil {
		return err
	}
	if err := DecodeJPEG(m.buf, f); err != nil {
		return fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	f.Time = time.Now()
	return nil
}

// NextJPEG returns the next image's bytes undecoded; the slice is reused by
// the next call.
func (m *MJPEGReader) NextJPEG() ([]byte, error) {
	var err error
	m.buf, err = readJPEG(m.br, m.buf[:0], m.maxBytes)
	return m.buf, err
}

// Close closes the underlying reader.
func (m *MJPEGReader) Close() error { return m.rc.Close() }

// readJPEG appends the next JPEG image of br to buf: it skips to the start
// of image marker, then copies segments up to the end of image marker.
func readJPEG(br *bufio.Reader, buf []byte, maxBytes int) ([]byte, error) {
	if err := skipToSOI(br, maxBytes); err != nil {
		return buf, err
	}
	buf = append(buf, 0xFF, 0xD8)
	var marker byte
	for {
		if marker == 0 {
			var err error
			if marker, err = readMarker(br); err != nil {
				return buf, unexpected(err)
			}
		}
		buf = append(buf, 0xFF, marker)
		m := marker
		marker = 0
		switch {
		case m == 0xD9: // end of image
			return buf, nil
		case m >= 0xD0 && m <= 0xD7, m == 0x01: // no length field
			continue
		}
		var lb [2]byte
		if _, err := io.ReadFull(br, lb[:]); err != nil {
			return buf, unexpected(err)
		}
		n := int(lb[0])<<8 | int(lb[1])
		if n < 2 {
			return buf, fmt.Errorf("%w: jpeg segment 0x%02X with length %d", ErrBadFrame, m, n)
		}
		if len(buf)+n > maxBytes {
			return buf, fmt.Errorf("jpeg image over %d bytes: raise the frame size limit", maxBytes)
		}
		buf = append(buf, lb[0], lb[1])
		start := len(buf)
		buf = slices.Grow(buf, n-2)[:start+n-2]
		if _, err := io.ReadFull(br, buf[start:]); err != nil {
			return buf, unexpected(err)
		}
		if m != 0xDA { // not start of scan
			continue
		}
		var err error
		buf, marker, err = readScan(br, buf, maxBytes)
		if err != nil {
			return buf, err
		}
	}
}

// readScan copies entropy-coded data up to the next marker, which it returns.
func readScan(br *bufio.Reader, buf []byte, maxBytes int) ([]byte, byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return buf, 0, unexpected(err)
		}
		if c != 0xFF {
			buf = append(buf, c)
			if len(buf) > maxBytes {
				return buf, 0, fmt.Errorf("jpeg image over %d bytes: raise the frame size limit",
					maxBytes)
			}
			continue
		}
		n, err := br.ReadByte()
		for err == nil && n == 0xFF { // fill bytes
			n, err = br.ReadByte()
		}
		if err != nil {
			return buf, 0, unexpected(err)
		}
		if n == 0x00 || (n >= 0xD0 && n <= 0xD7) { // stuffed byte, restart marker
			buf = append(buf, 0xFF, n)
			continue
		}
		return buf, n, nil
	}
}

// skipToSOI drops bytes up to and including the next FF D8 pair.
func skipToSOI(br *bufio.Reader, maxBytes int) error {
	skipped := 0
	prev := byte(0)
	for {
		c, err := br.ReadByte()
		if err != nil {
			return err // io.EOF between images is the stream's end
		}
		if prev == 0xFF && c == 0xD8 {
			return nil
		}
		prev = c
		skipped++
		if skipped > maxBytes {
			return fmt.Errorf("%w: no JPEG start in %d bytes", errNotMJPEG, maxBytes)
		}
	}
}

func readMarker(br *bufio.Reader) (byte, error) {
	c, err := br.ReadByte()
	if err != nil {
		return 0, err
	}
	if c != 0xFF {
		return 0, fmt.Errorf("%w: jpeg marker expected, got 0x%02X", ErrBadFrame, c)
	}
	for c == 0xFF {
		if c, err = br.ReadByte(); err != nil {
			return 0, err
		}
	}
	return c, nil
}

// unexpected turns an EOF inside an image into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// stallTimeout is how long an HTTP stream may send nothing before it is
// treated as lost.
var stallTimeout = 5 * time.Second

var mjpegClient = &http.Client{Transport: &http.Transport{
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	ResponseHeaderTimeout: 10 * time.Second,
	TLSHandshakeTimeout:   5 * time.Second,
	MaxIdleConnsPerHost:   1,
}}

// OpenMJPEGURL opens an HTTP camera stream: multipart/x-mixed-replace MJPEG,
// or a URL that answers with one JPEG image, fetched again for every frame.
// A stream that sends nothing for 5 s is lost (Read fails).
func OpenMJPEGURL(rawURL string, maxFrameBytes int) (Source, error) {
	if maxFrameBytes <= 0 {
		maxFrameBytes = defaultMaxFrameBytes
	}
	body, ctype, err := getStream(rawURL)
	if err != nil {
		return nil, err
	}
	mt, _, _ := mime.ParseMediaType(ctype)
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		return NewMJPEGReader(body, maxFrameBytes), nil
	case mt == "image/jpeg":
		return &snapshotURL{url: rawURL, first: body, max: maxFrameBytes}, nil
	}
	body.Close()
	return nil, fmt.Errorf("source %s: content type %q: %w", Describe(rawURL), ctype, errNotMJPEG)
}

func getStream(rawURL string) (io.ReadCloser, string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		cancel()
		return nil, "", fmt.Errorf("source %s: %w", Describe(rawURL), err)
	}
	resp, err := mjpegClient.Do(req)
	if err != nil {
		cancel()
		return nil, "", fmt.Errorf("source %s: %w", Describe(rawURL), err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, "", fmt.Errorf("source %s: http status %s", Describe(rawURL), resp.Status)
	}
	return newStallReader(resp.Body, cancel), resp.Header.Get("Content-Type"), nil
}

// stallReader cancels the request when no byte arrives for stallTimeout.
type stallReader struct {
	body   io.ReadCloser
	cancel context.CancelFunc
	timer  *time.Timer
	once   sync.Once
}

func newStallReader(body io.ReadCloser, cancel context.CancelFunc) *stallReader {
	s := &stallReader{body: body, cancel: cancel}
	s.timer = time.AfterFunc(stallTimeout, cancel)
	return s
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.body.Read(p)
	if n > 0 {
		s.timer.Reset(stallTimeout)
	}
	return n, err
}

func (s *stallReader) Close() error {
	var err error
	s.once.Do(func() {
		s.timer.Stop()
		err = s.body.Close()
		s.cancel()
	})
	return err
}

// snapshotURL fetches one JPEG image per Read.
type snapshotURL struct {
	url   string
	first io.ReadCloser
	max   int
	buf   []byte
}

func (s *snapshotURL) Read(f *Frame) error {
	body := s.first
	s.first = nil
	if body == nil {
		var err error
		if body, _, err = getStream(s.url); err != nil {
			return err
		}
	}
	defer body.Close()
	var err error
	s.buf, err = io.ReadAll(io.LimitReader(body, int64(s.max)+1))
	if err != nil {
		return fmt.Errorf("source %s: %w", Describe(s.url), err)
	}
	if len(s.buf) > s.max {
		return fmt.Errorf("source %s: image over %d bytes", Describe(s.url), s.max)
	}
	if err := DecodeJPEG(s.buf, f); err != nil {
		return fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	f.Time = time.Now()
	return nil
}

func (s *snapshotURL) Close() error {
	if s.first != nil {
		return s.first.Close()
	}
	return nil
}
