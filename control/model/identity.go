package model

import (
	"time"

	"github.com/google/uuid"
)

// UserIdentity is who an OpenID Connect sign-in proved a user to be: the
// claims of a verified ID token (signature, issuer, audience, expiry and
// nonce checked by the edge, never taken from the device).
type UserIdentity struct {
	Issuer        string   `json:"issuer"`
	Subject       string   `json:"subject"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Groups        []string `json:"groups,omitempty"`
}

// EnrollmentRule lets users of the identity provider enroll devices: a user
// matches when the email's domain is one of EmailDomains (or none are
// given) and they are in one of Groups (or none are given); a rule with
// neither matches nobody. The first matching rule by Precedence decides the
// session's duration.
type EnrollmentRule struct {
	ID           uuid.UUID `json:"id"`
	Name         string    `json:"name"`
	Precedence   int       `json:"precedence"`
	EmailDomains []string  `json:"email_domains,omitempty"`
	Groups       []string  `json:"groups,omitempty"`
	// SessionDuration is how long a sign-in lasts; when it ends the
	// device's traffic stops until the user signs in again.
	SessionDuration time.Duration `json:"session_duration"`
	CreatedAt       time.Time     `json:"created_at"`
}

// DefaultSessionDuration is the session duration of a rule created without one.
const DefaultSessionDuration = 24 * time.Hour

// NewEnrollmentRule is the request to create an enrollment rule; a nil
// Precedence puts it after every existing one, a zero SessionDuration means
// DefaultSessionDuration.
type NewEnrollmentRule struct {
	Name            string        `json:"name"`
	Precedence      *int          `json:"precedence,omitempty"`
	EmailDomains    []string      `json:"email_domains,omitempty"`
	Groups          []string      `json:"groups,omitempty"`
	SessionDuration time.Duration `json:"session_duration,omitempty"`
}

// User is a user as `user list` shows them: their identity and the devices
// bound to it.
type User struct {
	Email   string      `json:"email"`
	Subject string      `json:"subject,omitempty"`
	Groups  []string    `json:"groups,omitempty"`
	Devices []uuid.UUID `json:"devices"`
	// SessionExpiresAt is the latest session expiry of their devices; nil
	// when none has a session (token-enrolled devices only).
	SessionExpiresAt *time.Time `json:"session_expires_at,omitempty"`
}

// Posture is what a client reports about its host, at enrollment and every
// few minutes; policies can require any of it (device.posture.*). A device
// reports it about itself, so it is a claim, not a proof: policies use it to
// keep honest devices in line, identity to keep everyone else out.
type Posture struct {
	OS            string `json:"os"`             // runtime GOOS: "linux"
	OSVersion     string `json:"os_version"`     // the distribution's VERSION_ID ("12", "24.04"), else the kernel's version
	Kernel        string `json:"kernel"`         // uname release: "6.1.0-18-amd64"
	ClientVersion string `json:"client_version"` // the switchyard client's version
	// DiskEncrypted says the root filesystem sits on an encrypted block
	// device (dm-crypt/LUKS).
	DiskEncrypted bool `json:"disk_encrypted"`
	// Firewall says a host firewall is active: an nftables (or
	// iptables-nft) chain hooked into input or forward.
	Firewall bool   `json:"firewall"`
	Serial   string `json:"serial,omitempty"` // DMI product serial where readable
	// Network is the name of the posture network (PostureNetwork) the host
	// is on; empty for none.
	Network string `json:"network,omitempty"`
	// CollectedAt is when the client collected it.
	CollectedAt time.Time `json:"collected_at"`
}

// PostureNetwork is a network a client reports being on (Posture.Network)
// when one of its addresses outside the tunnel lies in Prefix: the office
// LAN, say.
type PostureNetwork struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
}

// CodeSessionExpired is the API error code for a device whose user's
// sign-in ended (the session duration passed, or an admin signed the user
// out): the client stops and asks for `client up --login`.
const CodeSessionExpired = 1020

// ErrSessionExpired returns the error for a device whose session ended at at.
func ErrSessionExpired(device string, at time.Time) *Error {
	return &Error{Kind: KindUnauthorized, Code: CodeSessionExpired,
		Message: "the sign-in of device " + device + " ended at " + at.UTC().Format(time.RFC3339) + ": sign in again with switchyard client up --login"}
}
