package registry

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

func TestDevices(t *testing.T) {
	r := newRegistry(t)
	tok, secret, err := r.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: "laptops"})
	if err != nil {
		t.Fatal(err)
	}
	key := newKey()
	enroll := func(name, key string) (model.Device, []byte, error) {
		return r.EnrollDevice(ctx, Credential{tok.ID, secret}, model.DeviceEnrollment{Name: name, DeviceType: "linux", PublicKey: key}, Credential{})
	}
	d1, cred1, err := enroll("laptop", key)
	if err != nil {
		t.Fatal(err)
	}
	if d1.IP != netip.MustParseAddr("100.96.0.2") {
		t.Fatalf("first device got %s, want 100.96.0.2 (100.96.0.1 is the edge's)", d1.IP)
	}
	d2, _, _ := enroll("phone", newKey())
	if d2.IP != netip.MustParseAddr("100.96.0.3") {
		t.Fatalf("second device got %s", d2.IP)
	}
	again, cred2, err := r.EnrollDevice(ctx, Credential{tok.ID, secret}, model.DeviceEnrollment{Name: "laptop", PublicKey: key}, Credential{d1.ID, cred1})
	if err != nil || again.ID != d1.ID || again.IP != d1.IP {
		t.Fatalf("re-enrolling the same key with its credential: %+v, %v; want the same device and address", again, err)
	}
	if _, err := r.AuthenticateDevice(ctx, d1.ID, cred1); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatal("the old credential still works after re-enrollment")
	}
	if _, err := r.AuthenticateDevice(ctx, d1.ID, cred2); err != nil {
		t.Fatalf("the new credential: %v", err)
	}
	if _, _, err := r.EnrollDevice(ctx, Credential{tok.ID, []byte("wrong")}, model.DeviceEnrollment{Name: "x", PublicKey: newKey()}, Credential{}); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("enrolling with a wrong secret: %v", err)
	}

	must(r.CreateVNet(ctx, model.NewVNet{Name: "lab"}))(t)
	v := must(r.SelectVNet(ctx, d1.ID, "lab"))(t)
	cfg := must(r.DeviceConfig(ctx, d1.ID))(t)
	if cfg.VNetID != v.ID || cfg.IP != d1.IP || cfg.SplitTunnel.Mode != model.SplitExclude || len(cfg.SplitTunnel.Entries) != 16 {
		t.Fatalf("device config = %+v", cfg)
	}
	snap := must(r.Snapshot(ctx))(t)
	for _, d := range snap.Devices {
		want := v.ID // laptop selected lab
		if d.ID != d1.ID {
			want = must(r.GetVNet(ctx, ""))(t).ID // the others follow the default
		}
		if d.VNetID != want {
			t.Fatalf("snapshot device %s in vnet %s, want %s", d.Name, d.VNetID, want)
		}
	}
	if len(snap.Devices) != 2 {
		t.Fatalf("snapshot devices = %+v", snap.Devices)
	}
	if _, err := r.SelectVNet(ctx, d1.ID, "nope"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("selecting an unknown vnet: %v", err)
	}

	must(r.RevokeDevice(ctx, "phone"))(t)
	if _, err := r.DeviceConfig(ctx, d2.ID); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("config of a revoked device: %v", err)
	}
	if list := must(r.ListDevices(ctx, false))(t); len(list) != 1 {
		t.Fatalf("live devices after revoke: %+v", list)
	}
	// A revoked device's address is given out again.
	d3, _, _ := enroll("tablet", newKey())
	if d3.IP != d2.IP {
		t.Fatalf("new device got %s, want the revoked device's %s", d3.IP, d2.IP)
	}

	short, shortSecret, _ := r.CreateEnrollToken(ctx, model.NewEnrollToken{TTL: time.Nanosecond})
	time.Sleep(time.Millisecond)
	if _, _, err := r.EnrollDevice(ctx, Credential{short.ID, shortSecret}, model.DeviceEnrollment{Name: "late", PublicKey: newKey()}, Credential{}); err == nil {
		t.Fatal("an expired enrollment token worked")
	}
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newClockRegistry(t *testing.T) (*Registry, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	r := newRegistry(t)
	r.now = c.now
	return r, c
}

