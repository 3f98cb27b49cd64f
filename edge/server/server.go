// Package server is maskwatch's HTTP face in headless mode: a page with the
// live stream and counts, the MJPEG stream, status JSON, server-sent events,
// Prometheus metrics and a health check, plus admin endpoints that need a
// bearer token. Request sizes, connections and viewers are bounded.
package server

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/edge/stream"
)

//go:embed web
var web embed.FS

// Provider is what the server shows: the pipeline's state.
type Provider interface {
	// Status returns a JSON-encodable document for /api/status.
	Status() any
	// WriteMetrics writes the Prometheus text exposition for /metrics.
	WriteMetrics(w io.Writer)
	// Healthy says whether the pipeline is running, and why not.
	Healthy() (bool, string)
}

// Config bounds and secures the server.
type Config struct {
	// Addr is the listen address, 127.0.0.1:8080 when empty.
	Addr string
	// AdminToken authorises changing endpoints; empty turns them off (403).
	AdminToken string
	// MaxConns bounds open connections (64); more are closed at once.
	MaxConns int
	// MaxViewers bounds /stream.mjpg clients (8); more get 503.
	MaxViewers int
	// MaxEventClients bounds /api/events clients (16); more get 503.
	MaxEventClients int
	// MaxBodyBytes bounds a request body (1 MiB) unless HandleAdmin says more.
	MaxBodyBytes int64
	// WriteTimeout is how long one write to a client may take (10 s) before
	// the client is dropped.
	WriteTimeout time.Duration
	Log          *slog.Logger
}

func (c *Config) defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 64
	}
	if c.MaxViewers <= 0 {
		c.MaxViewers = 8
	}
	if c.MaxEventClients <= 0 {
		c.MaxEventClients = 16
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Server serves one pipeline.
type Server struct {
	cfg  Config
	hub  *stream.Hub
	bus  *events.Bus
	prov Provider
	mux  *http.ServeMux

	viewers   atomic.Int32
	sseCount  atomic.Int32
	rejected  atomic.Uint64
	mu        sync.Mutex
	addr      string
	listening chan struct{}
}

// New builds the server; ListenAndServe starts it.
func New(cfg Config, hub *stream.Hub, bus *events.Bus, prov Provider) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg, hub: hub, bus: bus, prov: prov, mux: http.NewServeMux(),
		listening: make(chan struct{})}
	s.mux.HandleFunc("GET /{$}", s.static("web/index.html", "text/html; charset=utf-8"))
	s.mux.HandleFunc("GET /app.js", s.static("web/app.js", "text/javascript; charset=utf-8"))
	s.mux.HandleFunc("GET /stream.mjpg", s.serveStream)
	s.mux.HandleFunc("GET /snapshot.jpg", s.serveSnapshot)
	s.mux.HandleFunc("GET /api/status", s.serveStatus)
	s.mux.HandleFunc("GET /api/events", s.serveEvents)
	s.mux.HandleFunc("GET /metrics", s.serveMetrics)
	s.mux.HandleFunc("GET /healthz", s.serveHealth)
	return s
}

// HandleAdmin serves h at pattern (such as "POST /api/reload") behind the
// bearer token, with request bodies bounded by maxBody bytes (0: the
// server's default).
func (s *Server) HandleAdmin(pattern string, h http.Handler, maxBody int64) {
	if maxBody <= 0 {
		maxBody = s.cfg.MaxBodyBytes
	}
	s.mux.Handle(pattern, s.admin(h, maxBody))
}

// Handler is the whole server's handler (with its headers and limits), for
// tests and for embedding.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy",
			"default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Body != nil {
			// Admin handlers narrow or widen this (from the body kept in the
			// context: a bound cannot be widened by wrapping); the rest take
			// no body.
			r = r.WithContext(context.WithValue(r.Context(), rawBodyKey{}, r.Body))
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		s.mux.ServeHTTP(w, r)
	})
}

// Addr is the address the server listens on, once it does ("" before).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Listening is closed once the server accepts connections.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// ListenAndServe serves until ctx is done, then shuts down (waiting up to
// five seconds for requests other than streams to end).
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
	}
	ln = &limitListener{Listener: ln, sem: make(chan struct{}, s.cfg.MaxConns),
		rejected: &s.rejected}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelDebug),
	}
	close(s.listening)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// limitListener closes connections beyond its capacity at once, so that a
