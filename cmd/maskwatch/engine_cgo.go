//go:build cgo

package main

// defaultEngine is TensorFlow Lite in builds with cgo.
const defaultEngine = "tflite"
