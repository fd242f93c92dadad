package web

import (
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/control/model"
)

func init() {
	pageSets = append(pageSets, func(s *Server) {
		s.page("GET /tunnels", s.tunnelsPage)
		s.page("GET /tunnels/live", s.tunnelsLive)
		s.page("POST /tunnels", s.createTunnel)
		s.page("GET /tunnels/{ref}/connect", s.connectTunnel)
		s.page("POST /tunnels/{ref}/failover", s.failoverTunnel)
		s.page("GET /tunnels/{ref}/delete", s.confirmDeleteTunnel)
		s.page("POST /tunnels/{ref}/delete", s.deleteTunnel)
	})
}

// tunnelsView is what the tunnels page shows.
type tunnelsView struct {
	Tunnels []model.Tunnel
	Notice  string
	Created *connectView // set right after "create tunnel"
}

// Replicas counts the replicas of every tunnel.
func (v tunnelsView) Replicas() int {
	n := 0
	for _, t := range v.Tunnels {
		n += len(t.Connections)
	}
	return n
}

// connectView is what an operator pastes on a tunnel's gateway host.
type connectView struct {
	Tunnel model.Tunnel
	Token  string
	New    bool
}

// connectorUnitEnv is the environment file the connector's systemd unit
// (deploy/systemd/switchyard-connector.service, in the switchyard package)
// reads its token from; the package installs it, commented, mode 0600.
const connectorUnitEnv = "/etc/switchyard/connector.env"

// Run is the command that runs a connector of the tunnel in the foreground.
func (c connectView) Run() string { return "switchyard connector run --token " + c.Token }

// Systemd installs the token where the systemd unit expects it (replacing a
// token set before, keeping the file's comments and mode) and starts the unit.
func (c connectView) Systemd() string {
	return strings.Join([]string{
		"sudo sed -i '/^SWITCHYARD_TUNNEL_TOKEN=/d' " + connectorUnitEnv,
		"echo 'SWITCHYARD_TUNNEL_TOKEN=" + c.Token + "' | sudo tee -a " + connectorUnitEnv + " >/dev/null",
		"sudo systemctl enable --now switchyard-connector",
	}, "\n")
}

func (q *req) tunnels() (tunnelsView, error) {
	ts, err := q.api.ListTunnels(q.r.Context(), model.TunnelFilter{})
	return tunnelsView{Tunnels: ts}, err
}

func (s *Server) tunnelsPage(q *req) error {
	v, err := q.tunnels()
	if err != nil {
		return err
	}
	return q.render("tunnels", "tunnels", "Tunnels", v)
}

// tunnelsLive is the tunnels table alone, which the page refreshes.
func (s *Server) tunnelsLive(q *req) error {
	v, err := q.tunnels()
	if err != nil {
		return err
	}
	return q.fragment("tunnels", "live", v)
}

func (s *Server) createTunnel(q *req) error {
	name := strings.TrimSpace(q.r.FormValue("name"))
	ct, err := q.api.CreateTunnel(q.r.Context(), name)
	if err != nil {
		return err
	}
	c := &connectView{Tunnel: ct.Tunnel, Token: ct.Token, New: true}
	if q.hxRequest() {
		q.w.Header().Set("HX-Trigger", "tunnels-changed")
		return q.fragment("tunnels", "connect", c)
	}
	v, err := q.tunnels()
	if err != nil {
		return err
	}
	v.Created = c
	return q.render("tunnels", "tunnels", "Tunnels", v)
}

// connectTunnel shows an existing tunnel's token and commands.
func (s *Server) connectTunnel(q *req) error {
	ct, err := q.api.TunnelToken(q.r.Context(), q.r.PathValue("ref"))
	if err != nil {
		return err
	}
	c := &connectView{Tunnel: ct.Tunnel, Token: ct.Token}
	return q.render("tunnel-connect", "tunnels", "Connect "+ct.Tunnel.Name, c)
}

func (s *Server) failoverTunnel(q *req) error {
	ref := q.r.PathValue("ref")
	c, err := q.api.Failover(q.r.Context(), ref, q.r.FormValue("replica"))
	if err != nil {
		return err
	}
	if !q.hxRequest() {
		q.done("/tunnels")
		return nil
	}
	v, err := q.tunnels()
	if err != nil {
		return err
	}
	host := c.Hostname
	if host == "" {
		host = c.ID.String()
	}
	v.Notice = "Replica " + host + " is now active."
	return q.fragment("tunnels", "live", v)
}

// deleteView is the confirmation step of deleting a tunnel.
type deleteView struct {
	Tunnel model.Tunnel
	Routes int
	Err    string
}

func (s *Server) confirmDeleteTunnel(q *req) error {
	t, err := q.api.GetTunnel(q.r.Context(), q.r.PathValue("ref"))
	if err != nil {
		return err
	}
	rs, err := q.api.ListRoutes(q.r.Context(), model.RouteFilter{Tunnel: t.ID.String()})
	if err != nil {
		return err
	}
	return q.render("tunnel-delete", "tunnels", "Delete "+t.Name, deleteView{Tunnel: t, Routes: len(rs)})
}

func (s *Server) deleteTunnel(q *req) error {
	ref := q.r.PathValue("ref")
	if _, err := q.api.DeleteTunnel(q.r.Context(), ref, q.r.FormValue("force") == "on"); err != nil {
		return err
	}
	q.done("/tunnels")
	return nil
}

// hxRequest reports whether the request comes from htmx (not a plain form).
func (q *req) hxRequest() bool { return q.r.Header.Get("HX-Request") != "" }

// done sends the browser to page after a change: htmx follows HX-Redirect,
// a plain form post the 303.
func (q *req) done(page string) {
	if q.hxRequest() {
		q.w.Header().Set("HX-Redirect", page)
		return
	}
	http.Redirect(q.w, q.r, page, http.StatusSeeOther)
}
