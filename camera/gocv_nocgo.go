//go:build !cgo

package camera

import "fmt"

const gocvAvailable = false

func openGoCV(spec string, k Kind, _ Options) (Source, error) {
	return nil, fmt.Errorf("source %s (%s): %w; this static build reads MJPEG over HTTP, "+
		"an MJPEG stream on stdin (--source -), .mjpeg files and image folders",
		Describe(spec), k, ErrNeedsCgo)
}
