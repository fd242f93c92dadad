//go:build netbench && linux

package bench

// The cross-edge path: site to site across the trunk between two edges of
// one cluster.
//
//	hosta ─ gwa (connector A) ═ edge 1 (mid) ══ trunk ══ edge 2 (mid2) ═ gwb (connector B) ─ hostb
//	                                 etcd (its own namespace) ┘
//
// Every namespace hangs off the same WAN router as in the single-edge lab.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/lab"
)

const (
	mid2WAN = "203.0.113.18" // edge 2
	etcdWAN = "203.0.113.22" // the cluster's etcd member
)

// benchSwitchyardTrunk: two edges on one etcd and one cluster key, connector A
// attached to edge 1 alone and connector B to edge 2 alone (--edges 1), so
// that every packet between the sites crosses the trunk; checked with the
// trunks' counters before it is measured. Both edges' CPU is charged, as the
// single-edge path charges its one edge; etcd's is not (it only serves the
// control plane, idle while the path is measured).
func benchSwitchyardTrunk(ctx context.Context, t *testing.T, cfg config, res *Results) {
	tp := newTopo(t)
	mid2, etcdNS := tp.wanNode(t, "mid2", 4), tp.wanNode(t, "etcd", 5)
	etcd := etcdNS.Start(t, etcdtest.MemberCommand(filepath.Join(tp.dir, "etcd"), etcdWAN+":2379", etcdWAN+":2380")...)
	must(t, etcd.WaitFor(etcdtest.MemberReady, 20*time.Second))
	key := filepath.Join(tp.dir, "cluster.key")
	tp.mid.MustExec(t, cfg.bin, "edge", "cluster-key", "create", key)
	member := func(name string) []string {
		return []string{"--store", "etcd://" + etcdWAN + ":2379", "--cluster-key", key, "--edge-name", name}
	}
	e1 := trunkEdge{name: "edge-1", ns: tp.mid, dir: filepath.Join(tp.dir, "edge1")}
	e2 := trunkEdge{name: "edge-2", ns: mid2, dir: filepath.Join(tp.dir, "edge2")}
	// Edge 1 first: it creates the cluster's secrets, which edge 2 then opens.
	edge1, cli1 := startEdge(t, cfg, e1.ns, e1.dir, midWAN, member(e1.name)...)
	edge2, cli2 := startEdge(t, cfg, e2.ns, e2.dir, mid2WAN, member(e2.name)...)
	cli1("tunnel", "vnet", "add", "--default", "bench")
	ca, cb := startConnectors(t, cfg, tp, cli1, cli2, "wireguard", "--edges", "1")

	measure(ctx, t, cfg, res, pathSpec{name: PathSiteToSiteTrunk, iperfd: tp.iperfd, src: tp.hosta,
		desc:    "host A → connector A ═ edge 1 ═ trunk ═ edge 2 ═ connector B → host B (one etcd, --edges 1)",
		daemons: []daemon{{"connector A", ca}, {"edge 1", edge1}, {"edge 2", edge2}, {"connector B", cb}},
		verify: func(ctx context.Context) error {
			return crossesTrunk(ctx, t, cfg, tp.hosta, e1, e2)
		}})
	for _, e := range []trunkEdge{e1, e2} {
		logStats(t, cfg, e.ns, e.name, e.dir)
	}
}

// trunkEdge is one edge of the cross-edge path.
type trunkEdge struct {
	name string // --edge-name
	ns   *lab.NS
	dir  string // data dir, with admin.json
}

// trunkCount is one edge's counters of its trunk to another.
type trunkCount struct{ in, out uint64 }

// trunkTo returns e's inner packets over its trunk to peer; an error unless
// that trunk is up.
func (e trunkEdge) trunkTo(cfg config, peer string) (trunkCount, error) {
	out, err := e.ns.Exec(cfg.bin, "--config", filepath.Join(e.dir, "admin.json"), "stats", "-o", "json")
	if err != nil {
		return trunkCount{}, fmt.Errorf("stats of %s: %w\n%s", e.name, err, out)
	}
	var st struct {
		Trunks []struct {
			Edge       string `json:"edge"`
			Up         bool   `json:"up"`
			PacketsIn  uint64 `json:"packets_in"`
			PacketsOut uint64 `json:"packets_out"`
		} `json:"trunks"`
	}
	if err := json.Unmarshal(jsonPart(out), &st); err != nil {
		return trunkCount{}, fmt.Errorf("stats of %s: %w", e.name, err)
	}
	for _, tr := range st.Trunks {
		if tr.Edge == peer {
			if !tr.Up {
				return trunkCount{}, fmt.Errorf("the trunk from %s to %s is down", e.name, peer)
			}
			return trunkCount{in: tr.PacketsIn, out: tr.PacketsOut}, nil
		}
	}
	return trunkCount{}, fmt.Errorf("%s has no trunk to %s: %s", e.name, peer, out)
}

// crossesTrunk pings host B from src and checks that each request and reply
// crossed the trunk: out of edge 1 and into edge 2, and back.
func crossesTrunk(ctx context.Context, t *testing.T, cfg config, src *lab.NS, e1, e2 trunkEdge) error {
	const n = 20
	b1, err := e1.trunkTo(cfg, e2.name)
	if err != nil {
		return err
	}
	b2, err := e2.trunkTo(cfg, e1.name)
	if err != nil {
		return err
	}
	if _, err := run(ctx, t, src, 10*time.Second, "ping", "-q", "-n", "-c", strconv.Itoa(n), "-i", "0.02", "-W", "1", hostB); err != nil {
		return err
	}
	a1, err := e1.trunkTo(cfg, e2.name)
	if err != nil {
		return err
	}
	a2, err := e2.trunkTo(cfg, e1.name)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		what          string
		before, after uint64
	}{
		{"out of " + e1.name + " (requests)", b1.out, a1.out},
		{"into " + e2.name + " (requests)", b2.in, a2.in},
		{"out of " + e2.name + " (replies)", b2.out, a2.out},
		{"into " + e1.name + " (replies)", b1.in, a1.in},
	} {
		if c.after-c.before < n {
			return fmt.Errorf("%d pings from host A to host B, but the trunk between the edges counted %d packets %s", n, c.after-c.before, c.what)
		}
	}
	t.Logf("%d pings crossed the trunk both ways: %s out %d → %d, in %d → %d", n, e1.name, b1.out, a1.out, b1.in, a1.in)
	return nil
}
