package testop

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	loginPath         = "/login/username"
	devicePath        = "/device"
	deviceLoginPath   = "/device/login"
	deviceConfirmPath = "/device/confirm"
	approvalCookie    = "testop_approval"
)

var pages = template.Must(template.New("").Parse(`
{{define "login"}}<!doctype html><title>Sign in</title><p>{{.Error}}</p>
<form method="post" action="` + loginPath + `"><input type="hidden" name="id" value="{{.ID}}">
<input name="username"><input type="password" name="password"><button>Sign in</button></form>{{end}}
{{define "usercode"}}<!doctype html><title>Device</title><p>{{.Error}}</p>
<form method="post" action="` + deviceLoginPath + `"><input name="user_code" value="{{.UserCode}}">
<input name="username"><input type="password" name="password"><button>Sign in</button></form>{{end}}
{{define "confirm"}}<!doctype html><title>Confirm</title><p>Allow {{.ClientID}} to sign in as {{.User}}?</p>
<form method="post" action="` + deviceConfirmPath + `"><button name="action" value="allowed">Allow</button>
<button name="action" value="denied">Deny</button></form>{{end}}
`))

// pendingApproval is a device login the user signed in to but did not yet
// allow or deny.
type pendingApproval struct {
	userCode string
	subject  string
}

func (p *Provider) routes(mux *http.ServeMux) {
	intercept := op.NewIssuerInterceptor(p.provider.IssuerFromRequest)
	mux.HandleFunc("GET "+loginPath, func(w http.ResponseWriter, r *http.Request) {
		pages.ExecuteTemplate(w, "login", map[string]string{"ID": r.FormValue("authRequestID")})
	})
	mux.HandleFunc("POST "+loginPath, intercept.HandlerFunc(p.checkLogin))
	mux.HandleFunc("GET "+devicePath, func(w http.ResponseWriter, r *http.Request) {
		pages.ExecuteTemplate(w, "usercode", map[string]string{"UserCode": r.FormValue("user_code")})
	})
	mux.HandleFunc("POST "+deviceLoginPath, p.deviceLogin)
	mux.HandleFunc("POST "+deviceConfirmPath, p.deviceConfirm)
	mux.Handle("/", p.tampering(p.provider))
}

func (p *Provider) checkLogin(w http.ResponseWriter, r *http.Request) {
	id := r.FormValue("id")
	if err := p.storage.CheckUsernamePassword(r.FormValue("username"), r.FormValue("password"), id); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		pages.ExecuteTemplate(w, "login", map[string]string{"ID": id, "Error": err.Error()})
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.provider)(r.Context(), id), http.StatusFound)
}

func (p *Provider) deviceLogin(w http.ResponseWriter, r *http.Request) {
	code, name := r.FormValue("user_code"), r.FormValue("username")
	fail := func(status int, err error) {
		w.WriteHeader(status)
		pages.ExecuteTemplate(w, "usercode", map[string]string{"UserCode": code, "Error": err.Error()})
	}
	if err := p.storage.CheckUsernamePasswordSimple(name, r.FormValue("password")); err != nil {
		fail(http.StatusUnauthorized, err)
		return
	}
	state, err := p.storage.GetDeviceAuthorizationByUserCode(r.Context(), code)
	if err != nil {
		fail(http.StatusNotFound, err)
		return
	}
	var b [16]byte
	rand.Read(b[:])
	cookie := base64.RawURLEncoding.EncodeToString(b[:])
	p.approvals.Store(cookie, pendingApproval{userCode: code, subject: p.storage.users.byEmail(name).subject()})
	http.SetCookie(w, &http.Cookie{Name: approvalCookie, Value: cookie, Path: "/", HttpOnly: true})
	pages.ExecuteTemplate(w, "confirm", map[string]string{"ClientID": state.ClientID, "User": name})
}

func (p *Provider) deviceConfirm(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(approvalCookie)
	if err != nil {
		http.Error(w, "not signed in", http.StatusUnauthorized)
		return
	}
	v, ok := p.approvals.LoadAndDelete(c.Value)
	if !ok {
		http.Error(w, "not signed in", http.StatusUnauthorized)
		return
	}
	a := v.(pendingApproval)
	switch action := r.FormValue("action"); action {
	case "allowed":
		err = p.storage.CompleteDeviceAuthorization(r.Context(), a.userCode, a.subject)
	case "denied":
		err = p.storage.DenyDeviceAuthorization(r.Context(), a.userCode)
	default:
		err = fmt.Errorf("action %q is neither allowed nor denied", action)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "device %s", r.FormValue("action"))
}
