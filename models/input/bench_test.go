package input

import "testing"

// BenchmarkResize640x480 is the letterbox resize of a camera frame to the
// default 320x256 input, in ms per frame.
func BenchmarkResize640x480(b *testing.B) {
	w, h := 640, 480
	src := Source{Pix: make([]byte, w*h*3), Width: w, Height: h, Stride: 3 * w, BGR: true}
	for i := range src.Pix {
		src.Pix[i] = byte(i * 7)
	}
	p, err := imagenet.Plan(w, h)
	if err != nil {
		b.Fatal(err)
	}
	var r Resizer
	out, _ := r.Resize(nil, src, p, imagenet.PadColour())
	b.ResetTimer()
	for range b.N {
		out, _ = r.Resize(out, src, p, imagenet.PadColour())
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/frame")
}
