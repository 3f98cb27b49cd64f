package frcnn

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/maskwatch/maskwatch/models/safefile"
)

// A checkpoint is one file: a magic line, the length of a JSON header, the
// header (format, config, caller's metadata, and the variables' names,
// shapes and places), the variables' bytes little-endian, and a sha256 of
// everything before it. Written to a temporary file and renamed, it is
// either the old file or the new one, never half of each.
const (
	checkpointMagic   = "MASKWATCH-CHECKPOINT\n"
	checkpointVersion = 1
	// maxHeader bounds the JSON header a reader accepts.
	maxHeader = 16 << 20
)

// Meta is what a checkpoint records besides the weights.
type Meta struct {
	// Epoch is the number of whole epochs trained.
	Epoch int `json:"epoch"`
	// Step is the optimizer's global step.
	Step int64 `json:"step"`
	// Values are free-form figures (metrics, options) for people and tools.
	Values map[string]any `json:"values,omitempty"`
}

type checkpointHeader struct {
	Format    int             `json:"format"`
	Config    Config          `json:"config"`
	Meta      Meta            `json:"meta"`
	Variables []checkpointVar `json:"variables"`
}

type checkpointVar struct {
	Scope     string `json:"scope"`
	Name      string `json:"name"`
	DType     string `json:"dtype"`
	Shape     []int  `json:"shape"`
	Trainable bool   `json:"trainable"`
	Offset    int64  `json:"offset"`
	Size      int64  `json:"size"`
}

// Save writes the model to path atomically. With optimizer set it keeps
// the optimizer's state (to resume training); without, only the model's
// weights (to detect, export or fine-tune).
func (m *Model) Save(path string, meta Meta, optimizer bool) error {
	header := checkpointHeader{Format: checkpointVersion, Config: m.Config, Meta: meta}
	var data bytes.Buffer
	var failed error
	for v := range m.Ctx.IterVariables() {
		if !optimizer && !strings.HasPrefix(v.Scope(), "/"+Scope) {
			continue
		}
		value, err := v.Value()
		if err != nil {
			return fmt.Errorf("checkpoint %s: variable %s: %w", path, v.ScopeAndName(), err)
		}
		shape := value.Shape()
		cv := checkpointVar{
			Scope: v.Scope(), Name: v.Name(), DType: shape.DType.String(),
			Shape: slices.Clone(shape.Dimensions), Trainable: v.Trainable,
			Offset: int64(data.Len()),
		}
		if err := value.ConstBytes(func(b []byte) { data.Write(b) }); err != nil {
			failed = err
		}
		cv.Size = int64(data.Len()) - cv.Offset
		header.Variables = append(header.Variables, cv)
	}
	if failed != nil {
		return fmt.Errorf("checkpoint %s: %w", path, failed)
	}
	head, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}

	var file bytes.Buffer
	file.WriteString(checkpointMagic)
	_ = binary.Write(&file, binary.LittleEndian, uint32(len(head)))
	file.Write(head)
	file.Write(data.Bytes())
	sum := sha256.Sum256(file.Bytes())
	file.Write(sum[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return safefile.Write(path, file.Bytes(), 0o644)
}

// ErrNotCheckpoint is returned, wrapped, for a file that is not a maskwatch
// checkpoint or is damaged.
var ErrNotCheckpoint = errors.New("not a maskwatch checkpoint")

// Load reads a checkpoint written by Save: its weights, and the optimizer's
// state when it has some. Any damage (truncation, a changed byte, a header
// that does not fit the data) is an error wrapping ErrNotCheckpoint.
func Load(path string, backend backends.Backend) (*Model, Meta, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("checkpoint: %w", err)
	}
	return Decode(raw, path, backend)
}

