package testop

import (
	"context"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// opStorage is zitadel's example in-memory storage with this package's
// client and users, adding the groups claim to ID tokens and userinfo.
type opStorage struct {
	*storage.Storage
	client      *client
	users       *users
	groupsClaim string
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	if id != s.client.id {
		return s.Storage.GetClientByClientID(ctx, id) // "client not found"
	}
	return s.client, nil
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	s.addGroups(info, req.GetSubject())
	return nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	s.addGroups(info, info.Subject)
	return nil
}

func (s *opStorage) addGroups(info *oidc.UserInfo, subject string) {
	if u := s.users.byID(subject); u != nil && len(u.Groups) > 0 {
		info.AppendClaims(s.groupsClaim, u.Groups)
	}
}

// users is the provider's user store; the subject of a user is "sub-" and
// the email's local part, unless the User names one.
type users struct {
	list []User
}

var _ storage.UserStore = (*users)(nil)

func (u *users) byID(id string) *User {
	for i := range u.list {
		if u.list[i].subject() == id {
			return &u.list[i]
		}
	}
	return nil
}

func (u *users) byEmail(email string) *User {
	for i := range u.list {
		if strings.EqualFold(u.list[i].Email, email) {
			return &u.list[i]
		}
	}
	return nil
}

func (u *users) exampleUser(x *User) *storage.User {
	if x == nil {
		return nil
	}
	return &storage.User{ID: x.subject(), Username: x.Email, Password: x.Password,
		Email: x.Email, EmailVerified: !x.EmailUnverified, FirstName: "Test", LastName: x.Email}
}

func (u *users) GetUserByID(id string) *storage.User { return u.exampleUser(u.byID(id)) }

func (u *users) GetUserByUsername(name string) *storage.User { return u.exampleUser(u.byEmail(name)) }

func (u *users) ExampleClientID() string { return storage.ServiceUserID }
