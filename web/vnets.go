package web

import (
	"strings"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

func init() {
	pageSets = append(pageSets, func(s *Server) {
		s.page("GET /vnets", s.vnetsPage)
		s.page("POST /vnets", s.addVNet)
		s.page("POST /vnets/{ref}", s.updateVNet)
		s.page("GET /vnets/{ref}/delete", s.confirmDeleteVNet)
		s.page("POST /vnets/{ref}/delete", s.deleteVNet)
	})
}

// vnetsView is what the virtual networks page shows.
type vnetsView struct {
	VNets  []model.VNet
	Routes map[uuid.UUID]int // live routes per virtual network
	Notice string
	Swap   bool // an htmx swap: clear the error box too
}

func (q *req) vnets() (vnetsView, error) {
	ctx := q.r.Context()
	vs, err := q.api.ListVNets(ctx, model.VNetFilter{})
	if err != nil {
		return vnetsView{}, err
	}
	rs, err := q.api.ListRoutes(ctx, model.RouteFilter{})
	if err != nil {
		return vnetsView{}, err
	}
	v := vnetsView{VNets: vs, Routes: map[uuid.UUID]int{}}
	for _, r := range rs {
		v.Routes[r.VNetID]++
	}
	return v, nil
}

func (s *Server) vnetsPage(q *req) error {
	v, err := q.vnets()
	if err != nil {
		return err
	}
	return q.render("vnets", "vnets", "Virtual networks", v)
}

// vnetsChanged answers a change: the table again (htmx), or the page.
func (q *req) vnetsChanged(notice string) error {
	if !q.hxRequest() {
		q.done("/vnets")
		return nil
	}
	v, err := q.vnets()
	if err != nil {
		return err
	}
	v.Notice, v.Swap = notice, true
	return q.fragment("vnets", "vnets-body", v)
}

func (s *Server) addVNet(q *req) error {
	n := model.NewVNet{Name: strings.TrimSpace(q.r.FormValue("name")), Comment: q.r.FormValue("comment"),
		IsDefault: q.r.FormValue("default") == "on"}
	v, err := q.api.CreateVNet(q.r.Context(), n)
	if err != nil {
		return err
	}
	return q.vnetsChanged("Virtual network " + v.Name + " added.")
}

// updateVNet renames a virtual network, changes its comment, or makes it
// the default, whichever the form sends.
func (s *Server) updateVNet(q *req) error {
	var p model.VNetPatch
	if err := q.r.ParseForm(); err != nil {
		return model.Errorf(model.KindInvalid, "read the form: %v", err)
	}
	if q.r.PostForm.Has("name") {
		name := strings.TrimSpace(q.r.PostFormValue("name"))
		p.Name = &name
	}
	if q.r.PostForm.Has("comment") {
		c := q.r.PostFormValue("comment")
		p.Comment = &c
	}
	if q.r.PostFormValue("default") == "on" {
		t := true
		p.IsDefault = &t
	}
	v, err := q.api.UpdateVNet(q.r.Context(), q.r.PathValue("ref"), p)
	if err != nil {
		return err
	}
	return q.vnetsChanged("Virtual network " + v.Name + " updated.")
}

// vnetDeleteView is the confirmation step of deleting a virtual network.
type vnetDeleteView struct {
	VNet   model.VNet
	Routes int
}

func (s *Server) confirmDeleteVNet(q *req) error {
	vs, err := q.api.ListVNets(q.r.Context(), vnetRef(q.r.PathValue("ref")))
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return model.Errorf(model.KindNotFound, "no virtual network %q", q.r.PathValue("ref"))
	}
	rs, err := q.api.ListRoutes(q.r.Context(), model.RouteFilter{VNet: vs[0].ID.String()})
	if err != nil {
		return err
	}
	return q.render("vnet-delete", "vnets", "Delete "+vs[0].Name, vnetDeleteView{VNet: vs[0], Routes: len(rs)})
}

// vnetRef selects the virtual network named by ref, a name or an id.
func vnetRef(ref string) model.VNetFilter {
	if id, err := uuid.Parse(ref); err == nil {
		return model.VNetFilter{ID: &id}
	}
	return model.VNetFilter{Name: ref}
}

func (s *Server) deleteVNet(q *req) error {
	if _, err := q.api.DeleteVNet(q.r.Context(), q.r.PathValue("ref"), q.r.FormValue("force") == "on"); err != nil {
		return err
	}
	q.done("/vnets")
	return nil
}
