package jpegenc

import (
	"bytes"
	"image/jpeg"
	"math"
	"testing"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/train/fixture"
)

func photo(t testing.TB) *camera.Frame {
	t.Helper()
	src, err := camera.Open(fixture.Path(t, "facemask", "val", "images"), camera.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f camera.Frame
	if err := src.Read(&f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// TestEncodersRoundTrip: both encoders write JPEGs that decode to the frame,
// within what compression at quality 90 loses.
func TestEncodersRoundTrip(t *testing.T) {
	f := photo(t)
	for _, e := range []Encoder{New(), NewPure()} {
		var buf []byte
		var err error
		for i := 0; i < 2; i++ { // the second call reuses buf
			if buf, err = e.Encode(buf, f, 90); err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
		}
		img, err := jpeg.Decode(bytes.NewReader(buf))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		var back camera.Frame
		camera.ToBGR(img, &back)
		if back.Width != f.Width || back.Height != f.Height {
			t.Fatalf("%s: %dx%d, want %dx%d", e.Name(), back.Width, back.Height,
				f.Width, f.Height)
		}
		var se float64
		for i := range f.Pix[:f.Stride*f.Height] {
			d := float64(f.Pix[i]) - float64(back.Pix[i])
			se += d * d
		}
		psnr := 10 * math.Log10(255*255/(se/float64(f.Stride*f.Height)))
		if psnr < 30 {
			t.Errorf("%s: PSNR %.1f dB at quality 90", e.Name(), psnr)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	f := photo(b)
	for _, e := range []Encoder{New(), NewPure()} {
		b.Run(e.Name(), func(b *testing.B) {
			var buf []byte
			for i := 0; i < b.N; i++ {
				buf, _ = e.Encode(buf, f, 80)
			}
		})
	}
}
