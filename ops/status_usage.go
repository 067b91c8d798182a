package ops

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Usage states.
const (
	UsageOK     = "ok"      // the figures of the latest minute CloudWatch has
	UsageNoData = "no_data" // no point in the lookback
	UsageDenied = "denied"  // the credentials may not read the metrics
	UsageFailed = "error"   // any other failure
)

// UsageEveryone is whose figures Usage holds: the category's calls and
// throttles in the Region, real users' and every resetq's together.
const UsageEveryone = "everyone"

// Usage is the latest minute CloudWatch has of a quota category's usage in
// a Region (AWS/Usage CallCount and ThrottleCount, per minute).
type Usage struct {
	Region    string     `json:"region"`
	Category  string     `json:"category"`
	Whose     string     `json:"whose"` // always UsageEveryone: status does not know resetq's own counts
	State     string     `json:"state"`
	Minute    *time.Time `json:"minute,omitempty"` // start of the minute of the figures
	Calls     *float64   `json:"calls_per_minute,omitempty"`
	Throttles *float64   `json:"throttles_per_minute,omitempty"`
	Action    string     `json:"missing_permission,omitempty"` // the IAM action, when denied
	Error     string     `json:"error,omitempty"`
}

// UsageStatus reads the latest minute of usage per Region for status: a
// Region is read again once its reading is Every old, and never again once
// denied. The zero value of each field but Reader has a default; it is not
// safe for concurrent use.
type UsageStatus struct {
	// Reader reads the usage metrics (awscheck.Client).
	Reader UsageReader
	// Category is the quota category (default UserAccountRecovery).
	Category string
	// Lookback is how far back a reading looks for a minute with data
	// (default 15m: the metrics arrive a few minutes late).
	Lookback time.Duration
	// Every is how old a reading gets before it is read again (default 1m).
	Every time.Duration
	// Timeout bounds one Region's reading (default 10s).
	Timeout time.Duration

	last map[string]Usage
	read map[string]time.Time
}

// Read returns the usage of each of regions, in order, as of now.
func (s *UsageStatus) Read(ctx context.Context, regions []string, now time.Time) []Usage {
	if s.last == nil {
		s.last, s.read = map[string]Usage{}, map[string]time.Time{}
	}
	out := make([]Usage, 0, len(regions))
	for _, r := range regions {
		u, ok := s.last[r]
		if !ok || (u.State != UsageDenied && now.Sub(s.read[r]) >= valOr(s.Every, time.Minute)) {
			u = s.readRegion(ctx, r, now)
			s.last[r], s.read[r] = u, now
		}
		out = append(out, u)
	}
	return out
}

func (s *UsageStatus) readRegion(ctx context.Context, region string, now time.Time) Usage {
	ctx, cancel := context.WithTimeout(ctx, valOr(s.Timeout, 10*time.Second))
	defer cancel()
	category := s.Category
	if category == "" {
		category = RecoveryCategory
	}
	q := UsageQuery{Category: category, Metric: "CallCount", Period: time.Minute,
		Start: now.Add(-valOr(s.Lookback, 15*time.Minute)).Truncate(time.Minute), End: now.Truncate(time.Minute)}
	calls, err := s.Reader.Usage(ctx, region, q)
	var throttles []UsagePoint
	if err == nil && len(calls) > 0 {
		q.Metric = "ThrottleCount"
		throttles, err = s.Reader.Usage(ctx, region, q)
	}
	if err == nil && len(calls) == 0 {
		err = ErrNoData
	}
	return LatestUsage(region, category, calls, throttles, err)
}

// LatestUsage is the Usage of the last of calls (oldest first) and the
// throttles of its minute (none when throttles has no point for it), or
// the state err stands for.
func LatestUsage(region, category string, calls, throttles []UsagePoint, err error) Usage {
	u := Usage{Region: region, Category: category, Whose: UsageEveryone, State: UsageOK}
	var denied *DeniedError
	switch {
	case errors.As(err, &denied):
		u.State, u.Action = UsageDenied, denied.Action
		return u
	case errors.Is(err, ErrNoData):
		u.State = UsageNoData
		return u
	case err != nil:
		u.State, u.Error = UsageFailed, err.Error()
		return u
	case len(calls) == 0:
		u.State = UsageNoData
		return u
	}
	last := calls[len(calls)-1]
	thr := 0.0 // no ThrottleCount point for the minute: nothing was throttled
	for _, p := range throttles {
		if p.At.Equal(last.At) {
			thr = p.Value
		}
	}
	at := last.At.UTC()
	u.Minute, u.Calls, u.Throttles = &at, &last.Value, &thr
	return u
}

// Text is u as one line for people, starting with the Region.
func (u Usage) Text() string {
	switch u.State {
	case UsageOK:
		return fmt.Sprintf("%s  %s %s (everyone's: real users' and every resetq's together) in the minute of %s: %g calls/min, %g throttled/min",
			u.Region, u.Category, UsageNamespace, u.Minute.Format("15:04 UTC"), *u.Calls, *u.Throttles)
	case UsageDenied:
		return fmt.Sprintf("%s  %s usage not read: permission %s missing (grant it to see everyone's calls and throttles)", u.Region, u.Category, u.Action)
	case UsageNoData:
		return fmt.Sprintf("%s  %s usage: no data in CloudWatch %s over the last minutes (no calls, or not published yet)", u.Region, u.Category, UsageNamespace)
	}
	return fmt.Sprintf("%s  %s usage not read: %s", u.Region, u.Category, u.Error)
}

func valOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
