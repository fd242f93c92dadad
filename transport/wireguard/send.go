package wireguard

import (
	"fmt"
)

// txItem is one message being sealed: header plus padded plaintext.
type txItem struct {
	msg     []byte
	counter uint64
}

// txBatch is the scratch space of one Send call; pooled because Send runs
// on the caller's goroutine and many may run at once.
type txBatch struct {
	kp    *keypair
	items []txItem
	out   [][]byte
	spare [][]byte // for packets whose buffers lack head or tail room
	par   parallel
}

func (e *Endpoint) newTxBatch() *txBatch {
	return &txBatch{
		items: make([]txItem, e.batchSize),
		out:   make([][]byte, e.batchSize),
		spare: make([][]byte, e.batchSize),
	}
}

func (t *txBatch) spareBuf(i int) []byte {
	if t.spare[i] == nil {
		t.spare[i] = make([]byte, MaxMessageSize)
	}
	return t.spare[i]
}

// Send encrypts the IP packets bufs[i][offset:] for s and sends them to its
// endpoint. Encryption is in place: bufs[i][offset-Headroom:offset] receives
// the transport header, and when cap(bufs[i]) leaves Tailroom the padding
// and tag go after the packet (otherwise the packet is copied); the bytes
// of bufs[i] up to its capacity may also be used as scratch for UDP GSO. So
// bufs must not share backing arrays with data the caller still needs.
//
// Without a usable key, Send copies up to 16 packets per session into a
// queue (dropping the oldest), starts a handshake and returns nil; the queue
// is sent when the handshake completes. It returns ErrNoEndpoint if s has
// never been heard from and has no configured endpoint.
func (e *Endpoint) Send(s *Session, bufs [][]byte, offset int) error {
	return e.send(s, bufs, offset, false)
}

func (e *Endpoint) send(s *Session, bufs [][]byte, offset int, keepalive bool) error {
	if len(bufs) == 0 {
		return nil
	}
	if offset < Headroom {
		return ErrNoHeadroom
	}
	if s.removed.Load() {
		return ErrSessionRemoved
	}
	// A handshake may complete, and flush the queue, between the key check
	// below and stage: then flush again once sendMu is released (a nested
	// RLock could deadlock against Close).
	flushAfter := false
	defer func() {
		if flushAfter {
			e.flushStaged(s)
		}
	}()
	e.sendMu.RLock()
	defer e.sendMu.RUnlock()
	if e.isClosed() {
		return ErrClosed
	}
	now := e.now()
	dst := s.dst.Load()
	if dst == nil {
		e.stats.noSession.Add(uint64(len(bufs)))
		return ErrNoEndpoint
	}
	kp := s.current.Load()
	if kp == nil || !e.keypairUsable(kp, now) {
		e.requestHandshake(s)
		if keepalive {
			return ErrNoSession
		}
		e.stats.noSession.Add(uint64(s.stage(bufs, offset)))
		if kp := s.current.Load(); kp != nil && e.keypairUsable(kp, e.now()) {
			flushAfter = true
		}
		return nil
	}
	tx := e.txPool.Get().(*txBatch)
	tx.kp = kp
	padCap := int(s.padMTU.Load())
	if padCap == 0 {
		padCap = MaxPacketSize
	}
	var (
		err     error
		bytes   uint64
		packets uint64
	)
	for start := 0; start < len(bufs); start += e.batchSize {
		chunk := bufs[start:min(start+e.batchSize, len(bufs))]
		n := 0
		for _, buf := range chunk {
			plen := len(buf) - offset
			if plen < 0 {
				err = ErrNoHeadroom
				continue
			}
			if plen > MaxPacketSize {
				err = ErrPacketTooLarge
				continue
			}
			padded := min((plen+paddingMultiple-1)&^(paddingMultiple-1), MaxPacketSize)
			if padded > padCap {
				padded = max(plen, padCap) // as wireguard-go: never past the session MTU
			}
			var msg []byte
			if len(buf)+padded-plen+16 <= cap(buf) {
				msg = buf[offset-transportHeaderSize : offset+padded]
			} else {
				sp := e.spareFor(tx, n)
				copy(sp[transportHeaderSize:], buf[offset:])
				msg = sp[:transportHeaderSize+padded]
			}
			clear(msg[transportHeaderSize+plen:])
			counter := kp.sendNonce.Add(1) - 1
			if counter >= e.t.RejectAfterMessages {
				e.stats.expired.Add(1)
				break
			}
			putTransportHeader(msg, kp.remoteIndex, counter)
			tx.items[n] = txItem{msg: msg, counter: counter}
			n++
			bytes += uint64(plen)
		}
		if n == 0 {
			continue
		}
		e.runParallel(&tx.par, nil, tx, n)
		if serr := e.bind.Send(tx.out[:n], dst.ep); serr != nil {
			e.stats.sendErrors.Add(1)
			err = fmt.Errorf("wireguard: send %d messages to %s: %w", n, dst.ep.DstToString(), serr)
		} else {
			packets += uint64(n)
		}
		clear(tx.items[:n])
		clear(tx.out[:n])
	}
	tx.kp = nil
	e.txPool.Put(tx)

	if packets > 0 {
		if s.lastSent.Load() != now {
			s.lastSent.Store(now)
		}
		if !keepalive {
			if s.lastDataSent.Load() != now {
				s.lastDataSent.Store(now)
			}
			s.txPackets.Add(packets)
			s.txBytes.Add(bytes)
		}
	}
	if (kp.isInitiator && now-kp.created >= int64(e.t.RekeyAfterTime)) || kp.sendNonce.Load() >= e.t.RekeyAfterMessages {
		e.requestHandshake(s)
	}
	return err
}

// spareFor returns a spare buffer for item i, keeping it at the same
// address for the rest of the batch.
func (e *Endpoint) spareFor(tx *txBatch, i int) []byte { return tx.spareBuf(i) }

// sendKeepalive sends an empty transport message to s, if it has a key.
func (e *Endpoint) sendKeepalive(s *Session) {
	buf := make([]byte, Headroom, Headroom+Tailroom)
	_ = e.send(s, [][]byte{buf}, Headroom, true)
}

// maxStaged is how many packets a session queues while it has no key.
const maxStaged = 16

// stage queues copies of packets until a handshake completes and returns
// how many packets it dropped (too big, or the oldest ones evicted).
func (s *Session) stage(bufs [][]byte, offset int) (dropped int) {
	s.stagedMu.Lock()
	defer s.stagedMu.Unlock()
	for _, b := range bufs {
		plen := len(b) - offset
		if plen < 0 || plen > MaxPacketSize {
			dropped++
			continue
		}
		c := make([]byte, Headroom+plen, Headroom+plen+Tailroom)
		copy(c[Headroom:], b[offset:])
		if len(s.staged) >= maxStaged {
			clear(s.staged[:1])
			s.staged = append(s.staged[:0], s.staged[1:]...)
			dropped++
		}
		s.staged = append(s.staged, c)
	}
	return dropped
}

// dropStaged empties the session's queue.
func (s *Session) dropStaged() {
	s.stagedMu.Lock()
	s.staged = nil
	s.stagedMu.Unlock()
}

// flushStaged sends the packets queued while s had no key.
func (e *Endpoint) flushStaged(s *Session) {
	s.stagedMu.Lock()
	q := s.staged
	s.staged = nil
	s.stagedMu.Unlock()
	if len(q) > 0 {
		_ = e.send(s, q, Headroom, false)
	}
}