// flood cannot exhaust the device, and the rest keep being served.
type limitListener struct {
	net.Listener
	sem      chan struct{}
	rejected *atomic.Uint64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.rejected.Add(1)
			c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Rejected counts connections closed because the server was full.
func (s *Server) Rejected() uint64 { return s.rejected.Load() }

// Viewers is the number of /stream.mjpg clients.
func (s *Server) Viewers() int { return int(s.viewers.Load()) }

// EventClients is the number of /api/events clients.
func (s *Server) EventClients() int { return int(s.sseCount.Load()) }

func (s *Server) static(name, ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := web.ReadFile(name)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	}
}

// rawBodyKey keeps a request's body, before the server's default bound, in
// its context.
type rawBodyKey struct{}

// admin checks the bearer token before h.
func (s *Server) admin(h http.Handler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" {
			http.Error(w, "admin endpoints are off: start maskwatch with --admin-token "+
				"or --admin-token-file", http.StatusForbidden)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="maskwatch"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			s.cfg.Log.Warn("admin request refused", "path", r.URL.Path,
				"remote", r.RemoteAddr)
			return
		}
		if r.ContentLength > maxBody {
			http.Error(w, fmt.Sprintf("request body over %d bytes", maxBody),
				http.StatusRequestEntityTooLarge)
			return
		}
		body := r.Body
		if raw, ok := r.Context().Value(rawBodyKey{}).(io.ReadCloser); ok {
			body = raw
		}
		r.Body = http.MaxBytesReader(w, body, maxBody)
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.prov.Status())
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	ok, why := s.prov.Healthy()
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ok": ok, "reason": why})
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.prov.WriteMetrics(w)
	fmt.Fprintf(w, "# HELP maskwatch_http_viewers Clients of /stream.mjpg.\n"+
		"# TYPE maskwatch_http_viewers gauge\nmaskwatch_http_viewers %d\n", s.viewers.Load())
	fmt.Fprintf(w, "# HELP maskwatch_http_event_clients Clients of /api/events.\n"+
		"# TYPE maskwatch_http_event_clients gauge\nmaskwatch_http_event_clients %d\n",
		s.sseCount.Load())
	fmt.Fprintf(w, "# HELP maskwatch_http_rejected_connections_total Connections closed "+
		"because the server was full.\n# TYPE maskwatch_http_rejected_connections_total "+
		"counter\nmaskwatch_http_rejected_connections_total %d\n", s.rejected.Load())
}

// take reserves one of max places counted by n.
func take(n *atomic.Int32, limit int) bool {
	if n.Add(1) > int32(limit) {
		n.Add(-1)
		return false
	}
	return true
}

const boundary = "maskwatchframe"

func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	if !take(&s.viewers, s.cfg.MaxViewers) {
		http.Error(w, fmt.Sprintf("at most %d viewers; try again later", s.cfg.MaxViewers),
			http.StatusServiceUnavailable)
		return
	}
	defer s.viewers.Add(-1)
	v := s.hub.Watch()
	defer v.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "multipart/x-mixed-replace; boundary="+boundary)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	ctx := r.Context()
	for {
		img, err := v.Next(ctx)
		if err != nil {
			return
		}
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		_, err = fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n",
			boundary, len(img))
		if err == nil {
			_, err = w.Write(img)
		}
		if err == nil {
			_, err = io.WriteString(w, "\r\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return // the viewer left or was too slow
		}
	}
}

func (s *Server) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	img, err := s.hub.Latest(ctx)
	if err != nil {
		http.Error(w, "no frame yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(img)
}

// heartbeat is how often an idle event stream gets a comment line, so
// proxies and clients see it is alive.
var heartbeat = 15 * time.Second

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	if !take(&s.sseCount, s.cfg.MaxEventClients) {
		http.Error(w, fmt.Sprintf("at most %d event clients", s.cfg.MaxEventClients),
			http.StatusServiceUnavailable)
		return
	}
	defer s.sseCount.Add(-1)
	sub := s.bus.Subscribe(64)
	defer s.bus.Unsubscribe(sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	write := func(format string, args ...any) bool {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("retry: 2000\n: maskwatch events\n\n") {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	var id uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if !write(": ping\n\n") {
				return
			}
		case e, ok := <-sub.C:
			if !ok {
				return
			}
			b, err := json.Marshal(e)
			if err != nil {
				continue
			}
			id++
			if !write("id: %d\nevent: %s\ndata: %s\n\n", id, e.Type, b) {
				return
			}
		}
	}
}
