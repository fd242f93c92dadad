package registry

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// collEnrollRules holds the enrollment rules by id.
const collEnrollRules = "enrollment_rules"

// Bounds of an enrollment rule.
const (
	minSessionDuration = time.Minute
	maxSessionDuration = 90 * 24 * time.Hour
	maxEnrollRules     = 1000
	maxRuleEntries     = 100
)

// AddEnrollmentRule adds a rule letting users of the identity provider
// enroll devices: by email domain, by group, or both.
func (r *Registry) AddEnrollmentRule(ctx context.Context, req model.NewEnrollmentRule) (model.EnrollmentRule, error) {
	rule, err := newEnrollmentRule(req)
	if err != nil {
		return model.EnrollmentRule{}, err
	}
	rule.CreatedAt = r.stamp()
	_, err = r.st.Update(ctx, func(tx store.Tx) error {
		all, err := loadAll[model.EnrollmentRule](tx, collEnrollRules)
		if err != nil {
			return err
		}
		if len(all) >= maxEnrollRules {
			return model.Errorf(model.KindConflict, "add enrollment rule %s: there are %d rules, the limit", req.Name, len(all))
		}
		last := 0
		for _, o := range all {
			if o.Name == rule.Name {
				return model.Errorf(model.KindConflict, "add enrollment rule: a rule named %s exists (id %s); remove it first", o.Name, o.ID)
			}
			last = max(last, o.Precedence)
		}
		if req.Precedence == nil {
			rule.Precedence = last + 1
		}
		return putJSON(tx, collEnrollRules, rule.ID, rule)
	})
	return rule, err
}

// newEnrollmentRule checks a request and returns the rule it makes, its
// domains canonical.
func newEnrollmentRule(req model.NewEnrollmentRule) (model.EnrollmentRule, error) {
	if err := model.ValidateName("enrollment rule", req.Name); err != nil {
		return model.EnrollmentRule{}, err
	}
	if len(req.EmailDomains) == 0 && len(req.Groups) == 0 {
		return model.EnrollmentRule{}, model.Errorf(model.KindInvalid, "enrollment rule %s admits nobody: give an email domain, a group, or both", req.Name)
	}
	if len(req.EmailDomains) > maxRuleEntries || len(req.Groups) > maxRuleEntries {
		return model.EnrollmentRule{}, model.Errorf(model.KindInvalid, "enrollment rule %s: at most %d domains and %d groups", req.Name, maxRuleEntries, maxRuleEntries)
	}
	rule := model.EnrollmentRule{ID: uuid.New(), Name: req.Name, SessionDuration: cmp.Or(req.SessionDuration, model.DefaultSessionDuration)}
	if req.Precedence != nil {
		if *req.Precedence < 0 {
			return model.EnrollmentRule{}, model.Errorf(model.KindInvalid, "enrollment rule %s: precedence %d is negative", req.Name, *req.Precedence)
		}
		rule.Precedence = *req.Precedence
	}
	if d := rule.SessionDuration; d < minSessionDuration || d > maxSessionDuration {
		return model.EnrollmentRule{}, model.Errorf(model.KindInvalid, "enrollment rule %s: session duration %v is outside 1m to 90d (2160h)", req.Name, d)
	}
	for _, s := range req.EmailDomains {
		d, err := model.ParseDomain(strings.TrimPrefix(s, "@"))
		if err != nil {
			return model.EnrollmentRule{}, model.Errorf(model.KindInvalid, "enrollment rule %s: email %v", req.Name, err)
		}
		if !slices.Contains(rule.EmailDomains, d) {
			rule.EmailDomains = append(rule.EmailDomains, d)
		}
	}
	for _, g := range req.Groups {
		if strings.TrimSpace(g) == "" {
			return model.EnrollmentRule{}, model.Errorf(model.KindInvalid, "enrollment rule %s: a group is empty", req.Name)
		}
		if err := model.ValidateText("group", g, maxTextLen); err != nil {
			return model.EnrollmentRule{}, model.Errorf(model.KindInvalid, "enrollment rule %s: %v", req.Name, err)
		}
		if !slices.Contains(rule.Groups, g) {
			rule.Groups = append(rule.Groups, g)
		}
	}
	return rule, nil
}

// ListEnrollmentRules returns the enrollment rules in the order they are
// tried: by precedence, then creation.
func (r *Registry) ListEnrollmentRules(ctx context.Context) ([]model.EnrollmentRule, error) {
	var out []model.EnrollmentRule
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = loadAll[model.EnrollmentRule](tx, collEnrollRules)
		return err
	})
	sortRules(out)
	return out, err
}

func sortRules(rules []model.EnrollmentRule) {
	slices.SortFunc(rules, func(a, b model.EnrollmentRule) int {
		return cmp.Or(cmp.Compare(a.Precedence, b.Precedence), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Name, b.Name))
	})
}

// RemoveEnrollmentRule removes the rule named by ref (id or name). Devices
// it admitted keep their sessions until these end.
func (r *Registry) RemoveEnrollmentRule(ctx context.Context, ref string) (model.EnrollmentRule, error) {
	var rule model.EnrollmentRule
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		rule, err = resolve[model.EnrollmentRule](tx, collEnrollRules, "enrollment rule", ref,
			func(o model.EnrollmentRule) (uuid.UUID, string, bool) { return o.ID, o.Name, false })
		if err != nil {
			return err
		}
		return tx.Delete(collEnrollRules, rule.ID.String())
	})
	return rule, err
}

