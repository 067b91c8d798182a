package awserr

import "errors"

// What an AWS answer means to resetq, for the callers that act on it
// (preflight's checks, the usage readers). Adapters wrap these values;
// callers read them with errors.Is.
var (
	// ErrNoData: the service has nothing to say (an unknown quota, no
	// metric data).
	ErrNoData = errors.New("no data")
	// ErrUserNotFound: Cognito looked the user up, so IAM let the call
	// through.
	ErrUserNotFound = errors.New("user not found")
	// ErrPoolNotFound: the user pool does not exist in its Region.
	ErrPoolNotFound = errors.New("user pool not found")
	// ErrPasswordRefused: the pool's password policy refused the password.
	ErrPasswordRefused = errors.New("password refused by the pool's policy")
)

// DeniedError is a call the credentials may not make.
type DeniedError struct {
	Action string // the IAM action, e.g. ses:GetSendQuota
	Err    error
}

func (e *DeniedError) Error() string { return e.Action + ": access denied: " + e.Err.Error() }
func (e *DeniedError) Unwrap() error { return e.Err }

// Denied reports whether code is an AWS answer that the credentials may
// not make the call (IAM's codes, SNS's AuthorizationError).
func Denied(code string) bool {
	switch code {
	case "AccessDenied", "AccessDeniedException", "AuthorizationError", "UnauthorizedOperation":
		return true
	}
	return false
}

// RoleError is a call made with a role's credentials (resetq's
// --pool-roles) that could not get them: sts:AssumeRole failed.
type RoleError struct {
	Role string // the role's ARN
	// Denied: STS refused (the role's trust policy, the ExternalId, the
	// caller's sts:AssumeRole permission, no such role); no retry helps
	// until someone fixes it. Else STS failed (throttled, a fault, the
	// network) and a retry may.
	Denied bool
	Err    error
}

func (e *RoleError) Error() string { return "assume role " + e.Role + ": " + e.Err.Error() }
func (e *RoleError) Unwrap() error { return e.Err }
