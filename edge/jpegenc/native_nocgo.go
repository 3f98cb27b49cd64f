//go:build !cgo

package jpegenc

func newNative() Encoder { return nil }
