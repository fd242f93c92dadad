// Package proxy is the userspace client's local proxies: a SOCKS5 server
// (RFC 1928: no authentication, CONNECT and UDP ASSOCIATE) and an HTTP
// CONNECT proxy. Each destination goes where a Router says: through the
// tunnel's userspace stack or straight from the host. Hostnames are
// resolved by Resolve (the host's resolver by default; the client passes
// agent/dns's Lookup, with its DNS rules) before routing.
//
// It imports only the standard library; it never imports agent, tun or
// gVisor.
package proxy
