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
	edge  atomic.Pointer[string]                // this edge's name in its cluster, for flows that cross a trunk
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
		Source: flowSession(e.Meta.From), Dest: flowSession(e.Meta.To),
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
	r.Edges, r.FarCopy = f.crossed(e.Meta)
	if ev.End != nil {
		r.Event, r.EndReason = model.FlowEnd, ev.End.String()
		r.Time = time.Now().UTC()
	}
	return r
}

// crossed names the edges a flow crossed, the ingress edge first, and
// whether this edge is the far one (its record is a copy of the ingress
// edge's): a flow that came over a trunk names the edge it came from
// (FlowMeta.Via), one that left over a trunk the edge holding its
// destination. Both names are constants of the trunk and of the remote
// session's record, read here, off the packet path.
func (f *flowLog) crossed(m router.FlowMeta) ([]string, bool) {
	self := ""
	if p := f.edge.Load(); p != nil {
		self = *p
	}
	switch {
	case m.Via != "":
		return []string{m.Via, self}, true
	case m.To != nil && m.To.Remote:
		return []string{self, m.To.Edge}, false
	}
	return nil, false
}

func flowSession(p *router.Peer) model.FlowSession {
	if p == nil {
		return model.FlowSession{}
	}
	s := model.FlowSession{Kind: p.Kind.String()}
	if p.Kind == router.Client {
		s.DeviceID, s.DeviceName, s.User = uuid.UUID(p.Device), p.Name, p.User
		if id := p.Identity(); id != nil { // an immutable snapshot: shared, not copied
			s.Groups = id.Groups
		}
	} else {
		s.TunnelID, s.TunnelName = uuid.UUID(p.Tunnel), p.Name
	}
	return s
}

// Bounds of tail's reading: it never holds more than a chunk and a line or
// two, whatever the size of the log and of n.
const (
	flowLineMax = 64 << 10 // longer lines are skipped (a record is under 1 KiB)
	flowChunk   = 64 << 10 // read size when looking for the last n records
)

// tail emits the last n records that match (every one when n is 0), then,
// if follow, every new one until ctx ends. It reads the log incrementally:
// backwards from its end to find where the last n matches start, then
// forwards from there, in bounded memory.
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
	decode := func(line []byte) (model.FlowRecord, bool) {
		var r model.FlowRecord
		return r, json.Unmarshal(line, &r) == nil && filter.Match(r)
	}
	emitLine := func(line []byte) error {
		if r, ok := decode(line); ok {
			return emit(r)
		}
		return nil
	}
	st, err := file.Stat()
	if err != nil {
		return fmt.Errorf("stat flow log: %w", err)
	}
	end, start := st.Size(), int64(0)
	if n > 0 {
		start, err = lastLinesStart(file, end, n, func(line []byte) bool { _, ok := decode(line); return ok })
		if err != nil {
			return err
		}
	}
	sc := newLineScanner(file, start)
	if err := sc.scan(end, emitLine); err != nil {
		return err
	}
	for follow {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(flowFollowPoll):
		}
		if st, err := os.Stat(f.path); err == nil && (st.Size() < sc.off || !sameFile(st, file)) {
			next, err := os.Open(f.path) // rotated: start on the new file
			if err != nil {
				continue
			}
			file.Close()
			file, sc = next, newLineScanner(next, 0)
		}
		if err := sc.scan(-1, emitLine); err != nil {
			return err
		}
	}
	return nil
}

// lastLinesStart returns the offset of the n-th last complete line before
// end that match accepts, or 0 when fewer do. It reads backwards a chunk at
// a time; a line is complete once its newline is written.
func lastLinesStart(r io.ReaderAt, end int64, n int, match func([]byte) bool) (int64, error) {
	chunk := make([]byte, flowChunk)
	var long []byte      // a line that spans chunks, read again whole
	lineEnd := int64(-1) // offset of the newline that ends the line being found; -1 before the last one
	found := 0
	for pos := end; pos > 0; {
		base := max(pos-int64(len(chunk)), 0)
		got := chunk[:pos-base]
		if m, err := r.ReadAt(got, base); m < len(got) {
			return 0, fmt.Errorf("read flow log: %w", err)
		}
		for i := len(got); ; {
			i = bytes.LastIndexByte(got[:i], '\n')
			if i < 0 {
				break
			}
			start := base + int64(i) + 1
			if lineEnd >= 0 && lineEnd-start < flowLineMax { // as lineScanner, which skips longer lines
				var line []byte
				if lineEnd <= base+int64(len(got)) {
					line = got[start-base : lineEnd-base]
				} else {
					if long == nil {
						long = make([]byte, flowLineMax)
					}
					line = long[:lineEnd-start]
					if m, err := r.ReadAt(line, start); m < len(line) {
						return 0, fmt.Errorf("read flow log: %w", err)
					}
				}
				if match(line) {
					if found++; found == n {
						return start, nil
					}
				}
			}
			lineEnd = start - 1
		}
		pos = base
	}
	return 0, nil
}

// lineScanner reads the complete lines of a growing file from an offset on,
// holding at most one line (flowLineMax; longer ones are skipped).
type lineScanner struct {
	r    io.ReaderAt
	off  int64  // the next byte to read
	buf  []byte // buf[:n] is the start of a line whose newline is not read yet
	n    int
	skip bool // inside a line longer than buf: drop it up to its newline
}

func newLineScanner(r io.ReaderAt, off int64) *lineScanner {
	return &lineScanner{r: r, off: off, buf: make([]byte, flowLineMax)}
}

// scan calls fn with every complete line up to offset limit (-1: the end of
// the file); the line is valid until fn returns. A line cut by limit or by
// the end of the file is kept for the next scan.
func (s *lineScanner) scan(limit int64, fn func([]byte) error) error {
	for limit < 0 || s.off < limit {
		room := s.buf[s.n:]
		if limit >= 0 && int64(len(room)) > limit-s.off {
			room = room[:limit-s.off]
		}
		m, err := s.r.ReadAt(room, s.off)
		s.off += int64(m)
		data := s.buf[:s.n+m]
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			line := data[:i]
			data = data[i+1:]
			if s.skip {
				s.skip = false
				continue
			}
			if err := fn(line); err != nil {
				return err
			}
		}
		switch {
		case s.skip:
			s.n = 0
		case len(data) == len(s.buf):
			s.skip, s.n = true, 0
		default:
			s.n = copy(s.buf, data)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read flow log: %w", err)
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
