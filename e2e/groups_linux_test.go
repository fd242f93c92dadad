//go:build linux

package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// TestGroupPolicyE2E: alice (IdP group eng) and bob (group sales), both of
// @example.com, sign in by device code from two laptops. A policy allows
// group eng to the site server 10.1.2.4 and the next one blocks everyone
// else there: alice connects and the server sees her overlay IP; bob gets
// a RST, yet reaches 10.1.2.3 on the same site (the block is the policy,
// not a broken tunnel). The flow log shows alice's allow and bob's block
// with their emails and groups.
func TestGroupPolicyE2E(t *testing.T) {
	w, op, loginArgs := newSignInWorld(t, "8h")
	const server = "10.1.2.4"
	must(t, w.hosta.AddAddr(lanIf(t, w.hosta, "10."), server+"/16"))
	w.hosta.Echo(t, server+":7000")
	allow := w.addPolicy("--action", "allow", "--when", "user.group is eng", "--when", "dst_ip is "+server, "eng-to-server")
	block := w.addPolicy("--action", "block", "--when", "dst_ip is "+server, "block-server")

	laptop2 := w.secondLaptop()
	alice := w.loginClient(w.laptop, op, "alice-laptop", "sy1", opAlice, loginArgs)
	bob := w.loginClient(laptop2, op, "bob-laptop", "sy1", opBob, loginArgs)
	must(t, alice.WaitFor("host configured", 20*time.Second))
	must(t, bob.WaitFor("host configured", 20*time.Second))
	aliceDev, _ := w.deviceNamed("alice-laptop")
	bobDev, _ := w.deviceNamed("bob-laptop")
	if aliceDev.User != opAlice.Email || !slices.Equal(aliceDev.Groups, opAlice.Groups) ||
		bobDev.User != opBob.Email || !slices.Equal(bobDev.Groups, opBob.Groups) {
		t.Fatalf("devices after sign-in: alice %+v, bob %+v", aliceDev, bobDev)
	}
	aliceIP, bobIP := aliceDev.IP.String(), bobDev.IP.String()

	wantPeer(t, w.laptop, "tcp", server+":7000", aliceIP)
	wantRefused(t, laptop2, server+":7000")
	wantPeer(t, laptop2, "tcp", "10.1.2.3:7000", bobIP)

	var recs []model.FlowRecord
	err := eventually(5*time.Second, func() error {
		recs = w.flowRecords("--addr", server, "--event", "start", "--proto", "tcp")
		got := map[string]bool{}
		for _, r := range recs {
			switch {
			case r.Source.User == opAlice.Email && slices.Contains(r.Source.Groups, "eng") && r.Src.Addr().String() == aliceIP &&
				r.Action == "allow" && r.PolicyID != nil && *r.PolicyID == allow.ID:
				got["alice"] = true
			case r.Source.User == opBob.Email && slices.Contains(r.Source.Groups, "sales") && r.Src.Addr().String() == bobIP &&
				r.Action == "block" && r.PolicyID != nil && *r.PolicyID == block.ID:
				got["bob"] = true
			case r.Source.User == opBob.Email && r.Action != "block", r.Source.User == opAlice.Email && r.Action != "allow":
				return fmt.Errorf("flow log: a flow to the server with the wrong action: %+v", r)
			}
		}
		if !got["alice"] || !got["bob"] {
			return fmt.Errorf("flow log lacks alice's allowed or bob's blocked flow to %s: %+v", server, recs)
		}
		return nil
	})
	must(t, err)
}
