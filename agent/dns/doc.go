// Package dns is the client's DNS: a stub resolver that sends the queries
// for the private domains of the device's virtual network (and the
// overlay's own names) through the tunnel to the servers named for them,
// and every other query to the resolvers the host used before, plus the
// host integration that makes the host ask the stub: systemd-resolved's
// per-link DNS servers and routing domains when resolved runs, otherwise a
// rewritten /etc/resolv.conf that is restored on stop (and after a crash,
// on the next start).
//
// Config mirrors the device configuration's DNS part (control/model's
// DeviceDNS) so that this package does not import control; agent
// translates one into the other. StubConfig.OnAnswer sees the addresses
// of every answer before the application gets it, so that the client's
// domain split tunnel routes them first.
//
// Allowed imports: the standard library and github.com/miekg/dns; never
// agent, control, tun or gVisor. Linux-only code lives in _linux.go files.
package dns
