package router

import (
	"testing"

	"github.com/switchyard/switchyard/router/policy"
)

// encrypted is the rule "device.posture.disk_encrypted is true".
var encrypted = policy.Rule{ID: polAllow, Allow: true, Match: policy.Cond{Op: policy.In, Field: policy.DiskEncrypted, Bools: []bool{true}}}

// identity is a reported identity snapshot.
func identity(user string, groups []string, diskEncrypted bool) *policy.Identity {
	return policy.NewIdentity(user, groups, policy.Posture{Reported: true, OS: "linux", DiskEncrypted: diskEncrypted})
}

// TestPostureChangeReevaluatesEstablishedFlow checks that a posture change,
// with the new generation the edge starts for it, blocks an established
// flow on its very next packet, both ways, and lets it pass again once the
// posture is back.
func TestPostureChangeReevaluatesEstablishedFlow(t *testing.T) {
	l := newLab(t)
	l.laptop.Device = [16]byte{0x77}
	l.laptop.SetIdentity(identity("alice@example.com", nil, true))
	l.setRules(t, 1, false, encrypted)
	icmp := make([]byte, IcmpBufSize)
	out := func(seq uint32) []byte { return tcp("100.96.0.7", "10.1.2.3", 40000, 443, tcpACK, seq) }
	back := func(seq uint32) []byte { return tcp("10.1.2.3", "100.96.0.7", 443, 40000, tcpACK, seq) }
	step := func(what string, pass bool) {
		t.Helper()
		if d := l.r.Route(l.laptop, out(1), icmp); (d.Verdict == Forward && d.To == l.siteA) != pass {
			t.Fatalf("%s: the laptop's packet: %+v, want passing %v", what, d, pass)
		}
		if d := l.r.Route(l.siteA, back(9), icmp); (d.Verdict == Forward && d.To == l.laptop) != pass {
			t.Fatalf("%s: the server's reply: %+v, want passing %v", what, d, pass)
		}
	}
	if d := l.r.Route(l.laptop, tcp("100.96.0.7", "10.1.2.3", 40000, 443, tcpSYN, 0), icmp); d.Verdict != Forward || d.To != l.siteA {
		t.Fatalf("SYN of an encrypted laptop: %+v", d)
	}
	step("established", true)

	l.laptop.SetIdentity(identity("alice@example.com", nil, false))
	l.setRules(t, 2, false, encrypted) // the edge's new generation for the identity change
	step("after the disk was reported unencrypted", false)
	step("still unencrypted", false)

	l.laptop.SetIdentity(identity("alice@example.com", nil, true))
	l.setRules(t, 3, false, encrypted)
	step("after the disk was reported encrypted again", true)
	if got := len(l.r.Flows()); got != 1 {
		t.Fatalf("%d flows, want the one flow throughout", got)
	}
}

