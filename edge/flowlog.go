package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router"
)

// Flow log file and rotation.
const (
	flowLogFile     = "flows.log"
	flowLogMaxBytes = 64 << 20 // rotate past this size
	flowLogBackups  = 3        // flows.log.1 .. flows.log.3
	flowQueue       = 8192     // events buffered between the packet path and the writer
	flowFollowPoll  = 200 * time.Millisecond
)

// flowLog writes flow starts and ends as JSON lines, off the packet path: the
// router hands events to enqueue, which never blocks (a full queue drops the
// event and counts it), and one goroutine writes them.
type flowLog struct {
	log   *slog.Logger
	path  string
	ch    chan router.FlowEvent
	lost  atomic.Uint64
	names atomic.Pointer[map[uint32]model.VNet] // router vnet index → vnet
}

func newFlowLog(log *slog.Logger, path string) *flowLog {
	f := &flowLog{log: log, path: path, ch: make(chan router.FlowEvent, flowQueue)}
	f.names.Store(&map[uint32]model.VNet{})
	return f
}

// enqueue queues an event for the writer; it is router.Config.OnFlow.
func (f *flowLog) enqueue(ev router.FlowEvent) {
	select {
	case f.ch <- ev:
	default:
		f.lost.Add(1)
	}
}

// run writes queued events until ctx ends, then ends every live flow
// through flush, writes what is queued and closes the file.
func (f *flowLog) run(ctx context.Context, flush func()) error {
	w, err := openRotating(f.path, flowLogMaxBytes, flowLogBackups)
	if err != nil {
		return err
	}
	defer w.Close()
	enc := json.NewEncoder(w)
	write := func(ev router.FlowEvent) {
		if err := enc.Encode(f.record(ev)); err != nil {
			f.log.Warn("writing the flow log", "path", f.path, "err", err)
		}
	}
	for {
		select {
		case ev := <-f.ch:
			write(ev)
		case <-ctx.Done():
			flush()
			for {
				select {
				case ev := <-f.ch:
					write(ev)
				default:
					return nil
				}
			}
		}
	}
}

// record turns a router event into a flow log line.
func (f *flowLog) record(ev router.FlowEvent) model.FlowRecord {
	e := ev.Flow
	vn := (*f.names.Load())[e.Key.VNet]
	r := model.FlowRecord{
		Time: time.Unix(0, e.Start).UTC(), Event: model.FlowStart,
		VNetID: vn.ID, VNetName: vn.Name,
		Source: session(e.Meta.From), Dest: session(e.Meta.To),
		Src:      netip.AddrPortFrom(e.Key.Src, e.Key.SrcPort),
		Dst:      netip.AddrPortFrom(e.Key.Dst, e.Key.DstPort),
		Protocol: model.ProtoName(e.Key.Proto), Action: model.ActionBlock,
		PacketsOut: e.Packets[0], BytesOut: e.Bytes[0], PacketsIn: e.Packets[1], BytesIn: e.Bytes[1],
		Start:      time.Unix(0, e.Start).UTC(),
		DurationMS: (e.Last - e.Start) / int64(time.Millisecond),
	}
	if e.Verdict.Allow {
		r.Action = model.ActionAllow
	}
	if e.Verdict.Policy != ([16]byte{}) {
		id := uuid.UUID(e.Verdict.Policy)
		r.PolicyID = &id
	}
	if ev.End != nil {
		r.Event, r.EndReason = model.FlowEnd, ev.End.String()
		r.Time = time.Now().UTC()
	}
	return r
}

func session(p *router.Peer) model.FlowSession {
	if p == nil {
		return model.FlowSession{}
	}
	s := model.FlowSession{Kind: p.Kind.String()}
	if p.Kind == router.Client {
		s.DeviceID, s.DeviceName, s.User = uuid.UUID(p.Device), p.Name, p.User
	} else {
		s.TunnelID, s.TunnelName = uuid.UUID(p.Tunnel), p.Name
	}
	return s
}

// tail emits the last n records that match, then, if follow, every new one
// until ctx ends.
func (f *flowLog) tail(ctx context.Context, filter model.FlowFilter, n int, follow bool, emit func(model.FlowRecord) error) error {
	file, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) && follow {
		file, err = waitOpen(ctx, f.path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open flow log: %w", err)
	}
	defer func() { file.Close() }()
	var pending []byte // a line not yet complete
	var off int64
	readLines := func(fn func(model.FlowRecord) error) error {
		buf, err := io.ReadAll(file)
		if err != nil {
			return fmt.Errorf("read flow log: %w", err)
		}
		off += int64(len(buf))
		pending = append(pending, buf...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				return nil
			}
			line := pending[:i]
			pending = pending[i+1:]
			var r model.FlowRecord
			if json.Unmarshal(line, &r) == nil && filter.Match(r) {
				if err := fn(r); err != nil {
					return err
				}
			}
		}
	}
	var last []model.FlowRecord
	if err := readLines(func(r model.FlowRecord) error {
		if last = append(last, r); n > 0 && len(last) > n {
			last = last[1:]
		}
		return nil
	}); err != nil {
		return err
	}
	for _, r := range last {
		if err := emit(r); err != nil {
			return err
		}
	}
	for follow {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(flowFollowPoll):
		}
		if st, err := os.Stat(f.path); err == nil && (st.Size() < off || !sameFile(st, file)) {
			next, err := os.Open(f.path) // rotated: start on the new file
			if err != nil {
				continue
			}
			file.Close()
			file, off, pending = next, 0, nil
		}
		if err := readLines(emit); err != nil {
			return err
		}
	}
	return nil
}

func sameFile(st os.FileInfo, f *os.File) bool {
	cur, err := f.Stat()
	return err == nil && os.SameFile(st, cur)
}

// waitOpen waits for path to appear, until ctx ends.
func waitOpen(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := os.Open(path)
		if !errors.Is(err, os.ErrNotExist) {
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(flowFollowPoll):
		}
	}
}
