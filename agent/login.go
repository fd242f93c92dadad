package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/token"
	"github.com/switchyard/switchyard/internal/atomicfile"
)

// sessionFile is where a client that stopped because its user's sign-in
// ended leaves why, for `client status` after it exited; a sign-in removes it.
const sessionFile = "session.json"

// SessionEnded is what sessionFile holds.
type SessionEnded struct {
	ExpiredAt time.Time `json:"expired_at"`
	Message   string    `json:"message"`
}

// ErrSessionExpired is what RunClient returns (wrapped) when the device's
// user's sign-in ended: the tunnel is down; run client up --login.
var ErrSessionExpired = errors.New("session expired")

// sessionExpired returns the error and message of a session that ended at at.
func sessionExpired(at time.Time) error {
	return fmt.Errorf("%w at %s: run switchyard client up --login", ErrSessionExpired, at.UTC().Format(time.RFC3339))
}

// ReadSessionEnded returns the note a client left in stateDir when it
// stopped because its session ended; ok is false when there is none.
func ReadSessionEnded(stateDir string) (SessionEnded, bool) {
	var s SessionEnded
	buf, err := os.ReadFile(filepath.Join(stateDir, sessionFile))
	if err != nil || json.Unmarshal(buf, &s) != nil {
		return SessionEnded{}, false
	}
	return s, true
}

func writeSessionEnded(stateDir string, at time.Time, log *slog.Logger) {
	buf, _ := json.Marshal(SessionEnded{ExpiredAt: at.UTC(), Message: sessionExpired(at).Error()})
	if err := atomicfile.WriteFile(filepath.Join(stateDir, sessionFile), append(buf, '\n'), 0o600); err != nil {
		log.Warn("recording the session's end", "err", err)
	}
}

func clearSessionEnded(stateDir string) {
	os.Remove(filepath.Join(stateDir, sessionFile))
}

// expiredAt is when the session of the edge's error err ended: the
// configuration's, else now.
func expiredAt(cfg *model.DeviceConfig) time.Time {
	if cfg != nil && cfg.SessionExpiresAt != nil && !time.Now().Before(*cfg.SessionExpiresAt) {
		return *cfg.SessionExpiresAt
	}
	return time.Now()
}

// sessionTimer ends a client's run at its session's end (the edge cuts the
// traffic then too, and refuses the credential after).
type sessionTimer struct {
	mu    sync.Mutex
	t     *time.Timer
	at    time.Time
	onEnd func(at time.Time)
}

// set arms the timer for at (nil: no session).
func (s *sessionTimer) set(at *time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t != nil {
		s.t.Stop()
		s.t = nil
	}
	if at == nil {
		return
	}
	end := *at
	s.at = end
	s.t = time.AfterFunc(time.Until(end), func() { s.onEnd(end) })
}

func (s *sessionTimer) stop() { s.set(nil) }

// signIn signs the user in with the edge's identity provider and enrolls
// (or re-enrolls, with the current credential cur when there is one) this
// device as them; it returns the device credential.
func signIn(ctx context.Context, cfg ClientConfig, k key, cur string, log *slog.Logger) ([]byte, error) {
	apiURL, pin := cfg.EdgeAPI, cfg.EdgeCAPin
	if cur != "" {
		if c, err := token.DecodeSecret(cur, token.KindDevice); err == nil {
			apiURL, pin = cmp.Or(apiURL, c.API), cmp.Or(pin, c.CAPin)
		}
	}
	if apiURL == "" || pin == "" {
		return nil, errors.New("sign in: the edge is unknown: pass --edge URL and --edge-ca-pin PIN (switchyard enrollment login-command prints them)")
	}
	api, err := client.NewSignIn(apiURL, pin)
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	flow := cmp.Or(cfg.LoginFlow, client.LoginFlowDevice)
	l, err := retry(ctx, log, func() (client.LoginStart, error) { return api.StartLogin(ctx, flow) })
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	out := cfg.LoginOut
	if out == nil {
		out = os.Stderr
	}
	client.PrintLogin(out, l, "")
	log.Info("waiting for the sign-in", "verification_uri", l.VerificationURI, "user_code", l.UserCode, "expires_at", l.ExpiresAt)
	id, err := api.WaitLogin(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	fmt.Fprintf(out, "Signed in as %s.\n", id.Email)
	name := cfg.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	req := model.DeviceEnrollment{
		Name: name, DeviceType: runtime.GOOS, OSVersion: osVersion(), Version: cfg.Version,
		PublicKey: k.publicBase64(), KeyProof: k.keyProof(), User: cfg.User, Login: l.ID, Credential: cur,
	}
	enrolled, err := api.EnrollDevice(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("enroll as %s: %w", id.Email, err)
	}
	log.Info("enrolled", "device", enrolled.Device.ID, "name", enrolled.Device.Name, "ip", enrolled.Device.IP,
		"user", enrolled.Device.User, "session_expires_at", enrolled.Device.SessionExpiresAt)
	clearSessionEnded(cfg.StateDir)
	return []byte(enrolled.Credential + "\n"), nil
}
