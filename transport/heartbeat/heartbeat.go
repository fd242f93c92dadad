// Package heartbeat is Switchyard's in-tunnel liveness protocol, in the manner
// of BFD: an agent sends a small UDP probe through its tunnel to the edge's own
// address every Interval, and the edge answers each one. The edge declares a
// session dead after Multiplier missed intervals, and an agent declares the
// edge unreachable the same way. Replies tell a connector replica whether it
// is the active one of its tunnel, which is what keepalived follows, and
// tell an agent on two edges of a cluster that the edge is stopping.
//
// Probes ride inside the tunnel, so they prove the whole path: the agent's
// kernel, its WireGuard device, the network, and the edge's router.
package heartbeat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Port is the UDP port of the edge's heartbeat responder on its own address.
const Port = 51821

// Defaults an agent uses: a probe every 100 ms, dead after 5 missed.
const (
	DefaultInterval   = 100 * time.Millisecond
	DefaultMultiplier = 5
)

// Len is the size of a message on the wire.
const Len = 16

var magic = [4]byte{'S', 'Y', 'H', 'B'}

const version = 1

// Type is a probe or a reply.
type Type uint8

// The types of message.
const (
	Probe Type = 1
	Reply Type = 2
)

// Flags carry a probe's wishes and a reply's verdict.
type Flags uint8

// The flags.
const (
	// Leaving (probe): the replica is stopping; make another one active now.
	Leaving Flags = 1 << iota
	// Preferred (probe): the replica's host holds the site's gateway address
	// (keepalived MASTER); make it the active replica.
	Preferred
	// Active (reply): the replica is its tunnel's active one.
	Active
	// Standby (probe): the session is its agent's standby path, kept to a
	// second edge of a cluster while another edge carries its traffic; the
	// edge makes it no replica's active one and lists it as standby.
	Standby
	// Draining (reply): the edge is stopping: an agent with a session to
	// another edge moves its traffic there now, rather than after its
	// heartbeats fail. Unlike Leaving it says nothing of the replica: it
	// stays what it was (active, preferred) on the other edge.
	Draining
)

// Message is one probe or reply.
type Message struct {
	Type  Type
	Flags Flags
	// Priority (probe) ranks replicas of a tunnel: the highest that is up and
	// not leaving is active, unless another is preferred.
	Priority uint8
	// Multiplier is how many intervals may pass without a probe before the
	// edge declares the session dead.
	Multiplier uint8
	// Interval is the time between probes, in milliseconds on the wire.
	Interval time.Duration
	// Seq numbers probes; a reply echoes its probe's.
	Seq uint32
}

// Detect is how long the edge waits for a probe before it declares the sender dead.
func (m Message) Detect() time.Duration { return time.Duration(m.Multiplier) * m.Interval }

// Append appends the wire form of m to b.
func (m Message) Append(b []byte) []byte {
	ms := min(m.Interval.Milliseconds(), 0xffff)
	b = append(b, magic[:]...)
	b = append(b, version, byte(m.Type), byte(m.Flags), m.Priority)
	b = binary.BigEndian.AppendUint16(b, uint16(ms))
	b = append(b, m.Multiplier, 0)
	return binary.BigEndian.AppendUint32(b, m.Seq)
}

// ErrNotHeartbeat is returned by Parse for anything that is not a message of
// this protocol's version.
var ErrNotHeartbeat = errors.New("heartbeat: not a heartbeat message")

// Parse decodes a message; probes must carry a usable interval and multiplier.
func Parse(b []byte) (Message, error) {
	if len(b) < Len || [4]byte(b[:4]) != magic || b[4] != version {
		return Message{}, ErrNotHeartbeat
	}
	m := Message{
		Type:       Type(b[5]),
		Flags:      Flags(b[6]),
		Priority:   b[7],
		Interval:   time.Duration(binary.BigEndian.Uint16(b[8:10])) * time.Millisecond,
		Multiplier: b[10],
		Seq:        binary.BigEndian.Uint32(b[12:16]),
	}
	switch m.Type {
	case Probe:
		if m.Interval < 10*time.Millisecond || m.Multiplier == 0 {
			return Message{}, fmt.Errorf("heartbeat: probe with interval %v and multiplier %d", m.Interval, m.Multiplier)
		}
	case Reply:
	default:
		return Message{}, fmt.Errorf("heartbeat: unknown message type %d", m.Type)
	}
	return m, nil
}
