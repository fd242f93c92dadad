package policy

import "strconv"

// Identity is who a flow's device is: its user, the user's groups and the
// posture the device last reported. It is an immutable snapshot: the edge
// builds a new one (NewIdentity) when anything in it changes and swaps the
// pointer, so the packet path reads it without locks.
type Identity struct {
	User    string   // the user's email; empty: none
	Groups  []string // the user's groups at the identity provider
	Posture Posture
}

// Posture is what a device reports about its host. Reported is false for a
// device that never reported: every posture condition's positive form
// fails for it.
type Posture struct {
	Reported      bool
	OS            string
	OSVersion     string
	Kernel        string
	ClientVersion string
	DiskEncrypted bool
	Firewall      bool
	Serial        string
	Network       string

	osVersion, kernel, clientVersion Version // parsed by NewIdentity
}

// NewIdentity returns the identity snapshot of a device; it parses the
// posture's versions once, so that version conditions compare numbers. The
// identity keeps groups: they must not change afterwards.
func NewIdentity(user string, groups []string, p Posture) *Identity {
	p.osVersion, p.kernel, p.clientVersion = ParseVersion(p.OSVersion), ParseVersion(p.Kernel), ParseVersion(p.ClientVersion)
	return &Identity{User: user, Groups: groups, Posture: p}
}

// maxVersionParts bounds the numeric parts of a Version; later parts are
// ignored.
const maxVersionParts = 6

// Version is the leading dotted numeric part of a version string, parsed:
// "6.1.0-18-amd64" is 6.1.0 (what follows the first character that is not a
// digit or a dot before a digit is ignored, so a distribution's build
// suffix never counts), "24.04" is 24.4, "v1.2" is 1.2 (a leading v is
// skipped). Missing parts compare as zero: 6.1 equals 6.1.0. A string that
// does not start with a number is no version (OK false), and a comparison
// with it never holds.
type Version struct {
	Parts [maxVersionParts]uint32
	OK    bool
}

// ParseVersion parses the leading dotted numeric part of s.
func ParseVersion(s string) Version {
	var v Version
	if len(s) > 1 && (s[0] == 'v' || s[0] == 'V') && s[1] >= '0' && s[1] <= '9' {
		s = s[1:]
	}
	for i, n := 0, 0; i < len(s) && n < maxVersionParts; n++ {
		j := i
		var x uint64
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			x = min(x*10+uint64(s[j]-'0'), 1<<32-1)
			j++
		}
		if j == i {
			break
		}
		v.Parts[n], v.OK = uint32(x), true
		if j+1 >= len(s) || s[j] != '.' || s[j+1] < '0' || s[j+1] > '9' {
			break
		}
		i = j + 1
	}
	return v
}

// Compare returns -1, 0 or 1 as v is below, equal to or above w; versions
// that are not OK compare as equal to nothing (Compare is meaningless for
// them: check OK first).
func (v Version) Compare(w Version) int {
	for i := range v.Parts {
		switch {
		case v.Parts[i] < w.Parts[i]:
			return -1
		case v.Parts[i] > w.Parts[i]:
			return 1
		}
	}
	return 0
}

// String renders the version's parts without trailing zeros beyond the first.
func (v Version) String() string {
	if !v.OK {
		return "(none)"
	}
	n := len(v.Parts)
	for n > 1 && v.Parts[n-1] == 0 {
		n--
	}
	b := make([]byte, 0, 16)
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, uint64(v.Parts[i]), 10)
	}
	return string(b)
}
