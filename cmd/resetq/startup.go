package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkretry "github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/clock"
	"github.com/resetq/resetq/retry"
)

// startupTries is how many times a start-up read is made while its error
// may pass; each read is itself the SDK's 3 attempts.
const startupTries = 4

// startupCurve spaces the start-up reads: 1-2 s, 2-4 s, then 4-8 s (14 s
// at most; Max only matters if startupTries grows). With the SDK's own
// waits inside the 4 reads (up to 3 s each on throttling, under 0.2 s on a
// 5xx), a fault that does not pass ends in exit 1 after about 25 s at
// most, plus the calls' own time.
var startupCurve = retry.Curve{Base: 2 * time.Second, Max: 10 * time.Second}

// startup makes the reads a command starts from (the queues' settings, the
// DLQ's URL) again while SQS faults or throttles, as the receive loop waits
// such faults out; the zero value is not usable.
type startup struct {
	clk  clock.Clock
	draw func() float64                // the jitter draw, in [0,1)
	warn func(msg string, args ...any) // one line per retry; may be nil
}

// newStartup is a startup on the wall clock that warns through warn.
func newStartup(warn func(msg string, args ...any)) startup {
	return startup{clk: clock.Real{}, draw: rand.Float64, warn: warn}
}

// startupRead is read's result, with read tried up to startupTries times
// while its error may pass; the error, named by what and the number of
// tries, goes through startupError.
func startupRead[T any](ctx context.Context, s startup, what string, read func(context.Context) (T, error)) (T, error) {
	for try := 1; ; try++ {
		v, err := read(ctx)
		if err == nil {
			return v, nil
		}
		if try == startupTries || !mayPassAtStartup(err) {
			if try > 1 {
				what = fmt.Sprintf("%s (%s)", what, tries(try))
			}
			return v, startupError(what, err)
		}
		d := startupCurve.Delay(try, s.draw())
		if s.warn != nil {
			s.warn("start-up read failed; retrying", "read", what, "error", err, "tries", try, "max_tries", startupTries, "retry_in", d)
		}
		if clock.Sleep(ctx, s.clk, d) != nil {
			return v, startupError(fmt.Sprintf("%s (%s, interrupted)", what, tries(try)), err)
		}
	}
}

// tries is "1 try" or "n tries".
func tries(n int) string {
	if n == 1 {
		return "1 try"
	}
	return fmt.Sprintf("%d tries", n)
}

// mayPassAtStartup reports whether err is a fault that may pass if the
// read is made again: what the SDK's retryer takes for retryable or
// throttling (5xx, connection errors, throttling codes). A usage error of
// startupError, missing credentials, an ended context and other 4xx
// answers are not.
func mayPassAtStartup(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, awserr.ErrCredentials), startupUsageCode(awserr.Code(err)):
		return false
	}
	return sdkretry.IsErrorRetryables(sdkretry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary ||
		sdkretry.IsErrorThrottles(sdkretry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}
