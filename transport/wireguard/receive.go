package wireguard

import (
	"context"
	"encoding/binary"
	"errors"
	"hash"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.zx2c4.com/wireguard/conn"
)

// minParallel is the number of transport messages below which a batch is
// decrypted or encrypted on the calling goroutine alone: handing work to
// another core costs a few microseconds, about 4 packets of crypto.
const minParallel = 16

// rxItem is the per-message state of a received batch.
type rxItem struct {
	kp      *keypair
	counter uint64
	n       int // plaintext length
	ok      bool
}

// rxBatch holds one receive goroutine's buffers, allocated once.
type rxBatch struct {
	full  [][]byte // each buffer, with the endpoint's ReceiveHeadroom in front
	bufs  [][]byte // full[i][ReceiveHeadroom:], where messages are read
	sizes []int
	eps   []conn.Endpoint
	items []rxItem
	work  []int // indices of transport messages to decrypt
	pkts  []Packet
	par   parallel
	mac1  hash.Hash // keyed with the endpoint's mac1 key
	sum   [macSize]byte
}

func (e *Endpoint) newRxBatch(n int) *rxBatch {
	b := &rxBatch{
		full:  make([][]byte, n),
		bufs:  make([][]byte, n),
		sizes: make([]int, n),
		eps:   make([]conn.Endpoint, n),
		items: make([]rxItem, n),
		work:  make([]int, n),
		pkts:  make([]Packet, n),
	}
	for i := range b.bufs {
		b.full[i] = make([]byte, e.rxRoom+MaxMessageSize)
		b.bufs[i] = b.full[i][e.rxRoom:]
	}
	b.mac1, _ = blake2s.New128(e.cookies.mac1Key[:])
	return b
}

// cryptoJob is a range of a batch handed to a crypto worker.
type cryptoJob struct {
	rx     *rxBatch
	tx     *txBatch
	lo, hi int
	nonce  [12]byte // here so that it does not escape per call
	wg     *sync.WaitGroup
}

// parallel splits a batch across the crypto workers; one per goroutine
// that processes batches, reused for every batch.
type parallel struct {
	jobs []cryptoJob
	wg   sync.WaitGroup
}

// runParallel processes items [0,n) of rx or tx on the calling goroutine,
// helped by up to e.workers workers when the batch is large and cores are
// spare (see spareCPU).
func (e *Endpoint) runParallel(p *parallel, rx *rxBatch, tx *txBatch, n int) {
	if len(p.jobs) == 0 {
		p.jobs = make([]cryptoJob, e.workers+1)
	}
	chunks := 1
	if n >= fanoutMin {
		chunks = min(n/minParallel, len(p.jobs), 1+e.spare.get(e.now()))
	}
	per := (n + chunks - 1) / chunks
	lo := 0
	for c := 0; c < chunks && lo < n; c++ {
		hi := min(lo+per, n)
		j := &p.jobs[c]
		j.rx, j.tx, j.lo, j.hi, j.wg = rx, tx, lo, hi, &p.wg
		if c > 0 {
			p.wg.Add(1)
			e.crypto <- j
		}
		lo = hi
	}
	e.doJob(&p.jobs[0])
	p.wg.Wait()
}

// cryptoWorker runs until Close closes the job channel, which it does only
// when no batch can be waiting for a job.
func (e *Endpoint) cryptoWorker() {
	defer e.cryptoWG.Done()
	for j := range e.crypto {
		start := e.now()
		e.doJob(j)
		e.spare.busy.Add(e.now() - start)
		j.wg.Done()
	}
}

func (e *Endpoint) doJob(j *cryptoJob) {
	if j.rx != nil {
		b := j.rx
		for k := j.lo; k < j.hi; k++ {
			i := b.work[k]
			it := &b.items[i]
			msg := b.bufs[i][:b.sizes[i]]
			binary.LittleEndian.PutUint64(j.nonce[4:], it.counter)
			out, err := it.kp.recv.Open(msg[transportHeaderSize:transportHeaderSize], j.nonce[:], msg[transportHeaderSize:], nil)
			it.ok = err == nil
			it.n = len(out)
		}
		return
	}
	t := j.tx
	for k := j.lo; k < j.hi; k++ {
		it := &t.items[k]
		binary.LittleEndian.PutUint64(j.nonce[4:], it.counter)
		msg := it.msg
		t.kp.send.Seal(msg[transportHeaderSize:transportHeaderSize], j.nonce[:], msg[transportHeaderSize:], nil)
		t.out[k] = msg[:len(msg)+16]
	}
}

