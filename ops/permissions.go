package ops

import (
	"context"
	"errors"
	"fmt"
)

// The Cognito operations a campaign makes, by their API names.
const (
	OpResetPassword = "AdminResetUserPassword"
	OpGetUser       = "AdminGetUser"
	OpSetPassword   = "AdminSetUserPassword"
	OpGlobalSignOut = "AdminUserGlobalSignOut"
	OpCreateUser    = "AdminCreateUser"
	OpDisableUser   = "AdminDisableUser"
)

// CallOptions says which calls beside AdminResetUserPassword a campaign
// makes. The zero value is a rotation with --status-check=off.
type CallOptions struct {
	StatusCheck  bool // AdminGetUser before the reset (--status-check all or redelivered)
	SignOut      bool // AdminUserGlobalSignOut (--global-sign-out)
	KillPassword bool // AdminSetUserPassword with a random password (--kill-password)
	Reinvite     bool // AdminCreateUser MessageAction=RESEND, after AdminGetUser (--reinvite)
	Disable      bool // AdminDisableUser (--unreachable disable)
}

// IncidentOptions are the calls of an incident campaign: all of them.
func IncidentOptions() CallOptions {
	return CallOptions{StatusCheck: true, SignOut: true, KillPassword: true, Reinvite: true, Disable: true}
}

// CampaignCalls lists the operations a campaign with o makes, the reset
// first, each once.
func CampaignCalls(o CallOptions) []string {
	calls := []string{OpResetPassword}
	add := func(on bool, op string) {
		if on {
			calls = append(calls, op)
		}
	}
	add(o.StatusCheck || o.Reinvite, OpGetUser) // --reinvite reads the status of a user that cannot be reset
	add(o.KillPassword, OpSetPassword)
	add(o.SignOut, OpGlobalSignOut)
	add(o.Reinvite, OpCreateUser)
	add(o.Disable, OpDisableUser)
	return calls
}

// IncidentCalls lists the operations of an incident campaign.
func IncidentCalls() []string { return CampaignCalls(IncidentOptions()) }

// The answers of a probe call, as the cognito adapter translates them; a
// denied call is a *DeniedError.
var (
	// ErrUserNotFound: Cognito looked the user up, so IAM let the call through.
	ErrUserNotFound = errors.New("user not found")
	// ErrPoolNotFound: the user pool does not exist in its Region.
	ErrPoolNotFound = errors.New("user pool not found")
	// ErrPasswordRefused: the pool's password policy refused the password.
	ErrPasswordRefused = errors.New("password refused by the pool's policy")
)

// CallError is an AWS error answer, its code and message as the service
// sent them; Kind, when set, is what it means (ErrUserNotFound, ...).
type CallError struct {
	Code, Message string
	Kind          error
}

func (e *CallError) Error() string { return e.Code + ": " + e.Message }
func (e *CallError) Unwrap() error { return e.Kind }

// Prober makes one call of operation on pool for a user that cannot exist.
type Prober interface {
	Probe(ctx context.Context, pool, operation string) error
}

// CheckCalls probes each of calls on each pool, one check per probe. A pool
// that does not exist gets one check, not one per call. It returns early
// with ctx's error when ctx ends.
func CheckCalls(ctx context.Context, p Prober, pools, calls []string) ([]Check, error) {
	var out []Check
	seen := map[string]bool{}
	for _, pool := range pools {
		if seen[pool] {
			continue
		}
		seen[pool] = true
		for _, op := range calls {
			err := p.Probe(ctx, pool, op)
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			out = append(out, CheckCall(pool, op, err))
			if errors.Is(err, ErrPoolNotFound) {
				break
			}
		}
	}
	return out, nil
}

// CheckCall judges the answer err to a probe of operation on pool, made for
// a user that cannot exist: Cognito's UserNotFoundException proves the call
// permitted.
func CheckCall(pool, operation string, err error) Check {
	action := "cognito-idp:" + operation
	c := func(l Level, format string, a ...any) Check {
		return Check{Level: l, Subject: pool, Name: "call " + operation, Message: fmt.Sprintf(format, a...)}
	}
	var denied *DeniedError
	switch {
	case err == nil:
		return c(OK, "%s permitted (the probe call succeeded)", action)
	case errors.Is(err, ErrUserNotFound):
		return c(OK, "%s permitted (a call for a user that cannot exist answered UserNotFoundException)", action)
	case errors.As(err, &denied):
		return c(Blocking, "%s is denied on %s to these credentials (%v): grant it to the worker's role before the campaign", action, pool, denied.Err)
	case errors.Is(err, ErrPoolNotFound):
		return c(Blocking, "the user pool %s does not exist (%s: %v)", pool, operation, err)
	case errors.Is(err, ErrPasswordRefused):
		return c(Warning, "%s permitted, but the pool's password policy refused a long random password of upper and lower case letters, digits and symbols (%v): random passwords may be refused in the campaign too", action, err)
	default:
		return c(Warning, "%s not proven: the probe call failed after the SDK's retries (%v); run the check again", action, err)
	}
}
