package stream

import (
	"bytes"
	"context"
	"image/jpeg"
	"testing"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/jpegenc"
)

func frame(v byte) *camera.Frame {
	var f camera.Frame
	f.Reset(32, 24)
	for i := range f.Pix {
		f.Pix[i] = v
	}
	return &f
}

func grey(t *testing.T, img []byte) byte {
	t.Helper()
	m, err := jpeg.Decode(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	r, _, _, _ := m.At(5, 5).RGBA()
	return byte(r >> 8)
}

func TestHubNewestToEveryViewer(t *testing.T) {
	h := NewHub(jpegenc.New(), 95)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()

	fast, slow := h.Watch(), h.Watch()
	h.Publish(frame(50))
	for _, v := range []*Viewer{fast, slow} {
		img, err := v.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if g := grey(t, img); g < 45 || g > 55 {
			t.Errorf("first image grey %d, want 50", g)
		}
	}
	// The fast viewer follows every frame; the slow one, asking only now,
	// gets the newest and skips the ones between.
	for _, v := range []byte{100, 150, 200} {
		h.Publish(frame(v))
		img, err := fast.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if g := grey(t, img); g < v-5 || g > v+5 {
			t.Errorf("fast viewer grey %d, want %d", g, v)
		}
	}
	img, err := slow.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := grey(t, img); g < 195 {
		t.Errorf("slow viewer got grey %d, want the newest (200)", g)
	}
	if h.Viewers() != 2 {
		t.Errorf("%d viewers", h.Viewers())
	}
	fast.Close()
	slow.Close()
	slow.Close()
	if h.Viewers() != 0 {
		t.Errorf("%d viewers after closing", h.Viewers())
	}

	h.Publish(frame(30))
	img, err = h.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := grey(t, img); g > 35 {
		t.Errorf("Latest grey %d, want 30", g)
	}
	cancel()
	<-done
	v := h.Watch()
	if _, err := v.Next(context.Background()); err != ErrClosed {
		t.Errorf("after Run ended: %v, want ErrClosed", err)
	}
}

// TestHubEncodesOnlyWhenWatched: with no viewer, publishing costs a copy
// and nothing is encoded.
func TestHubEncodesOnlyWhenWatched(t *testing.T) {
	h := NewHub(jpegenc.New(), 80)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Run(ctx)
	for i := 0; i < 20; i++ {
		h.Publish(frame(byte(i)))
	}
	if n, _ := h.Stats(); n != 0 {
		t.Errorf("%d frames encoded with nobody watching", n)
	}
	if _, err := h.Latest(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.Stats(); n != 1 {
		t.Errorf("%d frames encoded for one snapshot", n)
	}
}
