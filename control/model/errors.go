package model

import (
	"errors"
	"fmt"
)

// Kind classifies an Error; the API maps each kind to one HTTP status.
type Kind int

// The kinds of control plane error.
const (
	KindInternal     Kind = iota // a bug or an I/O failure
	KindInvalid                  // the request is malformed
	KindNotFound                 // a named object does not exist
	KindConflict                 // the request clashes with existing state
	KindForbidden                // the request is never allowed (e.g. deleting the default vnet)
	KindUnauthorized             // the credentials are missing or wrong
	KindUnavailable              // the store cannot answer now (etcd without quorum); nothing changed
)

// Error codes carried in API error bodies. CodeRouteExists matches the code
// cloudflared users know for an exact duplicate route.
const (
	CodeInternal     = 1000
	CodeInvalid      = 1001
	CodeNotFound     = 1002
	CodeConflict     = 1003
	CodeForbidden    = 1004
	CodeUnauthorized = 1005
	CodeUnavailable  = 1006
	CodeRouteExists  = 1014
)

// Error is a control plane error with a kind, a stable code and a message for people.
type Error struct {
	Kind    Kind
	Code    int
	Message string
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, &Error{Kind: k}) match any Error of kind k.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == 0 && t.Message == "" && t.Kind == e.Kind
}

// Sentinels for errors.Is checks by kind.
var (
	ErrInvalid      = &Error{Kind: KindInvalid}
	ErrNotFound     = &Error{Kind: KindNotFound}
	ErrConflict     = &Error{Kind: KindConflict}
	ErrForbidden    = &Error{Kind: KindForbidden}
	ErrUnauthorized = &Error{Kind: KindUnauthorized}
)

var defaultCodes = map[Kind]int{
	KindInternal:     CodeInternal,
	KindInvalid:      CodeInvalid,
	KindNotFound:     CodeNotFound,
	KindConflict:     CodeConflict,
	KindForbidden:    CodeForbidden,
	KindUnauthorized: CodeUnauthorized,
	KindUnavailable:  CodeUnavailable,
}

// Errorf returns an Error of kind k with that kind's default code.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Code: defaultCodes[k], Message: fmt.Sprintf(format, args...)}
}

// ErrRouteExists is the error for an exact duplicate route in one virtual network.
var ErrRouteExists = &Error{
	Kind:    KindConflict,
	Code:    CodeRouteExists,
	Message: "You already have a route defined for this exact IP subnet",
}

// AsError returns err as an *Error, wrapping anything else as an internal error.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindInternal, Code: CodeInternal, Message: err.Error()}
}
