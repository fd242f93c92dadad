package wireguard

import "time"

// LastReceived returns when the last authenticated packet (data, keepalive or
// handshake) arrived from the peer, or the zero time if none did. The edge
// uses it to tell live replicas from dead ones.
func (s *Session) LastReceived() time.Time {
	ns := s.lastRecv.Load()
	if ns == 0 {
		return time.Time{}
	}
	return s.e.epoch.Add(time.Duration(ns))
}
