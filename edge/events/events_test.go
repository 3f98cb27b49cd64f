package events

import "testing"

func TestBusSlowSubscriberDrops(t *testing.T) {
	b := NewBus()
	fast := b.Subscribe(100)
	slow := b.Subscribe(2)
	for i := 0; i < 10; i++ {
		b.Publish(Event{Type: "enter", Track: uint64(i)})
	}
	if len(fast.C) != 10 || len(slow.C) != 2 {
		t.Fatalf("queues hold %d and %d events", len(fast.C), len(slow.C))
	}
	if slow.Dropped() != 8 || fast.Dropped() != 0 || b.Dropped() != 8 || b.Published() != 10 {
		t.Errorf("dropped slow %d fast %d bus %d, published %d",
			slow.Dropped(), fast.Dropped(), b.Dropped(), b.Published())
	}
	if e := <-slow.C; e.Track != 0 {
		t.Errorf("slow subscriber got track %d first, want the oldest kept", e.Track)
	}
	b.Unsubscribe(slow)
	b.Unsubscribe(slow) // twice is harmless
	if b.Subscribers() != 1 {
		t.Errorf("%d subscribers", b.Subscribers())
	}
	for range slow.C { // drains and ends: the channel is closed
	}
}
