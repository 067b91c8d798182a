// Package ratelimit paces calls under a quota that real users share:
// Limiter adapts one token bucket's rate to throttles, Regions holds one
// per AWS Region, and Fleet shares one rate among replicas through Redis.
// The reasons for each constant are in docs/pacing.md.
package ratelimit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/resetq/resetq/clock"
	"golang.org/x/time/rate"
)

// Config sets a Limiter. Zero fields take the defaults given.
type Config struct {
	// Ceiling is the highest rate, in calls per second. Required.
	Ceiling float64
	// Floor is the lowest rate a cut goes to. Default 5% of Ceiling, at
	// least 0.5.
	Floor float64
	// Decrease multiplies, on a throttle, the lower of the rate and the
	// calls that succeeded in the last second. Default 0.97.
	Decrease float64
	// Increase is the climb per second away from the quota found.
	// Default 5% of Ceiling.
	Increase float64
	// CutInterval is the least time between two cuts. Default 1s.
	CutInterval time.Duration
	// Plateau and PlateauIncrease: between Plateau and 2-Plateau times the
	// quota found at the last cut, the climb is PlateauIncrease times it
	// per second. Defaults 0.9 and 0.003.
	Plateau, PlateauIncrease float64
	// SharedBelow: a throttle that finds fewer calls than this got through
	// in the last second means others share the quota (0: never). The cut
	// then goes Headroom calls/s under what got through (at most 20%
	// under), and the rate returns to SharedMargin under it over
	// SharedRecovery. Defaults 2 calls/s, 0.75 Headroom and 2 minutes.
	SharedBelow, Headroom, SharedMargin float64
	SharedRecovery                      time.Duration
	// Start is the first call's rate. Default Ceiling.
	Start float64
	// StartIncrease is the climb from Start per second. Default Increase.
	StartIncrease float64
	// ThrottleTarget is the share of its calls the limiter lets be
	// throttled over time when others share the quota (0: off).
	ThrottleTarget float64
	// Quota is the quota real users share, in calls per second, for a
	// start told of their usage (Observe). Default Ceiling.
	Quota float64
	// HarmBudget is the share of real users' calls the limiter lets be
	// throttled, judged each minute from the category's usage (Observe;
	// 0: off).
	HarmBudget float64
	// Cautious: the calls are owed no speed, only HarmBudget (the quota
	// categories beside the reset's). An informed start leaves real users
	// cautiousBursts standard deviations instead of startBursts; past
	// 2-Plateau times the quota found the climb is Increase only up to
	// half the ceiling, then PlateauIncrease times the higher of the two
	// (whatever the gain); and the cuts leave real users headroom after
	// spare minutes too (judgedBy).
	Cautious bool
	// Clock gives the time and the waits. Default clock.Real.
	Clock clock.Clock

	// knee is set from the usage minutes (Config.informed), never by
	// the caller.
	knee float64
}

// Defaults of Config's zero fields that do not depend on Ceiling.
const (
	DefaultDecrease        = 0.97
	DefaultCutInterval     = time.Second
	DefaultPlateau         = 0.9
	DefaultPlateauIncrease = 0.003
	DefaultHeadroom        = 2.0
	DefaultSharedRecovery  = 2 * time.Minute
)

