package api

import "net/http"

// WaitingPolls returns how many configuration long polls of s wait for a change.
func WaitingPolls(s *Server) int { return int(s.feed.waiting.Load()) }

// Patterns returns the patterns registered on s's mux, in order.
func Patterns(s *Server) []string { return s.mux.patterns }

// MatchedPattern returns the pattern of s's mux that serves r.
func MatchedPattern(s *Server, r *http.Request) string {
	_, p := s.mux.Handler(r)
	return p
}
