package edge

import (
	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/box"
)

// faceMerger keeps one face where the detector found the same face under
// both labels: the detector's NMS runs within each class, as torchvision's
// does and as mAP wants, but a person at a door has one face and one verdict.
// Its scratch buffers make it allocation-free once warm; it is not safe for
// concurrent use.
type faceMerger struct {
	boxes  []box.Box
	scores []float64
	keep   []int
	out    []detect.Face
}

// faces returns the faces left after class-agnostic NMS at iou, highest score
// first. The result lives in the merger's buffer until the next call.
func (m *faceMerger) faces(faces []detect.Face, iou float64) []detect.Face {
	if len(faces) < 2 {
		return faces
	}
	m.boxes, m.scores = m.boxes[:0], m.scores[:0]
	for _, f := range faces {
		m.boxes = append(m.boxes, f.Box)
		m.scores = append(m.scores, f.Score)
	}
	m.keep = box.NMS(m.keep[:0], m.boxes, m.scores, iou)
	m.out = m.out[:0]
	for _, i := range m.keep {
		m.out = append(m.out, faces[i])
	}
	return m.out
}
