package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/router/flow"
)

func TestFlowLogWriteAndTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), flowLogFile)
	fl := newFlowLog(slog.New(slog.DiscardHandler), path)
	vnet := model.VNet{ID: uuid.New(), Name: "vnet-a"}
	fl.names.Store(&map[uint32]model.VNet{0: vnet})
	alice := &router.Peer{Name: "laptop", Kind: router.Client, User: "alice@example.com", Device: uuid.New()}
	site := &router.Peer{Name: "site-a", Kind: router.Connector, Tunnel: router.TunnelID(uuid.New())}
	pol := uuid.New()
	event := func(port uint16, end bool) router.FlowEvent {
		e := router.FlowEntry{
			Key:     flow.Key{Proto: 6, Src: netip.MustParseAddr("100.96.0.7"), Dst: netip.MustParseAddr("192.0.2.7"), SrcPort: port, DstPort: 443},
			Meta:    router.FlowMeta{From: alice, To: site},
			Verdict: flow.Verdict{Allow: true, Policy: pol},
			Start:   time.Now().UnixNano(), Last: time.Now().UnixNano(),
			Packets: [2]uint64{3, 2}, Bytes: [2]uint64{300, 200},
		}
		ev := router.FlowEvent{Flow: e}
		if end {
			why := flow.Expired
			ev.End = &why
		}
		return ev
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	flushed := false
	wg.Go(func() {
		if err := fl.run(ctx, func() { flushed = true; fl.enqueue(event(3, true)) }); err != nil {
			t.Error(err)
		}
	})
	fl.enqueue(event(1, false))
	fl.enqueue(event(1, true))

	// follow sees the records written so far and then new ones.
	got := make(chan model.FlowRecord, 10)
	tailCtx, stopTail := context.WithCancel(context.Background())
	var tailWG sync.WaitGroup
	tailWG.Go(func() {
		err := fl.tail(tailCtx, model.FlowFilter{User: "alice@example.com"}, 0, true, func(r model.FlowRecord) error {
			got <- r
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	next := func() model.FlowRecord {
		t.Helper()
		select {
		case r := <-got:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no flow record within 5s")
			return model.FlowRecord{}
		}
	}
	start, end := next(), next()
	if start.Event != model.FlowStart || end.Event != model.FlowEnd || end.EndReason != "expired" {
		t.Fatalf("records %+v, %+v", start, end)
	}
	if end.VNetName != "vnet-a" || end.VNetID != vnet.ID || end.Source.User != "alice@example.com" || end.Source.DeviceID != uuid.UUID(alice.Device) ||
		end.Dest.TunnelName != "site-a" || end.Src.String() != "100.96.0.7:1" || end.Dst.String() != "192.0.2.7:443" ||
		end.Protocol != "tcp" || end.Action != "allow" || end.PolicyID == nil || *end.PolicyID != pol ||
		end.PacketsOut != 3 || end.BytesIn != 200 {
		t.Fatalf("end record = %+v", end)
	}
	fl.enqueue(event(2, false))
	if r := next(); r.Src.Port() != 2 {
		t.Fatalf("followed record = %+v", r)
	}
	cancel()
	wg.Wait()
	if !flushed {
		t.Fatal("the live flows were not ended at shutdown")
	}
	if r := next(); r.Src.Port() != 3 || r.Event != model.FlowEnd {
		t.Fatalf("record of the flushed flow = %+v", r)
	}
	stopTail()
	tailWG.Wait()

	// A filter that matches nothing, and the last n.
	var n int
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fl.tail(context.Background(), model.FlowFilter{User: "bob@example.com"}, 0, false, func(model.FlowRecord) error { n++; return nil }))
	if n != 0 {
		t.Fatalf("%d records for another user", n)
	}
	var last []model.FlowRecord
	must(fl.tail(context.Background(), model.FlowFilter{}, 2, false, func(r model.FlowRecord) error { last = append(last, r); return nil }))
	if len(last) != 2 || last[1].Src.Port() != 3 {
		t.Fatalf("last 2 = %+v", last)
	}
}

func TestRotating(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	w, err := openRotating(path, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		fmt.Fprintf(w, "line %d\n", i) // 7 bytes: one line a file
	}
	w.Close()
	for name, want := range map[string]string{"log": "line 4\n", "log.1": "line 3\n", "log.2": "line 2\n"} {
		buf, err := os.ReadFile(filepath.Join(filepath.Dir(path), name))
		if err != nil || string(buf) != want {
			t.Errorf("%s = %q, %v; want %q", name, buf, err, want)
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("kept more than 2 backups")
	}
}
