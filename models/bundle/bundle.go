// Package bundle reads and writes maskwatch's model bundle: the one file a
// device receives. It holds the detector's two TFLite graphs, everything
// needed to run them (classes and colours, input size and normalisation,
// anchors, proposal and detection settings), where the model came from
// (backbone, precision, training metrics, source checkpoint and its
// sha256, creation time), the float weights that a GoMLX engine runs and
// fine-tuning starts from, and a sha256 over all of it.
//
// The layout, integers little-endian:
//
//	offset  size  what
//	0       8     magic "MWBUNDLE"
//	8       4     format version (Version)
//	12      4     header length H
//	16      8     payload length P
//	24      H     header: JSON of Meta and the section table, padded with
//	              spaces so the payload starts on a 16-byte boundary
//	24+H    P     payload: the sections' bytes, each 16-byte aligned
//	24+H+P  32    sha256 of every byte before it
//	...           signature area: zero or more signature blocks, each the
//	              8 bytes "MWSIGNAT", a 4-byte length L and L bytes
//
// A signature block is detached: it signs the bytes up to and including
// the sha256 (Bundle.Signed), so a signature can be added to a bundle, or
// replaced, without touching what it signs. This package only carries the
// blocks; checking them is the business of whoever holds the keys.
package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/x448/float16"

	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/safefile"
	"github.com/maskwatch/maskwatch/models/tflite"
)

// Magic opens every bundle.
const Magic = "MWBUNDLE"

// Version is the format version this package writes and reads.
const Version = 1

// SignatureTag opens each signature block.
const SignatureTag = "MWSIGNAT"

// Limits on what a reader accepts, against damaged or hostile files.
const (
	fixedSize      = 24
	maxHeader      = 16 << 20
	maxSignature   = 1 << 16
	maxSignatures  = 16
	payloadAlign   = 16
	sectionStage1  = "stage1"
	sectionStage2  = "stage2"
	sectionWeights = "weights"
)

// The errors a reader returns, wrapped with the details.
var (
	// ErrNotBundle: the file is not a maskwatch bundle, or is truncated.
	ErrNotBundle = errors.New("not a maskwatch model bundle")
	// ErrChecksum: the sha256 does not match: the file was damaged or changed.
	ErrChecksum = errors.New("model bundle sha256 mismatch")
	// ErrVersion: a bundle of a format version this build does not read.
	ErrVersion = errors.New("model bundle of another format version")
	// ErrInvalid: the bundle's contents do not make a usable model.
	ErrInvalid = errors.New("invalid model bundle")
)

// Class is one foreground class of the detector.
type Class struct {
	Name string `json:"name"`
	// Colour is the RGB colour boxes of the class are drawn in, "#rrggbb".
	Colour string `json:"colour"`
	// Proper is true for the class of masks worn properly.
	Proper bool `json:"proper"`
}

// Stage describes one TFLite graph of the bundle.
type Stage struct {
	Inputs  []tflite.TensorInfo `json:"inputs"`
	Outputs []tflite.TensorInfo `json:"outputs"`
}

// Source says where the model came from.
type Source struct {
	// Checkpoint is the file name it was exported from, and SHA256 that
	// file's sha256 (hex).
	Checkpoint string `json:"checkpoint"`
	SHA256     string `json:"sha256"`
	Epoch      int    `json:"epoch"`
	// Metrics are the checkpoint's training figures (validation accuracy,
	// IoU, mAP, ...), as training recorded them.
	Metrics map[string]any `json:"metrics,omitempty"`
}

// Calibration says how int8 ranges were measured.
type Calibration struct {
	Images int    `json:"images"`
	Source string `json:"source"`
	// Method pools the images' ranges (tflite.Method).
	Method string `json:"method"`
}

// Meta is everything in a bundle besides its graphs and weights.
type Meta struct {
	Created time.Time `json:"created"`
	// Exporter names the program and version that wrote the bundle.
	Exporter  string  `json:"exporter"`
	Backbone  string  `json:"backbone"`
	Precision string  `json:"precision"`
	Classes   []Class `json:"classes"`
	// Model is the detector's configuration: architecture, anchors,
	// RoIAlign, proposal and detection settings, normalisation.
	Model frcnn.Config `json:"model"`
	// Input is how frames become stage 1's input.
	Input  input.Spec `json:"input"`
	Stage1 Stage      `json:"stage1"`
	Stage2 Stage      `json:"stage2"`
	// WeightsType is the storage of the float weights: "float32",
	// "float16", or "" for a bundle without them.
	WeightsType string       `json:"weights_type"`
	Source      Source       `json:"source"`
	Calibration *Calibration `json:"calibration,omitempty"`
}

