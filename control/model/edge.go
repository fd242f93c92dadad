package model

import "time"

// Edge is one edge of a cluster, as `switchyard edge list` shows it.
type Edge struct {
	Name      string    `json:"name"`
	API       string    `json:"api"`       // the API's URL as agents reach it
	WireGuard string    `json:"wireguard"` // host:port of the WireGuard listener as agents reach it
	MASQUE    string    `json:"masque,omitempty"`
	Version   string    `json:"version"`
	Started   time.Time `json:"started"`
	LastSeen  time.Time `json:"last_seen"`
	Healthy   bool      `json:"healthy"` // running: its registration is alive
}
