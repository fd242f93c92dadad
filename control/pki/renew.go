package pki

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sync/atomic"
	"time"
)

// ServerCert is a server certificate that is renewed before it expires: Run
// issues a new one once two thirds of the current one's lifetime have
// passed, and GetCertificate, for tls.Config, returns the current one, so a
// running server picks up the new one on its next handshake.
type ServerCert struct {
	ca       *CA
	hosts    []string
	lifetime time.Duration
	cur      atomic.Pointer[tls.Certificate]
}

// NewServerCert issues the first certificate for hosts, valid for lifetime
// (ServerLifetime when zero); every renewal is valid as long.
func (ca *CA) NewServerCert(hosts []string, lifetime time.Duration) (*ServerCert, error) {
	if lifetime <= 0 {
		lifetime = ServerLifetime
	}
	s := &ServerCert{ca: ca, hosts: hosts, lifetime: lifetime}
	if err := s.renew(); err != nil {
		return nil, err
	}
	return s, nil
}

// Certificate returns the current certificate.
func (s *ServerCert) Certificate() *tls.Certificate { return s.cur.Load() }

// GetCertificate returns the current certificate; it implements
// tls.Config.GetCertificate.
func (s *ServerCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// RenewAt returns when Run renews the current certificate: when two thirds
// of its lifetime have passed.
func (s *ServerCert) RenewAt() time.Time {
	return s.cur.Load().Leaf.NotAfter.Add(-s.lifetime / 3)
}

// Run renews the certificate on time until ctx is done, retrying a failed
// renewal (reported to log) every minute or sooner for short lifetimes. It
// checks the wall clock at least hourly, so a suspend or a clock step does
// not let the certificate run out.
func (s *ServerCert) Run(ctx context.Context, log *slog.Logger) {
	retry := min(time.Minute, s.lifetime/10)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		wait := time.Until(s.RenewAt())
		if wait <= 0 {
			if err := s.renew(); err != nil {
				log.Error("renewing the server certificate", "err", err, "expires", s.cur.Load().Leaf.NotAfter)
				wait = retry
			} else {
				leaf := s.cur.Load().Leaf
				log.Info("server certificate renewed", "serial", leaf.SerialNumber.Text(16), "expires", leaf.NotAfter)
				continue
			}
		}
		t.Reset(min(wait, time.Hour))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *ServerCert) renew() error {
	cert, err := s.ca.issueServer(s.hosts, s.lifetime)
	if err != nil {
		return err
	}
	s.cur.Store(&cert)
	return nil
}
