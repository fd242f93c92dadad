package edge

import (
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/router/policy"
)

// deviceIdentity returns the identity snapshot policies see of a device:
// its user, the user's groups and its last posture report. The router
// reads it on the packet path; it is never changed, only replaced.
func deviceIdentity(dev *model.Device) *policy.Identity {
	var p policy.Posture
	if r := dev.Posture; r != nil {
		p = policy.Posture{Reported: true, OS: r.OS, OSVersion: r.OSVersion, Kernel: r.Kernel, ClientVersion: r.ClientVersion,
			DiskEncrypted: r.DiskEncrypted, Firewall: r.Firewall, Serial: r.Serial, Network: r.Network}
	}
	return policy.NewIdentity(dev.User, slices.Clone(dev.Groups), p)
}

// identityKey is what rules see of one device's identity, for the policy
// key: a change to it starts a new generation, so that established flows
// are evaluated again. The posture's collection time is left out: a report
// that changes nothing changes no verdict.
type identityKey struct {
	ID      uuid.UUID
	User    string         `json:",omitempty"`
	Groups  []string       `json:",omitempty"`
	Posture *model.Posture `json:",omitempty"`
}

// identityKeys lists the identities of the devices that have one.
func identityKeys(devices []model.Device) []identityKey {
	var out []identityKey
	for _, dev := range devices {
		if dev.User == "" && len(dev.Groups) == 0 && dev.Posture == nil {
			continue
		}
		k := identityKey{ID: dev.ID, User: dev.User, Groups: dev.Groups}
		if dev.Posture != nil {
			p := *dev.Posture
			p.CollectedAt = time.Time{}
			k.Posture = &p
		}
		out = append(out, k)
	}
	return out
}
