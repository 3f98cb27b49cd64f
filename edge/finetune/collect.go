package finetune

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/box"
)

// The collection folder:
//
//	DIR/pending/ID.jpg, ID.json           frames waiting for the operator
//	DIR/labelled/images/ID.jpg            labelled frames, as Pascal VOC
//	DIR/labelled/annotations/ID.xml
//	DIR/finetune/                         the fine-tune's state
//
// Nothing is collected unless maskwatch runs with --collect DIR: frames are
// pictures of people.
const (
	pendingDir  = "pending"
	labelledDir = "labelled"
)

// LabelledDir is where a collection keeps its labelled frames, a Pascal VOC
// folder.
func LabelledDir(dir string) string { return filepath.Join(dir, labelledDir) }

// Labelled counts the labelled frames of the collection in dir.
func Labelled(dir string) int {
	e, err := os.ReadDir(filepath.Join(LabelledDir(dir), "annotations"))
	if err != nil {
		return 0
	}
	n := 0
	for _, x := range e {
		if strings.HasSuffix(x.Name(), ".xml") {
			n++
		}
	}
	return n
}

// StateDir is where a collection's fine-tune keeps its state.
func StateDir(dir string) string { return filepath.Join(dir, "finetune") }

// CollectConfig configures a Collector.
type CollectConfig struct {
	Dir string
	// Quota bounds the bytes the frames and labels may take (the
	// fine-tune's state in DIR/finetune is not counted); the oldest pending
	// frames go first, and labelled ones are never removed.
	Quota int64
	// MinScore is the pipeline's threshold: a face scored within Margin of
	// it (0.15 when 0) makes its frame one the model was unsure of.
	MinScore, Margin float64
	// Every is the least time between two frames kept as unsure (5 s when
	// 0), so a person lingering in front of the camera gives one frame,
	// not a hundred.
	Every time.Duration
	// VOCName names a class in the annotations written (see VOCName).
	VOCName func(class int) string
	// Classes are the model's class names, for the page.
	Classes []string
	Log     *slog.Logger
}

// Collector keeps frames for the operator to label: those the model was
// unsure of and those the operator flags as mistakes. It observes the
// pipeline (deploy.Observer) without slowing it: frames are copied at most
// a few times a second and written by a goroutine of their own.
type Collector struct {
	cfg CollectConfig
	log *slog.Logger
	ch  chan pendingFrame

	mu       sync.Mutex
	last     pendingFrame // the latest frame, for Flag
	lastCopy time.Time
	lastKept time.Time
	used     int64
	full     bool
	seq      atomic.Uint64

	saved, dropped atomic.Uint64
}

// Face is a face of a collected frame: what the model found, or what the
// operator labelled.
type Face struct {
	// Box is [x1, y1, x2, y2] in frame pixels.
	Box   [4]float64 `json:"box"`
	Label string     `json:"label"`
	Class int        `json:"class"`
	Score float64    `json:"score,omitempty"`
}

// Pending is a collected frame waiting for labels.
type Pending struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"` // "unsure" or "operator"
	Model  string    `json:"model"`
	Width  int       `json:"width"`
	Height int       `json:"height"`
	Faces  []Face    `json:"faces"`
}

type pendingFrame struct {
	meta  Pending
	frame detect.Frame
}

// CollectStats is the collection's state for /api/status and the page.
type CollectStats struct {
	Dir      string `json:"dir"`
	Pending  int    `json:"pending"`
	Labelled int    `json:"labelled"`
	Bytes    int64  `json:"bytes"`
	Quota    int64  `json:"quota"`
	Saved    uint64 `json:"saved"`
	// Dropped counts frames not kept: the writer was busy or the quota full.
	Dropped uint64 `json:"dropped"`
	Full    bool   `json:"full"`
}

