package model

import "strconv"

// PathMTU is what path MTU discovery found on a WireGuard session: the
// largest inner IP packet each direction carries whole, in bytes; 0 while
// not decided. Never stored.
type PathMTU struct {
	AgentToEdge int    `json:"agent_to_edge,omitempty"`
	EdgeToAgent int    `json:"edge_to_agent,omitempty"`
	State       string `json:"state"` // PathMTUProbing, PathMTUDone or PathMTUNotProbed
}

// PathMTU states.
const (
	PathMTUProbing   = "probing"    // a search runs, nothing decided in one direction at least
	PathMTUDone      = "done"       // both directions decided
	PathMTUNotProbed = "not probed" // no probe yet (an agent without probing, a stock device)
)

// String is what the CLI's tables show: "agent→edge/edge→agent" in bytes
// ("?" for a direction still probing), or the state.
func (p *PathMTU) String() string {
	switch {
	case p == nil:
		return "-"
	case p.State == PathMTUNotProbed:
		return PathMTUNotProbed
	case p.AgentToEdge == 0 && p.EdgeToAgent == 0:
		return PathMTUProbing
	}
	return mtuString(p.AgentToEdge) + "/" + mtuString(p.EdgeToAgent)
}

func mtuString(n int) string {
	if n == 0 {
		return "?"
	}
	return strconv.Itoa(n)
}
