// Package webhook posts maskwatch's events to an HTTP endpoint, one JSON
// event per request, from its own goroutine: failures are retried with
// backoff and never hold up the pipeline.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/maskwatch/maskwatch/edge/events"
)

// Config says where to post.
type Config struct {
	URL string
	// Token, when set, is sent as "Authorization: Bearer TOKEN".
	Token string
	// Timeout bounds one request; 0 means 10 s.
	Timeout time.Duration
	// MaxAttempts is how often one event is tried before it is given up;
	// 0 means 8 (about four minutes of backoff).
	MaxAttempts int
	// MinBackoff is the first wait after a failure, doubled up to 30 s;
	// 0 means 1 s.
	MinBackoff time.Duration
}

// Poster delivers the events of a Bus. Events wait in a queue of 256
// while a delivery is retried; beyond that the oldest are lost. A 4xx
// answer other than 408 and 429 gives the event up at once (the receiver
// refuses it); network errors and other answers are retried.
type Poster struct {
	cfg    Config
	client *http.Client
	bus    *events.Bus
	sub    *events.Sub
	log    *slog.Logger

	mu    sync.Mutex
	state events.Delivery
}

// New checks cfg and subscribes to bus; Run starts delivering.
func New(cfg Config, bus *events.Bus, log *slog.Logger) (*Poster, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q: want http:// or https:// with a host", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Poster{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, bus: bus,
		sub: bus.Subscribe(256), log: log.With("webhook", u.Redacted())}
	p.state = events.Delivery{Target: u.Redacted(), Up: true, Since: time.Now()}
	return p, nil
}

// Status returns the delivery state.
func (p *Poster) Status() events.Delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state
	s.Dropped += p.sub.Dropped()
	return s
}

// Run delivers until ctx is done.
func (p *Poster) Run(ctx context.Context) {
	defer p.bus.Unsubscribe(p.sub)
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-p.sub.C:
			if !ok {
				return
			}
			p.deliver(ctx, e)
		}
	}
}

func (p *Poster) deliver(ctx context.Context, e events.Event) {
	body, err := json.Marshal(e)
	if err != nil {
		p.log.Error("webhook: event not encodable", "err", err)
		return
	}
	backoff := p.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		retry, err := p.post(ctx, body)
		if err == nil {
			p.record(true, nil, false)
			return
		}
		if ctx.Err() != nil {
			return
		}
		giveUp := !retry || attempt >= p.cfg.MaxAttempts
		p.record(false, err, giveUp)
		if giveUp {
			p.log.Warn("webhook: event given up", "type", e.Type, "track", e.Track,
				"attempts", attempt, "err", err)
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// post sends one request; retry says whether a failure may succeed later.
func (p *Poster) post(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL,
		bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "maskwatch")
	if p.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return true, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c >= 500:
		return true, fmt.Errorf("webhook answered %s", resp.Status)
	default:
		return false, fmt.Errorf("webhook answered %s", resp.Status)
	}
}

// record updates the state; only a change between working and failing is
// logged.
func (p *Poster) record(ok bool, err error, dropped bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		p.state.Delivered++
	} else {
		p.state.Failed++
		p.state.LastError = err.Error()
	}
	if dropped {
		p.state.Dropped++
	}
	if p.state.Up == ok {
		return
	}
	p.state.Up, p.state.Since = ok, time.Now()
	if ok {
		p.log.Info("webhook delivering again")
	} else {
		p.log.Warn("webhook failing; retrying with backoff", "err", err)
	}
}
