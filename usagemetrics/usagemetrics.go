// Package usagemetrics reads what Cognito's usage metrics (CloudWatch AWS/Usage)
// say of a quota category: every call and every throttle in a Region, real
// users' and every resetq's alike, per minute. Read is the one reading
// that status and the worker's gauges (Watcher) share; awscheck.Client is
// the Reader that calls CloudWatch.
package usagemetrics

import (
	"context"
	"errors"
	"time"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/userpool"
)

// Cognito's usage metrics.
const (
	Namespace        = "AWS/Usage"
	Service          = "Cognito User Pools"
	RecoveryCategory = userpool.CategoryRecovery // AdminResetUserPassword and ForgotPassword share it
	UpdateCategory   = userpool.CategoryUpdate   // AdminUserGlobalSignOut, AdminDisableUser, and apps' profile updates
	ReadCategory     = userpool.CategoryRead     // AdminGetUser (the status check), and apps' reads
	CreationCategory = userpool.CategoryCreation // AdminCreateUser (re-invitations), and sign-ups
	CallCount        = "CallCount"
	ThrottleCount    = "ThrottleCount"
)

// DefaultLookback is how far back a reading looks for a minute with data:
// the metrics arrive a few minutes late.
const DefaultLookback = 15 * time.Minute

// Query asks for a usage metric of a quota category.
type Query struct {
	Category   string // e.g. UserAccountRecovery
	Metric     string // CallCount or ThrottleCount
	Start, End time.Time
	Period     time.Duration
}

// Point is one period's sum of a usage metric.
type Point struct {
	At    time.Time
	Value float64
}

// Reader reads Cognito's usage metrics; awscheck.Client is one.
type Reader interface {
	Usage(ctx context.Context, region string, q Query) ([]Point, error)
}

// NewQuery asks for the per-minute sums of metric over the whole minutes
// of lookback before now.
func NewQuery(category, metric string, lookback time.Duration, now time.Time) Query {
	return Query{Category: category, Metric: metric, Period: time.Minute,
		Start: now.Add(-lookback).Truncate(time.Minute), End: now.Truncate(time.Minute)}
}

// Minute is one minute of a category's usage in a Region.
type Minute struct {
	At               time.Time // the minute's start
	Calls, Throttles float64
}

// Read reads the minutes of category's usage in region over lookback
// before now, oldest first: CallCount, then ThrottleCount when there were
// calls. No call in the lookback is awserr.ErrNoData; credentials that may
// not read are an *awserr.DeniedError.
func Read(ctx context.Context, r Reader, region, category string, lookback time.Duration, now time.Time) ([]Minute, error) {
	calls, err := r.Usage(ctx, region, NewQuery(category, CallCount, lookback, now))
	if err != nil {
		return nil, err
	}
	if len(calls) == 0 {
		return nil, awserr.ErrNoData
	}
	throttles, err := r.Usage(ctx, region, NewQuery(category, ThrottleCount, lookback, now))
	if err != nil {
		return nil, err
	}
	// No ThrottleCount point for a minute: nothing was throttled.
	thr := map[int64]float64{}
	for _, p := range throttles {
		thr[p.At.Unix()] = p.Value
	}
	minutes := make([]Minute, len(calls))
	for i, p := range calls {
		minutes[i] = Minute{At: p.At, Calls: p.Value, Throttles: thr[p.At.Unix()]}
	}
	return minutes, nil
}

// States of a reading.
const (
	StateOK     = "ok"      // the reading has minutes
	StateNoData = "no_data" // no call in the lookback
	StateDenied = "denied"  // the credentials may not read the metrics
	StateFailed = "error"   // any other failure
)

// State is the state of a reading that returned err, and the missing IAM
// action when it is StateDenied.
func State(err error) (state, action string) {
	var denied *awserr.DeniedError
	switch {
	case err == nil:
		return StateOK, ""
	case errors.As(err, &denied):
		return StateDenied, denied.Action
	case errors.Is(err, awserr.ErrNoData):
		return StateNoData, ""
	}
	return StateFailed, ""
}
