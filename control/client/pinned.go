package client

import "crypto/tls"

// PinnedTLS returns the TLS configuration agents reach the edge with (the
// API, and MASQUE): the edge's certificate must be signed by the CA whose
// pki.Pin is pin, whatever name the edge was reached by.
func PinnedTLS(pin string) *tls.Config { return pinnedTLS(pin) }
