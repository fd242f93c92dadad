// Package testpki gives tests a server certificate from a fresh CA (made with
// control/pki, as the edge makes its own) and a client configuration that
// trusts that CA.
package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/switchyard/switchyard/control/pki"
)

// Server returns a certificate for 127.0.0.1 signed by a new CA, and a TLS
// client configuration that trusts only that CA.
func Server(t testing.TB) (tls.Certificate, *tls.Config) {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return cert, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
}
