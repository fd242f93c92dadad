package api

// WaitingPolls returns how many configuration long polls of s wait for a change.
func WaitingPolls(s *Server) int { return int(s.feed.waiting.Load()) }