// Validate checks c; it fills in nothing (see withDefaults).
func (c Config) Validate() error {
	if !(c.Ceiling > 0) || math.IsInf(c.Ceiling, 1) {
		return fmt.Errorf("rate ceiling must be a positive number, got %v", c.Ceiling)
	}
	for _, v := range []float64{c.Floor, c.Increase, c.PlateauIncrease, c.SharedBelow, c.Headroom, c.SharedMargin,
		c.Start, c.StartIncrease, c.ThrottleTarget, c.Quota, c.HarmBudget} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("rate limiter: a setting is negative or not a number: %v", v)
		}
	}
	if c.Decrease < 0 || c.Decrease >= 1 || c.Plateau < 0 || c.Plateau >= 1 {
		return fmt.Errorf("rate limiter: Decrease (%v) and Plateau (%v) must be in [0, 1)", c.Decrease, c.Plateau)
	}
	if c.CutInterval < 0 || c.SharedRecovery < 0 {
		return errors.New("rate limiter: CutInterval and SharedRecovery must not be negative")
	}
	return nil
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	c.Floor = min(cmp.Or(c.Floor, max(0.5, c.Ceiling*0.05)), c.Ceiling)
	c.Decrease = cmp.Or(c.Decrease, DefaultDecrease)
	c.Increase = cmp.Or(c.Increase, c.Ceiling*0.05)
	c.CutInterval = cmp.Or(c.CutInterval, DefaultCutInterval)
	c.Plateau = cmp.Or(c.Plateau, DefaultPlateau)
	c.PlateauIncrease = cmp.Or(c.PlateauIncrease, DefaultPlateauIncrease)
	c.Headroom = cmp.Or(c.Headroom, DefaultHeadroom)
	c.SharedRecovery = cmp.Or(c.SharedRecovery, DefaultSharedRecovery)
	c.SharedMargin = cmp.Or(c.SharedMargin, 0.75*c.Headroom)
	c.Start = min(cmp.Or(c.Start, c.Ceiling), c.Ceiling)
	c.StartIncrease = cmp.Or(c.StartIncrease, c.Increase)
	c.Quota = cmp.Or(c.Quota, c.Ceiling)
	c.Clock = cmp.Or[clock.Clock](c.Clock, clock.Real{})
	return c
}

// Limiter paces calls to one Region. The zero value is not usable; use New.
type Limiter struct {
	cfg    Config
	bucket *rate.Limiter

	mu        sync.Mutex
	p         pace        // zero until the first call
	limit     float64     // the rate last set on bucket
	oks       []time.Time // successes in the last second, oldest first
	calls     int         // answers since the last cut
	throttled int         // of which throttles
	lastHeard time.Time   // the last Throttled or Succeeded
	busySince time.Time   // start of the current run of calls (no gap over a second)

	own       [ownMinutes]ownMinute // own calls by minute, for Observe
	usage     usageState            // what the usage metrics told
	firstCall time.Time             // the limiter's first call
	others    map[int64]ownMinute   // other resetq processes' calls by Unix minute (CallRecord)
}

// New returns a Limiter at its ceiling.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Limiter{cfg: cfg, bucket: rate.NewLimiter(rate.Limit(cfg.Ceiling), 1), limit: cfg.Ceiling}, nil
}

// Wait blocks until a call may go, or ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	l.update(now)
	r := l.bucket.ReserveN(now, 1)
	at := now.Add(r.DelayFrom(now))
	l.called(at)
	l.mu.Unlock()
	if err := clock.Sleep(ctx, l.cfg.Clock, r.DelayFrom(now)); err != nil {
		r.CancelAt(l.cfg.Clock.Now())
		l.mu.Lock()
		if o := l.ownSlot(at); o != nil && o.calls > 0 {
			o.calls-- // the call never went
		}
		l.mu.Unlock()
		return err
	}
	return nil
}

// Allow reports whether a call may go at now, and takes its slot if so.
func (l *Limiter) Allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.update(now)
	if !l.bucket.AllowN(now, 1) {
		return false
	}
	l.called(now)
	return true
}

// Limit is the current rate in calls per second.
func (l *Limiter) Limit() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit, _ := l.update(l.cfg.Clock.Now())
	return limit
}

// Throttled cuts the rate after a TooManyRequestsException (see Config),
// at most once per CutInterval. It returns the new rate and whether it
// changed.
func (l *Limiter) Throttled() (float64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Clock.Now()
	l.update(now)
	l.calls++
	l.throttled++
	l.ownAt(now).throttled++
	paceCut := l.p.Cut && now.Sub(l.p.CutAt) < l.cfg.CutInterval
	d := now.Sub(l.usage.Cap.OwnAt)
	capDipped := !l.usage.Cap.OwnAt.IsZero() && d >= 0 && d < l.cfg.CutInterval
	if paceCut || capDipped {
		return l.update(now) // one burst's throttles: cut for already
	}
	busy := l.heard(now)
	found := float64(l.recentOKs(now))
	if h, ok := l.cfg.capThrottled(l.usage, l.limit, l.ranAt(now), now); ok {
		l.usage.Cap = h
		return l.update(now)
	}
	cfg := l.cfg.judgedBy(l.usage, now)
	if p, ok := cfg.cut(l.p, now, l.limit, found, busy, l.calls, l.throttled); ok {
		l.p, l.calls, l.throttled = p, 0, 0
	}
	return l.update(now)
}

