// Package lab builds network-namespace topologies for end-to-end tests and
// observes what crossed them.
//
// A test calls New, creates namespaces with Lab.NS, joins them with veth pairs
// with Lab.Link, runs commands and daemons inside them with NS.Exec and
// NS.Start, opens sockets inside them with NS.Do, NS.Listen and NS.Dial (or
// moves its own goroutine into one with NS.Enter, and gives NS.Handle to
// netlink), and asserts on source addresses with the echo server (NS.Echo,
// NS.TCPEcho, NS.UDPEcho) and on reachability with NS.Ping. Everything a Lab
// creates is removed in t.Cleanup, also when the test fails or panics, and a
// final check reports any namespace or veth with the Lab's prefix that is
// left behind.
// Traffic stays inside the Lab's namespaces. Tests and benchmarks create
// namespaces and veth pairs only through a Lab, so that every one of them is
// named, cleaned up and checked for leftovers alike.
//
// The package is test-only: import it from _test.go files and e2e tests, never
// from production code. It is Linux-only and needs root (New skips the test
// otherwise; CI runs as root), iproute2 (ip) and iputils-ping (ping).
//
// Names are unique per Lab: a random prefix such as "sy3f2a" precedes every
// namespace ("sy3f2a-router", visible to `ip netns`) and interface
// ("sy3f2a-1a"), so parallel tests and leftovers of killed runs never clash.
// Methods of Lab that create things (NS, Link) fail the Lab's test, so call
// them from the goroutine running that test; all other methods are safe for
// concurrent use.
package lab
