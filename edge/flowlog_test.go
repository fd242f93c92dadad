package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/router/flow"
	"github.com/switchyard/switchyard/router/policy"
)

func TestFlowLogWriteAndTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), flowLogFile)
	fl := newFlowLog(slog.New(slog.DiscardHandler), path)
	vnet := model.VNet{ID: uuid.New(), Name: "vnet-a"}
	fl.names.Store(&map[uint32]model.VNet{0: vnet})
	alice := &router.Peer{Name: "laptop", Kind: router.Client, User: "alice@example.com", Device: uuid.New()}
	alice.SetIdentity(policy.NewIdentity("alice@example.com", []string{"eng", "ops"}, policy.Posture{}))
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
	if end.VNetName != "vnet-a" || end.VNetID != vnet.ID || end.Source.User != "alice@example.com" || !slices.Equal(end.Source.Groups, []string{"eng", "ops"}) || end.Source.DeviceID != uuid.UUID(alice.Device) ||
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

// writeFlowLog writes lines records to path, port i on the i-th, with a
// user only on those where user(i) is set, and returns its size.
func writeFlowLog(t *testing.T, path string, lines int, user func(i int) string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	// The writer's JSON, by hand: encoding/json under -race would take seconds.
	tmpl, err := json.Marshal(model.FlowRecord{Event: model.FlowStart, Protocol: "tcp", Action: "allow",
		Src: netip.MustParseAddrPort("100.96.0.7:1111"), Dst: netip.MustParseAddrPort("192.0.2.7:443"),
		Source: model.FlowSession{Kind: "client", DeviceName: "laptop", User: "USER"}, PacketsOut: 2222})
	if err != nil {
		t.Fatal(err)
	}
	format := strings.NewReplacer(":1111", ":%[1]d", "USER", "%[2]s", "2222", "%[3]d").Replace(string(tmpl)) + "\n"
	for i := range lines {
		fmt.Fprintf(w, format, i%60000+1, user(i), i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	f.Close()
	return st.Size()
}

// TestFlowTailBoundedMemory: tailing a flow log close to its 64 MiB
// rotation size reads it incrementally (it once read all of it per
// request) and still returns exactly the last n matching records.
func TestFlowTailBoundedMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), flowLogFile)
	const lines = 120000
	users := func(i int) string {
		switch {
		case i == 7:
			return "carol@example.com"
		case i%3 == 0:
			return "alice@example.com"
		}
		return "bob@example.com"
	}
	size := writeFlowLog(t, path, lines, users)
	if size < 32<<20 {
		t.Fatalf("test log is %d bytes; want a large one", size)
	}
	small := filepath.Join(t.TempDir(), flowLogFile)
	writeFlowLog(t, small, 3000, users) // many chunks, but quick to scan whole
	// A partial record at the end, being written: not a record yet.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"event":"start","source":{"user":"alice@exa`)
	f.Close()

	for _, tc := range []struct {
		name   string
		path   string
		filter model.FlowFilter
		n      int
		want   []uint64 // PacketsOut of the records, in order
	}{
		{"last 5", path, model.FlowFilter{}, 5, []uint64{lines - 5, lines - 4, lines - 3, lines - 2, lines - 1}},
		{"last 3 of alice", path, model.FlowFilter{User: "alice@example.com"}, 3, []uint64{lines - 9, lines - 6, lines - 3}},
		{"a rare match far back", small, model.FlowFilter{User: "carol@example.com"}, 1, []uint64{7}},
		{"more than there are", small, model.FlowFilter{User: "carol@example.com"}, 1000, []uint64{7}},
		{"all", small, model.FlowFilter{Port: 2992}, 0, []uint64{2991}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFlowLog(slog.New(slog.DiscardHandler), tc.path)
			var got []uint64
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := fl.tail(context.Background(), tc.filter, tc.n, false, func(r model.FlowRecord) error {
				got = append(got, r.PacketsOut)
				return nil
			})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got records %v, want %v", got, tc.want)
			}
			// The last few records of the large log: bound the bytes
			// allocated at all; anything: bound the heap in use.
			if alloc := after.TotalAlloc - before.TotalAlloc; tc.path == path && alloc > 2<<20 {
				t.Errorf("allocated %d bytes to tail %d records of a %d-byte log", alloc, tc.n, size)
			}
			if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 8<<20 {
				t.Errorf("heap in use grew by %d bytes tailing a %d-byte log", grew, size)
			}
		})
	}
}

