package web

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

func init() {
	pageSets = append(pageSets, func(s *Server) {
		s.page("GET /devices", s.devicesPage)
		s.page("GET /devices/{ref}/revoke", s.confirmRevokeDevice)
		s.page("POST /devices/{ref}/revoke", s.revokeDevice)
		s.page("POST /devices/{ref}/unrevoke", s.unrevokeDevice)
		s.page("POST /devices/enroll-tokens", s.createEnrollToken)
		s.page("POST /devices/enroll-tokens/{id}/delete", s.deleteEnrollToken)
	})
}

// devicesView is what the devices page shows.
type devicesView struct {
	Devices     []model.Device
	ShowRevoked bool
	VNets       map[uuid.UUID]string
	Tokens      []model.EnrollToken
	NewToken    *model.EnrollToken // right after creating one: its secret, shown once
	Online      time.Duration
}

func (q *req) devices(showRevoked bool) (devicesView, error) {
	ctx := q.r.Context()
	v := devicesView{ShowRevoked: showRevoked, VNets: map[uuid.UUID]string{}, Online: deviceOnline}
	var err error
	if v.Devices, err = q.api.ListDevices(ctx, showRevoked); err != nil {
		return v, err
	}
	if v.Tokens, err = q.api.ListEnrollTokens(ctx); err != nil {
		return v, err
	}
	vs, err := q.api.ListVNets(ctx, model.VNetFilter{})
	for _, n := range vs {
		v.VNets[n.ID] = n.Name
		if n.IsDefault {
			v.VNets[uuid.Nil] = n.Name + " (default)"
		}
	}
	return v, err
}

func (s *Server) devicesPage(q *req) error {
	v, err := q.devices(q.r.URL.Query().Get("revoked") == "1")
	if err != nil {
		return err
	}
	return q.render("devices", "devices", "Devices", v)
}

// device finds the device named by ref (name or id), revoked ones too.
func (q *req) device(ref string) (model.Device, error) {
	ds, err := q.api.ListDevices(q.r.Context(), true)
	if err != nil {
		return model.Device{}, err
	}
	for _, d := range ds {
		if d.ID.String() == ref {
			return d, nil
		}
	}
	for _, d := range ds {
		if d.Name == ref && !d.Revoked() {
			return d, nil
		}
	}
	return model.Device{}, model.Errorf(model.KindNotFound, "no device %q", ref)
}

func (s *Server) confirmRevokeDevice(q *req) error {
	d, err := q.device(q.r.PathValue("ref"))
	if err != nil {
		return err
	}
	return q.render("device-revoke", "devices", "Revoke "+d.Name, d)
}

func (s *Server) revokeDevice(q *req) error {
	d, err := q.api.RevokeDevice(q.r.Context(), q.r.PathValue("ref"))
	if err != nil {
		return err
	}
	q.done("/devices?revoked=1#device-" + d.ID.String())
	return nil
}

func (s *Server) unrevokeDevice(q *req) error {
	if _, err := q.api.UnrevokeDevice(q.r.Context(), q.r.PathValue("ref")); err != nil {
		return err
	}
	q.done("/devices?revoked=1")
	return nil
}

func (s *Server) createEnrollToken(q *req) error {
	n := model.NewEnrollToken{Comment: q.r.FormValue("comment"), User: strings.TrimSpace(q.r.FormValue("user"))}
	switch e := strings.TrimSpace(q.r.FormValue("expires")); e {
	case "", "24h":
	case "0", "never":
		n.NoExpiry = true
	default:
		d, err := time.ParseDuration(e)
		if err != nil || d <= 0 {
			return model.Errorf(model.KindInvalid, "enrollment token expiry %q: give a duration such as 24h, or never", e)
		}
		n.TTL = d
	}
	if u := strings.TrimSpace(q.r.FormValue("uses")); u != "" {
		k, err := strconv.Atoi(u)
		if err != nil || k < 0 {
			return model.Errorf(model.KindInvalid, "enrollment token uses %q: give a number, 0 for no limit", u)
		}
		n.MaxUses = k
	}
	t, err := q.api.CreateEnrollToken(q.r.Context(), n)
	if err != nil {
		return err
	}
	v, err := q.devices(false)
	if err != nil {
		return err
	}
	v.NewToken = &t
	return q.render("devices", "devices", "Devices", v)
}

func (s *Server) deleteEnrollToken(q *req) error {
	id, err := uuid.Parse(q.r.PathValue("id"))
	if err != nil {
		return model.Errorf(model.KindInvalid, "enrollment token id %q: %v", q.r.PathValue("id"), err)
	}
	if err := q.api.DeleteEnrollToken(q.r.Context(), id); err != nil {
		return err
	}
	q.done("/devices#enroll-tokens")
	return nil
}
