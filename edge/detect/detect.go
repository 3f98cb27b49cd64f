// Package detect runs maskwatch's face-mask detector on camera frames. One
// interface, Detector, has two engines that read the same model bundle:
// TensorFlow Lite (go-tflite, cgo) and GoMLX (pure Go, for builds without
// cgo). Both share the box post-processing of package models/box with
// training, so the edge and the trainer draw the same boxes.
package detect

import (
	"time"

	"github.com/maskwatch/maskwatch/models/box"
)

// Frame is one camera image: 8-bit pixels in OpenCV's BGR order, row by row,
// Stride bytes from one row to the next (at least 3*Width). A Frame does not
// own Pix: a Detector reads it during Detect and keeps no reference.
type Frame struct {
	Pix           []byte
	Width, Height int
	Stride        int
}

// Face is one detected face, in frame pixels.
type Face struct {
	Box box.Box
	// Class is the index of Label in Info.Classes.
	Class int
	Label string
	// Proper is true for a mask worn properly (drawn green).
	Proper bool
	Score  float64
}

// Timings are how long the stages of the last Detect took.
type Timings struct {
	Preprocess time.Duration // resize, letterbox, normalise or quantise the frame
	Stage1     time.Duration // backbone, neck and RPN on the frame
	Stage2     time.Duration // box head on the RoIs (RoIAlign included)
	Post       time.Duration // proposals, box decoding and NMS in Go
}

// Total is the sum of the stages.
func (t Timings) Total() time.Duration {
	return t.Preprocess + t.Stage1 + t.Stage2 + t.Post
}

// Info describes the model a Detector runs, for status pages and logs.
type Info struct {
	Engine    string   // "tflite" or "gomlx"
	Backbone  string   // "mobilenetv3" or "resnet50"
	Precision string   // "fp32", "fp16" or "int8"
	Version   string   // the bundle's version (its sha256, shortened)
	Classes   []string // foreground class names, as Face.Class indexes them
	Path      string   // the file it was read from
}

// Detector finds faces in frames. Implementations are not safe for
// concurrent use: one goroutine calls Detect at a time.
type Detector interface {
	// Detect returns the faces in f, best score first.
	Detect(f Frame) ([]Face, error)
	// LastTimings returns the stage timings of the last Detect.
	LastTimings() Timings
	Info() Info
	// Close releases the engine's native resources; the Detector is unusable after.
	Close() error
}
