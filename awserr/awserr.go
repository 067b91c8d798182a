// Package awserr is how resetq's adapters (cognito, queue, awscheck) hand
// an AWS service's answer to the rest of resetq, which reads no SDK or
// smithy type: an error with the service's code and message, or
// ErrCredentials when no call could be signed; and what an answer means
// where a caller acts on it (ErrNoData, ErrUserNotFound, DeniedError, ...).
// Adapters make them with From; everyone else reads them with Code, As
// and errors.Is.
package awserr

import (
	"errors"
	"strings"
)

// Error is an AWS service's error answer.
type Error struct {
	Code    string // the service's error code, e.g. UserNotFoundException
	Message string // the service's message; may be empty
	Err     error  // the SDK's error, for its text and for errors.Is
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrCredentials marks a call that could not be signed: no credentials, or
// none that load (an expired SSO session, an unreachable IMDS).
var ErrCredentials = errors.New("no usable AWS credentials")

// credentials wraps a signing failure: Is(ErrCredentials), text unchanged.
type credentials struct{ err error }

func (c credentials) Error() string        { return c.err.Error() }
func (c credentials) Unwrap() []error      { return []error{ErrCredentials, c.err} }
func (c credentials) Is(target error) bool { return target == ErrCredentials }

// apiError is the method set of smithy-go's APIError, every service
// error the SDK returns: matched by shape, so that only adapters import
// the SDK.
type apiError interface {
	error
	ErrorCode() string
	ErrorMessage() string
}

// From is err as resetq reads it: a role that could not be assumed stays
// *RoleError, a service's answer becomes *Error, a
// signing failure (the SDK's "failed to sign request", or credentials
// that do not load: "get identity:") Is ErrCredentials; anything else (a
// network error, a timeout, a cancelled context) is returned as it is.
// Only adapters call it, on what the SDK returned.
func From(err error) error {
	if err == nil {
		return nil
	}
	var role *RoleError
	if errors.As(err, &role) { // before the STS answer inside it
		return &RoleError{Role: role.Role, Denied: role.Denied, Err: err}
	}
	var api apiError
	if errors.As(err, &api) {
		return &Error{Code: api.ErrorCode(), Message: api.ErrorMessage(), Err: err}
	}
	if msg := err.Error(); strings.Contains(msg, "failed to sign request:") || strings.Contains(msg, "get identity:") {
		return credentials{err}
	}
	return err
}

// As finds the service's answer in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Code is the service's error code in err's chain, or "".
func Code(err error) string {
	if e, ok := As(err); ok {
		return e.Code
	}
	return ""
}
