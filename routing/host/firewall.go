package host

// ForwardChain is a base chain of the nftables ruleset (iptables-nft's
// included) on the forward hook, as a FirewallInspector reads it.
type ForwardChain struct {
	Family string // "inet", "ip" or "ip6"
	Table  string
	Chain  string
	// PolicyDrop: a packet that no rule accepts is dropped.
	PolicyDrop bool
	// AcceptIn and AcceptOut name the interfaces of rules that match
	// iifname (oifname) equal to the name, or a prefix of it ending in "*",
	// and accept.
	AcceptIn, AcceptOut []string
	// IPTables: the table is iptables-nft's (ip or ip6 "filter", chain
	// "FORWARD"), so iptables(8) is the tool to change it.
	IPTables bool
}

// FirewallInspector reads the forward-hook chains of the nftables ruleset;
// it changes nothing.
type FirewallInspector interface {
	ForwardChains() ([]ForwardChain, error)
}
