package finetune

import (
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// demoFrame is a photograph of the val set as a camera frame.
func demoFrame(t *testing.T) detect.Frame {
	t.Helper()
	dir := fixture.Path(t, "facemask", "val", "images")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no val images: %v", err)
	}
	f, err := decodeFrame(filepath.Join(dir, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newTestCollector(t *testing.T, quota int64) *Collector {
	t.Helper()
	b, err := defaultmodel.Load()
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCollector(CollectConfig{Dir: t.TempDir(), Quota: quota, MinScore: 0.5,
		Margin: 0.15, Every: time.Nanosecond, Classes: b.Meta.Model.Classes, Log: testLog(t),
		VOCName: func(k int) string { return VOCName(b, k) }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func face(score float64, class int, label string) detect.Face {
	return detect.Face{Box: box.Box{X1: 20, Y1: 30, X2: 120, Y2: 150}, Score: score,
		Class: class, Label: label}
}

// drain writes what Observe queued, as Run does.
func drain(t *testing.T, c *Collector) {
	t.Helper()
	for {
		select {
		case p := <-c.ch:
			if _, err := c.save(p); err != nil {
				t.Fatal(err)
			}
		default:
			return
		}
	}
}

func TestCollectorKeepsUnsureFrames(t *testing.T) {
	c := newTestCollector(t, 50<<20)
	f := demoFrame(t)
	info := detect.Info{Version: "abc"}

	c.Observe(f, []detect.Face{face(0.95, 0, "proper")}, info) // sure: not kept
	drain(t, c)
	if n := len(c.List()); n != 0 {
		t.Fatalf("%d frames kept of a sure detection", n)
	}
	c.Observe(f, []detect.Face{face(0.95, 0, "proper"), face(0.55, 1, "not_proper")}, info)
	drain(t, c)
	list := c.List()
	if len(list) != 1 || list[0].Reason != "unsure" || list[0].Model != "abc" ||
		len(list[0].Faces) != 2 || list[0].Width != f.Width {
		t.Fatalf("kept %+v, want one unsure frame with both faces", list)
	}
	path, err := c.ImagePath(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if img := decodeImage(t, path); img.Bounds().Dx() != f.Width {
		t.Errorf("the kept JPEG is %v wide, the frame %d", img.Bounds(), f.Width)
	}

	id, err := c.Flag()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.List(); len(got) != 2 || got[1].ID != id || got[1].Reason != "operator" {
		t.Errorf("after a flag: %+v", got)
	}
	for _, bad := range []string{"../x", "", "a/b", "nope"} {
		if _, err := c.ImagePath(bad); !errors.Is(err, ErrNoFrame) {
			t.Errorf("ImagePath(%q): %v", bad, err)
		}
	}
}

func decodeImage(t *testing.T, path string) image.Image {
	t.Helper()
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img, _, err := image.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestCollectorQuotaDropsTheOldestPending(t *testing.T) {
	c := newTestCollector(t, 1<<30)
	f := demoFrame(t)
	unsure := []detect.Face{face(0.5, 0, "proper")}
	for range 3 {
		c.Observe(f, unsure, detect.Info{})
		drain(t, c)
	}
	list := c.List()
	if len(list) != 3 {
		t.Fatalf("%d frames kept, want 3", len(list))
	}
	labels := []Face{{Box: [4]float64{20, 30, 120, 150}, Class: 1}}
	if err := c.Label(list[0].ID, labels); err != nil {
		t.Fatal(err)
	}
	// Room for about two frames: the labelled one stays, the oldest
	// pending one goes.
	c.cfg.Quota = c.Stats().Bytes + 1000
	c.Observe(f, unsure, detect.Info{})
	drain(t, c)
	got := c.List()
	if len(got) != 2 || got[0].ID != list[2].ID {
		t.Errorf("pending after the quota: %v, want the newest two", ids(got))
	}
	if s := c.Stats(); s.Labelled != 1 || s.Bytes > s.Quota {
		t.Errorf("stats %+v", s)
	}
	// Nothing but labelled frames left to drop: the frame is refused.
	c.cfg.Quota = 1
	if _, err := c.Flag(); err == nil {
		t.Error("a frame was kept over a full quota")
	}
	if !c.Stats().Full || Labelled(c.cfg.Dir) != 1 {
		t.Errorf("full quota: %+v", c.Stats())
	}
}

func ids(ps []Pending) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

// Labels go out as Pascal VOC that the data set reader reads back into the
// model's classes; a discarded frame is gone.
func TestLabelsReadBackAsVOC(t *testing.T) {
	c := newTestCollector(t, 50<<20)
	f := demoFrame(t)
	for range 3 {
		c.Observe(f, []detect.Face{face(0.6, 0, "proper")}, detect.Info{})
		drain(t, c)
	}
	list := c.List()
	faces := []Face{{Box: [4]float64{20, 30, 120, 150}, Class: 0},
		{Box: [4]float64{200, 40, 290, 160}, Class: 1}}
	if err := c.Label(list[0].ID, faces); err != nil {
		t.Fatal(err)
	}
	if err := c.Label(list[1].ID, nil); err != nil { // a frame without faces
		t.Fatal(err)
	}
	if err := c.Discard(list[2].ID); err != nil {
		t.Fatal(err)
	}
	if len(c.List()) != 0 {
		t.Errorf("pending left: %v", ids(c.List()))
	}
	for _, bad := range [][]Face{{{Box: [4]float64{5, 5, 5, 9}}}, {{Box: [4]float64{1, 1, 50,
		50}, Class: 7}}} {
		if err := c.Label(list[0].ID, bad); err == nil {
			t.Errorf("labels %v taken for a frame already labelled", bad)
		}
	}

	b, _ := defaultmodel.Load()
	classes, err := ClassMap(b)
	if err != nil {
		t.Fatal(err)
	}
	samples, problems, err := ReadData([]string{LabelledDir(c.cfg.Dir)}, classes)
	if err != nil || len(problems) > 0 {
		t.Fatalf("reading the labels back: %v %v", err, problems)
	}
	if len(samples) != 2 {
		t.Fatalf("%d samples read back, want 2", len(samples))
	}
	s := samples[0]
	if !slices.Equal(s.Classes, []int{0, 1}) || s.Boxes[1] != (box.Box{X1: 200, Y1: 40,
		X2: 290, Y2: 160}) {
		t.Errorf("read back %+v", s)
	}
	if len(samples[1].Boxes) != 0 {
		t.Errorf("the frame without faces came back with %v", samples[1].Boxes)
	}
}

func TestSplitHoldsOutAFifthStably(t *testing.T) {
	var samples []Sample
	for i := range 50 {
		samples = append(samples, Sample{Path: filepath.Join("d", string(rune('a'+i%26))+
			string(rune('a'+i/26))+".jpg")})
	}
	train, held := Split(samples)
	if len(held) != 10 || len(train) != 40 {
		t.Fatalf("split %d/%d, want 40/10", len(train), len(held))
	}
	// Adding samples moves none of the held-out ones to training.
	more := append(slices.Clone(samples), Sample{Path: "d/zz.jpg"}, Sample{Path: "d/zy.jpg"},
		Sample{Path: "d/zx.jpg"}, Sample{Path: "d/zw.jpg"}, Sample{Path: "d/zv.jpg"})
	_, held2 := Split(more)
	kept := 0
	for _, h := range held {
		if slices.ContainsFunc(held2, func(s Sample) bool { return s.Path == h.Path }) {
			kept++
		}
	}
	if len(held2) != 11 || kept < 10 {
		t.Errorf("with 5 more samples %d held out, %d of the earlier 10 among them",
			len(held2), kept)
	}
	if _, h := Split(samples[:2]); len(h) != 1 {
		t.Errorf("two samples: %d held out, want 1", len(h))
	}
}

func TestRunRefusesTooFewImages(t *testing.T) {
	b, err := defaultmodel.Load()
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCollector(t, 50<<20)
	c.Observe(demoFrame(t), []detect.Face{face(0.6, 0, "proper")}, detect.Info{})
	drain(t, c)
	if err := c.Label(c.List()[0].ID, []Face{{Box: [4]float64{20, 30, 120, 150}}}); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{Bundle: b,
		Data: []string{LabelledDir(c.cfg.Dir)}, Log: testLog(t)})
	if !errors.Is(err, ErrTooFew) {
		t.Errorf("one labelled image: %v, want ErrTooFew", err)
	}
	noWeights := *b
	noWeights.Weights = nil
	if _, err := Run(context.Background(), Options{Bundle: &noWeights,
		Data: []string{LabelledDir(c.cfg.Dir)}}); err == nil {
		t.Error("a bundle without float weights was fine-tuned")
	}
	if err := CheckLayers(b, "head,nonsense"); err == nil {
		t.Error("--layers nonsense taken")
	}
	if err := CheckLayers(b, "backbone/block14,rpn"); err != nil {
		t.Errorf("--layers backbone/block14,rpn: %v", err)
	}
}
