package preflight

import (
	"context"
	"errors"
	"fmt"

	"github.com/resetq/resetq/awserr"
)

// Prober makes one call of operation (a userpool.Op* name) on pool for a
// user that cannot exist; cognito.Pools is one.
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
			if errors.Is(err, awserr.ErrPoolNotFound) {
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
	var denied *awserr.DeniedError
	switch {
	case err == nil:
		return c(OK, "%s permitted (the probe call succeeded)", action)
	case errors.Is(err, awserr.ErrUserNotFound):
		return c(OK, "%s permitted (a call for a user that cannot exist answered UserNotFoundException)", action)
	case errors.As(err, &denied):
		return c(Blocking, "%s is denied on %s to these credentials (%v): grant it to the worker's role before the campaign", action, pool, denied.Err)
	case errors.Is(err, awserr.ErrPoolNotFound):
		return c(Blocking, "the user pool %s does not exist (%s: %v)", pool, operation, err)
	case errors.Is(err, awserr.ErrPasswordRefused):
		return c(Warning, "%s permitted, but the pool's password policy refused a long random password of upper and lower case letters, digits and symbols (%v): random passwords may be refused in the campaign too", action, err)
	default:
		return c(Warning, "%s not proven: the probe call failed after the SDK's retries (%v); run the check again", action, err)
	}
}
