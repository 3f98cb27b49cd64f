//go:build cgo

package detect

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

// TFLite's external delegate plugin ABI: a shared library exporting these
// two functions (tensorflow/lite/delegates/external/external_delegate_interface.h).
typedef void* (*mw_create_fn)(char**, char**, size_t, void (*)(const char*));
typedef void (*mw_destroy_fn)(void*);

static char mw_plugin_error[1024];

static void mw_report(const char* msg) {
	snprintf(mw_plugin_error, sizeof mw_plugin_error, "%s", msg);
}

static void* mw_create(void* fn, char** keys, char** values, size_t n) {
	mw_plugin_error[0] = 0;
	return ((mw_create_fn)fn)(keys, values, n, mw_report);
}

static void mw_destroy(void* fn, void* delegate) { ((mw_destroy_fn)fn)(delegate); }

static const char* mw_last_error(void) { return mw_plugin_error; }
*/
import "C"

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// delegateSpec is a --delegate value resolved: the plugin library to load
// and its default options, or why it cannot be had.
type delegateSpec struct {
	library string
	options map[string]string
	// unavailable, when set, is why this delegate never loads here.
	unavailable string
	// fix says how to get the library when it does not load.
	fix string
}

// resolveDelegate maps a --delegate value to a plugin library.
//
//   - cpu: no delegate; TFLite's own CPU kernels (ruy for matrix products).
//   - xnnpack: not available. Debian's libtensorflow-lite 2.14.1 is built
//     without XNNPACK (it exports no TfLiteXNNPackDelegateCreate), and
//     XNNPACK is no external plugin.
//   - gpu: Arm NN's TFLite delegate (libarmnnDelegate.so, which exports the
//     plugin ABI) with its GpuAcc backend then CpuAcc, the route to Mali
//     GPUs on Arm Linux boards. Debian ships no Arm NN delegate: it comes
//     from Arm NN's releases.
//   - nnapi: Android's Neural Networks API; never on Linux.
//   - edgetpu: Coral's libedgetpu.so.1 (package libedgetpu1-std from
//     Coral's apt repository). Only graphs compiled with edgetpu_compiler
//     run on the TPU; others stay on the CPU.
//   - external:PATH: any library exporting tflite_plugin_create_delegate
//     and tflite_plugin_destroy_delegate.
func resolveDelegate(name string) (delegateSpec, bool, error) {
	switch {
	case name == "" || name == "cpu":
		return delegateSpec{}, false, nil
	case name == "xnnpack":
		return delegateSpec{unavailable: "Debian's TFLite 2.14.1 (libtensorflow-lite) is " +
			"built without XNNPACK and XNNPACK loads as no plugin; use --delegate cpu " +
			"(TFLite's own kernels)"}, true, nil
	case name == "nnapi":
		return delegateSpec{unavailable: "NNAPI is Android's and does not exist on Linux; " +
			"use --delegate cpu"}, true, nil
	case name == "gpu":
		return delegateSpec{library: "libarmnnDelegate.so",
			options: map[string]string{"backends": "GpuAcc,CpuAcc"},
			fix: "install Arm NN's TFLite delegate (Arm NN release packages; Debian has " +
				"none) where the dynamic loader finds it, or name a GPU delegate plugin " +
				"with --delegate external:PATH"}, true, nil
	case name == "edgetpu":
		return delegateSpec{library: "libedgetpu.so.1",
			fix: "install Coral's libedgetpu1-std (https://coral.ai/software/) and plug " +
				"in the Edge TPU"}, true, nil
	case strings.HasPrefix(name, "external:"):
		path := strings.TrimPrefix(name, "external:")
		if path == "" {
			return delegateSpec{}, false, fmt.Errorf("delegate %q: name the plugin "+
				"library, as external:/path/to/libdelegate.so", name)
		}
		return delegateSpec{library: path,
			fix: "check the path, and that the library exports " +
				"tflite_plugin_create_delegate and tflite_plugin_destroy_delegate"}, true, nil
	}
	return delegateSpec{}, false, fmt.Errorf("delegate %q: use cpu, xnnpack, gpu, nnapi, "+
		"edgetpu or external:PATH", name)
}