func (e *Endpoint) receiveLoop(fn conn.ReceiveFunc) {
	b := e.newRxBatch(e.batchSize)
	backoff := time.Millisecond
	for {
		n, err := fn(b.bufs, b.sizes, b.eps)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || e.isClosed() {
				return
			}
			e.log.Warn("receive batch", "func", fn.PrettyName(), "err", err)
			select {
			case <-e.closed:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = time.Millisecond
		e.processBatch(b, n)
	}
}

// processBatch handles n received messages: transport messages are
// decrypted in place (in parallel) and delivered as one batch; handshake
// messages go to the handshake queue.
func (e *Endpoint) processBatch(b *rxBatch, n int) {
	now := e.now()
	nDec := 0
	rejectAfter := int64(e.t.RejectAfterTime)
	for i := 0; i < n; i++ {
		size := b.sizes[i]
		if size == 0 {
			continue
		}
		msg := b.bufs[i][:size]
		switch msgType(msg) {
		case msgTypeTransport:
			h, ok := parseTransportHeader(msg)
			if !ok {
				e.stats.malformed.Add(1)
				continue
			}
			ent := e.index.lookup(h.receiver)
			if ent == nil || ent.kp == nil {
				e.stats.unknownIndex.Add(1)
				continue
			}
			if now-ent.kp.created >= rejectAfter || h.counter >= e.t.RejectAfterMessages {
				e.stats.expired.Add(1)
				continue
			}
			it := &b.items[i]
			it.kp, it.counter, it.ok = ent.kp, h.counter, false
			b.work[nDec] = i
			nDec++
		case msgTypeInitiation, msgTypeResponse, msgTypeCookieReply:
			e.enqueueHandshake(b, msg, b.eps[i], now)
		default:
			if isProbe(msg) {
				e.handleProbe(msg, now)
				continue
			}
			e.stats.malformed.Add(1)
		}
	}
	if nDec == 0 {
		return
	}
	e.runParallel(&b.par, b, nil, nDec)

	np := 0
	for k := 0; k < nDec; k++ {
		i := b.work[k]
		it := &b.items[i]
		kp := it.kp
		it.kp = nil
		if !it.ok {
			e.stats.auth.Add(1)
			continue
		}
		kp.replayMu.Lock()
		fresh := kp.replay.ValidateCounter(it.counter, e.t.RejectAfterMessages)
		kp.replayMu.Unlock()
		if !fresh {
			e.stats.replay.Add(1)
			continue
		}
		s := kp.sess
		if s.removed.Load() {
			e.stats.unknownIndex.Add(1)
			continue
		}
		if kp != s.current.Load() && kp == s.next.Load() && s.confirm(kp) {
			e.flushStaged(s)
		}
		s.setEndpoint(b.eps[i])
		if s.lastRecv.Load() != now {
			s.lastRecv.Store(now)
		}
		if kp.isInitiator && now-kp.created >= rejectAfter-int64(e.t.KeepaliveTimeout+e.t.RekeyTimeout) {
			e.requestHandshake(s)
		}
		if it.n == 0 {
			continue // keepalive
		}
		fr := int(s.framing.Load())
		plen := 0
		if it.n > fr {
			plen = ipPacketLen(b.bufs[i][transportHeaderSize+fr : transportHeaderSize+it.n])
		}
		if plen == 0 {
			e.stats.malformed.Add(1)
			continue
		}
		if s.lastDataRecv.Load() != now {
			s.lastDataRecv.Store(now)
		}
		s.rxPackets.Add(1)
		s.rxBytes.Add(uint64(plen))
		off := e.rxRoom + transportHeaderSize + fr
		b.pkts[np] = Packet{Session: s, Buf: b.full[i][:off+plen], Off: off}
		np++
	}
	if np > 0 {
		e.recv.Receive(b.pkts[:np])
	}
}

// hsJob is a handshake message copied out of a receive buffer.
type hsJob struct {
	buf [initiationSize]byte
	n   int
	ep  conn.Endpoint
}

func (e *Endpoint) enqueueHandshake(b *rxBatch, msg []byte, ep conn.Endpoint, now int64) {
	switch msgType(msg) {
	case msgTypeInitiation:
		if len(msg) != initiationSize {
			e.stats.malformed.Add(1)
			return
		}
	case msgTypeResponse:
		if len(msg) != responseSize {
			e.stats.malformed.Add(1)
			return
		}
	default:
		if len(msg) != cookieReplySize {
			e.stats.malformed.Add(1)
			return
		}
	}
	if msgType(msg) != msgTypeCookieReply && !checkMAC1(b.mac1, &b.sum, msg) {
		e.stats.mac1.Add(1)
		return
	}
	if len(e.hsQueue) >= cap(e.hsQueue)/8 {
		e.underLoadUntil.Store(now + int64(underLoadAfterTime))
	}
	j := e.hsPool.Get().(*hsJob)
	j.n = copy(j.buf[:], msg)
	j.ep = ep
	select {
	case e.hsQueue <- j:
	default:
		e.stats.queueFull.Add(1)
		j.ep = nil
		e.hsPool.Put(j)
	}
}

func (e *Endpoint) handshakeWorker() {
	for {
		select {
		case <-e.closed:
			return
		case j := <-e.hsQueue:
			e.handleHandshake(j.buf[:j.n], j.ep)
			j.ep = nil
			e.hsPool.Put(j)
		}
	}
}

func (e *Endpoint) underLoad(now int64) bool {
	return e.forceUnderLoad.Load() || now < e.underLoadUntil.Load()
}

func (e *Endpoint) handleHandshake(msg []byte, src conn.Endpoint) {
	now := e.now()
	typ := msgType(msg)
	if typ == msgTypeCookieReply {
		e.handleCookieReply(msg, now)
		return
	}
	if e.underLoad(now) {
		// Rate-limit first, so that a flood from one address costs no
		// more than a lookup per message even before cookies apply.
		if !e.limiter.Allow(src.DstIP()) {
			e.stats.rateLimited.Add(1)
			return
		}
		srcBytes := src.DstToBytes()
		refresh := int64(e.t.CookieRefreshTime)
		if !e.cookies.checkMAC2(msg, srcBytes, now, refresh) {
			reply, err := e.cookies.createReply(msg, srcBytes, now, refresh)
			if err == nil {
				e.stats.cookie.Add(1)
				e.sendRaw(reply[:], src)
			}
			return
		}
	}
	if typ == msgTypeInitiation {
		e.handleInitiation(msg, src, now)
	} else {
		e.handleResponse(msg, src, now)
	}
}

func (e *Endpoint) handleInitiation(msg []byte, src conn.Endpoint, now int64) {
	m, ok := parseInitiation(msg)
	if !ok {
		e.stats.malformed.Add(1)
		return
	}
	c, err := e.consumeInitiation(&m)
	if err != nil {
		if errors.Is(err, errUnknownPeer) {
			e.stats.unauthorized.Add(1)
		} else {
			e.stats.auth.Add(1)
		}
		return
	}
	s := c.sess
	s.mu.Lock()
	if s.removed.Load() {
		s.mu.Unlock()
		e.stats.unauthorized.Add(1)
		return
	}
	if !c.timestamp.After(s.hs.lastTimestamp) {
		s.mu.Unlock()
		e.stats.replay.Add(1)
		return
	}
	if s.hs.hasInitConsume && now-s.hs.lastInitConsume < int64(handshakeInitiationRate) {
		s.mu.Unlock()
		e.stats.rateLimited.Add(1)
		return
	}
	s.hs.lastTimestamp, s.hs.lastInitConsume, s.hs.hasInitConsume = c.timestamp, now, true
	resp, kp, err := e.createResponseLocked(&c, now)
	if err != nil {
		s.mu.Unlock()
		e.log.Warn("create handshake response", "peer", s.key.String(), "err", err)
		return
	}
	s.installKeypairLocked(kp)
	s.mu.Unlock()
	s.setEndpoint(src)
	s.lastRecv.Store(now)
	e.stats.hsCompleted.Add(1)
	e.sendRaw(resp[:], src)
	s.lastSent.Store(now)
	e.kick(s) // a new key: its expiry, and the keepalive look-ahead
	if e.log.Enabled(context.Background(), slog.LevelDebug) {
		e.log.LogAttrs(context.Background(), slog.LevelDebug, "handshake answered", slog.String("peer", s.key.String()), slog.String("src", src.DstToString()))
	}
}

func (e *Endpoint) handleResponse(msg []byte, src conn.Endpoint, now int64) {
	m, ok := parseResponse(msg)
	if !ok {
		e.stats.malformed.Add(1)
		return
	}
	ent := e.index.lookup(m.receiver)
	if ent == nil || ent.kp != nil {
		e.stats.unknownIndex.Add(1)
		return
	}
	s := ent.sess
	s.mu.Lock()
	kp, err := e.consumeResponseLocked(s, &m, now)
	if err != nil || s.removed.Load() {
		s.mu.Unlock()
		e.stats.auth.Add(1)
		return
	}
	s.installKeypairLocked(kp)
	s.mu.Unlock()
	s.setEndpoint(src)
	s.lastRecv.Store(now)
	e.stats.hsCompleted.Add(1)
	e.sendKeepalive(s) // confirms the keypair for the responder
	e.flushStaged(s)
	// Last, so that whoever waits on it (HandshakeOnce) sees the handshake
	// only once the responder's confirmation is on the wire.
	s.lastHandshake.Store(time.Now().UnixNano())
	e.kick(s) // the attempt is over and a new key is in
}

func (e *Endpoint) handleCookieReply(msg []byte, now int64) {
	m, ok := parseCookieReply(msg)
	if !ok {
		e.stats.malformed.Add(1)
		return
	}
	ent := e.index.lookup(m.receiver)
	if ent == nil {
		e.stats.unknownIndex.Add(1)
		return
	}
	s := ent.sess
	s.mu.Lock()
	ok = s.consumeCookieReplyLocked(&m, now)
	s.mu.Unlock()
	if !ok {
		e.stats.auth.Add(1)
	}
}
