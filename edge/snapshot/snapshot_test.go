package snapshot

import (
	"context"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/train/fixture"
)

func photo(t *testing.T) *camera.Frame {
	src, err := camera.Open(fixture.Path(t, "facemask", "val", "images"), camera.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f camera.Frame
	if err := src.Read(&f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// drain runs the writer until every queued job is written.
func drain(w *Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	for len(w.free) < cap(w.free) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

func TestQuotaKeepsNewest(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not ours"), 0o644)
	f := photo(t)
	w, err := New(dir, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w.Save(f, events.Event{Track: 1, Label: "not_proper", Time: t0})
	drain(w)
	one := w.Stats().Bytes
	if w.Stats().Saved != 1 || one == 0 {
		t.Fatalf("stats %+v", w.Stats())
	}

	// A quota for two and a half snapshots keeps the newest two.
	w, err = New(dir, one*5/2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 4; i++ {
		w.Save(f, events.Event{Track: uint64(i), Label: "no mask/../x",
			Time: t0.Add(time.Duration(i) * time.Second)})
		drain(w)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 3 || names[0] != "notes.txt" ||
		!strings.Contains(names[1], "track3-no-mask----x") ||
		!strings.Contains(names[2], "track4") {
		t.Errorf("files %v, want notes.txt and the snapshots of tracks 3 and 4", names)
	}
	st := w.Stats()
	if st.Bytes > st.Quota || st.Deleted != 2 || st.Files != 2 {
		t.Errorf("stats %+v", st)
	}
	r, err := os.Open(filepath.Join(dir, names[2]))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := jpeg.Decode(r); err != nil {
		t.Errorf("snapshot is not a JPEG: %v", err)
	}
}

func TestSaveNeverWaits(t *testing.T) {
	w, err := New(t.TempDir(), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := photo(t)
	for i := 0; i < 10; i++ { // nobody runs the writer
		w.Save(f, events.Event{Track: uint64(i)})
	}
	if st := w.Stats(); st.Dropped != 6 {
		t.Errorf("%d dropped, want 6 beyond the queue of 4", st.Dropped)
	}
	if _, err := New(t.TempDir(), 0, nil); err == nil {
		t.Error("quota 0 accepted")
	}
}
