//go:build cgo

package display

/*
#cgo !customenv pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "namedwindow.h"
*/
import "C"

import "unsafe"

// OpenCV's window flags (cv::WindowFlags).
const (
	cvWindowNormal    = 0x00000000
	cvWindowAutosize  = 0x00000001
	cvWindowKeepRatio = 0x00000000
	cvWindowGUINormal = 0x00000010
)

// namedWindow creates the window with flags before gocv wraps it.
func namedWindow(name string, flags int) {
	c := C.CString(name)
	defer C.free(unsafe.Pointer(c))
	C.maskwatch_named_window(c, C.int(flags))
}
