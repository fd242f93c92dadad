package wireguard

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// seedMessage returns a well-formed message of a type and size with
// deterministic filler. The parser fuzzers seed from it rather than from a
// live handshake, so their workers start no endpoints.
func seedMessage(typ uint32, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	binary.LittleEndian.PutUint32(b, typ)
	return b
}

// seedMessages returns one real message of each type, from a handshake.
func seedMessages(t testing.TB) (init, resp, cookie, transport []byte) {
	_, b, _, _, _, _, msgs := connectedCapPairMsgs(t, ReceiverFunc(func([]Packet) {}), ReceiverFunc(func([]Packet) {}))
	c, err := b.cookies.createReply(msgs[0], []byte{1, 2, 3}, 0, int64(DefaultCookieRefreshTime))
	if err != nil {
		t.Fatal(err)
	}
	return msgs[0], msgs[1], c[:], msgs[2]
}

func FuzzParseInitiation(f *testing.F) {
	init := seedMessage(msgTypeInitiation, initiationSize)
	f.Add(init)
	f.Add(init[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseInitiation(b)
		if !ok {
			return
		}
		var out [initiationSize]byte
		m.marshal(&out)
		if !bytes.Equal(out[:], b) {
			t.Fatalf("round trip: %x != %x", out, b)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	resp := seedMessage(msgTypeResponse, responseSize)
	f.Add(resp)
	f.Add(resp[:50])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseResponse(b)
		if !ok {
			return
		}
		var out [responseSize]byte
		m.marshal(&out)
		if !bytes.Equal(out[:], b) {
			t.Fatalf("round trip: %x != %x", out, b)
		}
	})
}

func FuzzParseCookieReply(f *testing.F) {
	cookie := seedMessage(msgTypeCookieReply, cookieReplySize)
	f.Add(cookie)
	f.Add(cookie[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseCookieReply(b)
		if !ok {
			return
		}
		var out [cookieReplySize]byte
		m.marshal(&out)
		if !bytes.Equal(out[:], b) {
			t.Fatalf("round trip: %x != %x", out, b)
		}
	})
}

func FuzzParseTransportHeader(f *testing.F) {
	tr := seedMessage(msgTypeTransport, keepaliveSize+64)
	f.Add(tr)
	f.Add(tr[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := parseTransportHeader(b)
		if !ok {
			return
		}
		if len(b) < keepaliveSize || len(b) > MaxMessageSize {
			t.Fatalf("accepted %d bytes", len(b))
		}
		var out [transportHeaderSize]byte
		putTransportHeader(out[:], h.receiver, h.counter)
		if !bytes.Equal(out[:], b[:transportHeaderSize]) {
			t.Fatalf("round trip: %x != %x", out, b[:transportHeaderSize])
		}
	})
}

func FuzzIPPacketLen(f *testing.F) {
	f.Add(ipv4Packet(60))
	f.Add([]byte{0x60, 0, 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := ipPacketLen(b); n < 0 || n > len(b) || (n > 0 && n < 20) {
			t.Fatalf("ipPacketLen = %d for %d bytes", n, len(b))
		}
	})
}

// FuzzReceive feeds arbitrary datagrams, and mutations of real ones, to an
// endpoint with an established session: nothing may panic, and nothing
// unauthenticated may reach the receiver.
func FuzzReceive(f *testing.F) {
	init, resp, cookie, tr := seedMessages(f)
	for _, m := range [][]byte{init, resp, cookie, tr, {4, 0, 0, 0}, {}} {
		f.Add(m)
	}
	delivered := 0
	_, b, _, bb, _, sb := connectedCapPair(f, ReceiverFunc(func([]Packet) {}), ReceiverFunc(func(p []Packet) { delivered += len(p) }))
	bb.drop = true
	kp := sb.current.Load()
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > MaxMessageSize {
			return
		}
		if len(msg) >= transportHeaderSize && binary.LittleEndian.Uint32(msg) == msgTypeTransport {
			binary.LittleEndian.PutUint32(msg[4:], kp.localIndex) // reach the decryptor
		}
		before := delivered
		deliver(b, msg)
		if delivered != before {
			t.Fatalf("forged message delivered: %x", msg)
		}
	})
}

// TestParserSeedsAreWellFormed keeps the parser fuzzers' seeds on the
// accepting path, so the round-trip checks run from the first input.
func TestParserSeedsAreWellFormed(t *testing.T) {
	if _, ok := parseInitiation(seedMessage(msgTypeInitiation, initiationSize)); !ok {
		t.Error("initiation seed rejected")
	}
	if _, ok := parseResponse(seedMessage(msgTypeResponse, responseSize)); !ok {
		t.Error("response seed rejected")
	}
	if _, ok := parseCookieReply(seedMessage(msgTypeCookieReply, cookieReplySize)); !ok {
		t.Error("cookie reply seed rejected")
	}
	if _, ok := parseTransportHeader(seedMessage(msgTypeTransport, keepaliveSize+64)); !ok {
		t.Error("transport seed rejected")
	}
}