// NewCollector opens (or makes) the collection folder.
func NewCollector(cfg CollectConfig) (*Collector, error) {
	if cfg.Dir == "" {
		return nil, errors.New("collect: no folder")
	}
	if cfg.Quota <= 0 {
		return nil, fmt.Errorf("collect: quota %d: give a positive size", cfg.Quota)
	}
	if cfg.Margin <= 0 {
		cfg.Margin = 0.15
	}
	if cfg.Every <= 0 {
		cfg.Every = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.VOCName == nil {
		cfg.VOCName = func(k int) string { return cfg.Classes[k] }
	}
	for _, d := range []string{pendingDir, filepath.Join(labelledDir, "images"),
		filepath.Join(labelledDir, "annotations")} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("collect: %w", err)
		}
	}
	c := &Collector{cfg: cfg, log: cfg.Log, ch: make(chan pendingFrame, 2)}
	// The quota counts frames and labels, not the fine-tune's state beside them.
	c.used = dirBytes(filepath.Join(cfg.Dir, pendingDir)) +
		dirBytes(filepath.Join(cfg.Dir, labelledDir))
	return c, nil
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// Observe is called with every frame the running model detects on.
func (c *Collector) Observe(f detect.Frame, faces []detect.Face, info detect.Info) {
	now := time.Now()
	unsure := false
	for _, face := range faces {
		if math.Abs(face.Score-c.cfg.MinScore) < c.cfg.Margin {
			unsure = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := unsure && now.Sub(c.lastKept) >= c.cfg.Every
	if !keep && now.Sub(c.lastCopy) < 250*time.Millisecond {
		return
	}
	c.lastCopy = now
	c.last.frame = copyFrame(f, c.last.frame.Pix)
	c.last.meta = Pending{Time: now, Model: info.Version, Width: f.Width, Height: f.Height,
		Faces: toFaces(faces, c.cfg.MinScore-c.cfg.Margin)}
	if !keep {
		return
	}
	c.lastKept = now
	p := pendingFrame{meta: c.last.meta, frame: copyFrame(f, nil)}
	p.meta.Reason = "unsure"
	select {
	case c.ch <- p:
	default:
		c.dropped.Add(1)
	}
}

func toFaces(faces []detect.Face, minScore float64) []Face {
	out := []Face{}
	for _, f := range faces {
		if f.Score < minScore {
			continue
		}
		out = append(out, Face{Box: [4]float64{f.Box.X1, f.Box.Y1, f.Box.X2, f.Box.Y2},
			Label: f.Label, Class: f.Class, Score: f.Score})
	}
	return out
}

func copyFrame(f detect.Frame, buf []byte) detect.Frame {
	n := f.Width * f.Height * 3
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	for y := range f.Height {
		copy(buf[y*f.Width*3:(y+1)*f.Width*3], f.Pix[y*f.Stride:])
	}
	return detect.Frame{Pix: buf, Width: f.Width, Height: f.Height, Stride: f.Width * 3}
}

// Flag keeps the latest frame as a mistake the operator saw, and returns
// its ID.
func (c *Collector) Flag() (string, error) {
	c.mu.Lock()
	if c.last.frame.Width == 0 {
		c.mu.Unlock()
		return "", errors.New("no frame yet")
	}
	p := pendingFrame{meta: c.last.meta, frame: copyFrame(c.last.frame, nil)}
	c.mu.Unlock()
	p.meta.Reason = "operator"
	return c.save(p)
}

// Run writes the frames Observe keeps until ctx is done.
func (c *Collector) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-c.ch:
			if _, err := c.save(p); err != nil {
				c.log.Warn("collect: frame not kept", "err", err)
			}
		}
	}
}

var idPattern = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)

func (c *Collector) newID(t time.Time) string {
	return fmt.Sprintf("%s-%03d", t.UTC().Format("20060102-150405"), c.seq.Add(1)%1000)
}

// save writes one pending frame, making room under the quota.
func (c *Collector) save(p pendingFrame) (string, error) {
	p.meta.ID = c.newID(p.meta.Time)
	img := toImage(p.frame)
	var jpg strings.Builder
	if err := jpeg.Encode(&jpg, img, &jpeg.Options{Quality: 90}); err != nil {
		return "", fmt.Errorf("collect: %w", err)
	}
	meta, err := json.MarshalIndent(p.meta, "", "  ")
	if err != nil {
		return "", err
	}
	size := int64(jpg.Len() + len(meta))
	if err := c.makeRoom(size); err != nil {
		c.dropped.Add(1)
		return "", err
	}
	base := filepath.Join(c.cfg.Dir, pendingDir, p.meta.ID)
	if err := writeAtomic(base+".jpg", []byte(jpg.String())); err != nil {
		return "", fmt.Errorf("collect: %w", err)
	}
	if err := writeAtomic(base+".json", meta); err != nil {
		os.Remove(base + ".jpg")
		return "", fmt.Errorf("collect: %w", err)
	}
	c.mu.Lock()
	c.used += size
	c.mu.Unlock()
	c.saved.Add(1)
	return p.meta.ID, nil
}

// makeRoom removes the oldest pending frames until size more bytes fit.
func (c *Collector) makeRoom(size int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used+size <= c.cfg.Quota {
		c.full = false
		return nil
	}
	pending := c.listLocked()
	for _, p := range pending { // oldest first
		if c.used+size <= c.cfg.Quota {
			break
		}
		c.used -= c.removePending(p.ID)
	}
	if c.used+size > c.cfg.Quota {
		if !c.full {
			c.log.Warn("collect: the folder is full of labelled frames: fine-tune, or raise "+
				"--collect-quota", "dir", c.cfg.Dir, "quota", c.cfg.Quota)
		}
		c.full = true
		return fmt.Errorf("collect: quota of %d bytes full", c.cfg.Quota)
	}
	return nil
}

func (c *Collector) removePending(id string) int64 {
	var n int64
	for _, ext := range []string{".jpg", ".json"} {
		path := filepath.Join(c.cfg.Dir, pendingDir, id+ext)
		if info, err := os.Stat(path); err == nil && os.Remove(path) == nil {
			n += info.Size()
		}
	}
	return n
}

func toImage(f detect.Frame) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	for y := range f.Height {
		row := f.Pix[y*f.Stride:]
		dst := img.Pix[y*img.Stride:]
		for x := range f.Width {
			dst[4*x], dst[4*x+1], dst[4*x+2], dst[4*x+3] = row[3*x+2], row[3*x+1], row[3*x], 255
		}
	}
	return img
}

