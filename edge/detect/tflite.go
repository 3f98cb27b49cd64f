//go:build cgo

package detect

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"unsafe"

	tfl "github.com/mattn/go-tflite"

	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/tflite"
)

// tfliteEngine runs the bundle's two TFLite graphs with go-tflite, one
// interpreter a stage, on opt.Threads threads and the delegate asked for.
// Stage 1 is resized to each frame's input size when it changes (the
// graphs stay valid at any size; a camera's frames keep one), stage 2 to
// each bucket of RoIs. int8 graphs take int8 inputs, quantised here
// through a lookup table; their outputs are dequantised here.
type tfliteEngine struct {
	stages [2]*tfliteStage
	plugin *plugin
	int8   bool
	table  *[3][256]float32
	lut    *[3][256]int8
	outs   [2][]float32 // dequantised objectness and deltas, or logits and deltas
	fromQ  [3][]float32
}

// tfliteStage is one interpreter and what it owns.
type tfliteStage struct {
	name     string
	model    *tfl.Model
	options  *tfl.InterpreterOptions
	interp   *tfl.Interpreter
	delegate *pluginDelegate
	meta     bundle.Stage
	shape    []int32 // the input shape allocated
}

func newTFLiteEngine(b *bundle.Bundle, opt Options) (engine, error) {
	spec, wanted, err := resolveDelegate(opt.Delegate)
	if err != nil {
		return nil, fmt.Errorf("tflite engine: %w", err)
	}
	e := &tfliteEngine{int8: b.Meta.Precision == string(tflite.INT8),
		table: b.Meta.Input.FloatTable()}
	in := b.Meta.Stage1.Inputs[0]
	if e.int8 {
		e.lut = b.Meta.Input.Int8Table(in.Scale, in.ZeroPoint)
	}
	if wanted {
		if err := e.loadDelegate(spec, opt); err != nil {
			if !opt.DelegateFallback {
				return nil, fmt.Errorf("tflite engine: --delegate %s: %w", opt.Delegate, err)
			}
			slog.Warn("detect: delegate unavailable, running on the CPU",
				"delegate", opt.Delegate, "err", err)
		}
	}
	graphs := [2][]byte{b.Stage1, b.Stage2}
	metas := [2]bundle.Stage{b.Meta.Stage1, b.Meta.Stage2}
	for i, name := range []string{"stage 1", "stage 2"} {
		var d *pluginDelegate
		if e.plugin != nil {
			if d, err = e.plugin.newDelegate(delegateOptions(spec, opt)); err != nil {
				e.close()
				if !opt.DelegateFallback {
					return nil, fmt.Errorf("tflite engine: --delegate %s: %w", opt.Delegate, err)
				}
				slog.Warn("detect: delegate unavailable, running on the CPU",
					"delegate", opt.Delegate, "err", err)
				return newTFLiteEngine(b, Options{Engine: opt.Engine, Threads: opt.Threads})
			}
		}
		s, err := newTFLiteStage(name, graphs[i], metas[i], opt.Threads, d)
		if err != nil && d != nil && opt.DelegateFallback {
			slog.Warn("detect: delegate failed on the graph, running on the CPU",
				"delegate", opt.Delegate, "stage", name, "err", err)
			e.close()
			return newTFLiteEngine(b, Options{Engine: opt.Engine, Threads: opt.Threads})
		}
		if err != nil {
			if d != nil {
				d.Delete()
			}
			e.close()
			return nil, fmt.Errorf("tflite engine: %w", err)
		}
		e.stages[i] = s
	}
	return e, nil
}

func delegateOptions(spec delegateSpec, opt Options) map[string]string {
	options := map[string]string{}
	for k, v := range spec.options {
		options[k] = v
	}
	for k, v := range opt.DelegateOptions {
		options[k] = v
	}
	return options
}

