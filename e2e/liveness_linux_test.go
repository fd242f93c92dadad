//go:build linux

package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReceiveOnlyConnectorWithoutSiteAddress runs the only replica of a
// tunnel whose prefix (10.1.2.0/24) holds none of its host's addresses, so
// it has no site address to send heartbeats from, and gives it traffic it
// only receives: a UDP stream from the laptop to the server for 15 s. Its
// WireGuard device then sends no keepalive for seconds at a time; liveness
// must not depend on it, so the stream loses (next to) nothing.
func TestReceiveOnlyConnectorWithoutSiteAddress(t *testing.T) {
	s := newHASite(t, "10.1.0.11")
	s.cli("tunnel", "route", "ip", "delete", "10.1.0.0/16")
	s.cli("tunnel", "route", "ip", "add", "10.1.2.0/24", "site-a") // the server, not r1's 10.1.0.11
	s.startReplica(s.r1, 100)
	s.waitActive(s.r1, 10*time.Second)

	pc, err := s.server.ListenPacket("udp", serverIP+":7100")
	must(t, err)
	defer pc.Close()
	var got atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	c, err := s.laptop.Dial("udp", serverIP+":7100")
	must(t, err)
	defer c.Close()
	const every, d = 20 * time.Millisecond, 15 * time.Second
	sent := 0
	for start := time.Now(); time.Since(start) < d; time.Sleep(every) {
		if _, err := c.Write([]byte("receive-only")); err == nil {
			sent++
		}
	}
	time.Sleep(200 * time.Millisecond)
	lost := sent - int(got.Load())
	t.Logf("a receive-only connector without a site address: %d of %d datagrams lost over %v", lost, sent, d)
	if lost > sent/100 {
		t.Errorf("%d of %d datagrams lost: the edge declared the connector dead while it received", lost, sent)
	}
	// It proves it is alive by heartbeats, from an address outside its site.
	var st struct {
		Healthy bool   `json:"healthy"`
		Source  string `json:"source"`
	}
	data, err := s.r1.Exec(binary, "connector", "status", "--state-dir", s.stateDir(s.r1), "-o", "json")
	if err != nil {
		t.Errorf("connector status: %v\n%s", err, data)
	}
	must(t, json.Unmarshal([]byte(data), &st))
	if !st.Healthy || st.Source == "" {
		t.Errorf("the connector's heartbeats are not answered: status %s", data)
	}
	t.Logf("heartbeats from %s", st.Source)
}

// TestStalledOnlyReplicaKeepsNewConnections stops the only replica of a
// tunnel (SIGSTOP) for a second, twice its detect time, while the laptop
// opens a TCP connection to the server every 20 ms. The replica's WireGuard
// session stays valid and there is no standby to move to, so the edge keeps
// sending to it: connections opened during the stall complete once it runs
// again (by SYN retransmission), and none is refused with "host unreachable".
func TestStalledOnlyReplicaKeepsNewConnections(t *testing.T) {
	s := newHASite(t, "10.1.0.11")
	r1 := s.startReplica(s.r1, 100)
	s.waitActive(s.r1, 10*time.Second)
	s.server.Echo(t, serverIP+":7000")
	wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	var slowest time.Duration
	stop := time.After(4 * time.Second)
	stall := time.After(time.Second)
	cont := make(<-chan time.Time)
	defer syscall.Kill(r1.PID(), syscall.SIGCONT) // never leave it stopped
loop:
	for tick := time.Tick(20 * time.Millisecond); ; {
		select {
		case <-stop:
			break loop
		case <-stall:
			must(t, syscall.Kill(r1.PID(), syscall.SIGSTOP))
			cont = time.After(time.Second)
		case <-cont:
			must(t, syscall.Kill(r1.PID(), syscall.SIGCONT))
		case <-tick:
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				c, err := s.laptop.Dial("tcp", serverIP+":7000")
				took := time.Since(start)
				mu.Lock()
				defer mu.Unlock()
				slowest = max(slowest, took)
				if err != nil {
					failed = append(failed, err)
					return
				}
				c.Close()
			}()
		}
	}
	wg.Wait()
	unreachable := 0
	for _, err := range failed {
		if errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
			unreachable++
		}
	}
	t.Logf("1 s SIGSTOP of the only replica: %d new connections failed (%d unreachable), the slowest took %v", len(failed), unreachable, slowest.Round(time.Millisecond))
	if len(failed) > 0 {
		var ne net.Error
		t.Errorf("%d new connections failed during the stall (%d host unreachable); first: %v (timeout %v)", len(failed), unreachable, failed[0], errors.As(failed[0], &ne) && ne.Timeout())
	}
	wantPeer(t, s.laptop, "tcp", serverIP+":7000", s.laptopIP)
}
