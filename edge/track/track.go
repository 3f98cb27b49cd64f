// Package track follows faces from frame to frame by the overlap of their
// boxes (IoU), so that the pipeline can say when a face enters the view,
// when its label changes and when it leaves, rather than once per frame.
package track

import (
	"cmp"
	"slices"
	"time"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/box"
)

// Kind is what happened to a track.
type Kind string

// The kinds of change.
const (
	Enter  Kind = "enter"  // a face was seen in MinHits frames in a row
	Change Kind = "change" // a face's label changed and held for MinHits frames
	Leave  Kind = "leave"  // a face was not seen for more than MaxMisses frames
)

// Track is one face followed across frames.
type Track struct {
	ID     uint64
	Box    box.Box
	Class  int
	Label  string
	Proper bool
	// Score is the last detection's score; Best the highest so far.
	Score, Best float64
	First, Last time.Time
	hits        int
	misses      int
	confirmed   bool
	pending     int // frames in a row with a label other than Label
	pendingFace detect.Face
}

// Event is a change to a track, with the track as it is after the change.
type Event struct {
	Kind  Kind
	Track Track
}

// Tracker matches each frame's faces to the tracks of the frames before.
// Its zero value is not ready: use New. Not safe for concurrent use.
type Tracker struct {
	// MinIoU is the overlap a face needs with a track to continue it.
	MinIoU float64
	// MinHits is how many frames in a row confirm a face (and a new label).
	MinHits int
	// MaxMisses is how many frames a face may be missing before it leaves.
	MaxMisses int

	tracks []*Track
	nextID uint64
	pairs  []pair
	used   []bool
}

type pair struct {
	iou         float64
	track, face int
}

// New returns a Tracker with the defaults: IoU 0.3, two frames to enter,
// eight missed frames to leave.
func New() *Tracker {
	return &Tracker{MinIoU: 0.3, MinHits: 2, MaxMisses: 8, nextID: 1}
}

// Update takes the faces of a frame seen at now, appends the resulting
// events to dst and returns it.
func (t *Tracker) Update(faces []detect.Face, now time.Time, dst []Event) []Event {
	t.pairs = t.pairs[:0]
	for ti, tr := range t.tracks {
		for fi, f := range faces {
			if iou := box.IoU(tr.Box, f.Box); iou >= t.MinIoU {
				t.pairs = append(t.pairs, pair{iou, ti, fi})
			}
		}
	}
	slices.SortFunc(t.pairs, func(a, b pair) int { return cmp.Compare(b.iou, a.iou) })
	t.used = slices.Grow(t.used[:0], len(faces))[:len(faces)]
	clear(t.used)
	matched := make([]bool, len(t.tracks))
	for _, p := range t.pairs {
		if matched[p.track] || t.used[p.face] {
			continue
		}
		matched[p.track], t.used[p.face] = true, true
		dst = t.hit(t.tracks[p.track], faces[p.face], now, dst)
	}

	kept := t.tracks[:0]
	for i, tr := range t.tracks {
		if !matched[i] {
			tr.misses++
			tr.hits = 0
			if tr.misses > t.MaxMisses || !tr.confirmed {
				if tr.confirmed {
					dst = append(dst, Event{Leave, *tr})
				}
				continue
			}
		}
		kept = append(kept, tr)
	}
	clear(t.tracks[len(kept):])
	t.tracks = kept

	for fi, f := range faces {
		if t.used[fi] {
			continue
		}
		tr := &Track{ID: t.nextID, First: now}
		t.nextID++
		setFace(tr, f, now)
		tr.hits = 1
		t.tracks = append(t.tracks, tr)
		if t.MinHits <= 1 {
			tr.confirmed = true
			dst = append(dst, Event{Enter, *tr})
		}
	}
	return dst
}

func setFace(tr *Track, f detect.Face, now time.Time) {
	tr.Box, tr.Class, tr.Label, tr.Proper, tr.Score = f.Box, f.Class, f.Label, f.Proper, f.Score
	tr.Best = max(tr.Best, f.Score)
	tr.Last = now
}

// hit continues tr with face f.
func (t *Tracker) hit(tr *Track, f detect.Face, now time.Time, dst []Event) []Event {
	tr.misses = 0
	tr.hits++
	tr.Box, tr.Score, tr.Last = f.Box, f.Score, now
	tr.Best = max(tr.Best, f.Score)
	if !tr.confirmed {
		setFace(tr, f, now)
		if tr.hits >= t.MinHits {
			tr.confirmed = true
			dst = append(dst, Event{Enter, *tr})
		}
		return dst
	}
	if f.Class == tr.Class {
		tr.pending = 0
		return dst
	}
	if tr.pending == 0 || tr.pendingFace.Class != f.Class {
		tr.pending = 0
		tr.pendingFace = f
	}
	tr.pending++
	if tr.pending >= t.MinHits {
		tr.pending = 0
		setFace(tr, f, now)
		dst = append(dst, Event{Change, *tr})
	}
	return dst
}

// Flush ends every track (the source was lost or the run ends) and
// appends a Leave event for each confirmed one.
func (t *Tracker) Flush(dst []Event) []Event {
	for _, tr := range t.tracks {
		if tr.confirmed {
			dst = append(dst, Event{Leave, *tr})
		}
	}
	clear(t.tracks)
	t.tracks = t.tracks[:0]
	return dst
}

// Confirmed appends the tracks that have entered and not left to dst.
func (t *Tracker) Confirmed(dst []Track) []Track {
	for _, tr := range t.tracks {
		if tr.confirmed {
			dst = append(dst, *tr)
		}
	}
	return dst
}