// admits reports whether rule lets the user in.
func admits(rule model.EnrollmentRule, id model.UserIdentity) bool {
	if len(rule.EmailDomains) == 0 && len(rule.Groups) == 0 {
		return false
	}
	if len(rule.EmailDomains) > 0 {
		_, domain, _ := strings.Cut(id.Email, "@")
		if !slices.Contains(rule.EmailDomains, strings.ToLower(domain)) {
			return false
		}
	}
	if len(rule.Groups) > 0 && !slices.ContainsFunc(rule.Groups, func(g string) bool { return slices.Contains(id.Groups, g) }) {
		return false
	}
	return true
}

// EnrollUserDevice enrolls a device as the user an OpenID Connect sign-in
// verified (id): the first enrollment rule that admits them sets the
// session's end, now plus the rule's duration. A user no rule admits is
// refused and no device is created. Re-enrolling a key follows
// EnrollDevice (the key proof or own proves the device) and renews the
// session.
func (r *Registry) EnrollUserDevice(ctx context.Context, id model.UserIdentity, req model.DeviceEnrollment, own Credential) (model.Device, []byte, error) {
	if err := model.ValidateUser(id.Email); err != nil {
		return model.Device{}, nil, model.Errorf(model.KindUnauthorized, "enroll device: the sign-in's email: %v", err)
	}
	if req.User != "" && !strings.EqualFold(req.User, id.Email) {
		return model.Device{}, nil, model.Errorf(model.KindForbidden, "enroll device: the device expects user %q but %s signed in", req.User, id.Email)
	}
	req.User = ""
	if err := r.validateEnrollment(req); err != nil {
		return model.Device{}, nil, err
	}
	for _, g := range id.Groups {
		if err := model.ValidateText("group", g, maxTextLen); err != nil {
			return model.Device{}, nil, err
		}
	}
	secret := newSecret()
	var d deviceRecord
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		rules, err := loadAll[model.EnrollmentRule](tx, collEnrollRules)
		if err != nil {
			return err
		}
		sortRules(rules)
		i := slices.IndexFunc(rules, func(rule model.EnrollmentRule) bool { return admits(rule, id) })
		if i < 0 {
			return model.Errorf(model.KindForbidden, "enroll device: no enrollment rule admits user %s (groups %v); an admin adds one with switchyard enrollment rule add", id.Email, id.Groups)
		}
		if d, err = r.claimKey(tx, req, own); err != nil {
			return err
		}
		exp := r.stamp().Add(rules[i].SessionDuration)
		d.User, d.Subject, d.Groups, d.SessionExpiresAt = id.Email, id.Subject, slices.Clone(id.Groups), &exp
		d.EnrollToken = uuid.Nil
		return r.saveEnrolled(tx, &d, req, secret)
	})
	if err != nil {
		return model.Device{}, nil, err
	}
	return d.Device, secret, nil
}

// LogoutUser ends the sessions of every live device of the user with that
// email (case-insensitive): their traffic stops until the user signs in
// again. It returns the devices, KindNotFound when the user has none with a
// session.
func (r *Registry) LogoutUser(ctx context.Context, email string) ([]model.Device, error) {
	var out []model.Device
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		out = nil
		all, err := loadAll[deviceRecord](tx, collDevices)
		if err != nil {
			return err
		}
		now := r.stamp()
		for _, d := range all {
			if d.Revoked() || d.SessionExpiresAt == nil || !strings.EqualFold(d.User, email) {
				continue
			}
			if d.SessionExpiresAt.After(now) {
				d.SessionExpiresAt, d.Updated = &now, now
				if err := putJSON(tx, collDevices, d.ID, d); err != nil {
					return err
				}
			}
			out = append(out, d.Device)
		}
		if len(out) == 0 {
			return model.Errorf(model.KindNotFound, "user %s has no device with a sign-in session", email)
		}
		return nil
	})
	return out, err
}

// ListUsers returns the users of the live devices, by email: each with the
// identity of their latest sign-in and their latest session's end.
func (r *Registry) ListUsers(ctx context.Context) ([]model.User, error) {
	devices, err := r.ListDevices(ctx, false)
	if err != nil {
		return nil, err
	}
	byEmail := map[string]*model.User{}
	var out []*model.User
	for _, d := range devices {
		if d.User == "" {
			continue
		}
		key := strings.ToLower(d.User)
		u := byEmail[key]
		if u == nil {
			u = &model.User{Email: d.User}
			byEmail[key] = u
			out = append(out, u)
		}
		u.Devices = append(u.Devices, d.ID)
		if d.SessionExpiresAt != nil && (u.SessionExpiresAt == nil || d.SessionExpiresAt.After(*u.SessionExpiresAt)) {
			u.SessionExpiresAt = d.SessionExpiresAt
			u.Subject, u.Groups = d.Subject, d.Groups
		}
	}
	users := make([]model.User, 0, len(out))
	for _, u := range out {
		users = append(users, *u)
	}
	slices.SortFunc(users, func(a, b model.User) int { return cmp.Compare(strings.ToLower(a.Email), strings.ToLower(b.Email)) })
	return users, nil
}