// TestGroupPolicy checks that a user.group rule lets one user reach a
// server and blocks another, and that a site's flow to a device is judged
// by the destination device's user.
func TestGroupPolicy(t *testing.T) {
	l := newLab(t)
	l.laptop.Device = [16]byte{0x77}
	l.laptop.SetIdentity(identity("alice@example.com", []string{"staff", "eng"}, true))
	bob := &Peer{Name: "bob-laptop", Kind: Client, Overlay: mpa("100.96.0.8"), Device: [16]byte{0x78}}
	bob.SetUp(true)
	bob.SetIdentity(identity("bob@example.com", []string{"staff", "sales"}, true))
	b := NewTableBuilder()
	b.AddRoute(0, mpp("10.1.0.0/16"), l.tunA)
	b.AddReplica(l.siteA)
	b.AddClient(l.laptop)
	b.AddClient(bob)
	l.r.SetTable(b.Build())
	l.setRules(t, 1, false, policy.Rule{ID: polAllow, Allow: true, Match: policy.Cond{Op: policy.In, Field: policy.Group, Names: []string{"eng"}}})
	icmp := make([]byte, IcmpBufSize)

	if d := l.r.Route(l.laptop, tcp("100.96.0.7", "10.1.2.3", 40000, 22, tcpSYN, 1), icmp); d.Verdict != Forward || d.To != l.siteA {
		t.Fatalf("alice (eng) to the server: %+v, want forwarded to A", d)
	}
	if d := l.r.Route(bob, tcp("100.96.0.8", "10.1.2.3", 40000, 22, tcpSYN, 1), icmp); d.Verdict == Forward || d.Reason != ReasonPolicy {
		t.Fatalf("bob (sales) to the server: %+v, want blocked by policy", d)
	}
	// The server calling the devices: the flow's user is the destination's.
	if d := l.r.Route(l.siteA, tcp("10.1.2.3", "100.96.0.7", 5060, 5060, tcpSYN, 1), icmp); d.Verdict != Forward || d.To != l.laptop {
		t.Fatalf("A to alice's laptop: %+v, want forwarded", d)
	}
	if d := l.r.Route(l.siteA, tcp("10.1.2.3", "100.96.0.8", 5060, 5060, tcpSYN, 1), icmp); d.Verdict == Forward {
		t.Fatalf("A to bob's laptop: %+v, want blocked", d)
	}
	// Client to client: the sender's user decides.
	l.setRules(t, 2, true, policy.Rule{ID: polBlock, Match: policy.Cond{Op: policy.In, Field: policy.User, Users: []string{"bob@example.com"}}})
	if d := l.r.Route(l.laptop, tcp("100.96.0.7", "100.96.0.8", 40000, 80, tcpSYN, 1), icmp); d.Verdict != Forward || d.To != bob {
		t.Fatalf("alice to bob: %+v, want forwarded (alice's flow)", d)
	}
	if d := l.r.Route(bob, tcp("100.96.0.8", "100.96.0.7", 40001, 80, tcpSYN, 1), icmp); d.Verdict == Forward || d.Reason != ReasonPolicy {
		t.Fatalf("bob to alice: %+v, want blocked (bob's flow)", d)
	}
}

// TestIdentityAllocs checks that a flow's first packet judged on groups
// and posture, and its re-evaluation, do not allocate.
func TestIdentityAllocs(t *testing.T) {
	l := newLab(t)
	l.laptop.Device = [16]byte{0x77}
	l.laptop.SetIdentity(policy.NewIdentity("alice@example.com", []string{"eng"},
		policy.Posture{Reported: true, Kernel: "6.1.0-18-amd64", DiskEncrypted: true}))
	rule := policy.Rule{ID: polAllow, Allow: true, Match: policy.Cond{Op: policy.And, Kids: []policy.Cond{
		{Op: policy.In, Field: policy.Group, Names: []string{"eng"}},
		{Op: policy.Ge, Field: policy.Kernel, Version: policy.ParseVersion("6.1")},
	}}}
	icmp := make([]byte, IcmpBufSize)
	pkt := tcp("100.96.0.7", "10.1.2.3", 40000, 443, tcpACK, 1)
	gen := uint64(1)
	l.setRules(t, gen, false, rule)
	if d := l.r.Route(l.laptop, pkt, icmp); d.Verdict != Forward {
		t.Fatalf("first packet: %+v", d)
	}
	sets := make([]*policy.Set, 1001)
	for i := range sets {
		s, err := policy.NewSet([]policy.Rule{rule}, false, uint64(i+2))
		if err != nil {
			t.Fatal(err)
		}
		sets[i] = s
	}
	i, buf := 0, make([]byte, len(pkt))
	allocs := testing.AllocsPerRun(1000, func() {
		l.r.SetPolicies(sets[i]) // every packet re-evaluated
		i++
		copy(buf, pkt) // Route decrements the TTL in place
		if d := l.r.Route(l.laptop, buf, icmp); d.Verdict != Forward {
			t.Fatalf("re-evaluated packet: %+v", d)
		}
	})
	if allocs != 0 {
		t.Fatalf("re-evaluation on identity allocates %v times per packet", allocs)
	}
}
