// Package stream shares the newest annotated frame with the page's viewers
// as JPEG. Frames are encoded on the hub's own goroutine, only while someone
// watches, once for all viewers; each viewer takes the newest image when it
// is ready for one, so a slow viewer skips frames instead of slowing the
// pipeline or the other viewers.
package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/jpegenc"
)

// ErrClosed is returned to viewers once the hub has stopped.
var ErrClosed = errors.New("stream closed")

// Hub holds the newest frame and its JPEG. Publish may be called from one
// goroutine, any number of viewers read concurrently, Run encodes.
type Hub struct {
	enc     jpegenc.Encoder
	quality int

	mu       sync.Mutex
	raw      camera.Frame
	rawSeq   uint64
	jpeg     []byte // never written once published: viewers share it
	jpegSeq  uint64
	demand   int
	closed   bool
	changed  chan struct{}
	wake     chan struct{}
	encoded  uint64
	encodeNS int64
}

// NewHub returns a hub encoding with enc at quality (1 to 100).
func NewHub(enc jpegenc.Encoder, quality int) *Hub {
	return &Hub{enc: enc, quality: max(1, min(100, quality)),
		changed: make(chan struct{}), wake: make(chan struct{}, 1)}
}

func (h *Hub) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *Hub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Publish copies f as the newest frame. It never waits for the encoder.
func (h *Hub) Publish(f *camera.Frame) {
	h.mu.Lock()
	h.raw.CopyFrom(f)
	h.rawSeq++
	demand := h.demand
	h.mu.Unlock()
	if demand > 0 {
		h.poke()
	}
}

// Run encodes the newest frame whenever it changed and someone waits for
// it, until ctx is done; then viewers get ErrClosed.
func (h *Hub) Run(ctx context.Context) {
	var (
		work camera.Frame
		buf  []byte
	)
	defer func() {
		h.mu.Lock()
		h.closed = true
		h.notify()
		h.mu.Unlock()
	}()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		}
		h.mu.Lock()
		if h.demand == 0 || h.rawSeq == h.jpegSeq || h.rawSeq == 0 {
			h.mu.Unlock()
			continue
		}
		work.CopyFrom(&h.raw)
		seq := h.rawSeq
		h.mu.Unlock()

		start := time.Now()
		var err error
		buf, err = h.enc.Encode(buf[:0], &work, h.quality)
		if err != nil {
			if !failing {
				slog.Error("stream: frame not encoded", "err", err)
				failing = true
			}
			continue
		}
		failing = false
		img := append([]byte(nil), buf...)
		h.mu.Lock()
		h.jpeg, h.jpegSeq = img, seq
		h.encoded++
		h.encodeNS += int64(time.Since(start))
		if h.rawSeq != seq && h.demand > 0 {
			h.poke()
		}
		h.notify()
		h.mu.Unlock()
	}
}

// Stats returns how many frames were encoded and their mean encoding time.
func (h *Hub) Stats() (encoded uint64, mean time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.encoded == 0 {
		return 0, 0
	}
	return h.encoded, time.Duration(h.encodeNS / int64(h.encoded))
}

// Viewer is one reader of the stream; Close it when done.
type Viewer struct {
	h    *Hub
	last uint64
	once sync.Once
}

// Watch adds a viewer: from now on frames are encoded.
func (h *Hub) Watch() *Viewer {
	h.mu.Lock()
	h.demand++
	h.mu.Unlock()
	h.poke()
	return &Viewer{h: h}
}

// Close removes the viewer.
func (v *Viewer) Close() {
	v.once.Do(func() {
		v.h.mu.Lock()
		v.h.demand--
		v.h.mu.Unlock()
	})
}

// Next waits for an image newer than the last one this viewer got and
// returns it; the slice must not be modified.
func (v *Viewer) Next(ctx context.Context) ([]byte, error) {
	h := v.h
	h.mu.Lock()
	for h.closed || h.jpegSeq <= v.last || h.jpeg == nil {
		if h.closed {
			h.mu.Unlock()
			return nil, ErrClosed
		}
		ch := h.changed
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		h.mu.Lock()
	}
	img := h.jpeg
	v.last = h.jpegSeq
	h.mu.Unlock()
	return img, nil
}

// Latest returns a JPEG of the newest frame, waiting for it to be encoded.
func (h *Hub) Latest(ctx context.Context) ([]byte, error) {
	v := h.Watch()
	defer v.Close()
	h.mu.Lock()
	want := h.rawSeq
	h.mu.Unlock()
	for {
		img, err := v.Next(ctx)
		if err != nil {
			return nil, err
		}
		if v.last >= want {
			return img, nil
		}
	}
}

// Viewers is the number of viewers (and snapshot requests) waiting.
func (h *Hub) Viewers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.demand
}