// must3 returns a and b, or fails the test given to the returned function.
func must3[A any](a A, b []byte, err error) func(*testing.T) (A, []byte) {
	return func(t *testing.T) (A, []byte) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

func proof(b byte) []byte { return bytes.Repeat([]byte{b}, model.KeyProofLen) }

// TestEnrollTakeoverRefused: re-enrolling a live device's key needs that
// device's key proof or credential; without, it is refused and the victim's
// record, address and credential stay as they were.
func TestEnrollTakeoverRefused(t *testing.T) {
	r := newRegistry(t)
	tok, secret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: "laptops", User: "alice@example.com"}))(t)
	evil, evilSecret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: "mallory's", User: "mallory@example.net"}))(t)
	key := newKey()
	victim, cred, err := r.EnrollDevice(ctx, Credential{tok.ID, secret}, model.DeviceEnrollment{Name: "laptop", PublicKey: key, KeyProof: proof(1)}, Credential{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		proof []byte
		own   Credential
	}{
		{"no proof", nil, Credential{}},
		{"wrong proof", proof(2), Credential{}},
		{"wrong credential", nil, Credential{victim.ID, []byte("guess")}},
		{"another device's credential", nil, func() Credential {
			other, oc := must3(r.EnrollDevice(ctx, Credential{evil.ID, evilSecret}, model.DeviceEnrollment{Name: "other", PublicKey: newKey()}, Credential{}))(t)
			return Credential{other.ID, oc}
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := r.EnrollDevice(ctx, Credential{evil.ID, evilSecret}, model.DeviceEnrollment{Name: "pwned", PublicKey: key, KeyProof: tc.proof}, tc.own)
			wantKind(t, err, model.ErrConflict, "already enrolled as device \"laptop\"")
			d, err := r.AuthenticateDevice(ctx, victim.ID, cred)
			if err != nil {
				t.Fatalf("the victim's credential stopped working: %v", err)
			}
			if d.Name != "laptop" || d.IP != victim.IP || d.User != "alice@example.com" || d.EnrollToken != tok.ID {
				t.Fatalf("the victim's record changed: %+v, was %+v", d, victim)
			}
		})
	}

	// The device itself re-enrolls: by its key proof (credential lost, or
	// the answer to its first enrollment lost), or by its credential.
	again, cred2, err := r.EnrollDevice(ctx, Credential{tok.ID, secret}, model.DeviceEnrollment{Name: "laptop", PublicKey: key, KeyProof: proof(1)}, Credential{})
	if err != nil || again.ID != victim.ID || again.IP != victim.IP {
		t.Fatalf("re-enrolling with the key proof: %+v, %v; want the same device", again, err)
	}
	again, _, err = r.EnrollDevice(ctx, Credential{tok.ID, secret}, model.DeviceEnrollment{Name: "laptop", PublicKey: key}, Credential{victim.ID, cred2})
	if err != nil || again.ID != victim.ID || again.IP != victim.IP {
		t.Fatalf("re-enrolling with the credential: %+v, %v; want the same device", again, err)
	}
}

// TestEnrollUserFromToken: a device's user is its token's, never what the
// device claims.
func TestEnrollUserFromToken(t *testing.T) {
	r := newRegistry(t)
	alice, aliceSecret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{User: "alice@example.com"}))(t)
	anon, anonSecret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{}))(t)
	for _, tc := range []struct {
		name     string
		tok      Credential
		claim    string
		wantUser string // "" with wantErr
		wantErr  bool
	}{
		{"token user, no claim", Credential{alice.ID, aliceSecret}, "", "alice@example.com", false},
		{"token user, same claim", Credential{alice.ID, aliceSecret}, "alice@example.com", "alice@example.com", false},
		{"token user, other claim", Credential{alice.ID, aliceSecret}, "admin@example.com", "", true},
		{"no token user, no claim", Credential{anon.ID, anonSecret}, "", "", false},
		{"no token user, a claim", Credential{anon.ID, anonSecret}, "admin@example.com", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _, err := r.EnrollDevice(ctx, tc.tok, model.DeviceEnrollment{Name: "dev", PublicKey: newKey(), User: tc.claim}, Credential{})
			if tc.wantErr {
				wantKind(t, err, model.ErrForbidden, "comes from its enrollment token")
				return
			}
			if err != nil || d.User != tc.wantUser {
				t.Fatalf("enrolled %+v, %v; want user %q", d, err, tc.wantUser)
			}
		})
	}
	for _, d := range must(r.ListDevices(ctx, true))(t) {
		if d.User == "admin@example.com" {
			t.Fatalf("a self-asserted user reached the store: %+v", d)
		}
	}
	for _, bad := range []string{"alice", "@example.com", "alice@", "a b@example.com", "alice@example.com\n"} {
		if _, _, err := r.CreateEnrollToken(ctx, model.NewEnrollToken{User: bad}); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("token user %q: %v, want invalid", bad, err)
		}
	}
}

