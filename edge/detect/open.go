package detect

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
)

// The engines Open knows.
const (
	EngineTFLite = "tflite"
	EngineGoMLX  = "gomlx"
)

// DefaultModel is the path Open reads as the model built into the binary
// (package defaultmodel). A file of that name is read as "./default".
const DefaultModel = "default"

// Options configure Open.
type Options struct {
	// Engine is "tflite" (the default) or "gomlx" (pure Go, runs the
	// bundle's float weights; for devices or builds without TFLite).
	Engine string
	// Threads is how many threads TFLite inference may use; 0 means every
	// core. The gomlx engine always uses every core.
	// TFLite's threads wait for one another at every operator: on cores
	// that other work keeps busy, more threads can be several times slower
	// than one (make bench shows both).
	Threads int
	// Delegate is where the TFLite engine runs its graphs: "cpu" (the
	// default), "xnnpack", "gpu", "nnapi", "edgetpu" or "external:PATH"
	// (a TFLite external delegate plugin). See the engine's documentation
	// for what each needs.
	Delegate string
	// DelegateFallback turns a delegate that cannot load into a warning
	// and CPU inference instead of an error.
	DelegateFallback bool
	// DelegateOptions are passed to an external delegate plugin as its
	// key/value options.
	DelegateOptions map[string]string
}

// ErrNoTFLite is returned, wrapped, by Open for the TFLite engine in a
// build without cgo.
var ErrNoTFLite = errors.New("this build has no TFLite engine (built with CGO_ENABLED=0)")

// Open reads the model bundle at path (DefaultModel for the model built
// into the binary) and returns a Detector running it on opt.Engine.
func Open(path string, opt Options) (Detector, error) {
	var b *bundle.Bundle
	var err error
	if path == DefaultModel {
		b, err = defaultmodel.Load()
	} else {
		b, err = bundle.Read(path)
	}
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	return OpenBundle(b, path, opt)
}

// OpenBundle returns a Detector running b; path is reported by Info.
func OpenBundle(b *bundle.Bundle, path string, opt Options) (Detector, error) {
	if opt.Threads < 0 {
		return nil, fmt.Errorf("detect: %d threads: use 0 (every core) or more", opt.Threads)
	}
	if opt.Threads == 0 {
		opt.Threads = runtime.NumCPU()
	}
	p, err := newPipeline(b, path)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(opt.Engine) {
	case "", EngineTFLite:
		if opt.Engine == "" {
			opt.Engine = EngineTFLite
		}
		p.engine, err = newTFLiteEngine(b, opt)
	case EngineGoMLX:
		if opt.Delegate != "" && opt.Delegate != "cpu" {
			return nil, fmt.Errorf("detect: delegate %q: delegates are TFLite's; the gomlx "+
				"engine runs on the CPU", opt.Delegate)
		}
		p.engine, err = newGoMLXEngine(b, opt)
	default:
		return nil, fmt.Errorf("detect: engine %q: use tflite or gomlx", opt.Engine)
	}
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	p.info.Engine = p.engine.name()
	return p, nil
}
