package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite"
)

// tinyBundle is a valid bundle without float weights whose two graphs are
// small stand-ins with the inputs and outputs a detector's stages have.
func tinyBundle(t testing.TB) *Bundle {
	t.Helper()
	cfg := frcnn.DefaultConfig(net.MobileNetV3Large)
	cfg.NeckChannels = 8
	a, k := cfg.Anchors.PerCell(), cfg.NumClasses()

	b1 := net.NewBuilder()
	x := b1.Input("image", 3)
	f := b1.Conv("neck/smooth", b1.Conv("backbone/stem", x, 8, 3, 16, 1, true), 8, 1, 1, 1, true)
	b1.Output(f)
	b1.Output(b1.Conv("rpn/objectness", f, a, 1, 1, 1, true))
	b1.Output(b1.Conv("rpn/deltas", f, 4*a, 1, 1, 1, true))
	n1, err := b1.Net()
	if err != nil {
		t.Fatal(err)
	}
	b2 := net.NewBuilder()
	r := b2.Input("rois", 8)
	flat := b2.Flatten("head/flatten", r, 7*7*8)
	b2.Output(b2.Dense("head/class", flat, k, ""))
	b2.Output(b2.Dense("head/box", flat, 4*k, ""))
	n2, err := b2.Net()
	if err != nil {
		t.Fatal(err)
	}
	w := net.Weights{}
	for _, n := range []*net.Net{n1, n2} {
		for i, v := range n.Vars() {
			size := 1
			for _, d := range v.Shape {
				size *= d
			}
			values := make([]float32, size)
			for j := range values {
				values[j] = float32((j+i)%7-3) / 10
			}
			w[v.FullName()] = net.Tensor{Shape: v.Shape, Values: values}
		}
	}
	g1, err := tflite.Write(n1, w, tflite.Options{Precision: tflite.FP32,
		InputShapes: [][]int{{1, 32, 32, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := tflite.Write(n2, w, tflite.Options{Precision: tflite.FP32,
		InputShapes: [][]int{{4, 7, 7, 8}}})
	if err != nil {
		t.Fatal(err)
	}
	return &Bundle{
		Meta: Meta{
			Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Exporter: "test",
			Backbone: string(cfg.Backbone), Precision: "fp32",
			Classes: []Class{{Name: "proper", Colour: "#00c000", Proper: true},
				{Name: "not_proper", Colour: "#e00000"}},
			Model:  cfg,
			Input:  input.Spec{MaxSide: 320, Multiple: 32, Mean: cfg.Mean, Std: cfg.Std},
			Stage1: Stage{Inputs: g1.Inputs, Outputs: g1.Outputs},
			Stage2: Stage{Inputs: g2.Inputs, Outputs: g2.Outputs},
			Source: Source{Checkpoint: "best.ckpt", SHA256: strings.Repeat("ab", 32), Epoch: 3,
				Metrics: map[string]any{"val_accuracy": 0.9}},
		},
		Stage1: g1.Model, Stage2: g2.Model,
	}
}

// reseal recomputes the sha256 of a bundle file whose framing is intact,
// so that a test reaches the checks behind it.
func reseal(data []byte) []byte {
	if len(data) < fixedSize+sha256.Size {
		return data
	}
	end := uint64(fixedSize) + uint64(binary.LittleEndian.Uint32(data[12:])) +
		binary.LittleEndian.Uint64(data[16:])
	if end+sha256.Size > uint64(len(data)) {
		return data
	}
	out := slices.Clone(data)
	sum := sha256.Sum256(out[:end])
	copy(out[end:], sum[:])
	return out
}

func TestRoundTrip(t *testing.T) {
	b := tinyBundle(t)
	b.Signatures = [][]byte{[]byte("signature one"), {}}
	raw, err := Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Stage1, b.Stage1) || !bytes.Equal(back.Stage2, b.Stage2) {
		t.Error("graphs changed in the round trip")
	}
	if back.Digest != b.Digest || !bytes.Equal(back.Signed, b.Signed) {
		t.Error("digest or signed bytes changed in the round trip")
	}
	if len(back.Signatures) != 2 || string(back.Signatures[0]) != "signature one" {
		t.Errorf("signatures %q", back.Signatures)
	}
	if back.Meta.Source.Metrics["val_accuracy"] != 0.9 || back.Meta.Model.NeckChannels != 8 ||
		!back.Meta.Created.Equal(b.Meta.Created) || back.Weights != nil {
		t.Errorf("meta changed: %+v", back.Meta)
	}
	if got := back.ShortVersion(); len(got) != 12 {
		t.Errorf("short version %q", got)
	}
	// The payload is 16-byte aligned, for graphs read in place.
	head := binary.LittleEndian.Uint32(raw[12:])
	if (fixedSize+head)%16 != 0 {
		t.Errorf("payload at %d, not 16-byte aligned", fixedSize+head)
	}
	// Signature blocks sign the bytes before them: dropping them leaves a
	// valid bundle of the same digest.
	plain, err := Decode(back.Signed)
	if err != nil || plain.Digest != b.Digest || len(plain.Signatures) != 0 {
		t.Errorf("signed part alone: %v", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "model.mwb")
	if err := Write(path, tinyBundle(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files beside the bundle, want none", len(entries)-1)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing.mwb")); err == nil {
		t.Error("a missing file was read")
	}
}

func TestRefusesDamage(t *testing.T) {
	raw, err := Encode(tinyBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	headLen := int(binary.LittleEndian.Uint32(raw[12:]))
	payload := fixedSize + headLen
	flip := func(at int) []byte {
		out := slices.Clone(raw)
		out[at] ^= 0x40
		return out
	}
	setVersion := func(v uint32) []byte {
		out := slices.Clone(raw)
		binary.LittleEndian.PutUint32(out[8:], v)
		return out
	}
	// header rebuilds the file with an edited header and a right sha256.
	header := func(edit func(string) string) []byte {
		h := []byte(edit(string(raw[fixedSize:payload])))
		for (fixedSize+len(h))%payloadAlign != 0 {
			h = append(h, ' ')
		}
		out := slices.Clone(raw[:fixedSize])
		binary.LittleEndian.PutUint32(out[12:], uint32(len(h)))
		out = append(append(out, h...), raw[payload:]...)
		return reseal(out)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
		text string
	}{
		{"empty", nil, ErrNotBundle, "MWBUNDLE"},
		{"a TFLite file", tinyBundle(t).Stage1, ErrNotBundle, "masktrain export"},
		{"truncated header", raw[:40], ErrNotBundle, "truncated"},
		{"truncated payload", raw[:payload+100], ErrNotBundle, "truncated"},
		{"no sha256", raw[:len(raw)-sha256.Size], ErrNotBundle, ""},
		{"last byte lost", raw[:len(raw)-1], ErrNotBundle, ""},
		{"changed header byte", flip(fixedSize + 10), ErrChecksum, "export it again"},
		{"changed graph byte", flip(payload + 200), ErrChecksum, ""},
		{"changed sha256", flip(len(raw) - 1), ErrChecksum, ""},
		{"format 2", setVersion(2), ErrVersion, "format 2"},
		{"format 0", setVersion(0), ErrVersion, ""},
		{"garbage after", append(slices.Clone(raw), "junk"...), ErrNotBundle, "signature"},
		{"oversized signature", append(slices.Clone(raw),
			SignatureBlock(make([]byte, maxSignature+1))...), ErrNotBundle, "signature"},
		{"header not JSON", header(func(h string) string { return "[" + h[1:] }),
			ErrInvalid, "header"},
		{"section outside", header(func(h string) string {
			return strings.Replace(h, `"offset":0`, `"offset":99999999`, 1)
		}), ErrInvalid, "outside"},
		{"unknown precision", header(func(h string) string {
			return strings.Replace(h, `"precision":"fp32"`, `"precision":"fp64"`, 1)
		}), ErrInvalid, "fp64"},
		{"bad colour", header(func(h string) string {
			return strings.Replace(h, `#00c000`, `#00c00x`, 1)
		}), ErrInvalid, "colour"},
		{"weights promised", header(func(h string) string {
			return strings.Replace(h, `"weights_type":""`, `"weights_type":"float32"`, 1)
		}), ErrInvalid, "weights"},
		{"graph damaged", reseal(flip(payload + 6)), ErrInvalid, "stage1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Decode(tc.data)
			if err == nil || b != nil {
				t.Fatalf("accepted (%v)", err)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not say %q", err, tc.text)
			}
		})
	}
}

func TestEncodeRefusesInvalidMeta(t *testing.T) {
	b := tinyBundle(t)
	b.Meta.Classes = b.Meta.Classes[:1]
	if _, err := Encode(b); !errors.Is(err, ErrInvalid) {
		t.Errorf("one class of two encoded: %v", err)
	}
	b = tinyBundle(t)
	b.Meta.Stage1.Outputs[1].Shape = []int{1, 2, 2, 3}
	if _, err := Encode(b); !errors.Is(err, ErrInvalid) {
		t.Errorf("objectness of 3 channels for 8 anchors encoded: %v", err)
	}
}

// FuzzDecode feeds damaged bundles to Decode, as they are and with their
// sha256 recomputed (so the header and section checks see them too):
// Decode must return an error or a bundle, never panic.
func FuzzDecode(f *testing.F) {
	raw, err := Encode(tinyBundle(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range [][]byte{data, reseal(data)} {
			b, err := Decode(d)
			if (b == nil) == (err == nil) {
				t.Fatalf("bundle %v and error %v", b != nil, err)
			}
		}
	})
}
