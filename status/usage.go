package status

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/usagemetrics"
)

// UsageEveryone is whose figures Usage holds: the category's calls and
// throttles in the Region, real users' and every resetq's together.
const UsageEveryone = "everyone"

// Usage is the latest minute CloudWatch has of a quota category's usage in
// a Region (AWS/Usage CallCount and ThrottleCount, per minute).
type Usage struct {
	Account   string     `json:"account,omitempty"` // the account read through a role; "" for the default credentials'
	Region    string     `json:"region"`
	Category  string     `json:"category"`
	Whose     string     `json:"whose"`            // always UsageEveryone: status does not know resetq's own counts
	State     string     `json:"state"`            // usagemetrics.StateOK, StateNoData, StateDenied or StateFailed
	Minute    *time.Time `json:"minute,omitempty"` // start of the minute of the figures
	Calls     *float64   `json:"calls_per_minute,omitempty"`
	Throttles *float64   `json:"throttles_per_minute,omitempty"`
	Action    string     `json:"missing_permission,omitempty"` // the IAM action, when denied
	Error     string     `json:"error,omitempty"`
}

// Defaults of a UsageCache.
const (
	DefaultUsageEvery   = time.Minute
	DefaultUsageTimeout = 10 * time.Second
)

// UsageCache reads the latest minute of usage per Region for status: a
// Region is read again once its reading is Every old, and never again once
// denied. The zero value of each field but Reader has a default; it is not
// safe for concurrent use.
type UsageCache struct {
	// Reader reads the usage metrics (awscheck.Client).
	Reader usagemetrics.Reader
	// Category is the quota category (default usagemetrics.RecoveryCategory).
	Category string
	// Lookback is how far back a reading looks for a minute with data
	// (default usagemetrics.DefaultLookback).
	Lookback time.Duration
	// Every is how old a reading gets before it is read again (default
	// DefaultUsageEvery).
	Every time.Duration
	// Timeout bounds one Region's reading (default DefaultUsageTimeout).
	Timeout time.Duration

	last map[string]Usage
	read map[string]time.Time
}

func (s UsageCache) withDefaults() UsageCache {
	s.Category = cmp.Or(s.Category, usagemetrics.RecoveryCategory)
	s.Lookback = cmp.Or(s.Lookback, usagemetrics.DefaultLookback)
	s.Every = cmp.Or(s.Every, DefaultUsageEvery)
	s.Timeout = cmp.Or(s.Timeout, DefaultUsageTimeout)
	return s
}

// Read returns the usage of each of regions (Regions, or job.Scope keys),
// in order, as of now.
func (s *UsageCache) Read(ctx context.Context, regions []string, now time.Time) []Usage {
	if s.last == nil {
		s.last, s.read = map[string]Usage{}, map[string]time.Time{}
	}
	cfg := s.withDefaults()
	out := make([]Usage, 0, len(regions))
	for _, r := range regions {
		u, ok := s.last[r]
		if !ok || (u.State != usagemetrics.StateDenied && now.Sub(s.read[r]) >= cfg.Every) {
			u = cfg.readRegion(ctx, r, now)
			s.last[r], s.read[r] = u, now
		}
		out = append(out, u)
	}
	return out
}

func (s UsageCache) readRegion(ctx context.Context, region string, now time.Time) Usage {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	minutes, err := usagemetrics.Read(ctx, s.Reader, region, s.Category, s.Lookback, now)
	return LatestUsage(region, s.Category, minutes, err)
}

// LatestUsage is the Usage of the last of minutes (oldest first), or the
// state err stands for. scope is a Region or a job.Scope key.
func LatestUsage(scope, category string, minutes []usagemetrics.Minute, err error) Usage {
	sc := job.ParseScope(scope)
	u := Usage{Account: sc.Account, Region: sc.Region, Category: category, Whose: UsageEveryone}
	u.State, u.Action = usagemetrics.State(err)
	switch {
	case u.State == usagemetrics.StateFailed:
		u.Error = err.Error()
		return u
	case u.State != usagemetrics.StateOK:
		return u
	case len(minutes) == 0:
		u.State = usagemetrics.StateNoData
		return u
	}
	last := minutes[len(minutes)-1]
	at := last.At.UTC()
	u.Minute, u.Calls, u.Throttles = &at, &last.Calls, &last.Throttles
	return u
}

// Text is u as one line for people, starting with the Region (the
// account and the Region, for an account of --pool-roles).
func (u Usage) Text() string {
	where := job.Scope{Account: u.Account, Region: u.Region}.Key()
	switch u.State {
	case usagemetrics.StateOK:
		return fmt.Sprintf("%s  %s %s (everyone's: real users' and every resetq's together) in the minute of %s: %g calls/min, %g throttled/min",
			where, u.Category, usagemetrics.Namespace, u.Minute.Format("15:04 UTC"), *u.Calls, *u.Throttles)
	case usagemetrics.StateDenied:
		return fmt.Sprintf("%s  %s usage not read: permission %s missing (grant it to see everyone's calls and throttles)", where, u.Category, u.Action)
	case usagemetrics.StateNoData:
		return fmt.Sprintf("%s  %s usage: no data in CloudWatch %s over the last minutes (no calls, or not published yet)", where, u.Category, usagemetrics.Namespace)
	}
	return fmt.Sprintf("%s  %s usage not read: %s", where, u.Category, u.Error)
}