// Bundle is a model bundle in memory.
type Bundle struct {
	Meta Meta
	// Stage1 and Stage2 are the TFLite models.
	Stage1, Stage2 []byte
	// Weights are the networks' float weights (both stages, batch-norm
	// statistics included), nil when the bundle carries none.
	Weights net.Weights
	// Digest is the sha256 of the bundle (set by Encode and Decode).
	Digest [32]byte
	// Signed are the bytes a signature signs: everything up to and
	// including the sha256 (set by Encode and Decode).
	Signed []byte
	// Signatures are the signature blocks' contents, as found.
	Signatures [][]byte
}

// ShortVersion is the bundle's version as status pages show it: the first
// 12 hex digits of its sha256.
func (b *Bundle) ShortVersion() string { return hex.EncodeToString(b.Digest[:6]) }

type header struct {
	Meta     Meta          `json:"meta"`
	Sections []section     `json:"sections"`
	Weights  []weightEntry `json:"weights,omitempty"`
}

type section struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

type weightEntry struct {
	Name      string `json:"name"`
	Shape     []int  `json:"shape"`
	Trainable bool   `json:"trainable"`
	Offset    int64  `json:"offset"`
}

// Encode writes b as a bundle file's bytes (with b's signature blocks) and
// sets b.Digest and b.Signed. Weights are stored as Meta.WeightsType says.
func Encode(b *Bundle) ([]byte, error) {
	if err := b.Meta.validate(); err != nil {
		return nil, err
	}
	n1, n2, err := b.Meta.Model.Stages()
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	var payload bytes.Buffer
	var h header
	h.Meta = b.Meta
	add := func(name string, data []byte) {
		for payload.Len()%payloadAlign != 0 {
			payload.WriteByte(0)
		}
		h.Sections = append(h.Sections, section{Name: name, Offset: int64(payload.Len()),
			Size: int64(len(data))})
		payload.Write(data)
	}
	add(sectionStage1, b.Stage1)
	add(sectionStage2, b.Stage2)
	if b.Meta.WeightsType != "" {
		data, entries, err := encodeWeights(b.Weights, b.Meta.WeightsType, n1, n2)
		if err != nil {
			return nil, err
		}
		h.Weights = entries
		add(sectionWeights, data)
	}
	head, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("bundle: header: %w", err)
	}
	for (fixedSize+len(head))%payloadAlign != 0 {
		head = append(head, ' ')
	}

	var file bytes.Buffer
	file.WriteString(Magic)
	_ = binary.Write(&file, binary.LittleEndian, uint32(Version))
	_ = binary.Write(&file, binary.LittleEndian, uint32(len(head)))
	_ = binary.Write(&file, binary.LittleEndian, uint64(payload.Len()))
	file.Write(head)
	file.Write(payload.Bytes())
	b.Digest = sha256.Sum256(file.Bytes())
	file.Write(b.Digest[:])
	b.Signed = slices.Clone(file.Bytes())
	for _, sig := range b.Signatures {
		file.Write(SignatureBlock(sig))
	}
	return file.Bytes(), nil
}

// SignatureBlock frames a signature's contents as a block to append to a
// bundle file.
func SignatureBlock(sig []byte) []byte {
	block := make([]byte, 0, 12+len(sig))
	block = append(block, SignatureTag...)
	block = binary.LittleEndian.AppendUint32(block, uint32(len(sig)))
	return append(block, sig...)
}

