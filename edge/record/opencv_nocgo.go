//go:build !cgo

package record

const haveOpenCV = false

func open(path string, _ float64, _, _ int) (sink, error) {
	return mjpegSink(path)
}