func (e *tfliteEngine) loadDelegate(spec delegateSpec, opt Options) error {
	if spec.unavailable != "" {
		return fmt.Errorf("%s", spec.unavailable)
	}
	p, err := openPlugin(spec)
	if err != nil {
		return err
	}
	e.plugin = p
	return nil
}

// newTFLiteStage loads one graph into an interpreter. go-tflite's
// NewModel copies the graph into C memory it never frees, so the graph is
// written to a temporary file that TFLite maps and that is unlinked at
// once: the mapping lives as long as the model, and nothing leaks.
func newTFLiteStage(name string, graph []byte, meta bundle.Stage, threads int,
	d *pluginDelegate) (*tfliteStage, error) {
	f, err := os.CreateTemp("", "maskwatch-*.tflite")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	_, werr := f.Write(graph)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("%s: writing the graph to %s: %v %v", name, f.Name(), werr, cerr)
	}
	model := tfl.NewModelFromFile(f.Name())
	os.Remove(f.Name())
	if model == nil {
		return nil, fmt.Errorf("%s: TFLite cannot read the graph (its reason is on stderr)",
			name)
	}
	s := &tfliteStage{name: name, model: model, meta: meta, delegate: d}
	s.options = tfl.NewInterpreterOptions()
	if s.options == nil {
		s.close()
		return nil, fmt.Errorf("%s: TFLite interpreter options: out of memory", name)
	}
	s.options.SetNumThread(threads)
	if d != nil {
		s.options.AddDelegate(d)
	}
	s.interp = tfl.NewInterpreter(model, s.options)
	if s.interp == nil {
		s.delegate = nil // the caller still owns it
		s.close()
		what := "TFLite cannot build an interpreter for the graph"
		if d != nil {
			what = "TFLite cannot build an interpreter with the delegate " + d.p.path
		}
		return nil, fmt.Errorf("%s: %s (its reason is on stderr)", name, what)
	}
	shape := make([]int32, len(meta.Inputs[0].Shape))
	for i, v := range meta.Inputs[0].Shape {
		shape[i] = int32(v)
	}
	if err := s.resize(shape); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// resize allocates the interpreter for an input of shape, if it is not so
// already.
func (s *tfliteStage) resize(shape []int32) error {
	if slices.Equal(shape, s.shape) {
		return nil
	}
	if s.interp.ResizeInputTensor(0, shape) != tfl.OK {
		return fmt.Errorf("%s: TFLite cannot resize the input to %v", s.name, shape)
	}
	if s.interp.AllocateTensors() != tfl.OK {
		s.shape = nil
		return fmt.Errorf("%s: TFLite cannot allocate tensors for input %v (its reason is "+
			"on stderr)", s.name, shape)
	}
	s.shape = slices.Clone(shape)
	return nil
}

func (s *tfliteStage) invoke() error {
	if s.interp.Invoke() != tfl.OK {
		return fmt.Errorf("%s: TFLite invoke failed (its reason is on stderr)", s.name)
	}
	return nil
}

// close deletes the interpreter, then the model and options, then the
// delegate: the order TFLite needs.
func (s *tfliteStage) close() {
	if s.interp != nil {
		s.interp.Delete()
		s.interp = nil
	}
	if s.options != nil {
		s.options.Delete()
		s.options = nil
	}
	if s.model != nil {
		s.model.Delete()
		s.model = nil
	}
	if s.delegate != nil {
		s.delegate.Delete()
		s.delegate = nil
	}
}

func float32s(t *tfl.Tensor) []float32 {
	return unsafe.Slice((*float32)(t.Data()), int(t.ByteSize())/4)
}

func int8s(t *tfl.Tensor) []int8 {
	return unsafe.Slice((*int8)(t.Data()), int(t.ByteSize()))
}

func (e *tfliteEngine) name() string { return EngineTFLite }

// bucket is small: a resize only reallocates tensors.
func (e *tfliteEngine) bucket() int { return 4 }

