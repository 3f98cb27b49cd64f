package server

import "net/http"

// Handle serves h at pattern without the bearer token: pages and scripts
// that hold nothing secret (the admin page, which asks for the token and
// sends it with each request it makes).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }
