package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/maskwatch/maskwatch/edge/events"
)

// Publisher forwards the events of a Bus to a broker topic as JSON. It runs
// on its own goroutine: when the broker is away it reconnects with backoff
// (1 s doubling to 30 s) and retries the event it was sending, while new
// events wait in a queue of 256 and the oldest beyond that are lost.
type Publisher struct {
	cfg   Config
	topic string
	bus   *events.Bus
	sub   *events.Sub
	log   *slog.Logger

	mu    sync.Mutex
	state events.Delivery
}

// NewPublisher checks cfg and subscribes to bus; Run starts delivering.
func NewPublisher(cfg Config, topic string, bus *events.Bus, log *slog.Logger) (*Publisher,
	error) {
	if _, err := parseURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.QoS > 1 {
		return nil, errQoS(cfg.QoS)
	}
	if log == nil {
		log = slog.Default()
	}
	target := cfg.URL
	if u, err := url.Parse(cfg.URL); err == nil {
		target = u.Redacted()
	}
	p := &Publisher{cfg: cfg, topic: topic, bus: bus, sub: bus.Subscribe(256),
		log: log.With("mqtt", target)}
	p.state = events.Delivery{Target: target + " " + topic, Since: time.Now()}
	return p, nil
}

type errQoS byte

func (e errQoS) Error() string {
	return fmt.Sprintf("mqtt qos %d: use 0 or 1", byte(e))
}

// Status returns the delivery state.
func (p *Publisher) Status() events.Delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state
	s.Dropped = p.sub.Dropped()
	return s
}

func (p *Publisher) setUp(up bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.state.LastError = err.Error()
		p.state.Failed++
	}
	if p.state.Up == up {
		return
	}
	p.state.Up, p.state.Since = up, time.Now()
	if up {
		p.log.Info("mqtt connected")
	} else {
		p.log.Warn("mqtt broker unreachable; retrying with backoff", "err", err)
	}
}

// Run delivers until ctx is done, then disconnects and unsubscribes.
func (p *Publisher) Run(ctx context.Context) {
	defer p.bus.Unsubscribe(p.sub)
	backoff := time.Second
	var pending []byte
	first := true
	for ctx.Err() == nil {
		conn, err := Dial(ctx, p.cfg)
		if err != nil {
			if first {
				p.log.Warn("mqtt broker unreachable; retrying with backoff", "err", err)
				first = false
			}
			p.setUp(false, err)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		first = false
		p.setUp(true, nil)
		backoff = time.Second
		pending, err = p.serve(ctx, conn, pending)
		conn.Close()
		if err != nil {
			p.setUp(false, err)
			if !sleep(ctx, backoff) {
				return
			}
		}
	}
}

// serve publishes on conn until it fails (returning the undelivered
// message) or ctx is done.
func (p *Publisher) serve(ctx context.Context, conn *Conn, pending []byte) ([]byte, error) {
	keep := p.cfg.KeepAlive
	if keep <= 0 {
		keep = 30 * time.Second
	}
	ping := time.NewTicker(keep / 2)
	defer ping.Stop()
	for {
		if pending != nil {
			if err := conn.Publish(p.topic, pending, p.cfg.QoS); err != nil {
				return pending, err
			}
			pending = nil
			p.mu.Lock()
			p.state.Delivered++
			p.mu.Unlock()
			ping.Reset(keep / 2)
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case e, ok := <-p.sub.C:
			if !ok {
				return nil, nil
			}
			msg, err := json.Marshal(e)
			if err != nil {
				p.log.Error("mqtt: event not encodable", "err", err)
				continue
			}
			pending = msg
		case <-ping.C:
			if err := conn.Ping(); err != nil {
				return nil, err
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
