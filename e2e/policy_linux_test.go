//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/lab"
)

// addPolicy runs policy add with args and returns the new policy.
func (w *world) addPolicy(args ...string) model.Policy {
	w.t.Helper()
	var p model.Policy
	if err := json.Unmarshal([]byte(w.cli(append([]string{"policy", "add", "-o", "json"}, args...)...)), &p); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// flowRecords reads the edge's flow log through the CLI.
func (w *world) flowRecords(filters ...string) []model.FlowRecord {
	w.t.Helper()
	out := w.cli(append([]string{"flows", "tail", "-o", "json", "-n", "0"}, filters...)...)
	var recs []model.FlowRecord
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r model.FlowRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			w.t.Fatalf("flow record %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// wantRefused checks that a TCP connection from ns to addr is refused at once
// (a RST), not left to time out; it allows a second for a rule just added to
// reach the edge.
func wantRefused(t *testing.T, ns *lab.NS, addr string) {
	t.Helper()
	err := eventually(time.Second, func() error {
		start := time.Now()
		c, err := ns.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return fmt.Errorf("tcp %s from %s connected; want it refused by policy", addr, ns)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("tcp %s from %s: %v after %v; want connection refused (a RST)", addr, ns, err, time.Since(start).Round(time.Millisecond))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// secondLaptop adds a namespace laptop2 on the WAN (203.0.113.22/30), for a
// second client beside the laptop's.
func (w *world) secondLaptop() *lab.NS {
	laptop2 := w.l.NS("laptop2")
	w.l.Link(w.wan, "203.0.113.21/30", laptop2, "203.0.113.22/30")
	must(w.t, laptop2.Route("add", "default", "via", "203.0.113.21"))
	return laptop2
}

// TestPolicy enforces the rule pair of Cloudflare's private network guide at
// the edge, a site-to-site port rule, live re-evaluation, and the flow log.
func TestPolicy(t *testing.T) {
	w := newWorld(t)
	laptop2 := w.secondLaptop()
	// Site A also serves 10.128.0.7, the guide's server.
	must(t, w.gwa.AddAddr(lanIf(t, w.gwa, "10."), "10.128.0.1/24"))
	must(t, w.hosta.AddAddr(lanIf(t, w.hosta, "10."), "10.128.0.7/24"))

	w.startEdge("--metrics-listen", "127.0.0.1:9108")
	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	tokA, tokC := w.tunnelToken("site-a"), w.tunnelToken("site-c")
	w.cli("tunnel", "route", "ip", "add", "10.1.0.0/16", "site-a")
	w.cli("tunnel", "route", "ip", "add", "10.128.0.0/24", "site-a")
	w.cli("tunnel", "route", "ip", "add", "10.3.0.0/16", "site-c")
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")

	// Bad rules are refused with a clear error and change nothing.
	for _, bad := range []struct{ when, want string }{
		{"dst_mac is 1", "unknown selector"},
		{"dst_ip is 10.1.2.3/16", "host bits"},
		{"user_email matches (", "invalid regular expression"},
		{"dst_port is 70000", "out of range"},
	} {
		out, err := w.edge.Exec(binary, "--config", filepath.Join(w.dir, "edge", "admin.json"),
			"policy", "add", "--action", "block", "--when", bad.when, "bad")
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("policy add --when %q: err %v, output %q; want a refusal saying %q", bad.when, err, out, bad.want)
		}
	}
	if out := w.cli("policy", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("refused rules left policies behind: %s", out)
	}

	allow := w.addPolicy("--action", "allow", "--when", "dst_ip is 10.128.0.7", "--when", "user_email matches .*@example.com", "allow-example")
	block := w.addPolicy("--action", "block", "--when", "dst_ip is 10.128.0.7", "block-10.128.0.7")
	ssh := w.addPolicy("--action", "block", "--when", "tunnel is site-c", "--when", "dst_ip in 10.1.0.0/16", "--when", "dst_port is 22", "block-c-to-a-ssh")

	w.startConnector(w.gwa, "gwa", tokA, "--metrics-listen", "127.0.0.1:9108")
	w.startConnector(w.gwc, "gwc", tokC)
	_, aliceIP := w.startClient(w.laptop, "alice-laptop", "--user", "alice@example.com")
	// Mallory reaches the edge over MASQUE: identity rules hold on either transport.
	w.protocol = "masque"
	_, malloryIP := w.startClient(laptop2, "mallory-laptop", "--user", "mallory@example.net")
	w.protocol = "wireguard"

	w.hosta.Echo(t, "10.128.0.7:7000")
	w.hosta.Echo(t, "10.1.2.3:22")
	w.hosta.Echo(t, "10.1.2.3:7000")

	t.Run("guide rule pair: the matching user connects, the other gets a RST", func(t *testing.T) {
		wantPeer(t, w.laptop, "tcp", "10.128.0.7:7000", aliceIP)
		wantRefused(t, laptop2, "10.128.0.7:7000")
		// Another destination is not covered by the rules: the default allows it.
		wantPeer(t, laptop2, "tcp", "10.1.2.3:7000", malloryIP)
	})

	t.Run("site to site: C may not reach A on port 22, other ports pass", func(t *testing.T) {
		wantPeer(t, w.hostc, "tcp", "10.1.2.3:7000", "10.3.0.5")
		wantRefused(t, w.hostc, "10.1.2.3:22")
		// The rule names site C: a client may still reach port 22.
		wantPeer(t, w.laptop, "tcp", "10.1.2.3:22", aliceIP)
	})

	t.Run("flow log: both clients with their true source and the policy id", func(t *testing.T) {
		var recs []model.FlowRecord
		err := eventually(5*time.Second, func() error {
			recs = w.flowRecords("--addr", "10.128.0.7", "--event", "start", "--proto", "tcp")
			got := map[string]bool{}
			for _, r := range recs {
				switch {
				case r.Source.User == "alice@example.com" && r.Src.Addr().String() == aliceIP && r.Action == "allow" &&
					r.PolicyID != nil && *r.PolicyID == allow.ID && r.VNetName == "vnet-a":
					got["alice"] = true
				case r.Source.User == "mallory@example.net" && r.Src.Addr().String() == malloryIP && r.Action == "block" &&
					r.PolicyID != nil && *r.PolicyID == block.ID:
					got["mallory"] = true
				}
			}
			if !got["alice"] || !got["mallory"] {
				return fmt.Errorf("flow log lacks alice's allowed or mallory's blocked flow: %+v", recs)
			}
			return nil
		})
		must(t, err)
		recs = w.flowRecords("--policy", ssh.ID.String())
		if len(recs) == 0 || recs[0].Source.TunnelName != "site-c" || recs[0].Dst.Port() != 22 || recs[0].Src.Addr().String() != "10.3.0.5" {
			t.Fatalf("flow log of the site rule = %+v; want site-c's flow to 10.1.2.3:22", recs)
		}
	})

	t.Run("a policy change re-evaluates a live flow", func(t *testing.T) {
		c, err := w.laptop.Dial("udp", "10.128.0.7:7000")
		must(t, err)
		defer c.Close()
		exchange := func() error {
			c.SetDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := c.Write([]byte("ping\n")); err != nil {
				return err
			}
			_, err := bufio.NewReader(c).ReadString('\n')
			return err
		}
		must(t, eventually(5*time.Second, exchange))
		w.cli("policy", "delete", "allow-example")
		deadline := time.Now().Add(time.Second + 500*time.Millisecond)
		for exchange() == nil {
			if time.Now().After(deadline) {
				t.Fatal("the live UDP flow still passes over a second after its allow rule was deleted")
			}
		}
	})

	t.Run("client to client and site to client", func(t *testing.T) {
		w.laptop.Echo(t, aliceIP+":7000")
		laptop2.Echo(t, malloryIP+":7000")
		follow := w.edge.Start(t, binary, "--config", filepath.Join(w.dir, "edge", "admin.json"),
			"flows", "tail", "--follow", "-n", "0", "-o", "json", "--user", "mallory@example.net", "--addr", aliceIP)
		w.addPolicy("--action", "block", "--when", "user_email is mallory@example.net", "--when", "dst_ip in 100.96.0.0/12", "mallory-no-devices")
		wantRefused(t, laptop2, aliceIP+":7000")
		// flows tail --follow streams the blocked flow (-n 0: history, then new records).
		must(t, follow.WaitFor(`"dst":"`+aliceIP+`:7000"`, 5*time.Second))
		must(t, follow.Stop())
		// Alice may open a connection to Mallory: his replies belong to her flow.
		wantPeer(t, w.laptop, "tcp", malloryIP+":7000", aliceIP)
		wantPeer(t, w.hostc, "tcp", aliceIP+":7000", "10.3.0.5")
	})

	t.Run("counters and metrics scrapes of the edge and a connector", func(t *testing.T) {
		var st struct {
			Router struct {
				Dropped map[string]float64 `json:"dropped"`
				Policy  struct {
					Allowed, Blocked float64
					Flows            float64
				} `json:"policy"`
			} `json:"router"`
		}
		must(t, json.Unmarshal([]byte(w.cli("stats", "-o", "json")), &st))
		if st.Router.Dropped["policy"] == 0 || st.Router.Policy.Blocked == 0 || st.Router.Policy.Allowed == 0 || st.Router.Policy.Flows == 0 {
			t.Fatalf("stats after allowed and blocked traffic: %+v", st.Router)
		}
		body := scrape(t, w.edge, "127.0.0.1:9108")
		for _, m := range []string{
			`switchyard_edge_drops_total{layer="router",reason="policy"}`,
			`switchyard_edge_policy_decisions_total{action="allow"}`,
			`switchyard_edge_policy_decisions_total{action="block"}`,
			`switchyard_edge_packets_total{direction="in"}`,
			`switchyard_edge_packets_total{direction="out"}`,
			`switchyard_edge_bytes_total{direction="out"}`,
			`switchyard_edge_handshakes_total{event="completed"}`,
			`switchyard_edge_flows`,
			`switchyard_edge_store_revision`,
			`switchyard_edge_routes{vnet="vnet-a"}`,
		} {
			if v := metricValue(body, m); v <= 0 {
				t.Errorf("%s = %v, want > 0", m, v)
			}
		}
		for _, transport := range []string{"wireguard", "masque"} {
			if v := metricValue(body, `switchyard_edge_sessions{kind="client",transport="`+transport+`"}`); v != 1 {
				t.Errorf("client sessions over %s = %v, want 1", transport, v)
			}
		}
		agent := scrape(t, w.gwa, "127.0.0.1:9108")
		for _, m := range []string{
			`switchyard_agent_bytes_total{direction="in",role="connector",tun="sy0"}`,
			`switchyard_agent_bytes_total{direction="out",role="connector",tun="sy0"}`,
			`switchyard_agent_last_handshake_timestamp_seconds{role="connector",tun="sy0"}`,
			`switchyard_agent_routes{role="connector",tun="sy0"}`,
		} {
			if v := metricValue(agent, m); v <= 0 {
				t.Errorf("connector: %s = %v, want > 0", m, v)
			}
		}
	})
}

// scrape fetches /metrics from addr inside ns (HTTP/1.0 over a connection
// dialed in the namespace).
func scrape(t *testing.T, ns *lab.NS, addr string) string {
	t.Helper()
	c, err := ns.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	must(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s\n%s", addr, resp.Status, body)
	}
	return string(body)
}

// metricValue returns the value of the sample written exactly as series, or -1.
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