// TestRevokedKeyStaysRefused: a revoked key is refused at enrollment, with a
// valid token, as a device or a connector, until an admin lifts it.
func TestRevokedKeyStaysRefused(t *testing.T) {
	r := newRegistry(t)
	tok, secret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{}))(t)
	key := newKey()
	req := model.DeviceEnrollment{Name: "laptop", PublicKey: key, KeyProof: proof(1)}
	d, cred := must3(r.EnrollDevice(ctx, Credential{tok.ID, secret}, req, Credential{}))(t)
	must(r.RevokeDevice(ctx, "laptop"))(t)
	for _, own := range []Credential{{}, {d.ID, cred}} {
		_, _, err := r.EnrollDevice(ctx, Credential{tok.ID, secret}, req, own)
		wantKind(t, err, model.ErrForbidden, "device unrevoke "+d.ID.String())
	}
	tun, tunSecret := must3(r.CreateTunnel(ctx, model.NewTunnel{Name: "fra"}))(t)
	_, err := r.EnrollConnector(ctx, tun.ID, tunSecret, model.ConnectorEnrollment{PublicKey: key})
	wantKind(t, err, model.ErrForbidden, "revoked")
	if _, err := r.UnrevokeDevice(ctx, "nope"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("unrevoking an unknown device: %v", err)
	}

	lifted := must(r.UnrevokeDevice(ctx, "laptop"))(t)
	if lifted.UnrevokedAt == nil || !lifted.Revoked() {
		t.Fatalf("unrevoked = %+v; want the record still revoked, its ban lifted", lifted)
	}
	if _, err := r.UnrevokeDevice(ctx, d.ID.String()); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("unrevoking twice: %v", err)
	}
	if _, err := r.AuthenticateDevice(ctx, d.ID, cred); err == nil {
		t.Fatal("unrevoke brought the old credential back")
	}
	again, cred2, err := r.EnrollDevice(ctx, Credential{tok.ID, secret}, req, Credential{})
	if err != nil || again.ID == d.ID {
		t.Fatalf("enrolling after unrevoke: %+v, %v; want a new device", again, err)
	}
	must(r.AuthenticateDevice(ctx, again.ID, cred2))(t)
}

// TestEnrollTokenLimits: tokens expire after a day unless told otherwise,
// and a use count bounds the devices they enroll.
func TestEnrollTokenLimits(t *testing.T) {
	r, clk := newClockRegistry(t)
	enroll := func(tok model.EnrollToken, secret []byte, req model.DeviceEnrollment) error {
		_, _, err := r.EnrollDevice(ctx, Credential{tok.ID, secret}, req, Credential{})
		return err
	}
	day, daySecret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{}))(t)
	hour, hourSecret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{TTL: time.Hour}))(t)
	never, neverSecret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{NoExpiry: true}))(t)
	if day.ExpiresAt == nil || !day.ExpiresAt.Equal(clk.t.Add(24*time.Hour)) || never.ExpiresAt != nil {
		t.Fatalf("default expiry %v, no-expiry token %v; want 24h and none", day.ExpiresAt, never.ExpiresAt)
	}
	if _, _, err := r.CreateEnrollToken(ctx, model.NewEnrollToken{TTL: time.Hour, NoExpiry: true}); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("a lifetime with no expiry: %v", err)
	}
	if _, _, err := r.CreateEnrollToken(ctx, model.NewEnrollToken{MaxUses: -1}); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("negative uses: %v", err)
	}
	clk.t = clk.t.Add(2 * time.Hour)
	wantKind(t, enroll(hour, hourSecret, model.DeviceEnrollment{Name: "a", PublicKey: newKey()}), model.ErrUnauthorized, "expired")
	if err := enroll(day, daySecret, model.DeviceEnrollment{Name: "b", PublicKey: newKey()}); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(23 * time.Hour)
	wantKind(t, enroll(day, daySecret, model.DeviceEnrollment{Name: "c", PublicKey: newKey()}), model.ErrUnauthorized, "expired")
	if err := enroll(never, neverSecret, model.DeviceEnrollment{Name: "d", PublicKey: newKey()}); err != nil {
		t.Fatal(err)
	}

	two, twoSecret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{MaxUses: 2}))(t)
	first := model.DeviceEnrollment{Name: "first", PublicKey: newKey(), KeyProof: proof(1)}
	for _, req := range []model.DeviceEnrollment{first, first, {Name: "second", PublicKey: newKey()}} {
		if err := enroll(two, twoSecret, req); err != nil {
			t.Fatalf("enroll %s: %v", req.Name, err) // re-enrolling first uses no second use
		}
	}
	wantKind(t, enroll(two, twoSecret, model.DeviceEnrollment{Name: "third", PublicKey: newKey()}), model.ErrUnauthorized, "used up (2 of 2 uses)")
	if err := enroll(two, twoSecret, first); err != nil {
		t.Fatalf("a device the used-up token enrolled re-enrolls (a retry): %v", err)
	}
	for _, tok := range must(r.ListEnrollTokens(ctx))(t) {
		if tok.ID == two.ID && (tok.Uses != 2 || tok.MaxUses != 2) {
			t.Fatalf("listed token %+v; want 2 of 2 uses", tok)
		}
	}
}

