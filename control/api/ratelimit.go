package api

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchyard/switchyard/control/model"
)

// maxRateClients bounds the clients a rateLimit remembers; when it is full,
// idle clients are forgotten, and if none is idle a new client waits.
const maxRateClients = 4096

// maxLoginBody bounds the body of a sign-in request; a LoginRequest is a
// few dozen bytes.
const maxLoginBody = 4 << 10

// rateLimit bounds how often an unauthenticated endpoint may be called: per
// client (an IPv4 address, an IPv6 /64: one host's share) and by everyone
// together. Beyond either it answers 429 with Retry-After.
type rateLimit struct {
	what      string        // "sign-in requests": for the message
	perClient rate.Limit    // per client, per second
	burst     int           // per client
	all       *rate.Limiter // everyone
	now       func() time.Time

	mu      sync.Mutex
	clients map[netip.Prefix]*rate.Limiter
}

// newRateLimit allows each client perMinute calls a minute in bursts of
// burst, and everyone together allPerMinute in bursts of allBurst.
func newRateLimit(what string, perMinute float64, burst int, allPerMinute float64, allBurst int) *rateLimit {
	return &rateLimit{what: what, perClient: rate.Limit(perMinute / 60), burst: burst,
		all: rate.NewLimiter(rate.Limit(allPerMinute/60), allBurst), now: time.Now,
		clients: map[netip.Prefix]*rate.Limiter{}}
}

// clientKey is the share of the address space a client is counted by: its
// IPv4 address, or its IPv6 /64 (a host gets a whole /64 for free).
func clientKey(remoteAddr string) netip.Prefix {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// limiter returns the client's limiter, nil when the table is full of
// clients that are not idle.
func (l *rateLimit) limiter(key netip.Prefix, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim, ok := l.clients[key]; ok {
		return lim
	}
	if len(l.clients) >= maxRateClients {
		for k, lim := range l.clients {
			if lim.TokensAt(now) >= float64(l.burst) {
				delete(l.clients, k) // idle: as good as new
			}
		}
		if len(l.clients) >= maxRateClients {
			return nil
		}
	}
	lim := rate.NewLimiter(l.perClient, l.burst)
	l.clients[key] = lim
	return lim
}

// allow takes one call from the client's budget and everyone's; when either
// is spent it takes nothing and says how long to wait and whose budget it is.
func (l *rateLimit) allow(r *http.Request) (wait time.Duration, refused string) {
	now := l.now()
	key := clientKey(r.RemoteAddr)
	lim := l.limiter(key, now)
	if lim == nil {
		return time.Second, "from new clients to this edge"
	}
	mine := lim.ReserveN(now, 1)
	if d := mine.DelayFrom(now); d > 0 {
		mine.CancelAt(now)
		return d, "from " + key.Addr().String()
	}
	ours := l.all.ReserveN(now, 1)
	if d := ours.DelayFrom(now); d > 0 {
		ours.CancelAt(now)
		mine.CancelAt(now)
		return d, "to this edge"
	}
	return 0, ""
}

// wrap refuses calls beyond the limits with 429, and bodies larger than
// maxLoginBody, before next sees them.
func (l *rateLimit) wrap(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if wait, whose := l.allow(r); wait > 0 {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeJSON(w, http.StatusTooManyRequests, ErrorBody{Code: model.CodeRateLimited,
				Message: fmt.Sprintf("too many %s %s: try again in %ds", l.what, whose, secs)})
			return
		}
		if r.ContentLength > maxLoginBody {
			writeError(w, model.Errorf(model.KindInvalid, "request body is larger than %d bytes", maxLoginBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
		next(w, r)
	}
}