// List returns the pending frames, oldest first.
func (c *Collector) List() []Pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.listLocked()
}

func (c *Collector) listLocked() []Pending {
	entries, _ := os.ReadDir(filepath.Join(c.cfg.Dir, pendingDir))
	var out []Pending
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !idPattern.MatchString(id) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(c.cfg.Dir, pendingDir, e.Name()))
		if err != nil {
			continue
		}
		var p Pending
		if json.Unmarshal(raw, &p) == nil {
			p.ID = id
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Pending) int { return a.Time.Compare(b.Time) })
	return out
}

// ErrNoFrame is returned, wrapped, for an ID that names no pending frame.
var ErrNoFrame = errors.New("no such pending frame")

// ImagePath is the JPEG file of a pending frame.
func (c *Collector) ImagePath(id string) (string, error) {
	if !idPattern.MatchString(id) {
		return "", fmt.Errorf("%w: %q", ErrNoFrame, id)
	}
	path := filepath.Join(c.cfg.Dir, pendingDir, id+".jpg")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w: %s", ErrNoFrame, id)
	}
	return path, nil
}

// Label stores the operator's faces for a pending frame (confirmed,
// corrected or drawn; none for a frame without faces) as a Pascal VOC
// annotation, and moves the frame to the labelled folder.
func (c *Collector) Label(id string, faces []Face) error {
	img, err := c.ImagePath(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	raw, err := os.ReadFile(strings.TrimSuffix(img, ".jpg") + ".json")
	if err != nil {
		return fmt.Errorf("%w: %s", ErrNoFrame, id)
	}
	var p Pending
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("collect: %s: %w", id, err)
	}
	ann := vocAnnotation{Folder: "images", Filename: id + ".jpg",
		Size: vocSize{Width: p.Width, Height: p.Height, Depth: 3}}
	for i, f := range faces {
		b := box.Box{X1: f.Box[0], Y1: f.Box[1], X2: f.Box[2], Y2: f.Box[3]}.Clip(
			float64(p.Width), float64(p.Height))
		if !(b.Width() >= 2 && b.Height() >= 2) {
			return fmt.Errorf("collect: face %d of %s: box %v is empty or outside the frame",
				i+1, id, f.Box)
		}
		if f.Class < 0 || f.Class >= len(c.cfg.Classes) {
			return fmt.Errorf("collect: face %d of %s: class %d: the model has %d classes",
				i+1, id, f.Class, len(c.cfg.Classes))
		}
		ann.Objects = append(ann.Objects, vocObject{Name: c.cfg.VOCName(f.Class),
			Pose: "Unspecified", BndBox: vocBox{XMin: math.Round(b.X1), YMin: math.Round(b.Y1),
				XMax: math.Round(b.X2), YMax: math.Round(b.Y2)}})
	}
	out, err := xml.MarshalIndent(ann, "", "  ")
	if err != nil {
		return err
	}
	dir := LabelledDir(c.cfg.Dir)
	if err := os.Rename(img, filepath.Join(dir, "images", id+".jpg")); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, "annotations", id+".xml"),
		append(out, '\n')); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	c.used += int64(len(out)) - int64(len(raw))
	os.Remove(strings.TrimSuffix(img, ".jpg") + ".json")
	return nil
}

// Discard removes a pending frame (nothing in it worth learning).
func (c *Collector) Discard(id string) error {
	if _, err := c.ImagePath(id); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used -= c.removePending(id)
	return nil
}

// Stats describes the collection.
func (c *Collector) Stats() CollectStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := CollectStats{Dir: c.cfg.Dir, Bytes: c.used, Quota: c.cfg.Quota, Full: c.full,
		Saved: c.saved.Load(), Dropped: c.dropped.Load()}
	if e, err := os.ReadDir(filepath.Join(c.cfg.Dir, pendingDir)); err == nil {
		for _, x := range e {
			if strings.HasSuffix(x.Name(), ".json") {
				s.Pending++
			}
		}
	}
	s.Labelled = Labelled(c.cfg.Dir)
	return s
}

// Classes are the model's class names, as faces' Class indexes them.
func (c *Collector) Classes() []string { return c.cfg.Classes }

type vocAnnotation struct {
	XMLName  xml.Name    `xml:"annotation"`
	Folder   string      `xml:"folder"`
	Filename string      `xml:"filename"`
	Size     vocSize     `xml:"size"`
	Objects  []vocObject `xml:"object"`
}

type vocSize struct {
	Width  int `xml:"width"`
	Height int `xml:"height"`
	Depth  int `xml:"depth"`
}

type vocObject struct {
	Name      string `xml:"name"`
	Pose      string `xml:"pose"`
	Truncated int    `xml:"truncated"`
	Difficult int    `xml:"difficult"`
	BndBox    vocBox `xml:"bndbox"`
}

type vocBox struct {
	XMin float64 `xml:"xmin"`
	YMin float64 `xml:"ymin"`
	XMax float64 `xml:"xmax"`
	YMax float64 `xml:"ymax"`
}
