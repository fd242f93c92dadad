package main

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestFlowLineEdges: a flow that crossed a trunk shows its edges, ingress
// first, and the far edge's copy says so; one that stayed on an edge shows none.
func TestFlowLineEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    model.FlowRecord
		want string // "" for no edges field
	}{
		{"ingress", model.FlowRecord{Event: model.FlowStart, Edges: []string{"edge-1", "edge-2"}}, " edges=edge-1>edge-2 "},
		{"far copy", model.FlowRecord{Event: model.FlowStart, Edges: []string{"edge-1", "edge-2"}, FarCopy: true}, " edges=edge-1>edge-2(far copy)"},
		{"one edge", model.FlowRecord{Event: model.FlowStart}, ""},
	} {
		line := flowLine(tc.r) + " "
		if tc.want == "" && strings.Contains(line, "edges=") || tc.want != "" && !strings.Contains(line, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, line, tc.want)
		}
	}
}