// Succeeded notes a call that was not throttled. It returns the rate and
// whether it changed.
func (l *Limiter) Succeeded() (float64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Clock.Now()
	l.calls++
	l.heard(now)
	l.oks = append(l.oks, now)
	l.recentOKs(now)
	return l.update(now)
}

// heard notes a call's answer at now and returns how long calls have run
// without a gap of over a second.
func (l *Limiter) heard(now time.Time) time.Duration {
	if l.lastHeard.IsZero() || now.Sub(l.lastHeard) > time.Second {
		l.busySince = now
	}
	l.lastHeard = now
	return now.Sub(l.busySince)
}

// recentOKs drops successes older than a second and counts the rest.
func (l *Limiter) recentOKs(now time.Time) int {
	cut := now.Add(-time.Second)
	i := 0
	for i < len(l.oks) && !l.oks[i].After(cut) {
		i++
	}
	l.oks = l.oks[i:]
	return len(l.oks)
}

// ranAt is the rate the limiter's calls ran at when a throttle came at
// now, from the successes of the last second: their spacing, at
// most one more than their count (the throttled call ran too: with evenly
// spaced calls one fewer got through than ran, which their count alone
// would take for a rate a call a second lower). The spacing, not the span
// to the throttle: a throttle's answer may come at any time after the last
// success, and one that comes early made a span to it read calls trickling
// under the cap as calls at it. Their count with fewer than two.
func (l *Limiter) ranAt(now time.Time) float64 {
	n := l.recentOKs(now)
	if n < 2 {
		return float64(n)
	}
	span := l.oks[n-1].Sub(l.oks[0]).Seconds()
	if span <= 0 {
		return float64(n + 1)
	}
	return min(float64(n+1), float64(n-1)/span)
}

// update sets the bucket to the pace's rate at now. It returns the rate
// and whether it changed.
func (l *Limiter) update(now time.Time) (float64, bool) {
	if l.p.CutAt.IsZero() {
		l.p = l.cfg.start(now)
	}
	limit := l.cfg.limited(l.cfg.informed(l.usage, now).rateAt(l.p, now), l.usage, now)
	changed := limit != l.limit
	if changed {
		l.limit = limit
		l.bucket.SetLimitAt(now, rate.Limit(limit))
	}
	return limit, changed
}

// Regions holds one Limiter per AWS Region, created on first use with the
// same Config. It is safe for concurrent use.
type Regions struct {
	cfg      Config
	onChange func(region string, limit float64)

	mu          sync.Mutex
	limiters    map[string]*Limiter
	record      *CallRecord // nil: none
	onRecordErr func(error)

	othersMu   sync.Mutex // one reading of the records at a time (othersAt)
	others     map[string]map[int64]ownMinute
	othersRead time.Time
}

// NewRegions checks cfg and returns an empty set. onChange, if not nil, is
// called with a Region's rate whenever it is created or changes (for the
// resetq_ratelimit_limit gauge).
func NewRegions(cfg Config, onChange func(region string, limit float64)) (*Regions, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if onChange == nil {
		onChange = func(string, float64) {}
	}
	return &Regions{cfg: cfg, onChange: onChange, limiters: map[string]*Limiter{}}, nil
}

// Get returns the Region's Limiter.
func (r *Regions) Get(region string) *Limiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.limiters[region]
	if l == nil {
		l, _ = New(r.cfg) // cfg was checked by NewRegions
		r.limiters[region] = l
		r.onChange(region, l.Limit())
	}
	return l
}

// Wait blocks until a call to region may go, or ctx ends.
func (r *Regions) Wait(ctx context.Context, region string) error {
	return r.Get(region).Wait(ctx)
}

// Throttled cuts region's rate after a TooManyRequestsException.
func (r *Regions) Throttled(region string) {
	if limit, changed := r.Get(region).Throttled(); changed {
		r.onChange(region, limit)
	}
}

// Succeeded lets region's rate recover after a call that was not throttled.
func (r *Regions) Succeeded(region string) {
	if limit, changed := r.Get(region).Succeeded(); changed {
		r.onChange(region, limit)
	}
}
