package api

import (
	"net/http"

	"github.com/switchyard/switchyard/control/model"
)

// userRoutes serves the enrollment rules and the users.
func (s *Server) userRoutes() {
	for pattern, fn := range map[string]func(*http.Request) (any, error){
		"GET /v1/enrollment-rules":          s.listEnrollmentRules,
		"POST /v1/enrollment-rules":         s.addEnrollmentRule,
		"DELETE /v1/enrollment-rules/{ref}": s.removeEnrollmentRule,
		"GET /v1/users":                     s.listUsers,
		"POST /v1/users/{email}/logout":     s.logoutUser,
	} {
		s.mux.HandleFunc(pattern, s.handle(fn))
	}
}

func (s *Server) listEnrollmentRules(r *http.Request) (any, error) {
	return nonNil(s.reg.ListEnrollmentRules(r.Context()))
}

func (s *Server) addEnrollmentRule(r *http.Request) (any, error) {
	var req model.NewEnrollmentRule
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return s.reg.AddEnrollmentRule(r.Context(), req)
}

func (s *Server) removeEnrollmentRule(r *http.Request) (any, error) {
	return s.reg.RemoveEnrollmentRule(r.Context(), r.PathValue("ref"))
}

func (s *Server) listUsers(r *http.Request) (any, error) {
	return nonNil(s.reg.ListUsers(r.Context()))
}

func (s *Server) logoutUser(r *http.Request) (any, error) {
	devices, err := s.reg.LogoutUser(r.Context(), r.PathValue("email"))
	if err == nil {
		s.log.Info("user logged out", "user", r.PathValue("email"), "devices", len(devices))
	}
	return devices, err
}

// loginIdentity is the identity a finished sign-in verified, from the
// edge's sign-in service (Options.Logins); a handle is good once.
func (s *Server) loginIdentity(r *http.Request, handle string) (model.UserIdentity, error) {
	if s.opts.Logins == nil {
		return model.UserIdentity{}, model.Errorf(model.KindInvalid, "enroll device: sign-in is not configured on this edge (switchyard edge --oidc-issuer ...); enroll with a token")
	}
	return s.opts.Logins.Identity(r.Context(), handle)
}
