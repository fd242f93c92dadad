package web

import (
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// overview is what the overview page shows.
type overview struct {
	TunnelsUp, TunnelsDown int
	Devices, DevicesOnline int
	Edges                  []model.Edge
	Counters               counters
}

// deviceOnline is how recently a device must have been heard to count as online.
const deviceOnline = 3 * time.Minute

// online reports whether a device last seen at t counts as online.
func online(t *time.Time) bool { return t != nil && time.Since(*t) < deviceOnline }

func (s *Server) overviewPage(q *req) error {
	ctx := q.r.Context()
	tunnels, err := q.api.ListTunnels(ctx, model.TunnelFilter{})
	if err != nil {
		return err
	}
	devices, err := q.api.ListDevices(ctx, false)
	if err != nil {
		return err
	}
	edges, err := q.api.Edges(ctx)
	if err != nil {
		return err
	}
	var o overview
	for _, t := range tunnels {
		if len(t.Connections) > 0 {
			o.TunnelsUp++
		} else {
			o.TunnelsDown++
		}
	}
	o.Devices = len(devices)
	for _, d := range devices {
		if online(d.LastSeen) {
			o.DevicesOnline++
		}
	}
	o.Edges = edges
	if o.Counters, err = q.counters(); err != nil {
		return err
	}
	return q.render("overview", "overview", "Overview", o)
}
