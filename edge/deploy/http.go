package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// SHA256Header carries the sha256 (hex) of an uploaded bundle as the
// sender computed it, so that damage in transit is told from a bad bundle.
const SHA256Header = "X-Bundle-SHA256"

// The HTTP statuses of POST /api/model:
//
//	200  accepted: the bundle runs (or already ran)
//	400  empty body
//	401  missing or wrong bearer token (the server's admin check)
//	403  unsigned, or not signed by a trusted key (or admin endpoints off)
//	409  another deployment is under way, or the model is built in
//	413  over the size limit
//	422  damaged (sha256), not a bundle, another format version, does not
//	     load on this device's engine, fails its self-check, or failed
//	     once swapped in (and was rolled back)
//	500  the file could not be written; 507 the disk is full
//
// Every answer is JSON: an Outcome (ok, stage, error, version, ...).

// Handler serves GET /api/model (the Doc) and POST /api/model (a
// deployment). Both go behind the server's bearer token, with bodies
// bounded by MaxBytes.
func (d *Deployer) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			writeJSON(w, http.StatusOK, d.Doc())
		case http.MethodPost:
			d.servePost(w, r)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
		}
	})
}

// MaxBytes is the upload limit the handler needs from the server.
func (d *Deployer) MaxBytes() int64 { return d.cfg.MaxBytes }

func (d *Deployer) servePost(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > d.cfg.MaxBytes {
		writeJSON(w, http.StatusRequestEntityTooLarge, Outcome{Code: 413, Stage: StageSize,
			Error: fmt.Sprintf("%d bytes, over this device's limit of %d (--max-model-size)",
				r.ContentLength, d.cfg.MaxBytes)})
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, d.cfg.MaxBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, Outcome{Code: 413,
				Stage: StageSize, Error: fmt.Sprintf("over this device's limit of %d bytes "+
					"(--max-model-size)", tooBig.Limit)})
			return
		}
		writeJSON(w, http.StatusBadRequest, Outcome{Code: 400, Stage: StageRequest,
			Error: "reading the upload: " + err.Error()})
		return
	}
	out := d.Deploy(r.Context(), Request{Data: data, SHA256: r.Header.Get(SHA256Header),
		Source: "deploy", From: r.RemoteAddr})
	writeJSON(w, out.Code, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Refuse answers a deployment this device cannot take at all (code 409),
// such as one to a device running its built-in model.
func Refuse(reason string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusConflict, Outcome{Code: http.StatusConflict,
			Stage: StageRequest, Error: reason})
	})
}
