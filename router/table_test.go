package router

import "testing"

// TestPick: a destination's packets go to a local session before a remote
// one, to the active one of each before the others, and never to a session
// that is down or its agent's standby one; localOnly (a packet off a trunk)
// never picks a remote session.
func TestPick(t *testing.T) {
	peer := func(remote, up, active, standby bool) *Peer {
		p := &Peer{Kind: Connector, Remote: remote}
		p.SetUp(up)
		p.SetActive(active)
		p.SetStandby(standby)
		return p
	}
	localUp := peer(false, true, false, false)
	localActive := peer(false, true, true, false)
	localStandby := peer(false, true, true, true)
	localDown := peer(false, false, true, false)
	remoteActive := peer(true, true, true, false)
	remoteUp := peer(true, true, false, false)
	remoteStandby := peer(true, true, false, true)
	tests := []struct {
		name      string
		replicas  []*Peer
		localOnly bool
		want      *Peer
	}{
		{"local active first", []*Peer{localUp, remoteActive, localActive}, false, localActive},
		{"a local one before a remote active one", []*Peer{remoteActive, localUp}, false, localUp},
		{"never a local down one", []*Peer{localDown, remoteActive}, false, remoteActive},
		{"never the agent's standby session", []*Peer{localStandby, remoteActive}, false, remoteActive},
		{"the remote active before another remote", []*Peer{remoteUp, remoteActive}, false, remoteActive},
		{"any remote one last", []*Peer{localDown, remoteUp}, false, remoteUp},
		{"off a trunk: local only", []*Peer{remoteActive, localUp}, true, localUp},
		{"off a trunk: no local one", []*Peer{remoteActive, localStandby}, true, nil},
		{"a remote standby while the agent moves", []*Peer{localStandby, remoteStandby}, false, remoteStandby},
		{"a remote standby only as the last resort", []*Peer{remoteStandby, remoteUp}, false, remoteUp},
		{"off a trunk: never a remote standby", []*Peer{remoteStandby, localStandby}, true, nil},
	}
	for _, tc := range tests {
		d := &dest{replicas: tc.replicas}
		if got := d.pick(tc.localOnly); got != tc.want {
			t.Errorf("%s: picked %p, want %p", tc.name, got, tc.want)
		}
	}
}
