package deploy

import (
	"fmt"
	"math"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
)

// CheckReport says what a self-check saw.
type CheckReport struct {
	Frames int `json:"frames"`
	// RunningFaces and NewFaces count the faces scored at least MinScore by
	// the model that was running when the frames were stored, and by the
	// model checked.
	RunningFaces int     `json:"running_faces"`
	NewFaces     int     `json:"new_faces"`
	MsPerFrame   float64 `json:"ms_per_frame"`
}

// SelfCheck runs d on the stored frames (a mid-grey frame when there are
// none) and fails when a detection fails, a face has a score outside
// [0, 1] or a box that is not finite, or when the frames on which the
// running model found faces (scored at least minScore, so shown) get none
// from d: a model that would show nothing where the last one showed faces
// is broken (weights lost, a class head that scores every box alike) far
// more often than it is right. Frames on which the running model found
// nothing only check that d runs.
func SelfCheck(d detect.Detector, frames []CheckFrame, minScore float64) (CheckReport, error) {
	if len(frames) == 0 {
		grey := detect.Frame{Pix: make([]byte, 640*480*3), Width: 640, Height: 480,
			Stride: 640 * 3}
		for i := range grey.Pix {
			grey.Pix[i] = 128
		}
		frames = []CheckFrame{{Frame: grey}}
	}
	var rep CheckReport
	start := time.Now()
	withFaces := 0
	for i, c := range frames {
		faces, err := d.Detect(c.Frame)
		if err != nil {
			return rep, fmt.Errorf("stored frame %d of %d: %w", i+1, len(frames), err)
		}
		rep.Frames++
		for _, f := range faces {
			if !(f.Score >= 0 && f.Score <= 1) {
				return rep, fmt.Errorf("stored frame %d: a face scored %v, outside 0 to 1",
					i+1, f.Score)
			}
			b := f.Box
			if !finite(b.X1) || !finite(b.Y1) || !finite(b.X2) || !finite(b.Y2) {
				return rep, fmt.Errorf("stored frame %d: a face with box %+v", i+1, b)
			}
		}
		running := count(c.Faces, minScore)
		rep.RunningFaces += running
		if running > 0 {
			withFaces++
			rep.NewFaces += count(faces, minScore)
		}
	}
	rep.MsPerFrame = float64(time.Since(start).Microseconds()) / 1000 / float64(rep.Frames)
	if withFaces > 0 && rep.NewFaces == 0 {
		return rep, fmt.Errorf("the new model finds no face on the %d stored frames where "+
			"the running one found %d: its weights or classes look broken", withFaces,
			rep.RunningFaces)
	}
	return rep, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func count(faces []detect.Face, minScore float64) int {
	n := 0
	for _, f := range faces {
		if f.Score >= minScore {
			n++
		}
	}
	return n
}
