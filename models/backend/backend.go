package backend

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// Name is the name this backend is registered under: select it with
// GOMLX_BACKEND=maskwatch (optionally "maskwatch:CONFIG", see New), or call New directly.
const Name = "maskwatch"

func init() {
	backends.Register(Name, New)
}

// defaultParallelism is added to the configuration when it names no parallelism option:
// GoMLX v0.26.0's pure-Go backend can deadlock with its default worker limit when several
// matrix multiplications of one graph run at the same time.
const defaultParallelism = "parallelism=-1"

// Backend is GoMLX's pure-Go backend (simplego) with the operations listed in the package
// documentation added by composition. Buffers, compilation and execution are simplego's.
type Backend struct {
	*simplego.Backend
	blas bool
}

// Compile-time check that Backend implements backends.Backend.
var _ backends.Backend = (*Backend)(nil)

// fastOpsEnvVar, set to "off", keeps simplego's own executors for the operations of
// fastops.go (to compare speeds).
const fastOpsEnvVar = "MASKWATCH_FASTOPS"

// noBLASOption, in the configuration, keeps simplego's own DotGeneral for this backend.
const noBLASOption = "noblas"

// New returns a Backend. The configuration is passed to simplego unchanged ("parallelism=N",
// "ops_sequential", "ops_parallel", "dotgeneral_small", ...), except that "parallelism=-1"
// (no worker limit) is added when it sets none of parallelism, ops_sequential or ops_parallel,
// and that the option "noblas" is taken out: it keeps simplego's matrix product instead of
// OpenBLAS's (see the package documentation).
// simplego's own line about the parallelism is kept off stdout, where commands print results.
func New(config string) (backends.Backend, error) {
	useBLAS := true
	var options []string
	for _, option := range strings.Split(config, ",") {
		if option == noBLASOption {
			useBLAS = false
		} else if option != "" {
			options = append(options, option)
		}
	}
	config = strings.Join(options, ",")
	if err := installBLASDotByDefault(); err != nil {
		return nil, err
	}
	if !strings.Contains(config, "parallelism") && !strings.Contains(config, "ops_") {
		if config == "" {
			config = defaultParallelism
		} else {
			config += "," + defaultParallelism
		}
	}
	inner, err := newSimplego(config)
	if err != nil {
		return nil, fmt.Errorf("backend %s: configuration %q: %w", Name, config, err)
	}
	goBackend, ok := inner.(*simplego.Backend)
	if !ok {
		return nil, fmt.Errorf("backend %s: simplego.New returned %T, not *simplego.Backend; "+
			"this package was written for GoMLX v0.26.0", Name, inner)
	}
	b := &Backend{Backend: goBackend}
	if os.Getenv(fastOpsEnvVar) != "off" {
		if err := installFastOps(); err != nil {
			return nil, err
		}
		fastBackends.Store(goBackend, true)
	}
	if useBLAS && blasInstalled.Load() {
		blasBackends.Store(goBackend, true)
		b.blas = true
	}
	return b, nil
}

// UsesBLAS reports whether the backend's float32 matrix products run on OpenBLAS (package
// matmul): cgo builds, unless the configuration says "noblas" or MASKWATCH_BLAS=off.
func (b *Backend) UsesBLAS() bool { return b.blas }

// Finalize releases the backend.
func (b *Backend) Finalize() {
	blasBackends.Delete(b.Backend)
	fastBackends.Delete(b.Backend)
	b.Backend.Finalize()
}

// Name returns the backend's short name.
func (b *Backend) Name() string { return Name }

// String returns the backend's short name.
func (b *Backend) String() string { return Name }

// Description describes the backend for logs.
func (b *Backend) Description() string {
	description := "GoMLX pure-Go backend (simplego) with Pad, Reverse, SelectAndScatter and " +
		"a slice-and-matmul ConvGeneral"
	if b.blas {
		description += ", float32 DotGeneral on OpenBLAS"
	}
	return description
}

// Capabilities returns simplego's capabilities plus the operations this package adds.
func (b *Backend) Capabilities() backends.Capabilities {
	capabilities := b.Backend.Capabilities().Clone()
	for _, op := range addedOps {
		capabilities.Operations[op] = true
	}
	return capabilities
}

// addedOps are the operations that Builder implements on top of simplego.
var addedOps = []backends.OpType{
	backends.OpTypePad,
	backends.OpTypeReverse,
	backends.OpTypeSelectAndScatterMax,
	backends.OpTypeSelectAndScatterMin,
}

// Builder creates a builder for a new computation.
func (b *Backend) Builder(name string) backends.Builder {
	return &Builder{Builder: b.Backend.Builder(name).(*simplego.Builder)}
}

// Builder is simplego's builder with Pad, Reverse, SelectAndScatterMax, SelectAndScatterMin
// and ConvGeneral implemented by composing simplego's own operations.
type Builder struct {
	*simplego.Builder
}

// Compile-time check that Builder implements backends.Builder.
var _ backends.Builder = (*Builder)(nil)

// stdoutMu serialises the swaps of os.Stdout in newSimplego.
var stdoutMu sync.Mutex

// newSimplego calls simplego.New with stdout pointed at the null device:
// simplego prints a line there when the parallelism is set, and the
// commands print JSON results on stdout.
func newSimplego(config string) (backends.Backend, error) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return simplego.New(config)
	}
	defer null.Close()
	saved := os.Stdout
	os.Stdout = null
	defer func() { os.Stdout = saved }()
	return simplego.New(config)
}
