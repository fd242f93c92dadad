package web

import (
	"net/netip"
	"strings"

	"github.com/switchyard/switchyard/control/model"
)

func init() {
	pageSets = append(pageSets, func(s *Server) {
		s.page("GET /split-tunnel", s.splitPage)
		s.page("POST /split-tunnel/mode", s.setSplitMode)
		s.page("POST /split-tunnel/entries", s.addSplitEntry)
		s.page("POST /split-tunnel/entries/delete", s.removeSplitEntry)
	})
}

// splitView is what the split tunnel page shows.
type splitView struct {
	model.SplitTunnel
	Notice string
	Swap   bool // an htmx swap: clear the error box too
}

func (s *Server) splitPage(q *req) error {
	st, err := q.api.SplitTunnel(q.r.Context())
	if err != nil {
		return err
	}
	return q.render("split-tunnel", "split-tunnel", "Split tunnel", splitView{SplitTunnel: st})
}

// splitChanged answers a change with the new setting: the table (htmx) or the page.
func (q *req) splitChanged(st model.SplitTunnel, notice string) error {
	if !q.hxRequest() {
		q.done("/split-tunnel")
		return nil
	}
	return q.fragment("split-tunnel", "split-body", splitView{SplitTunnel: st, Notice: notice, Swap: true})
}

func (s *Server) setSplitMode(q *req) error {
	st, err := q.api.SetSplitMode(q.r.Context(), q.r.FormValue("mode"))
	if err != nil {
		return err
	}
	return q.splitChanged(st, "Mode set to "+st.Mode+": every client applies it now.")
}

func (s *Server) addSplitEntry(q *req) error {
	a := strings.TrimSpace(q.r.FormValue("address"))
	p, err := netip.ParsePrefix(a)
	if err != nil {
		ip, ierr := netip.ParseAddr(a)
		if ierr != nil {
			return model.Errorf(model.KindInvalid, "split tunnel address %q: give a CIDR such as 192.0.2.0/24 or an IP", a)
		}
		p = netip.PrefixFrom(ip, ip.BitLen())
	}
	st, err := q.api.AddSplitEntry(q.r.Context(), model.SplitEntry{Address: p, Description: q.r.FormValue("description")})
	if err != nil {
		return err
	}
	return q.splitChanged(st, p.String()+" added.")
}

func (s *Server) removeSplitEntry(q *req) error {
	a := q.r.FormValue("address")
	st, err := q.api.RemoveSplitEntry(q.r.Context(), a)
	if err != nil {
		return err
	}
	return q.splitChanged(st, a+" removed.")
}
