package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/maskwatch/maskwatch/edge/events"
	"github.com/maskwatch/maskwatch/edge/jpegenc"
	"github.com/maskwatch/maskwatch/edge/stream"
)

// An admin endpoint may take bodies larger than the server's default bound
// (model uploads), and still no larger than its own.
func TestAdminBodyLimitWidens(t *testing.T) {
	s := New(Config{AdminToken: "0123456789abcdef", MaxBodyBytes: 1 << 10},
		stream.NewHub(jpegenc.New(), 80), events.NewBus(), &fakeProvider{healthy: true})
	s.HandleAdmin("POST /api/upload", http.HandlerFunc(func(w http.ResponseWriter,
		r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprintf(w, "%d", len(b))
	}), 64<<10)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	for _, c := range []struct {
		size    int
		chunked bool
		code    int
	}{{32 << 10, false, 200}, {32 << 10, true, 200}, {80 << 10, false, 413},
		{80 << 10, true, 413}} {
		var body io.Reader = bytes.NewReader(make([]byte, c.size))
		if c.chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/upload", body)
		req.Header.Set("Authorization", "Bearer 0123456789abcdef")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%d bytes (chunked %v): %d %s, want %d", c.size, c.chunked,
				resp.StatusCode, got, c.code)
		}
		if c.code == 200 && string(got) != fmt.Sprint(c.size) {
			t.Errorf("%d bytes: the handler read %s", c.size, got)
		}
	}
}