func (e *tfliteEngine) setInput(rgb []uint8, h, w int) error {
	s := e.stages[0]
	if err := s.resize([]int32{1, int32(h), int32(w), 3}); err != nil {
		return err
	}
	t := s.interp.GetInputTensor(0)
	if e.int8 {
		dst := int8s(t)
		if len(dst) != len(rgb) {
			return fmt.Errorf("stage 1 input of %d values for %d", len(dst), len(rgb))
		}
		input.Quantize(dst, rgb, e.lut)
		return nil
	}
	dst := float32s(t)
	if len(dst) != len(rgb) {
		return fmt.Errorf("stage 1 input of %d values for %d", len(dst), len(rgb))
	}
	input.Normalize(dst[:0], rgb, e.table)
	return nil
}

// output returns output k of stage s as float32: the tensor's own memory
// for a float graph (valid until the next invoke), dequantised into buf
// for int8.
func (e *tfliteEngine) output(s *tfliteStage, k int, buf *[]float32) ([]float32, []int) {
	t := s.interp.GetOutputTensor(k)
	if !e.int8 {
		return float32s(t), t.Shape()
	}
	q := int8s(t)
	info := s.meta.Outputs[k]
	if cap(*buf) < len(q) {
		*buf = make([]float32, len(q))
	}
	out := (*buf)[:len(q)]
	scale, zp := info.Scale, info.ZeroPoint
	for i, v := range q {
		out[i] = scale * float32(int32(v)-zp)
	}
	return out, t.Shape()
}

func (e *tfliteEngine) stage1() (feature, objectness, deltas []float32, gh, gw int, err error) {
	s := e.stages[0]
	if err := s.invoke(); err != nil {
		return nil, nil, nil, 0, 0, err
	}
	feature, shape := e.output(s, 0, &e.fromQ[0])
	objectness, _ = e.output(s, 1, &e.fromQ[1])
	deltas, _ = e.output(s, 2, &e.fromQ[2])
	if len(shape) != 4 {
		return nil, nil, nil, 0, 0, fmt.Errorf("stage 1 feature of shape %v", shape)
	}
	return feature, objectness, deltas, shape[1], shape[2], nil
}

func (e *tfliteEngine) stage2(pooled []float32, r, n int) (logits, deltas []float32, err error) {
	s := e.stages[1]
	shape := slices.Clone(s.meta.Inputs[0].Shape)
	shape[0] = r
	dims := make([]int32, len(shape))
	for i, v := range shape {
		dims[i] = int32(v)
	}
	if err := s.resize(dims); err != nil {
		return nil, nil, err
	}
	t := s.interp.GetInputTensor(0)
	if e.int8 {
		dst := int8s(t)
		if len(dst) != len(pooled) {
			return nil, nil, fmt.Errorf("stage 2 input of %d values for %d", len(dst),
				len(pooled))
		}
		info := s.meta.Inputs[0]
		inv := 1 / float64(info.Scale)
		for i, v := range pooled {
			q := math.Round(float64(v)*inv) + float64(info.ZeroPoint)
			dst[i] = int8(min(max(q, -128), 127))
		}
	} else {
		dst := float32s(t)
		if len(dst) != len(pooled) {
			return nil, nil, fmt.Errorf("stage 2 input of %d values for %d", len(dst),
				len(pooled))
		}
		copy(dst, pooled)
	}
	if err := s.invoke(); err != nil {
		return nil, nil, err
	}
	logits, _ = e.output(s, 0, &e.outs[0])
	deltas, _ = e.output(s, 1, &e.outs[1])
	k := len(logits) / r
	return logits[:n*k], deltas[:n*4*k], nil
}

func (e *tfliteEngine) close() error {
	for i, s := range e.stages {
		if s != nil {
			s.close()
			e.stages[i] = nil
		}
	}
	if e.plugin != nil {
		err := e.plugin.Close()
		e.plugin = nil
		return err
	}
	return nil
}

// tfliteAvailable says whether this build has the TFLite engine.
const tfliteAvailable = true
