package client

import (
	"context"
	"net"
	"time"
)

// API connections cross the same underlay as the tunnels, which may be
// smaller than 1500 bytes and drop big packets without an ICMP error (a
// PPPoE or LTE link, a tunnel inside a tunnel): there the TLS handshake, whose
// certificates fill whole segments, hangs. The largest segments these sockets
// send, and announce in their SYN for the edge to send, therefore fit a
// 1280-byte path, the IPv6 minimum, with room for TCP options: 1280 - 20 - 20
// - 20 for IPv4, 1280 - 40 - 20 for IPv6. The API carries small JSON bodies,
// so the cost is nil; the kernel's own PMTU discovery still lowers them further
// on a path that says so.
const (
	apiMSS4 = 1220
	apiMSS6 = 1200
)

// dialAPI dials the edge's API with the conservative MSS; the timeouts are
// http.DefaultTransport's.
func dialAPI(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: clampMSS}
	return d.DialContext(ctx, network, addr)
}
