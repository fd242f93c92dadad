//go:build linux

package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/internal/lab"
)

// resolve asks server (the edge's address, port 53) from inside ns for
// name's A record over UDP, with miekg/dns as a stub resolver would, and
// returns the answer.
func resolve(ns *lab.NS, server, name string) (*dns.Msg, error) {
	c, err := ns.Dial("udp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	dc := &dns.Conn{Conn: c}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if err := dc.WriteMsg(q); err != nil {
		return nil, fmt.Errorf("query %s at %s from %s: %w", name, server, ns, err)
	}
	m, err := dc.ReadMsg()
	if err != nil {
		return nil, fmt.Errorf("query %s at %s from %s: %w", name, server, ns, err)
	}
	return m, nil
}

// startHostConnector is startConnector with the connector's host named
// hostname: the namespaces share the machine's UTS namespace, so the
// connector runs in a UTS namespace of its own (unshare execs it: the
// process is still the connector's).
func (w *world) startHostConnector(ns *lab.NS, name, hostname, token string) *lab.Proc {
	w.t.Helper()
	args := append([]string{"unshare", "--uts", "sh", "-c", `hostname "$0" && exec "$@"`, hostname,
		binary, "connector", "run", "--token", token,
		"--state-dir", filepath.Join(w.dir, name), "--tun-name", "sy0", "--protocol", w.protocol}, w.agentFlags...)
	p := ns.Start(w.t, args...)
	must(w.t, p.WaitFor("reported the host's site addresses", 20*time.Second))
	return p
}

// resolveA resolves name from ns at server until it gets one A record, and
// returns its address.
func resolveA(t *testing.T, ns *lab.NS, server, name string) string {
	t.Helper()
	var m *dns.Msg
	err := eventually(10*time.Second, func() error {
		var err error
		if m, err = resolve(ns, server, name); err != nil {
			return err
		}
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			return fmt.Errorf("answer:\n%s", m)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s resolving %s: %v", ns, name, err)
	}
	a, ok := m.Answer[0].(*dns.A)
	if !ok {
		t.Fatalf("%s resolving %s: %s, not an A record", ns, name, m.Answer[0])
	}
	return a.A.String()
}

// TestOverlayNamesE2E: a host in a site resolves a connected client's
// name, laptop-7.sy.internal, at the edge's address through its connector,
// and opens a TCP connection to the address it got: the client's server
// sees the site host's true address. The client resolves the connector
// host's name, gwa-host.sy.internal, to its site LAN address and connects
// to it through the tunnel (the connector host's server sees the client's
// overlay IP). A host of a site in another vnet gets NXDOMAIN for those
// names and its own connector host's address for its name, and a name
// outside the zone is refused.
func TestOverlayNamesE2E(t *testing.T) {
	w := newWorld(t)
	w.startEdge()
	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	w.cli("tunnel", "vnet", "add", "vnet-b")
	tokA, tokB := w.tunnelToken("site-a"), w.tunnelToken("site-b")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-a", "10.1.0.0/16", "site-a")
	w.cli("tunnel", "route", "ip", "add", "--vnet", "vnet-b", "10.1.0.0/16", "site-b")
	// The laptop's replies to the sites go through the tunnel.
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")
	w.startHostConnector(w.gwa, "gwa", "gwa-host", tokA)
	w.startHostConnector(w.gwb, "gwb", "gwb-host", tokB)
	_, laptopIP := w.startClient(w.laptop, "Laptop_7")
	w.laptop.Echo(t, laptopIP+":7000")
	const server = "100.96.0.1:53"

	var m *dns.Msg
	err := eventually(10*time.Second, func() error {
		var err error
		if m, err = resolve(w.hosta, server, "laptop-7.sy.internal"); err != nil {
			return err
		}
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			return fmt.Errorf("answer:\n%s", m)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("site A resolving laptop-7.sy.internal: %v", err)
	}
	a, ok := m.Answer[0].(*dns.A)
	if !ok || a.A.String() != laptopIP {
		t.Fatalf("laptop-7.sy.internal answered %s, want the laptop's overlay IP %s", m.Answer[0], laptopIP)
	}
	// Connect by the name's address: the laptop's server sees site A's host.
	wantPeer(t, w.hosta, "tcp", net.JoinHostPort(a.A.String(), "7000"), "10.1.2.3")

	// Site B is in vnet-b: the laptop (vnet-a) has no name there.
	m, err = resolve(w.hostb, server, "laptop-7.sy.internal")
	if err != nil || m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 {
		t.Fatalf("site B (vnet-b) resolving vnet-a's laptop: %v\n%v", err, m)
	}

	// The connector host's name: its LAN address, reached through the tunnel.
	if got := resolveA(t, w.laptop, server, "gwa-host.sy.internal"); got != "10.1.0.1" {
		t.Fatalf("gwa-host.sy.internal answered %s, want site A's gateway 10.1.0.1", got)
	}
	w.gwa.Echo(t, "10.1.0.1:7001")
	wantPeer(t, w.laptop, "tcp", "10.1.0.1:7001", laptopIP)
	if got := resolveA(t, w.hostb, server, "gwb-host.sy.internal"); got != "10.1.0.1" {
		t.Fatalf("site B resolving gwb-host.sy.internal: %s, want 10.1.0.1", got)
	}
	m, err = resolve(w.hostb, server, "gwa-host.sy.internal")
	if err != nil || m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 {
		t.Fatalf("site B (vnet-b) resolving vnet-a's connector host: %v\n%v", err, m)
	}
	m, err = resolve(w.hosta, server, "example.org")
	if err != nil || m.Rcode != dns.RcodeRefused {
		t.Fatalf("site A resolving a name outside the zone: %v\n%v", err, m)
	}
	// The zone follows the CLI.
	w.cli("dns", "zone", "set", "names.example")
	err = eventually(10*time.Second, func() error {
		m, err := resolve(w.hosta, server, "laptop-7.names.example")
		if err == nil && (m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1) {
			err = fmt.Errorf("answer:\n%s", m)
		}
		return err
	})
	if err != nil {
		t.Fatalf("site A resolving laptop-7.names.example after dns zone set: %v", err)
	}
}
