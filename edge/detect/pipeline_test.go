package detect

import (
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/tflite"
)

// TestDetectorContract checks what callers rely on, with the GoMLX engine
// (in every build): faces in frame pixels with their labels, timings,
// Info, bad frames refused with an error, Close.
func TestDetectorContract(t *testing.T) {
	cfg, w := randomDetector(t, 1)
	b := exportBundle(t, cfg, w, tflite.FP16, nil)
	d, err := OpenBundle(b, "random.mwb", Options{Engine: EngineGoMLX, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	info := d.Info()
	if info.Engine != EngineGoMLX || info.Backbone != "mobilenetv3" || info.Precision != "fp16" ||
		len(info.Version) != 12 || info.Path != "random.mwb" ||
		strings.Join(info.Classes, ",") != "proper,not_proper" {
		t.Errorf("info %+v", info)
	}
	f := frame640(t)
	faces, err := d.Detect(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(faces) == 0 {
		t.Fatal("no faces")
	}
	for i, face := range faces {
		bx := face.Box
		if bx.X1 < 0 || bx.Y1 < 0 || bx.X2 > 640 || bx.Y2 > 480 || bx.Empty() {
			t.Errorf("face %d: box %+v outside the 640x480 frame", i, bx)
		}
		if face.Label != info.Classes[face.Class] || face.Proper != (face.Class == 0) {
			t.Errorf("face %d: class %d, label %q, proper %v", i, face.Class, face.Label,
				face.Proper)
		}
		if i > 0 && face.Score > faces[i-1].Score {
			t.Errorf("face %d scores above the one before it", i)
		}
	}
	tm := d.LastTimings()
	if tm.Preprocess <= 0 || tm.Stage1 <= 0 || tm.Stage2 <= 0 || tm.Post <= 0 ||
		tm.Total() != tm.Preprocess+tm.Stage1+tm.Stage2+tm.Post {
		t.Errorf("timings %+v", tm)
	}

	for name, bad := range map[string]Frame{
		"empty":        {},
		"short pixels": {Pix: make([]byte, 10), Width: 640, Height: 480, Stride: 1920},
		"small stride": {Pix: make([]byte, 640*480*3), Width: 640, Height: 480, Stride: 100},
		"huge":         {Pix: make([]byte, 3), Width: 1 << 20, Height: 1, Stride: 3 << 20},
	} {
		if _, err := d.Detect(bad); err == nil {
			t.Errorf("%s frame: no error", name)
		}
	}
	// A frame of one pixel is a frame.
	if _, err := d.Detect(Frame{Pix: []byte{1, 2, 3}, Width: 1, Height: 1, Stride: 3}); err != nil {
		t.Errorf("1x1 frame: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Detect(f); err == nil {
		t.Error("a closed detector detected")
	}
}
