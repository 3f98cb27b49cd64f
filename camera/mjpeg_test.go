package camera

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// seedJPEGs returns the bytes of the four seed sample photographs.
func seedJPEGs(t *testing.T) [][]byte {
	t.Helper()
	dir := fixture.Path(t, "seed-samples")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) != 4 {
		t.Fatalf("%d seed samples, want 4", len(out))
	}
	return out
}

// checkSameImage compares a frame with the JPEG it came from, decoded by the
// standard library and converted pixel by pixel with image/color.
func checkSameImage(t *testing.T, f *Frame, data []byte) {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if f.Width != b.Dx() || f.Height != b.Dy() {
		t.Fatalf("frame %dx%d, image %dx%d", f.Width, f.Height, b.Dx(), b.Dy())
	}
	for y := 0; y < f.Height; y++ {
		for x := 0; x < f.Width; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := y*f.Stride + 3*x
			got := [3]byte{f.Pix[i+2], f.Pix[i+1], f.Pix[i]}
			want := [3]byte{byte(r >> 8), byte(g >> 8), byte(bl >> 8)}
			if got != want {
				t.Fatalf("pixel (%d,%d) = RGB %v, want %v", x, y, got, want)
			}
		}
	}
}

func TestMJPEGReaderStream(t *testing.T) {
	imgs := seedJPEGs(t)
	var stream bytes.Buffer
	for i, b := range imgs {
		// What sits between images in a multipart response, and noise.
		stream.WriteString("--frame\r\nContent-Type: image/jpeg\r\n\r\n")
		if i == 1 {
			b = withThumbnailEOI(b)
		}
		stream.Write(b)
		stream.WriteString("\r\n")
	}
	r := NewMJPEGReader(io.NopCloser(&stream), 0)
	var f Frame
	for i, b := range imgs {
		if err := r.Read(&f); err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		checkSameImage(t, &f, b)
	}
	if err := r.Read(&f); err != io.EOF {
		t.Fatalf("after the last image: %v, want io.EOF", err)
	}
}

// withThumbnailEOI inserts, after the start of image, an APP1 segment whose
// payload holds an end-of-image pair, as EXIF thumbnails do.
func withThumbnailEOI(b []byte) []byte {
	payload := []byte("Exif\x00\x00\xFF\xD8\xFF\xD9thumb")
	seg := []byte{0xFF, 0xE1, 0, byte(len(payload) + 2)}
	out := append([]byte{}, b[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, b[2:]...)
}

func TestMJPEGReaderBadInput(t *testing.T) {
	imgs := seedJPEGs(t)

	truncated := imgs[0][:len(imgs[0])/2]
	r := NewMJPEGReader(io.NopCloser(bytes.NewReader(truncated)), 0)
	var f Frame
	if err := r.Read(&f); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated image: %v, want io.ErrUnexpectedEOF", err)
	}

	r = NewMJPEGReader(io.NopCloser(bytes.NewReader(imgs[0])), 1000)
	if err := r.Read(&f); err == nil || errors.Is(err, ErrBadFrame) {
		t.Errorf("image over the limit: %v, want a limit error", err)
	}

	// A well-formed JPEG shell with a broken scan decodes to an error, and
	// the stream goes on with the next image.
	broken := append([]byte{}, imgs[0]...)
	sos := bytes.Index(broken, []byte{0xFF, 0xDA})
	for i := sos + 20; i < sos+60; i++ {
		broken[i] = 0x00
	}
	copy(broken[sos+2:], []byte{0, 3, 9}) // impossible scan header
	var stream bytes.Buffer
	stream.Write(broken)
	stream.Write(imgs[1])
	r = NewMJPEGReader(io.NopCloser(&stream), 0)
	if err := r.Read(&f); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("broken image: %v, want ErrBadFrame", err)
	}
	if err := r.Read(&f); err != nil {
		t.Fatalf("image after a broken one: %v", err)
	}
	checkSameImage(t, &f, imgs[1])

	r = NewMJPEGReader(io.NopCloser(bytes.NewReader(bytes.Repeat([]byte("x"), 5000))), 1000)
	if err := r.Read(&f); !errors.Is(err, errNotMJPEG) {
		t.Errorf("text instead of MJPEG: %v, want errNotMJPEG", err)
	}
}

func TestStdinSource(t *testing.T) {
	imgs := seedJPEGs(t)
	src, err := Open("-", Options{Stdin: bytes.NewReader(bytes.Join(imgs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f Frame
	for i := range imgs {
		if err := src.Read(&f); err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		checkSameImage(t, &f, imgs[i])
	}
	if err := src.Read(&f); err != io.EOF {
		t.Fatalf("end of stdin: %v, want io.EOF", err)
	}
}

func TestFolderSource(t *testing.T) {
	src, err := Open(fixture.Path(t, "seed-samples"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	imgs := seedJPEGs(t)
	var f Frame
	for i := range imgs {
		if err := src.Read(&f); err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		checkSameImage(t, &f, imgs[i])
	}
	if err := src.Read(&f); err != io.EOF {
		t.Fatalf("after the last image: %v, want io.EOF", err)
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.jpg"), []byte("not a jpeg"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.jpg"), imgs[2], 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	src, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Read(&f); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("a.jpg: %v, want ErrBadFrame", err)
	}
	if err := src.Read(&f); err != nil {
		t.Fatalf("b.jpg after a bad file: %v", err)
	}
	checkSameImage(t, &f, imgs[2])

	if _, err := Open(t.TempDir(), Options{}); err == nil {
		t.Error("an empty folder opened")
	}
}

func TestToBGRPaths(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(0, 0, 3, 2))
	rgba.Set(1, 1, color.RGBA{10, 20, 30, 255})
	gray := image.NewGray(image.Rect(0, 0, 3, 2))
	gray.Set(1, 1, color.Gray{77})
	pal := image.NewPaletted(image.Rect(0, 0, 3, 2),
		color.Palette{color.Black, color.RGBA{10, 20, 30, 255}})
	pal.SetColorIndex(1, 1, 1)
	for _, tc := range []struct {
		name string
		img  image.Image
		want [3]byte
	}{
		{"rgba", rgba, [3]byte{30, 20, 10}},
		{"gray", gray, [3]byte{77, 77, 77}},
		{"paletted", pal, [3]byte{30, 20, 10}},
	} {
		var f Frame
		ToBGR(tc.img, &f)
		i := f.Stride + 3
		if got := [3]byte{f.Pix[i], f.Pix[i+1], f.Pix[i+2]}; got != tc.want {
			t.Errorf("%s: BGR %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestClassifyAndDescribe(t *testing.T) {
	dir := t.TempDir()
	for spec, want := range map[string]Kind{
		"-":                      KindStdin,
		"0":                      KindDevice,
		"/dev/video2":            KindDevice,
		"rtsp://cam/stream":      KindURL,
		"http://10.0.0.2/mjpg":   KindURL,
		"videotestsrc ! appsink": KindPipeline,
		dir:                      KindFolder,
		"/some/where/clip.mp4":   KindFile,
		"libcamerasrc ! video/x-raw,width=640 ! videoconvert ! appsink": KindPipeline,
	} {
		if got := Classify(spec); got != want {
			t.Errorf("Classify(%q) = %v, want %v", spec, got, want)
		}
	}
	if got := Describe("rtsp://admin:secret@cam/stream"); got != "rtsp://***@cam/stream" {
		t.Errorf("Describe hides credentials as %q", got)
	}
	if _, err := Open(filepath.Join(dir, "missing.mp4"), Options{}); err == nil {
		t.Error("a missing file opened")
	}
}
