package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/oidc"
	"github.com/switchyard/switchyard/internal/testop"
)

var (
	opAdmin = testop.User{Email: "ada@example.com", Password: "pw-ada", Groups: []string{"staff", "sy-admins"}}
	opUser  = testop.User{Email: "bob@example.org", Password: "pw-bob", Groups: []string{"staff"}}
)

// loginServer is an API server whose sign-ins go to a real OpenID provider.
func loginServer(t *testing.T) (*httptest.Server, *testop.Provider, *oidc.RP) {
	t.Helper()
	op, err := testop.Start(testop.Config{ClientID: "sy", ClientSecret: "sy-secret", Users: []testop.User{opAdmin, opUser}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	rp, err := oidc.New(context.Background(), oidc.Config{Issuer: op.Issuer(), ClientID: "sy", ClientSecret: "sy-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rp.Close() })
	srv, _ := newServer(t, func(o *api.Options) { o.Logins = rp; o.AdminGroup = "sy-admins" })
	rp.SetRedirectURL(srv.URL + "/v1/login/callback")
	op.AllowRedirectURI(srv.URL + "/v1/login/callback")
	return srv, op, rp
}

func call(t *testing.T, srv *httptest.Server, method, path, bearer string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func startLogin(t *testing.T, srv *httptest.Server, flow, purpose string) oidc.Login {
	t.Helper()
	code, b := call(t, srv, "POST", "/v1/agent/login", "", map[string]string{"flow": flow, "purpose": purpose})
	if code != http.StatusCreated {
		t.Fatalf("start login: %d %s", code, b)
	}
	var l oidc.Login
	json.Unmarshal(b, &l)
	return l
}

// pollLogin polls until the answer is not 202.
func pollLogin(t *testing.T, srv *httptest.Server, handle string) (int, api.LoginStatus, string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		code, b := call(t, srv, "POST", "/v1/agent/login/"+handle, "", nil)
		if code == http.StatusAccepted {
			continue
		}
		var st api.LoginStatus
		json.Unmarshal(b, &st)
		return code, st, string(b)
	}
	t.Fatal("login still pending after 20s")
	return 0, api.LoginStatus{}, ""
}

func TestDeviceLoginThroughAPI(t *testing.T) {
	srv, op, rp := loginServer(t)
	l := startLogin(t, srv, "device", "device")
	if l.UserCode == "" || l.Interval < 1 || len(l.ID) != 43 {
		t.Fatalf("login %+v", l)
	}
	if code, b := call(t, srv, "POST", "/v1/agent/login/"+l.ID, "", nil); code != http.StatusAccepted || !strings.Contains(string(b), `"pending"`) {
		t.Fatalf("poll before approval: %d %s", code, b)
	}
	if err := op.ApproveDevice(context.Background(), l.UserCode, opUser); err != nil {
		t.Fatal(err)
	}
	code, st, raw := pollLogin(t, srv, l.ID)
	if code != http.StatusOK || st.Status != "done" || st.Identity == nil || st.Identity.Email != opUser.Email || st.AdminToken != "" {
		t.Fatalf("poll: %d %s", code, raw)
	}
	// Enrollment asks the login service for the identity: once.
	id, err := rp.Identity(context.Background(), l.ID)
	if err != nil || id.Email != opUser.Email || id.Subject != "sub-"+opUser.Email {
		t.Fatalf("identity: %+v, %v", id, err)
	}
	if code, b := call(t, srv, "POST", "/v1/agent/login/"+l.ID, "", nil); code != http.StatusUnauthorized {
		t.Fatalf("poll after use: %d %s", code, b)
	}
}

func TestAdminLogin(t *testing.T) {
	srv, op, _ := loginServer(t)
	// A non-admin is refused and gets no token.
	l := startLogin(t, srv, "device", "admin")
	if err := op.ApproveDevice(context.Background(), l.UserCode, opUser); err != nil {
		t.Fatal(err)
	}
	if code, st, raw := pollLogin(t, srv, l.ID); code != http.StatusForbidden || st.AdminToken != "" || !strings.Contains(raw, "not an admin") {
		t.Fatalf("non-admin: %d %s", code, raw)
	}
	// An admin gets a token the API accepts as an admin's.
	l = startLogin(t, srv, "device", "admin")
	if err := op.ApproveDevice(context.Background(), l.UserCode, opAdmin); err != nil {
		t.Fatal(err)
	}
	code, st, raw := pollLogin(t, srv, l.ID)
	if code != http.StatusOK || st.AdminToken == "" || st.AdminExpiresAt == nil || time.Until(*st.AdminExpiresAt) < 11*time.Hour {
		t.Fatalf("admin: %d %s", code, raw)
	}
	if code, b := call(t, srv, "GET", "/v1/vnets", st.AdminToken, nil); code != http.StatusOK {
		t.Fatalf("API with the admin session token: %d %s", code, b)
	}
	if code, _ := call(t, srv, "GET", "/v1/vnets", st.AdminToken+"x", nil); code != http.StatusUnauthorized {
		t.Fatalf("API with a wrong token: %d", code)
	}
	// Ending the session (switchyard logout) makes the edge refuse its token.
	if code, b := call(t, srv, "DELETE", "/v1/admin/session", adminToken, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "not an admin session") {
		t.Fatalf("end the admin token: %d %s", code, b)
	}
	if code, b := call(t, srv, "DELETE", "/v1/admin/session", st.AdminToken, nil); code != http.StatusOK {
		t.Fatalf("end the admin session: %d %s", code, b)
	}
	if code, _ := call(t, srv, "GET", "/v1/vnets", st.AdminToken, nil); code != http.StatusUnauthorized {
		t.Fatalf("API with an ended session's token: %d", code)
	}
	if code, _ := call(t, srv, "GET", "/v1/vnets", adminToken, nil); code != http.StatusOK {
		t.Fatalf("API with the admin token after a session ended: %d", code)
	}
}

func TestBrowserLoginThroughCallback(t *testing.T) {
	srv, op, rp := loginServer(t)
	l := startLogin(t, srv, "browser", "device")
	cb, err := op.SignIn(context.Background(), l.VerificationURI, opUser)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cb, srv.URL+"/v1/login/callback?") {
		t.Fatalf("provider redirected to %s", cb)
	}
	code, b := call(t, srv, "GET", strings.TrimPrefix(cb, srv.URL), "", nil)
	if code != http.StatusOK || !strings.Contains(string(b), "Signed in as "+opUser.Email) {
		t.Fatalf("callback: %d %s", code, b)
	}
	if id, err := rp.Identity(context.Background(), l.ID); err != nil || id.Email != opUser.Email {
		t.Fatalf("identity: %+v, %v", id, err)
	}

	// A forged token: the callback says why, the sign-in yields nothing.
	op.SetTamper(testop.ForgedSignature())
	l = startLogin(t, srv, "browser", "device")
	if cb, err = op.SignIn(context.Background(), l.VerificationURI, opUser); err != nil {
		t.Fatal(err)
	}
	code, b = call(t, srv, "GET", strings.TrimPrefix(cb, srv.URL), "", nil)
	if code != http.StatusUnauthorized || !strings.Contains(string(b), "id token: signature invalid") {
		t.Fatalf("forged callback: %d %s", code, b)
	}
	if code, raw := call(t, srv, "POST", "/v1/agent/login/"+l.ID, "", nil); code != http.StatusUnauthorized || !strings.Contains(string(raw), "signature invalid") {
		t.Fatalf("poll of a forged sign-in: %d %s", code, raw)
	}
	if _, err := rp.Identity(context.Background(), l.ID); err == nil {
		t.Fatal("identity of a forged sign-in: no error")
	}
}

func TestLoginNotConfigured(t *testing.T) {
	srv, _ := newServer(t)
	for _, p := range []string{"/v1/agent/login", "/v1/agent/login/abc"} {
		code, b := call(t, srv, "POST", p, "", map[string]string{"flow": "device"})
		if code != http.StatusBadRequest || !strings.Contains(string(b), "sign-in is not configured") {
			t.Errorf("%s: %d %s", p, code, b)
		}
	}
}

// TestLoginRateLimited: the sign-in endpoint answers 429 with a message once
// a client has started its burst of sign-ins, and bounds the body.
func TestLoginRateLimited(t *testing.T) {
	srv, _, _ := loginServer(t)
	for range 10 {
		startLogin(t, srv, "device", "device")
	}
	code, b := call(t, srv, "POST", "/v1/agent/login", "", map[string]string{"flow": "device"})
	if code != http.StatusTooManyRequests || !strings.Contains(string(b), "too many sign-in requests from 127.0.0.1: try again in 6s") {
		t.Fatalf("11th sign-in: %d %s", code, b)
	}
	code, b = call(t, srv, "POST", "/v1/agent/login/abc", "", map[string]string{"pad": strings.Repeat("x", 5000)})
	if code != http.StatusBadRequest || !strings.Contains(string(b), "larger than 4096 bytes") {
		t.Fatalf("a large poll body: %d %s", code, b)
	}
}
