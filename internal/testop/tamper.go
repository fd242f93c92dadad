package testop

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Tamper alters the ID tokens the token endpoint answers with: the provider
// runs its real flow, then the ID token's claims are edited and the token
// signed again, with the provider's own key unless ForeignKey is set.
type Tamper struct {
	// Claims edits the ID token's claims; nil leaves them.
	Claims func(claims map[string]any)
	// ForeignKey signs with a key that is not in the provider's JWKS (under
	// the provider's key id): a forged signature.
	ForeignKey bool
}

// ForgedSignature signs ID tokens with a key the provider never published.
func ForgedSignature() *Tamper { return &Tamper{ForeignKey: true} }

// WrongAudience issues ID tokens for another client.
func WrongAudience() *Tamper {
	return &Tamper{Claims: func(c map[string]any) { c["aud"] = []string{"another-client"}; c["azp"] = "another-client" }}
}

// WrongIssuer issues ID tokens naming another issuer.
func WrongIssuer() *Tamper {
	return &Tamper{Claims: func(c map[string]any) { c["iss"] = "https://idp.example.com" }}
}

// WrongNonce issues ID tokens with a nonce the relying party never sent.
func WrongNonce() *Tamper {
	return &Tamper{Claims: func(c map[string]any) { c["nonce"] = "not-the-nonce" }}
}

// Expired issues ID tokens that expired an hour ago.
func Expired() *Tamper {
	return &Tamper{Claims: func(c map[string]any) {
		c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
		c["exp"] = time.Now().Add(-time.Hour).Unix()
	}}
}

// SetClaim issues ID tokens with claim set to v.
func SetClaim(claim string, v any) *Tamper {
	return &Tamper{Claims: func(c map[string]any) { c[claim] = v }}
}

// tampering wraps the provider's handler: token endpoint answers pass
// through the current Tamper.
func (p *Provider) tampering(next http.Handler) http.Handler {
	tokenPath := p.provider.TokenEndpoint().Relative()
	if !strings.HasPrefix(tokenPath, "/") {
		tokenPath = "/" + tokenPath
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := p.currentTamper()
		if t == nil || r.URL.Path != tokenPath {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK {
			if b, err := p.tamperResponse(r, t, body); err == nil {
				body = b
			} else {
				http.Error(w, "testop: tamper: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body)
	})
}

func (p *Provider) tamperResponse(r *http.Request, t *Tamper, body []byte) ([]byte, error) {
	var resp map[string]any
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode token response: %w", err)
	}
	idToken, _ := resp["id_token"].(string)
	if idToken == "" {
		return body, nil
	}
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("id token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("decode id token payload: %w", err)
	}
	claims := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil {
		return nil, fmt.Errorf("decode id token claims: %w", err)
	}
	if t.Claims != nil {
		t.Claims(claims)
	}
	sk, err := p.storage.SigningKey(r.Context())
	if err != nil {
		return nil, err
	}
	key := sk.Key()
	if t.ForeignKey {
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, err
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: sk.SignatureAlgorithm(), Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", sk.ID()))
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	out, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	jws, err := signer.Sign(out)
	if err != nil {
		return nil, fmt.Errorf("sign id token: %w", err)
	}
	if resp["id_token"], err = jws.CompactSerialize(); err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}