// TestEnrollOldRecords: tokens and devices stored before user, use count
// and key proof existed decode and behave sensibly: such a token has no
// expiry, no user and no use bound; such a device re-enrolls only with its
// credential.
func TestEnrollOldRecords(t *testing.T) {
	r := newRegistry(t)
	tokID, devID := uuid.New(), uuid.New()
	tokSecret, devSecret := []byte("old token secret"), []byte("old device secret")
	key := newKey()
	oldToken := fmt.Sprintf(`{"id":%q,"comment":"old","created_at":"2025-01-01T00:00:00Z","secret_hash":%q}`,
		tokID, base64.StdEncoding.EncodeToString(hashSecret(tokSecret)))
	oldDevice := fmt.Sprintf(`{"id":%q,"name":"old-laptop","device_type":"linux","os_version":"","version":"1","ip":"100.96.0.2","key":%q,`+
		`"created":"2025-01-01T00:00:00Z","updated":"2025-01-01T00:00:00Z","last_seen":null,"user":"ada@example.com","vnet_id":"00000000-0000-0000-0000-000000000000","secret_hash":%q}`,
		devID, key, base64.StdEncoding.EncodeToString(hashSecret(devSecret)))
	must(r.st.Update(ctx, func(tx store.Tx) error {
		return errors.Join(tx.Put(collEnrollTokens, tokID.String(), []byte(oldToken)), tx.Put(collDevices, devID.String(), []byte(oldDevice)))
	}))(t)

	toks := must(r.ListEnrollTokens(ctx))(t)
	if len(toks) != 1 || toks[0].ExpiresAt != nil || toks[0].User != "" || toks[0].MaxUses != 0 {
		t.Fatalf("old token decodes as %+v", toks)
	}
	old := Credential{tokID, tokSecret}
	_, _, err := r.EnrollDevice(ctx, old, model.DeviceEnrollment{Name: "x", PublicKey: key, KeyProof: proof(1)}, Credential{})
	wantKind(t, err, model.ErrConflict, "already enrolled")
	d, _, err := r.EnrollDevice(ctx, old, model.DeviceEnrollment{Name: "old-laptop", PublicKey: key}, Credential{devID, devSecret})
	if err != nil || d.ID != devID || d.IP != netip.MustParseAddr("100.96.0.2") || d.User != "" || d.EnrollToken != tokID {
		t.Fatalf("old device re-enrolling with its credential: %+v, %v", d, err)
	}
	for i := range 3 {
		if _, _, err := r.EnrollDevice(ctx, old, model.DeviceEnrollment{Name: fmt.Sprint("new", i), PublicKey: newKey()}, Credential{}); err != nil {
			t.Fatalf("old token, enrollment %d: %v", i, err)
		}
	}
}

