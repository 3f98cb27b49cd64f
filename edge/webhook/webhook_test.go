package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maskwatch/maskwatch/edge/events"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRetriesUntilDelivered: the receiver fails twice with 503, then
// accepts; the event arrives once, with the token, and a refused event
// (400) is given up without retries.
func TestRetriesUntilDelivered(t *testing.T) {
	var calls atomic.Int32
	got := make(chan events.Event, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer hook-secret" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		var e events.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if e.Label == "refuse-me" {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		got <- e
	}))
	defer srv.Close()

	bus := events.NewBus()
	var logs syncBuffer
	p, err := New(Config{URL: srv.URL + "/hook", Token: "hook-secret",
		MinBackoff: time.Millisecond}, bus, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()

	bus.Publish(events.Event{Type: "enter", Track: 7, Label: "not_proper", Score: 0.8})
	e := <-got
	if e.Track != 7 || e.Type != "enter" {
		t.Errorf("delivered %+v", e)
	}
	bus.Publish(events.Event{Type: "enter", Track: 8, Label: "refuse-me"})
	bus.Publish(events.Event{Type: "leave", Track: 7, Label: "not_proper"})
	if e := <-got; e.Track != 7 || e.Type != "leave" {
		t.Errorf("after a refused event, delivered %+v", e)
	}
	// The receiver has the event before the poster has its answer.
	for deadline := time.Now().Add(30 * time.Second); p.Status().Delivered < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the second delivery was never counted")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	st := p.Status()
	if st.Delivered != 2 || st.Failed != 3 || st.Dropped != 1 || !st.Up {
		t.Errorf("status %+v, want 2 delivered, 3 failed attempts, 1 given up", st)
	}
	if n := strings.Count(logs.String(), "webhook failing"); n != 2 {
		// once for the 503s, once for the 400
		t.Errorf("failing logged %d times:\n%s", n, logs.String())
	}
}

// TestGivesUpAfterMaxAttempts: a receiver that never answers well makes the
// poster give the event up, and the next event is still delivered later.
func TestGivesUpAfterMaxAttempts(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	bus := events.NewBus()
	p, err := New(Config{URL: srv.URL, MaxAttempts: 3, MinBackoff: time.Millisecond}, bus,
		slog.New(slog.NewTextHandler(&syncBuffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	bus.Publish(events.Event{Type: "enter"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := <-p.sub.C
	p.deliver(ctx, e)
	if calls.Load() != 3 || p.Status().Dropped != 1 {
		t.Errorf("%d calls, status %+v", calls.Load(), p.Status())
	}
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "not a url"} {
		if _, err := New(Config{URL: u}, events.NewBus(), nil); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}
