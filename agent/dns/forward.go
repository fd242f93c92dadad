package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Dialer opens a connection to addr ("host:port") over network ("udp" or
// "tcp"), as net.Dialer.DialContext. A "udp" connection must be a
// net.PacketConn too, so that messages keep their datagram framing.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Timeouts bound the forwarding of one query.
const (
	// ServerTimeout is how long one server has to answer.
	ServerTimeout = 700 * time.Millisecond
	// QueryTimeout is how long all the servers of a query have together;
	// after it the stub answers SERVFAIL.
	QueryTimeout = 1800 * time.Millisecond
)

// errNoAnswer is what forward returns when no server answered.
var errNoAnswer = errors.New("no server answered")

// forwarder sends queries to servers through one Dialer.
type forwarder struct {
	dial          Dialer
	serverTimeout time.Duration
	queryTimeout  time.Duration
}

// forward sends q to servers in order, over network first ("udp" or
// "tcp"; a truncated UDP answer is asked again over TCP), each server for
// at most serverTimeout and all of them for at most queryTimeout. A server
// that answers SERVFAIL or REFUSED passes the query on to the next; when
// none gives a better answer, the last such answer is returned. The
// answer's id is q's.
func (f *forwarder) forward(ctx context.Context, q *dns.Msg, network string, servers []netip.AddrPort) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.queryTimeout)
	defer cancel()
	var last *dns.Msg
	var errs []error
	for _, s := range servers {
		if ctx.Err() != nil {
			break
		}
		r, err := f.exchangeTC(ctx, q, network, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Id = q.Id
		if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			last = r
			continue
		}
		return r, nil
	}
	if last != nil {
		return last, nil
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return nil, fmt.Errorf("%w: %w", errNoAnswer, errors.Join(errs...))
}

// exchangeTC asks server, over TCP again when a UDP answer is truncated
// (keeping the truncated answer if TCP fails).
func (f *forwarder) exchangeTC(ctx context.Context, q *dns.Msg, network string, server netip.AddrPort) (*dns.Msg, error) {
	r, err := f.exchange(ctx, q, network, server)
	if err != nil || network != "udp" || !r.Truncated {
		return r, err
	}
	if rt, err := f.exchange(ctx, q, "tcp", server); err == nil {
		return rt, nil
	}
	return r, nil
}

// exchange sends q to server over network and reads its answer, within
// serverTimeout. The query leaves with a fresh id, so that an answer to
// someone else's query with the same id is never taken for this one.
func (f *forwarder) exchange(ctx context.Context, q *dns.Msg, network string, server netip.AddrPort) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.serverTimeout)
	defer cancel()
	conn, err := f.dial(ctx, network, server.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", network, server, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // a stop ends the read at once
	defer stop()
	out := q.Copy()
	out.Id = dns.Id()
	c := &dns.Client{Net: network, UDPSize: dns.MaxMsgSize}
	r, _, err := c.ExchangeWithConnContext(ctx, out, &dns.Conn{Conn: conn})
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("ask %s %s: %w", network, server, err)
	}
	return r, nil
}
