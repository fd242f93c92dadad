package api

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

func TestFillDeviceEdges(t *testing.T) {
	laptop, phone, idle := uuid.New(), uuid.New(), uuid.New()
	devices := []model.Device{{ID: laptop}, {ID: phone}, {ID: idle}}
	fillDeviceEdges(devices, []model.Session{
		{Edge: "edge-2", Kind: model.SessionDevice, ID: laptop, Standby: true},
		{Edge: "edge-1", Kind: model.SessionDevice, ID: laptop, Active: true},
		{Edge: "edge-3", Kind: model.SessionDevice, ID: laptop, Standby: true},
		// The phone just moved: edge-1 still lists its old session, not
		// yet standby; edge-2's is the active one.
		{Edge: "edge-1", Kind: model.SessionDevice, ID: phone},
		{Edge: "edge-2", Kind: model.SessionDevice, ID: phone, Active: true},
		{Edge: "edge-1", Kind: model.SessionConnector, ID: idle, Active: true}, // a connector of the same id is not the device
	})
	for _, tc := range []struct {
		d       model.Device
		edge    string
		standby []string
	}{
		{devices[0], "edge-1", []string{"edge-2", "edge-3"}},
		{devices[1], "edge-2", nil},
		{devices[2], "", nil},
	} {
		if tc.d.Edge != tc.edge || !slices.Equal(tc.d.StandbyEdges, tc.standby) {
			t.Errorf("device %s: edge %q standby %v, want %q %v", tc.d.ID, tc.d.Edge, tc.d.StandbyEdges, tc.edge, tc.standby)
		}
	}
}
