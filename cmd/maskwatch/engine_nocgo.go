//go:build !cgo

package main

// defaultEngine is GoMLX's pure-Go engine in static builds, which have no
// TensorFlow Lite.
const defaultEngine = "gomlx"