// Decode is Load of a checkpoint already in memory; name says where it came
// from in errors.
func Decode(raw []byte, name string, backend backends.Backend) (*Model, Meta, error) {
	header, data, err := parseCheckpoint(raw)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	ctx := context.New()
	for _, cv := range header.Variables {
		value, err := cv.tensor(data)
		if err != nil {
			return nil, Meta{}, fmt.Errorf("checkpoint %s: %w: %w", name, ErrNotCheckpoint, err)
		}
		ctx.InAbsPath(cv.Scope).VariableWithValue(cv.Name, value).SetTrainable(cv.Trainable)
	}
	m, err := newModel(header.Config, backend, ctx)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if err := m.checkWeights(); err != nil {
		return nil, Meta{}, fmt.Errorf("checkpoint %s: %w: %w", name, ErrNotCheckpoint, err)
	}
	return m, header.Meta, nil
}

// LoadMeta reads a checkpoint's config and metadata, checking its sha256,
// without building the model.
func LoadMeta(path string) (Config, Meta, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, Meta{}, fmt.Errorf("checkpoint: %w", err)
	}
	header, _, err := parseCheckpoint(raw)
	if err != nil {
		return Config{}, Meta{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return header.Config, header.Meta, nil
}

func parseCheckpoint(raw []byte) (checkpointHeader, []byte, error) {
	var header checkpointHeader
	fixed := len(checkpointMagic) + 4
	if len(raw) < fixed+sha256.Size || string(raw[:len(checkpointMagic)]) != checkpointMagic {
		return header, nil, fmt.Errorf("%w: no maskwatch checkpoint header", ErrNotCheckpoint)
	}
	body, sum := raw[:len(raw)-sha256.Size], raw[len(raw)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return header, nil, fmt.Errorf("%w: sha256 mismatch (truncated or changed); "+
			"use another checkpoint or train again", ErrNotCheckpoint)
	}
	n := int(binary.LittleEndian.Uint32(raw[len(checkpointMagic):fixed]))
	if n > maxHeader || fixed+n > len(body) {
		return header, nil, fmt.Errorf("%w: header of %d bytes does not fit", ErrNotCheckpoint, n)
	}
	dec := json.NewDecoder(bytes.NewReader(body[fixed : fixed+n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&header); err != nil && err != io.EOF {
		return header, nil, fmt.Errorf("%w: header: %w", ErrNotCheckpoint, err)
	}
	if header.Format != checkpointVersion {
		return header, nil, fmt.Errorf("%w: format %d, this build reads format %d",
			ErrNotCheckpoint, header.Format, checkpointVersion)
	}
	return header, body[fixed+n:], nil
}

func (cv checkpointVar) tensor(data []byte) (*tensors.Tensor, error) {
	dtype, ok := dtypeByName[cv.DType]
	if !ok {
		return nil, fmt.Errorf("variable %s/%s: unknown dtype %q", cv.Scope, cv.Name, cv.DType)
	}
	for _, d := range cv.Shape {
		if d < 0 {
			return nil, fmt.Errorf("variable %s/%s: shape %v", cv.Scope, cv.Name, cv.Shape)
		}
	}
	shape := shapes.Make(dtype, cv.Shape...)
	if cv.Offset < 0 || cv.Size != int64(shape.Memory()) || cv.Offset+cv.Size > int64(len(data)) {
		return nil, fmt.Errorf("variable %s/%s: %d bytes at %d do not fit shape %s in %d bytes",
			cv.Scope, cv.Name, cv.Size, cv.Offset, shape, len(data))
	}
	t := tensors.FromShape(shape)
	err := t.MutableBytes(func(b []byte) { copy(b, data[cv.Offset:cv.Offset+cv.Size]) })
	return t, err
}

var dtypeByName = map[string]dtypes.DType{}

func init() {
	for _, d := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int32,
		dtypes.Int64, dtypes.Float16, dtypes.Uint8, dtypes.Int8} {
		dtypeByName[d.String()] = d
	}
}

// checkWeights makes sure every weight the networks need is there with the
// right shape.
func (m *Model) checkWeights() error {
	scope := m.Ctx.In(Scope)
	for _, n := range m.stages() {
		if err := n.Check(scope); err != nil {
			return err
		}
	}
	return nil
}