func encodeWeights(w net.Weights, dtype string, nets ...*net.Net) ([]byte, []weightEntry,
	error) {
	var vars []net.Var
	for _, n := range nets {
		if err := w.Check(n); err != nil {
			return nil, nil, fmt.Errorf("bundle: weights: %w", err)
		}
		vars = append(vars, n.Vars()...)
	}
	width := 4
	if dtype == "float16" {
		width = 2
	}
	total := 0
	for _, v := range vars {
		total += len(w[v.FullName()].Values)
	}
	data := make([]byte, 0, total*width)
	entries := make([]weightEntry, 0, len(vars))
	for _, v := range vars {
		t := w[v.FullName()]
		entries = append(entries, weightEntry{Name: v.FullName(), Shape: slices.Clone(t.Shape),
			Trainable: v.Trainable, Offset: int64(len(data))})
		for _, x := range t.Values {
			if width == 2 {
				data = binary.LittleEndian.AppendUint16(data, float16.Fromfloat32(x).Bits())
			} else {
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(x))
			}
		}
	}
	return data, entries, nil
}

// Decode reads a bundle file's bytes. Damage of any kind (truncation, a
// changed byte, a header that does not fit the payload, a format version
// this build does not read, graphs that are not well-formed TFLite) is an
// error wrapping ErrNotBundle, ErrChecksum, ErrVersion or ErrInvalid; Decode
// never panics.
func Decode(data []byte) (*Bundle, error) {
	if len(data) < len(Magic) || string(data[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: no MWBUNDLE header (a TFLite file or a checkpoint? "+
			"export one with masktrain export)", ErrNotBundle)
	}
	if len(data) < fixedSize+sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes: the file is truncated", ErrNotBundle, len(data))
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != Version {
		return nil, fmt.Errorf("%w: format %d, this build reads format %d: use a maskwatch "+
			"of the bundle's version, or export the model again", ErrVersion, v, Version)
	}
	headLen := uint64(binary.LittleEndian.Uint32(data[12:]))
	payloadLen := binary.LittleEndian.Uint64(data[16:])
	if headLen > maxHeader || payloadLen > uint64(len(data)) ||
		fixedSize+headLen+payloadLen+sha256.Size > uint64(len(data)) {
		return nil, fmt.Errorf("%w: header of %d and payload of %d bytes do not fit in %d "+
			"bytes: the file is truncated", ErrNotBundle, headLen, payloadLen, len(data))
	}
	end := fixedSize + int(headLen) + int(payloadLen)
	if sum := sha256.Sum256(data[:end]); !bytes.Equal(sum[:], data[end:end+sha256.Size]) {
		return nil, fmt.Errorf("%w: the file was damaged or changed after export; copy or "+
			"export it again", ErrChecksum)
	}
	b := &Bundle{Signed: data[:end+sha256.Size]}
	copy(b.Digest[:], data[end:end+sha256.Size])
	var err error
	if b.Signatures, err = parseSignatures(data[end+sha256.Size:]); err != nil {
		return nil, err
	}

	var h header
	if err := json.Unmarshal(data[fixedSize:fixedSize+int(headLen)], &h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrInvalid, err)
	}
	b.Meta = h.Meta
	if err := b.Meta.validate(); err != nil {
		return nil, err
	}
	payload := data[fixedSize+int(headLen) : end]
	sections := map[string][]byte{}
	for _, s := range h.Sections {
		if s.Offset < 0 || s.Size < 0 || s.Offset > int64(len(payload)) ||
			s.Size > int64(len(payload))-s.Offset {
			return nil, fmt.Errorf("%w: section %q (%d bytes at %d) outside the payload of "+
				"%d bytes", ErrInvalid, s.Name, s.Size, s.Offset, len(payload))
		}
		if _, dup := sections[s.Name]; dup {
			return nil, fmt.Errorf("%w: two sections named %q", ErrInvalid, s.Name)
		}
		sections[s.Name] = payload[s.Offset : s.Offset+s.Size]
	}
	for _, st := range []struct {
		name  string
		dst   *[]byte
		stage Stage
	}{{sectionStage1, &b.Stage1, b.Meta.Stage1}, {sectionStage2, &b.Stage2, b.Meta.Stage2}} {
		graph, ok := sections[st.name]
		if !ok {
			return nil, fmt.Errorf("%w: no %s graph", ErrInvalid, st.name)
		}
		summary, err := tflite.Inspect(graph)
		if err != nil {
			return nil, fmt.Errorf("%w: %s graph: %w", ErrInvalid, st.name, err)
		}
		if !sameIO(summary.Inputs, st.stage.Inputs) || !sameIO(summary.Outputs, st.stage.Outputs) {
			return nil, fmt.Errorf("%w: the %s graph's inputs and outputs are not those the "+
				"header lists", ErrInvalid, st.name)
		}
		*st.dst = slices.Clone(graph)
	}
	if b.Meta.WeightsType != "" {
		raw, ok := sections[sectionWeights]
		if !ok {
			return nil, fmt.Errorf("%w: weights of type %s but no weights section", ErrInvalid,
				b.Meta.WeightsType)
		}
		if b.Weights, err = decodeWeights(raw, h.Weights, b.Meta.WeightsType); err != nil {
			return nil, err
		}
		if err := b.checkWeights(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func parseSignatures(rest []byte) ([][]byte, error) {
	var sigs [][]byte
	for len(rest) > 0 {
		if len(rest) < 12 || string(rest[:8]) != SignatureTag {
			return nil, fmt.Errorf("%w: %d bytes after the sha256 that are no signature "+
				"block", ErrNotBundle, len(rest))
		}
		n := binary.LittleEndian.Uint32(rest[8:])
		if n > maxSignature || int(n) > len(rest)-12 || len(sigs) == maxSignatures {
			return nil, fmt.Errorf("%w: signature block of %d bytes does not fit",
				ErrNotBundle, n)
		}
		sigs = append(sigs, slices.Clone(rest[12:12+n]))
		rest = rest[12+n:]
	}
	return sigs, nil
}

func decodeWeights(raw []byte, entries []weightEntry, dtype string) (net.Weights, error) {
	width := 4
	if dtype == "float16" {
		width = 2
	}
	w := net.Weights{}
	for _, e := range entries {
		size := 1
		for _, d := range e.Shape {
			if d < 0 || d > 1<<28 || size > (1<<28)/max(d, 1) {
				return nil, fmt.Errorf("%w: weight %q of shape %v", ErrInvalid, e.Name, e.Shape)
			}
			size *= d
		}
		if e.Offset < 0 || e.Offset > int64(len(raw)) ||
			int64(size*width) > int64(len(raw))-e.Offset {
			return nil, fmt.Errorf("%w: weight %q (%d values at %d) outside the %d bytes of "+
				"weights", ErrInvalid, e.Name, size, e.Offset, len(raw))
		}
		if _, dup := w[e.Name]; dup {
			return nil, fmt.Errorf("%w: two weights named %q", ErrInvalid, e.Name)
		}
		values := make([]float32, size)
		at := raw[e.Offset:]
		for i := range values {
			if width == 2 {
				values[i] = float16.Frombits(binary.LittleEndian.Uint16(at[2*i:])).Float32()
			} else {
				values[i] = math.Float32frombits(binary.LittleEndian.Uint32(at[4*i:]))
			}
		}
		w[e.Name] = net.Tensor{Shape: slices.Clone(e.Shape), Values: values}
	}
	return w, nil
}

// checkWeights makes sure the weights fit the networks the config describes.
func (b *Bundle) checkWeights() error {
	n1, n2, err := b.Meta.Model.Stages()
	if err != nil {
		return fmt.Errorf("%w: model config: %w", ErrInvalid, err)
	}
	for _, n := range []*net.Net{n1, n2} {
		if err := b.Weights.Check(n); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return nil
}

func sameIO(a, b []tflite.TensorInfo) bool {
	return slices.EqualFunc(a, b, func(x, y tflite.TensorInfo) bool {
		return x.Name == y.Name && x.Type == y.Type && slices.Equal(x.Shape, y.Shape) &&
			x.Scale == y.Scale && x.ZeroPoint == y.ZeroPoint
	})
}

// checkIO checks the stages' inputs and outputs against the model config:
// the channels the post-processing relies on, and the precision's types.
func (m *Meta) checkIO() error {
	cfg := m.Model
	a, k, c := cfg.Anchors.PerCell(), cfg.NumClasses(), cfg.NeckChannels
	want := []struct {
		what     string
		info     tflite.TensorInfo
		rank     int
		channels int
	}{
		{"stage 1 input", m.Stage1.Inputs[0], 4, 3},
		{"stage 1 feature", m.Stage1.Outputs[0], 4, c},
		{"stage 1 objectness", m.Stage1.Outputs[1], 4, a},
		{"stage 1 deltas", m.Stage1.Outputs[2], 4, 4 * a},
		{"stage 2 input", m.Stage2.Inputs[0], 4, c},
		{"stage 2 class logits", m.Stage2.Outputs[0], 2, k},
		{"stage 2 deltas", m.Stage2.Outputs[1], 2, 4 * k},
	}
	wantType := "float32"
	if m.Precision == "int8" {
		wantType = "int8"
	}
	for _, w := range want {
		s := w.info.Shape
		if len(s) != w.rank || s[len(s)-1] != w.channels {
			return fmt.Errorf("%w: %s of shape %v: want rank %d and %d channels", ErrInvalid,
				w.what, s, w.rank, w.channels)
		}
		if w.info.Type != wantType {
			return fmt.Errorf("%w: %s of type %s in a %s bundle", ErrInvalid, w.what,
				w.info.Type, m.Precision)
		}
		if wantType == "int8" && !(w.info.Scale > 0) {
			return fmt.Errorf("%w: %s has int8 scale %v", ErrInvalid, w.what, w.info.Scale)
		}
	}
	if s := m.Stage2.Inputs[0].Shape; s[1] != cfg.RoIAlign.OutH || s[2] != cfg.RoIAlign.OutW {
		return fmt.Errorf("%w: stage 2 input %v: want %dx%d RoIs", ErrInvalid, s,
			cfg.RoIAlign.OutH, cfg.RoIAlign.OutW)
	}
	return nil
}

func (m *Meta) validate() error {
	if err := m.Model.Validate(); err != nil {
		return fmt.Errorf("%w: model config: %w", ErrInvalid, err)
	}
	if err := m.Input.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := tflite.ParsePrecision(m.Precision); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if m.Backbone != string(m.Model.Backbone) {
		return fmt.Errorf("%w: backbone %q, the model's is %q", ErrInvalid, m.Backbone,
			m.Model.Backbone)
	}
	if len(m.Classes) != len(m.Model.Classes) {
		return fmt.Errorf("%w: %d classes listed, the model has %d", ErrInvalid,
			len(m.Classes), len(m.Model.Classes))
	}
	for i, c := range m.Classes {
		if c.Name != m.Model.Classes[i] {
			return fmt.Errorf("%w: class %d is %q, the model's is %q", ErrInvalid, i, c.Name,
				m.Model.Classes[i])
		}
		if _, err := ParseColour(c.Colour); err != nil {
			return fmt.Errorf("%w: class %q: %w", ErrInvalid, c.Name, err)
		}
	}
	switch m.WeightsType {
	case "", "float32", "float16":
	default:
		return fmt.Errorf("%w: weights type %q: want float32, float16 or none", ErrInvalid,
			m.WeightsType)
	}
	for i, s := range []Stage{m.Stage1, m.Stage2} {
		if len(s.Inputs) != 1 || len(s.Outputs) == 0 {
			return fmt.Errorf("%w: stage %d has %d inputs and %d outputs", ErrInvalid, i+1,
				len(s.Inputs), len(s.Outputs))
		}
	}
	if len(m.Stage1.Outputs) != 3 || len(m.Stage2.Outputs) != 2 {
		return fmt.Errorf("%w: stage 1 has %d outputs (want feature, objectness, deltas) "+
			"and stage 2 %d (want class logits, deltas)", ErrInvalid, len(m.Stage1.Outputs),
			len(m.Stage2.Outputs))
	}
	return m.checkIO()
}

// ParseColour reads "#rrggbb".
func ParseColour(s string) ([3]uint8, error) {
	var c [3]uint8
	if len(s) != 7 || s[0] != '#' {
		return c, fmt.Errorf("colour %q: want #rrggbb", s)
	}
	raw, err := hex.DecodeString(s[1:])
	if err != nil {
		return c, fmt.Errorf("colour %q: want #rrggbb", s)
	}
	copy(c[:], raw)
	return c, nil
}

// Read reads and checks a bundle file.
func Read(path string) (*Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	b, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	return b, nil
}

// Write encodes b and writes it to path atomically (a temporary file beside
// it, synced and renamed), so path is always the old bundle or the new one.
func Write(path string, b *Bundle) error {
	data, err := Encode(b)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := safefile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}