func TestSplitTunnel(t *testing.T) {
	r := newRegistry(t)
	st := must(r.SplitTunnel(ctx))(t)
	if st.Mode != model.SplitExclude || len(st.Entries) != 16 {
		t.Fatalf("default split tunnel = %+v", st)
	}
	st = must(r.AddSplitEntry(ctx, model.SplitEntry{Address: mpp("198.51.100.0/24"), Description: "lab"}))(t)
	if len(st.Entries) != 17 {
		t.Fatalf("after add: %d entries", len(st.Entries))
	}
	if _, err := r.AddSplitEntry(ctx, model.SplitEntry{Address: mpp("198.51.100.0/24")}); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("adding a duplicate: %v", err)
	}
	st = must(r.SetSplitMode(ctx, model.SplitInclude))(t)
	if st.Mode != model.SplitInclude || len(st.Entries) != 0 {
		t.Fatalf("include mode = %+v, want an empty list", st)
	}
	must(r.AddSplitEntry(ctx, model.SplitEntry{Address: mpp("10.1.0.0/16")}))(t)
	st = must(r.RemoveSplitEntry(ctx, "10.1.0.0/16"))(t)
	if len(st.Entries) != 0 {
		t.Fatalf("after remove: %+v", st)
	}
	// Domains: canonical, exactly one of address and domain, removable by name.
	st = must(r.AddSplitEntry(ctx, model.SplitEntry{Domain: "*.Corp.Example."}))(t)
	must(r.AddSplitEntry(ctx, model.SplitEntry{Domain: "corp.example"}))(t)
	if len(st.Entries) != 1 || st.Entries[0].Domain != "*.corp.example" || st.Entries[0].Address.IsValid() {
		t.Fatalf("after adding *.Corp.Example.: %+v", st)
	}
	if _, err := r.AddSplitEntry(ctx, model.SplitEntry{Domain: "*.corp.example"}); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("adding a duplicate domain: %v", err)
	}
	for _, bad := range []model.SplitEntry{
		{Domain: "corp..example"}, {Domain: "a.*.example"}, {Domain: "192.0.2.1"},
		{Domain: "corp.example", Address: mpp("192.0.2.0/24")}, {},
	} {
		if _, err := r.AddSplitEntry(ctx, bad); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("adding %+v: %v, want invalid", bad, err)
		}
	}
	st = must(r.RemoveSplitEntry(ctx, "*.corp.example"))(t)
	if len(st.Entries) != 1 || st.Entries[0].Domain != "corp.example" {
		t.Fatalf("after removing *.corp.example: %+v", st)
	}
	if _, err := r.RemoveSplitEntry(ctx, "other.example"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("removing a domain not listed: %v", err)
	}
	if _, err := r.RemoveSplitEntry(ctx, "10.1.0.1/16"); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("removing a bad CIDR: %v", err)
	}
	if _, err := r.SetSplitMode(ctx, "sometimes"); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("bad mode: %v", err)
	}
	st = must(r.SetSplitMode(ctx, model.SplitExclude))(t)
	if fmt.Sprint(st.Entries[0].Address) != "10.0.0.0/8" {
		t.Fatalf("exclude mode reset = %+v", st)
	}
}

// TestDeviceNamesAmbiguous: device names need not be unique, so a name that
// several devices share names none of them; the id does.
func TestDeviceNamesAmbiguous(t *testing.T) {
	r := newRegistry(t)
	tok, secret := must3(r.CreateEnrollToken(ctx, model.NewEnrollToken{}))(t)
	var devs []model.Device
	for i := range 2 {
		d, _ := must3(r.EnrollDevice(ctx, Credential{tok.ID, secret}, model.DeviceEnrollment{Name: "laptop", PublicKey: newKey(), KeyProof: proof(byte(i + 1))}, Credential{}))(t)
		devs = append(devs, d)
	}
	_, err := r.RevokeDevice(ctx, "laptop")
	wantKind(t, err, model.ErrConflict, devs[0].ID.String())
	wantKind(t, err, model.ErrConflict, devs[1].ID.String())
	for _, d := range devs {
		must(r.RevokeDevice(ctx, d.ID.String()))(t)
	}
	_, err = r.UnrevokeDevice(ctx, "laptop")
	wantKind(t, err, model.ErrConflict, "2 revoked devices are named \"laptop\"")
	if got := must(r.UnrevokeDevice(ctx, devs[1].ID.String()))(t); got.ID != devs[1].ID {
		t.Fatalf("unrevoked %s, want %s", got.ID, devs[1].ID)
	}
	// One revoked device left with the name: the name names it.
	if got := must(r.UnrevokeDevice(ctx, "laptop"))(t); got.ID != devs[0].ID {
		t.Fatalf("unrevoked %s by name, want %s", got.ID, devs[0].ID)
	}
}

// TestAllocateSkipsTheEdgesAddresses: devices never get the addresses a
// cluster's edges answer heartbeats at, even when only those are left.
func TestAllocateSkipsTheEdgesAddresses(t *testing.T) {
	r := &Registry{overlay: netip.MustParsePrefix("100.64.7.0/24")}
	var devices []deviceRecord
	for a := netip.MustParseAddr("100.64.7.2"); a.Less(model.EdgeOwnAddress(r.overlay, model.MaxEdges-1)); a = a.Next() {
		devices = append(devices, deviceRecord{Device: model.Device{IP: a}})
	}
	if a, err := r.allocate(devices); err == nil {
		t.Fatalf("allocate gave %v, an edge's address; want no free address", a)
	}
	devices = devices[1:]
	if a, err := r.allocate(devices); err != nil || a != netip.MustParseAddr("100.64.7.2") {
		t.Fatalf("allocate = %v, %v; want the freed 100.64.7.2", a, err)
	}
}
