package registry

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/store/memstore"
)

// downStore is a store whose reads fail with store.ErrUnavailable, as an
// etcd without quorum answers, while down is set.
type downStore struct {
	store.Store
	down atomic.Bool
}

func (s *downStore) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.View(ctx, func(tx store.Tx) error { return fn(downTx{tx, s}) })
}

func (s *downStore) Update(ctx context.Context, fn func(store.Tx) error) (int64, error) {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(downTx{tx, s}) })
}

type downTx struct {
	store.Tx
	s *downStore
}

func (t downTx) Get(coll, key string) ([]byte, error) {
	if t.s.down.Load() {
		return nil, fmt.Errorf("etcd get %s/%s: %w", coll, key, store.ErrUnavailable)
	}
	return t.Tx.Get(coll, key)
}

// TestUnavailableIsNotRevoked: while the store cannot answer, the calls an
// agent makes fail with store.ErrUnavailable (HTTP 503: retry), never with
// "invalid credential" or "not found" (an agent takes those for a
// revocation and stops).
func TestUnavailableIsNotRevoked(t *testing.T) {
	bs := memstore.New(memstore.Options{})
	t.Cleanup(func() { bs.Close() })
	st := &downStore{Store: bs}
	r, err := New(ctx, st, Options{Secrets: fixedSecrets{}})
	if err != nil {
		t.Fatal(err)
	}
	tun, secret := must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "fra"}))
	c := must(r.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: newKey(), Hostname: "gw1"}))(t)
	tok, tokSecret := mustPair(r.CreateEnrollToken(ctx, model.NewEnrollToken{}))(t)
	d, cred := mustPair(r.EnrollDevice(ctx, Credential{tok.ID, tokSecret}, model.DeviceEnrollment{Name: "laptop", PublicKey: newKey()}, Credential{}))(t)

	st.down.Store(true)
	for name, call := range map[string]func() error{
		"AuthenticateTunnel": func() error { _, err := r.AuthenticateTunnel(ctx, tun.ID, secret); return err },
		"EnrollConnector": func() error {
			_, err := r.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: newKey(), Hostname: "gw2"})
			return err
		},
		"ConnectorConfig":    func() error { _, err := r.ConnectorConfig(ctx, c.ID); return err },
		"AuthenticateDevice": func() error { _, err := r.AuthenticateDevice(ctx, d.ID, cred); return err },
		"DeviceConfig":       func() error { _, err := r.DeviceConfig(ctx, d.ID); return err },
		"SelectVNet":         func() error { _, err := r.SelectVNet(ctx, d.ID, ""); return err },
		"EnrollDevice": func() error {
			_, _, err := r.EnrollDevice(ctx, Credential{tok.ID, tokSecret}, model.DeviceEnrollment{Name: "phone", PublicKey: newKey()}, Credential{})
			return err
		},
		"DeleteEnrollToken": func() error { return r.DeleteEnrollToken(ctx, tok.ID) },
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the store down: %v, want store.ErrUnavailable", name, err)
		}
	}
	st.down.Store(false)
	if _, err := r.AuthenticateTunnel(ctx, tun.ID, secret); err != nil {
		t.Fatalf("AuthenticateTunnel with the store back: %v", err)
	}
	if _, err := r.AuthenticateTunnel(ctx, tun.ID, []byte("wrong")); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("a wrong tunnel secret: %v, want unauthorized", err)
	}
}

// mustPair is must for calls that return two values and an error.
func mustPair[A, B any](a A, b B, err error) func(*testing.T) (A, B) {
	return func(t *testing.T) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}
