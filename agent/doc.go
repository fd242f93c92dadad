// Package agent is the endpoint daemon. In the connector role it enrolls with
// a tunnel token, creates a kernel TUN, carries its packets to the edge over
// a wireguard-go device with the edge as its only peer or over MASQUE
// (transport/masque), switching for --protocol auto, and keeps the host's routes and sysctls reconciled
// with the configuration the edge pushes; everything it changed on the host
// is undone when it stops, and after a crash on its next start.
//
// It imports control/client (never the server), routing, routing/host, tun
// and transport/masque;
// only routing/host and tun touch netlink.
package agent
