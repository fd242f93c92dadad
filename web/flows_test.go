package web_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

// writeFlow appends a record to the edge's flow log, as the edge's flow log
// writer does (one JSON line). The in-process edge has no agents to make a
// real flow; the tail the page reads is the edge's own.
func writeFlow(t *testing.T, l *lab, r model.FlowRecord) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(l.dir, "flows.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := json.Marshal(r)
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

// TestFlowsPage opens the live tail with a verdict and identity filter and
// sees only the matching records arrive, with their true source, identity,
// vnet, rule and edges; a paused tail holds new records until resumed.
func TestFlowsPage(t *testing.T) {
	l := startLab(t)
	p, err := l.admin.CreatePolicy(context.Background(), model.NewPolicy{Name: "no-ssh", Action: model.ActionBlock,
		Match: model.Expr{Selector: model.SelDstPort, Operator: model.OpIs, Values: []string{"22"}}})
	if err != nil {
		t.Fatal(err)
	}
	l.signIn(t)
	l.run(t, "open the flows page filtered",
		chromedp.Navigate(l.url+"/flows?verdict=block&identity=site-c"),
		chromedp.WaitVisible(chromedp.CSS(`#flows`)),
	)
	get(t, l, "the stream is live", chromedp.Poll[bool](`document.getElementById("flows-status").textContent === "live"`))

	pol := p.ID
	site := model.FlowSession{Kind: "connector", TunnelID: uuid.New(), TunnelName: "site-c"}
	srv := model.FlowSession{Kind: "connector", TunnelID: uuid.New(), TunnelName: "site-a"}
	ana := model.FlowSession{Kind: "client", DeviceID: uuid.New(), DeviceName: "laptop", User: "ana@example.com"}
	rec := func(src string, from model.FlowSession, action string, port uint16) model.FlowRecord {
		now := time.Now()
		r := model.FlowRecord{Time: now, Start: now, Event: model.FlowStart, VNetName: "default", Source: from, Dest: srv,
			Src: netip.AddrPortFrom(netip.MustParseAddr(src), 40000), Dst: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), port),
			Protocol: "tcp", Action: action, Edges: []string{"edge-1", "edge-2"}}
		if action == model.ActionBlock {
			r.PolicyID = &pol
		}
		return r
	}
	writeFlow(t, l, rec("198.51.100.7", site, model.ActionAllow, 443)) // not block
	writeFlow(t, l, rec("198.51.100.8", ana, model.ActionBlock, 22))   // not site-c
	writeFlow(t, l, rec("198.51.100.9", site, model.ActionBlock, 22))  // shown
	get(t, l, "the blocked flow appears", chromedp.Poll[bool](`document.querySelectorAll("#flows tbody tr").length >= 1`))
	time.Sleep(time.Second) // time for any wrongly passed record to show too
	rows := get(t, l, "read the rows", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#flows tbody tr")].map(r => r.innerText)`))
	if len(rows) != 1 {
		t.Fatalf("rows %q, want the one blocked flow from site-c", rows)
	}
	for _, want := range []string{"198.51.100.9:40000", "192.0.2.10:22", "tunnel site-c", "tunnel site-a", "default", "no-ssh", "block", "edge-1 → edge-2"} {
		if !strings.Contains(rows[0], want) {
			t.Errorf("row %q lacks %q", rows[0], want)
		}
	}
	l.shot(t, "flows")

	l.run(t, "pause", chromedp.Click(chromedp.CSS(`#flows-pause`)))
	writeFlow(t, l, rec("198.51.100.10", site, model.ActionBlock, 23))
	get(t, l, "the paused tail holds it", chromedp.Poll[bool](`document.getElementById("flows-status").textContent === "paused: 1 new"`))
	if n := get(t, l, "count rows", chromedp.Evaluate[int](`document.querySelectorAll("#flows tbody tr").length`)); n != 1 {
		t.Fatalf("%d rows while paused, want 1", n)
	}
	l.run(t, "resume", chromedp.Click(chromedp.CSS(`#flows-pause`)))
	if got := l.text(t, `#flows tbody tr:first-child td:nth-child(3)`); got != "198.51.100.10:40000" {
		t.Fatalf("newest row after resume: source %q", got)
	}
}
