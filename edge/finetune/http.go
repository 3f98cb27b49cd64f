package finetune

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"net/http"
)

//go:embed web
var web embed.FS

// Routes are the HTTP endpoints of collection and fine-tuning. Page and
// Script are the admin page, which holds nothing secret and is served to
// anyone; every other route needs the server's bearer token (the page asks
// for it and sends it with each request).
type Routes struct {
	Page, Script http.Handler
	// Admin maps "METHOD /path" patterns to handlers.
	Admin map[string]http.Handler
}

// NewRoutes serves c (nil when collection is off) and m (nil when
// fine-tuning cannot run here); ctx bounds the fine-tunes started.
func NewRoutes(ctx context.Context, c *Collector, m *Manager) Routes {
	r := Routes{Page: static("web/admin.html", "text/html; charset=utf-8"),
		Script: static("web/admin.js", "text/javascript; charset=utf-8"),
		Admin:  map[string]http.Handler{}}
	off := func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusConflict, map[string]any{"error": "collection is off: " +
			"start maskwatch run with --collect DIR"})
	}
	handle := func(pattern string, f http.HandlerFunc) {
		if c == nil && pattern != "GET /api/collect" {
			f = off
		}
		r.Admin[pattern] = f
	}
	handle("GET /api/collect", func(w http.ResponseWriter, _ *http.Request) {
		if c == nil {
			writeJSON(w, http.StatusOK, map[string]any{"enabled": false})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"enabled": true, "stats": c.Stats(),
			"classes": c.Classes(), "pending": c.List()})
	})
	handle("GET /api/collect/{id}/image", func(w http.ResponseWriter, req *http.Request) {
		path, err := c.ImagePath(req.PathValue("id"))
		if err != nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": err.Error()})
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFile(w, req, path)
	})
	handle("POST /api/collect/{id}", func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Faces []Face `json:"faces"`
		}
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "want JSON " +
				`{"faces": [{"box": [x1, y1, x2, y2], "class": K}]}: ` + err.Error()})
			return
		}
		if err := c.Label(req.PathValue("id"), body.Faces); err != nil {
			code := http.StatusUnprocessableEntity
			if errors.Is(err, ErrNoFrame) {
				code = http.StatusNotFound
			}
			writeJSON(w, code, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "stats": c.Stats()})
	})
	handle("DELETE /api/collect/{id}", func(w http.ResponseWriter, req *http.Request) {
		if err := c.Discard(req.PathValue("id")); err != nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	handle("POST /api/collect/flag", func(w http.ResponseWriter, _ *http.Request) {
		id, err := c.Flag()
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "id": id})
	})

	r.Admin["GET /api/finetune"] = http.HandlerFunc(func(w http.ResponseWriter,
		_ *http.Request) {
		if m == nil {
			writeJSON(w, http.StatusOK, map[string]any{"available": false})
			return
		}
		writeJSON(w, http.StatusOK, m.Status())
	})
	r.Admin["POST /api/finetune"] = http.HandlerFunc(func(w http.ResponseWriter,
		req *http.Request) {
		if m == nil {
			writeJSON(w, http.StatusConflict, map[string]any{"error": "fine-tuning needs " +
				"--collect DIR and a model file (--model PATH)"})
			return
		}
		var o StartOptions
		if req.ContentLength != 0 {
			if err := json.NewDecoder(req.Body).Decode(&o); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "want JSON " +
					`{"layers": "head", "epochs": 8, "data": ["/path"]}: ` + err.Error()})
				return
			}
		}
		switch err := m.Start(ctx, o); {
		case errors.Is(err, ErrBusy):
			writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		default:
			writeJSON(w, http.StatusAccepted, m.Status())
		}
	})
	r.Admin["DELETE /api/finetune"] = http.HandlerFunc(func(w http.ResponseWriter,
		_ *http.Request) {
		if m == nil {
			writeJSON(w, http.StatusConflict, map[string]any{"error": "no fine-tuning here"})
			return
		}
		if err := m.Stop(); err != nil {
			writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, m.Status())
	})
	return r
}

func static(name, ctype string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b, err := web.ReadFile(name)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
