package enqueue

import (
	"cmp"
	"context"
	"fmt"
	"github.com/resetq/resetq/clock"
	"math/rand/v2"
	"time"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/retry"
)

// UserPager reads one page of a pool's usernames; cognito.Lister is one.
// Its errors are the service's: List retries or gives up by their code.
type UserPager interface {
	UsernamesPage(ctx context.Context, pool, filter, group, token string) (names []string, next string, err error)
}

// Pacer paces list calls; *ratelimit.Limiter is one.
type Pacer interface {
	Wait(context.Context) error
	Throttled() (float64, bool)
	Succeeded() (float64, bool)
}

// Listing is a user listing: every user of a pool (optionally filtered), or
// of one group.
type Listing struct {
	API    UserPager
	Pacer  Pacer
	Pool   string
	Filter string // ListUsers filter, e.g. `email ^= "a"`; only without Group
	Group  string // ListUsersInGroup when set
	// Retries is how many times a page that failed with something other
	// than a throttle is tried again (default 5). Throttled pages are
	// retried until ctx ends.
	Retries int
	// Backoff is the first wait after a failed call (default 200ms);
	// it doubles per consecutive failure up to 5s.
	Backoff time.Duration
}

// ListError is a listing that failed because of what was asked (no such
// pool or group, a bad filter, no permission): a usage error.
type ListError struct{ Err error }

func (e *ListError) Error() string { return e.Err.Error() }
func (e *ListError) Unwrap() error { return e.Err }

// withDefaults returns l with its zero Retries and Backoff set to their
// defaults.
func (l Listing) withDefaults() Listing {
	l.Retries = cmp.Or(l.Retries, DefaultRetries)
	l.Backoff = cmp.Or(l.Backoff, DefaultBackoff)
	return l
}

// List calls fn with each user in order. A throttled page
// (TooManyRequestsException) is asked again with the same pagination
// token after a wait, so the walk resumes where it was.
func (l Listing) List(ctx context.Context, fn func(Input) error) error {
	l = l.withDefaults()
	retries, backoff := l.Retries, l.Backoff
	token := ""
	n := 0
	for page := 1; ; page++ {
		failures, throttles := 0, 0
		var users []string
		var next string
		for {
			if err := l.Pacer.Wait(ctx); err != nil {
				return err
			}
			var err error
			users, next, err = l.API.UsernamesPage(ctx, l.Pool, l.Filter, l.Group, token)
			if err == nil {
				l.Pacer.Succeeded()
				break
			}
			switch awserr.Code(err) {
			case "TooManyRequestsException":
				l.Pacer.Throttled()
				throttles++
				if err := pause(ctx, backoff, throttles); err != nil {
					return err
				}
				continue
			case "ResourceNotFoundException", "InvalidParameterException", "NotAuthorizedException",
				"AccessDeniedException", "UnrecognizedClientException":
				return &ListError{fmt.Errorf("list users of %s (page %d): %w", l.Pool, page, err)}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			if failures > retries {
				return fmt.Errorf("list users of %s (page %d, %d tries): %w", l.Pool, page, failures, err)
			}
			if err := pause(ctx, backoff, failures); err != nil {
				return err
			}
		}
		for _, u := range users {
			n++
			if err := fn(Input{Line: n, Username: u}); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// pause waits before try n+1: base doubled per failure up to 5s, with
// jitter of up to a half; it returns ctx's error if ctx ends first.
func pause(ctx context.Context, base time.Duration, failures int) error {
	return clock.Sleep(ctx, clock.Real{}, retry.Curve{Base: base, Max: 5 * time.Second}.Delay(failures, rand.Float64()))
}