// TestFlowTailFollowsPartialLine: a record whose newline is not written
// yet is emitted once it is complete, with n and with follow.
func TestFlowTailFollowsPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), flowLogFile)
	writeFlowLog(t, path, 10, func(int) string { return "alice@example.com" })
	rec, _ := json.Marshal(model.FlowRecord{Event: model.FlowEnd, PacketsOut: 99})
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(rec[:20])
	fl := newFlowLog(slog.New(slog.DiscardHandler), path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan uint64, 20)
	done := make(chan error, 1)
	go func() {
		done <- fl.tail(ctx, model.FlowFilter{}, 2, true, func(r model.FlowRecord) error { got <- r.PacketsOut; return nil })
	}()
	for _, want := range []uint64{8, 9} {
		select {
		case r := <-got:
			if r != want {
				t.Fatalf("record %d, want %d", r, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("record %d never came", want)
		}
	}
	f.Write(append(rec[20:], '\n'))
	select {
	case r := <-got:
		if r != 99 {
			t.Fatalf("followed record %d, want 99", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the completed record never came")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFlowRecordNamesTheEdgesCrossed: the ingress edge's record of a flow
// that left over a trunk names it and the far edge; the far edge's record
// names them in the same order and is marked as its copy; a flow that stayed
// on one edge names none (no "edges" in its JSON line).
func TestFlowRecordNamesTheEdgesCrossed(t *testing.T) {
	fl := newFlowLog(slog.New(slog.DiscardHandler), filepath.Join(t.TempDir(), flowLogFile))
	self := "edge-1"
	fl.edge.Store(&self)
	site := &router.Peer{Name: "a", Kind: router.Connector, Tunnel: router.TunnelID{1}}
	far := &router.Peer{Name: "b", Kind: router.Connector, Tunnel: router.TunnelID{2}, Remote: true, Edge: "edge-2"}
	local := &router.Peer{Name: "c", Kind: router.Connector, Tunnel: router.TunnelID{3}}
	rec := func(m router.FlowMeta) model.FlowRecord {
		return fl.record(router.FlowEvent{Flow: router.FlowEntry{Meta: m, Start: time.Now().UnixNano()}})
	}
	for _, tc := range []struct {
		name  string
		meta  router.FlowMeta
		edges []string
		copy  bool
	}{
		{"onto a trunk", router.FlowMeta{From: site, To: far}, []string{"edge-1", "edge-2"}, false},
		{"off a trunk", router.FlowMeta{From: local, To: site, Via: "edge-3"}, []string{"edge-3", "edge-1"}, true},
		{"on one edge", router.FlowMeta{From: site, To: local}, nil, false},
	} {
		r := rec(tc.meta)
		if !slices.Equal(r.Edges, tc.edges) || r.FarCopy != tc.copy {
			t.Errorf("%s: edges %q far copy %v, want %q %v", tc.name, r.Edges, r.FarCopy, tc.edges, tc.copy)
		}
		line, _ := json.Marshal(r)
		if has := strings.Contains(string(line), `"edges"`); has != (tc.edges != nil) {
			t.Errorf("%s: JSON line %s, want edges only for a crossing flow", tc.name, line)
		}
		if strings.Contains(string(line), `"far_copy"`) != tc.copy {
			t.Errorf("%s: JSON line %s, want far_copy only on the far edge's record", tc.name, line)
		}
	}
}
