// Package doctor diagnoses a gateway host or client for switchyard doctor:
// each Check reads the host (sysctls, routes, addresses through
// routing/host), the edge (its API over the token's pinned CA) or the
// running agent (its local control socket), and reports ok, warn or fail
// with the exact command that fixes what it found.
//
// The host is read through the Host seam (routing/host.NetlinkOps in
// production, a fake in tests); Run never changes anything.
//
// Allowed imports: the standard library, routing/host, agent/localapi,
// control/token and control/client (for the pinned TLS configuration).
package doctor
