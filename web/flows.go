package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

func init() {
	pageSets = append(pageSets, func(s *Server) {
		s.page("GET /flows", s.flowsPage)
		s.page("GET /flows/events", s.flowEvents)
	})
}

// Bounds of the live tail: the records a new stream starts with, how
// often it checks that its session lives (and sends a keep-alive), and how
// long one stream may last before the page opens another.
const (
	flowBacklog     = 50
	flowKeepAlive   = 15 * time.Second
	flowStreamMax   = 30 * time.Minute
	flowWriteWithin = 10 * time.Second
)

// flowFilter is the tail's filters, as the page's form and the event
// stream's query carry them.
type flowFilter struct {
	Src, Dst string // an address at that end
	Verdict  string // allow or block
	Identity string // a user, device name or tunnel name at either end
}

func readFlowFilter(q url.Values) (flowFilter, error) {
	f := flowFilter{Src: strings.TrimSpace(q.Get("src")), Dst: strings.TrimSpace(q.Get("dst")),
		Verdict: q.Get("verdict"), Identity: strings.TrimSpace(q.Get("identity"))}
	for what, v := range map[string]string{"source": f.Src, "destination": f.Dst} {
		if _, err := netip.ParseAddr(v); v != "" && err != nil {
			return f, model.Errorf(model.KindInvalid, "%s %q is not an IP address", what, v)
		}
	}
	if f.Verdict != "" && f.Verdict != model.ActionAllow && f.Verdict != model.ActionBlock {
		return f, model.Errorf(model.KindInvalid, "verdict %q is neither allow nor block", f.Verdict)
	}
	return f, nil
}

// apiQuery is what the API filters: an address and the action. The rest
// (which end the address is at, the identity) the console filters.
func (f flowFilter) apiQuery(n int) url.Values {
	q := url.Values{"n": {strconv.Itoa(n)}, "follow": {"true"}}
	switch {
	case f.Src != "":
		q.Set("addr", f.Src)
	case f.Dst != "":
		q.Set("addr", f.Dst)
	}
	if f.Verdict != "" {
		q.Set("action", f.Verdict)
	}
	return q
}

// match reports whether r passes every filter.
func (f flowFilter) match(r model.FlowRecord) bool {
	if f.Src != "" && r.Src.Addr().String() != netip.MustParseAddr(f.Src).String() {
		return false
	}
	if f.Dst != "" && r.Dst.Addr().String() != netip.MustParseAddr(f.Dst).String() {
		return false
	}
	if f.Verdict != "" && r.Action != f.Verdict {
		return false
	}
	if f.Identity == "" {
		return true
	}
	for _, s := range []model.FlowSession{r.Source, r.Dest} {
		for _, v := range []string{s.User, s.DeviceName, s.TunnelName, s.DeviceID.String(), s.TunnelID.String()} {
			if v != "" && strings.EqualFold(v, f.Identity) {
				return true
			}
		}
	}
	return false
}

// query writes the filters as the event stream's query.
func (f flowFilter) query() string {
	q := url.Values{}
	for k, v := range map[string]string{"src": f.Src, "dst": f.Dst, "verdict": f.Verdict, "identity": f.Identity} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

func (s *Server) flowsPage(q *req) error {
	f, err := readFlowFilter(q.r.URL.Query())
	if err != nil {
		return err
	}
	return q.render("flows", "flows", "Flows", struct {
		Filter flowFilter
		Events string
		Max    int
	}{f, "/flows/events?" + f.query(), maxFlowRows})
}

// maxFlowRows is how many rows the page keeps (flows.js drops the oldest).
const maxFlowRows = 500

// flowRow is one record as the page shows it.
type flowRow struct {
	ID       string   `json:"id"` // the record's identity, for the page to skip repeats after a reconnect
	Time     string   `json:"time"`
	Event    string   `json:"event"`
	Src      string   `json:"src"`
	Dst      string   `json:"dst"`
	Protocol string   `json:"protocol"`
	From     string   `json:"from"` // the sender's identity
	To       string   `json:"to"`
	VNet     string   `json:"vnet"`
	Rule     string   `json:"rule"` // the policy that decided, or "default"
	Verdict  string   `json:"verdict"`
	Edges    []string `json:"edges,omitempty"`
	Bytes    string   `json:"bytes,omitempty"`
}

func identity(s model.FlowSession) string {
	switch {
	case s.TunnelName != "":
		return "tunnel " + s.TunnelName
	case s.DeviceName != "" && s.User != "":
		return s.DeviceName + " (" + s.User + ")"
	case s.DeviceName != "":
		return s.DeviceName
	case s.User != "":
		return s.User
	}
	return s.Kind
}

// flowEvents streams the flow log to the page as server-sent events: the
// last records that pass the filters, then new ones, until the page goes
// away, the session ends, or flowStreamMax passes.
func (s *Server) flowEvents(q *req) error {
	f, err := readFlowFilter(q.r.URL.Query())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(q.r.Context(), flowStreamMax)
	defer cancel()
	policies := map[string]string{}
	if ps, err := q.api.ListPolicies(ctx); err == nil {
		for _, p := range ps {
			policies[p.ID.String()] = p.Name
		}
	}
	w, rc := q.w, http.NewResponseController(q.w)
	rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	events := make(chan []byte, 64)
	write := func(b []byte) error {
		rc.SetWriteDeadline(time.Now().Add(flowWriteWithin))
		if _, err := w.Write(b); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	if err := write([]byte(": flows\n\n")); err != nil {
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		errc <- q.api.Flows(ctx, f.apiQuery(flowBacklog), func(r model.FlowRecord) error {
			if !f.match(r) {
				return nil
			}
			b, err := json.Marshal(s.flowRow(r, policies))
			if err != nil {
				return err
			}
			select {
			case events <- fmt.Appendf(nil, "event: flow\ndata: %s\n\n", b):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	defer func() { cancel(); <-errc }()
	tick := time.NewTicker(flowKeepAlive)
	defer tick.Stop()
	for {
		select {
		case b := <-events:
			if write(b) != nil {
				return nil
			}
		case <-tick.C:
			if !s.sess.live(q.sess) {
				write([]byte("event: signedout\ndata: {}\n\n"))
				return nil
			}
			if write([]byte(": keep-alive\n\n")) != nil {
				return nil
			}
		case err := <-errc:
			errc <- err // for the deferred wait
			if err != nil && ctx.Err() == nil {
				s.log.Warn("console flow stream", "err", err)
				msg, _ := errorText(err)
				b, _ := json.Marshal(msg)
				write(fmt.Appendf(nil, "event: failed\ndata: %s\n\n", b))
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *Server) flowRow(r model.FlowRecord, policies map[string]string) flowRow {
	row := flowRow{ID: fmt.Sprintf("%d/%s/%s/%s/%s", r.Time.UnixNano(), r.Event, r.Protocol, r.Src, r.Dst), Time: r.Time.UTC().Format("15:04:05"), Event: r.Event, Src: r.Src.String(), Dst: r.Dst.String(),
		Protocol: r.Protocol, From: identity(r.Source), To: identity(r.Dest), VNet: r.VNetName, Rule: "default",
		Verdict: r.Action, Edges: r.Edges}
	if r.PolicyID != nil {
		row.Rule = policies[r.PolicyID.String()]
		if row.Rule == "" {
			row.Rule = r.PolicyID.String()
		}
	}
	if r.Event == model.FlowEnd {
		row.Bytes = funcs["bytes"].(func(uint64) string)(r.BytesOut + r.BytesIn)
	}
	return row
}