// plugin is a loaded delegate library. It stays loaded until every
// delegate it made is destroyed and Close is called.
type plugin struct {
	path            string
	handle          unsafe.Pointer
	create, destroy unsafe.Pointer
}

// pluginMu serialises dlerror and the plugin error buffer.
var pluginMu sync.Mutex

// openPlugin loads the library of spec. The error names the library, what
// went wrong (the dynamic loader's own message) and the fix.
func openPlugin(spec delegateSpec) (*plugin, error) {
	pluginMu.Lock()
	defer pluginMu.Unlock()
	cpath := C.CString(spec.library)
	defer C.free(unsafe.Pointer(cpath))
	handle := C.dlopen(cpath, C.RTLD_NOW|C.RTLD_LOCAL)
	if handle == nil {
		return nil, fmt.Errorf("delegate library %s cannot be loaded (%s): %s",
			spec.library, C.GoString(C.dlerror()), spec.fix)
	}
	p := &plugin{path: spec.library, handle: handle}
	for name, dst := range map[string]*unsafe.Pointer{
		"tflite_plugin_create_delegate":  &p.create,
		"tflite_plugin_destroy_delegate": &p.destroy,
	} {
		cname := C.CString(name)
		*dst = C.dlsym(handle, cname)
		C.free(unsafe.Pointer(cname))
		if *dst == nil {
			C.dlclose(handle)
			return nil, fmt.Errorf("delegate library %s has no %s: it is not a TFLite "+
				"external delegate plugin: %s", spec.library, name, spec.fix)
		}
	}
	return p, nil
}

// pluginDelegate is one delegate instance a plugin created; it satisfies
// go-tflite's delegates.Delegater, so interpreter options take it.
type pluginDelegate struct {
	p   *plugin
	ptr unsafe.Pointer
}

// newDelegate creates a delegate with options (key/value, sorted by key).
func (p *plugin) newDelegate(options map[string]string) (*pluginDelegate, error) {
	pluginMu.Lock()
	defer pluginMu.Unlock()
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := len(keys)
	ckeys := C.malloc(C.size_t(max(n, 1)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	cvalues := C.malloc(C.size_t(max(n, 1)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(ckeys)
	defer C.free(cvalues)
	kslice := unsafe.Slice((**C.char)(ckeys), max(n, 1))
	vslice := unsafe.Slice((**C.char)(cvalues), max(n, 1))
	for i, k := range keys {
		kslice[i], vslice[i] = C.CString(k), C.CString(options[k])
	}
	defer func() {
		for i := range n {
			C.free(unsafe.Pointer(kslice[i]))
			C.free(unsafe.Pointer(vslice[i]))
		}
	}()
	ptr := C.mw_create(p.create, (**C.char)(ckeys), (**C.char)(cvalues), C.size_t(n))
	if ptr == nil {
		msg := C.GoString(C.mw_last_error())
		if msg == "" {
			msg = "no reason given"
		}
		return nil, fmt.Errorf("delegate library %s refused to create a delegate: %s",
			p.path, msg)
	}
	return &pluginDelegate{p: p, ptr: ptr}, nil
}

// Ptr is the TfLiteDelegate pointer.
func (d *pluginDelegate) Ptr() unsafe.Pointer { return d.ptr }

// Delete destroys the delegate; the interpreters using it must be deleted
// first.
func (d *pluginDelegate) Delete() {
	if d.ptr != nil {
		C.mw_destroy(d.p.destroy, d.ptr)
		d.ptr = nil
	}
}

// Close unloads the library; every delegate it made must be deleted.
func (p *plugin) Close() error {
	if p.handle == nil {
		return nil
	}
	rc := C.dlclose(p.handle)
	p.handle = nil
	if rc != 0 {
		return errors.New("delegate library " + p.path + " did not unload")
	}
	return nil
}
