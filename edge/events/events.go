// Package events carries what the pipeline notices (a face entering the
// view, changing label, leaving) to whoever listens: the page's server-sent
// events, MQTT, a webhook, the snapshot writer. Publishing never blocks: a
// listener that falls behind loses events, and they are counted.
package events

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is one change to a tracked face, as listeners receive it (JSON).
type Event struct {
	// Type is "enter", "change" or "leave".
	Type  string `json:"type"`
	Track uint64 `json:"track"`
	// Label is the detector's class name; Proper is true for a mask worn
	// properly.
	Label  string  `json:"label"`
	Proper bool    `json:"proper"`
	Score  float64 `json:"score"`
	// Box is [x1, y1, x2, y2] in frame pixels.
	Box  [4]float64 `json:"box"`
	Time time.Time  `json:"time"`
	// Seen is how long the face has been tracked, in seconds.
	Seen   float64 `json:"seen_s"`
	Frame  uint64  `json:"frame"`
	Source string  `json:"source"`
	Device string  `json:"device,omitempty"`
}

// Bus fans events out to subscribers. It is safe for concurrent use.
type Bus struct {
	mu        sync.Mutex
	subs      map[*Sub]struct{}
	published atomic.Uint64
	dropped   atomic.Uint64
}

// NewBus returns an empty Bus.
func NewBus() *Bus { return &Bus{subs: map[*Sub]struct{}{}} }

// Sub is one subscriber's queue.
type Sub struct {
	// C delivers the events; it is closed by Unsubscribe.
	C       <-chan Event
	c       chan Event
	dropped atomic.Uint64
}

// Dropped counts the events this subscriber lost because its queue was full.
func (s *Sub) Dropped() uint64 { return s.dropped.Load() }

// Subscribe adds a subscriber whose queue holds up to size events.
func (b *Bus) Subscribe(size int) *Sub {
	c := make(chan Event, max(1, size))
	s := &Sub{C: c, c: c}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Unsubscribe removes s and closes its channel.
func (b *Bus) Unsubscribe(s *Sub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.c)
	}
}

// Publish hands e to every subscriber without waiting; a full queue drops
// the event for that subscriber.
func (b *Bus) Publish(e Event) {
	b.published.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
			b.dropped.Add(1)
		}
	}
}

// Subscribers is the number of subscribers.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Published counts the events published; Dropped those lost by any
// subscriber.
func (b *Bus) Published() uint64 { return b.published.Load() }

// Dropped counts events lost by subscribers whose queue was full.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Delivery is the state of a sink that forwards events elsewhere (MQTT,
// webhook), for status pages and metrics.
type Delivery struct {
	Target    string    `json:"target"`
	Up        bool      `json:"up"`
	Delivered uint64    `json:"delivered"`
	Failed    uint64    `json:"failed_attempts"`
	Dropped   uint64    `json:"dropped"`
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since"`
}
