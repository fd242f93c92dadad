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
	e, err := parseSplitEntry(strings.TrimSpace(q.r.FormValue("address")))
	if err != nil {
		return err
	}
	e.Description = q.r.FormValue("description")
	st, err := q.api.AddSplitEntry(q.r.Context(), e)
	if err != nil {
		return err
	}
	return q.splitChanged(st, e.Key()+" added.")
}

// parseSplitEntry reads the form's entry: a CIDR, an IP (its host
// prefix), or a domain (corp.example, *.corp.example).
func parseSplitEntry(a string) (model.SplitEntry, error) {
	if p, err := netip.ParsePrefix(a); err == nil {
		return model.SplitEntry{Address: p}, nil
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		return model.SplitEntry{Address: netip.PrefixFrom(ip, ip.BitLen())}, nil
	}
	if strings.Contains(a, "/") || strings.Trim(a, "0123456789.:") == "" {
		return model.SplitEntry{}, model.Errorf(model.KindInvalid, "split tunnel address %q: give a CIDR such as 192.0.2.0/24, an IP, or a domain such as *.corp.example", a)
	}
	d, err := model.ParseSplitDomain(a)
	if err != nil {
		return model.SplitEntry{}, err
	}
	return model.SplitEntry{Domain: d}, nil
}

func (s *Server) removeSplitEntry(q *req) error {
	a := q.r.FormValue("address")
	st, err := q.api.RemoveSplitEntry(q.r.Context(), a)
	if err != nil {
		return err
	}
	return q.splitChanged(st, a+" removed.")
}
