package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/control/token"
)

// NewConnector returns the client of a connector: it authenticates with the
// tunnel token and trusts only an API certificate signed by the CA the token pins.
func NewConnector(raw string) (*Client, token.Tunnel, error) {
	tok, err := token.DecodeTunnel(raw)
	if err != nil {
		return nil, tok, err
	}
	c, err := newPinned(tok.APIList(), raw, tok.CAPin)
	return c, tok, err
}

// pinnedTLS accepts a server whose chain is signed by the CA with that pin,
// whatever name it was reached by (agents may reach an edge through NAT).
func pinnedTLS(pin string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection's pin check
		VerifyConnection: func(cs tls.ConnectionState) error {
			certs := cs.PeerCertificates
			if len(certs) == 0 {
				return errors.New("edge sent no certificate")
			}
			for _, ca := range certs[1:] {
				if pki.Pin(ca) != pin {
					continue
				}
				roots := x509.NewCertPool()
				roots.AddCert(ca)
				_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
				if err != nil {
					return fmt.Errorf("edge certificate does not verify against the pinned CA: %w", err)
				}
				return nil
			}
			return errors.New("edge certificate is not signed by the CA pinned in the token")
		},
	}
}

// EnrollConnector registers this connector's WireGuard public key.
func (c *Client) EnrollConnector(ctx context.Context, req model.ConnectorEnrollment) (model.EnrolledConnector, error) {
	var out model.EnrolledConnector
	err := c.do(ctx, http.MethodPost, "/v1/agent/connectors", nil, req, &out)
	if err == nil {
		c.SetAPIs(out.Config.Edge.APIs)
	}
	return out, err
}

// WatchConnectorConfig returns the connector's configuration as soon as it
// differs from the version etag names, waiting up to wait. changed is false
// when nothing changed in time. The edges the configuration names become the
// client's alternatives.
func (c *Client) WatchConnectorConfig(ctx context.Context, id uuid.UUID, etag string, wait time.Duration) (cfg model.ConnectorConfig, newTag string, changed bool, err error) {
	var out *model.ConnectorConfig
	tag, changed, err := c.longPoll(ctx, "/v1/agent/connectors/"+id.String()+"/config", etag, wait, &out)
	if err != nil || !changed || out == nil {
		return cfg, etag, false, err
	}
	c.SetAPIs(out.Edge.APIs)
	return *out, tag, true, nil
}

// NewAgent returns the client of an agent credential of either kind: a
// tunnel token or a device credential.
func NewAgent(raw string) (*Client, error) {
	if _, err := token.DecodeTunnel(raw); err == nil {
		c, _, err := NewConnector(raw)
		return c, err
	}
	return NewDevice(raw)
}

// CheckCredential asks the edge whether the client's credential is valid and
// whether publicKey (if not empty) is enrolled under it; it changes nothing.
func (c *Client) CheckCredential(ctx context.Context, publicKey string) (model.CredentialCheck, error) {
	var out model.CredentialCheck
	return out, c.do(ctx, http.MethodPost, "/v1/agent/credential/check", nil, model.CredentialCheckRequest{PublicKey: publicKey}, &out)
}
