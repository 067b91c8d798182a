// Package usagewatch exports what Cognito's usage metrics say of a quota
// category while resetq works: every call and every throttle of the
// category in the Region, real users' and resetq's alike, per minute.
// The dashboard subtracts resetq's own counts to show real users' calls
// and real users' throttles.
package usagewatch

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resetq/resetq/ops"
)

// Config sets up a Watcher.
type Config struct {
	// Reader reads the usage metrics (awscheck.Client).
	Reader ops.UsageReader
	// Category is the quota category (default UserAccountRecovery).
	Category string
	// Interval is how often each Region is read (default 60s).
	Interval time.Duration
	// Lookback is how far back a reading looks for the latest minute with
	// data (default 15m: the metrics arrive a few minutes late).
	Lookback time.Duration
	// Log receives one warning per Region when reading fails.
	Log *slog.Logger
	// OnRead, if not nil, receives each Region's minutes with data after
	// each reading, oldest first (the limiter's outside signal).
	OnRead func(region string, minutes []Minute)
}

// Minute is one minute of the category's usage in a Region.
type Minute struct {
	At               time.Time // the minute's start
	Calls, Throttles float64
}

// Watcher reads each Region it is given and sets its gauges. Add is safe
// for concurrent use.
type Watcher struct {
	cfg                  Config
	calls, throttles, at *prometheus.GaugeVec

	mu      sync.Mutex
	regions map[string]*regionState
	added   chan struct{} // a Region was added: read it now
}

type regionState struct {
	denied bool // a missing permission: not read again
	warned bool // a failure was logged; the next success clears it
}

// New returns a Watcher whose gauges are registered on reg.
func New(cfg Config, reg prometheus.Registerer) *Watcher {
	if cfg.Category == "" {
		cfg.Category = ops.RecoveryCategory
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 15 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	labels := []string{"region", "category"}
	w := &Watcher{cfg: cfg, regions: map[string]*regionState{}, added: make(chan struct{}, 1),
		calls: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resetq_usage_calls_per_minute",
			Help: "Calls of the quota category in the Region in the latest minute CloudWatch has (AWS/Usage CallCount): real users' and every resetq's."}, labels),
		throttles: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resetq_usage_throttles_per_minute",
			Help: "Throttled calls of the quota category in the Region in that minute (AWS/Usage ThrottleCount): real users' and every resetq's."}, labels),
		at: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resetq_usage_minute_timestamp_seconds",
			Help: "Start of the minute the usage gauges are for, in Unix seconds."}, labels),
	}
	reg.MustRegister(w.calls, w.throttles, w.at)
	return w
}

// Add makes Run read region at once, and every Interval after.
func (w *Watcher) Add(region string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.regions[region] == nil {
		w.regions[region] = &regionState{}
		select {
		case w.added <- struct{}{}:
		default:
		}
	}
}

// Run reads every Region each Interval, and a Region just added at once,
// until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		w.Poll(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.added:
		}
	}
}

// Poll reads every Region once, as of now.
func (w *Watcher) Poll(ctx context.Context, now time.Time) {
	w.mu.Lock()
	var regions []string
	for r, st := range w.regions {
		if !st.denied {
			regions = append(regions, r)
		}
	}
	w.mu.Unlock()
	sort.Strings(regions)
	for _, r := range regions {
		w.poll(ctx, r, now)
	}
}

func (w *Watcher) poll(ctx context.Context, region string, now time.Time) {
	q := ops.UsageQuery{Category: w.cfg.Category, Start: now.Add(-w.cfg.Lookback).Truncate(time.Minute),
		End: now.Truncate(time.Minute), Period: time.Minute}
	q.Metric = "CallCount"
	calls, err := w.cfg.Reader.Usage(ctx, region, q)
	var throttles []ops.UsagePoint
	if err == nil && len(calls) > 0 {
		q.Metric = "ThrottleCount"
		throttles, err = w.cfg.Reader.Usage(ctx, region, q)
	}
	if ctx.Err() != nil {
		return
	}
	if err == nil && len(calls) == 0 {
		err = ops.ErrNoData
	}
	if err != nil {
		w.fail(region, err)
		return
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
	last := minutes[len(minutes)-1]
	w.mu.Lock()
	w.regions[region].warned = false
	w.mu.Unlock()
	w.calls.WithLabelValues(region, w.cfg.Category).Set(last.Calls)
	w.throttles.WithLabelValues(region, w.cfg.Category).Set(last.Throttles)
	w.at.WithLabelValues(region, w.cfg.Category).Set(float64(last.At.Unix()))
	if w.cfg.OnRead != nil {
		w.cfg.OnRead(region, minutes)
	}
}

// fail removes the Region's gauges and warns once until a reading succeeds;
// a missing permission stops the Region's readings.
func (w *Watcher) fail(region string, err error) {
	for _, g := range []*prometheus.GaugeVec{w.calls, w.throttles, w.at} {
		g.DeleteLabelValues(region, w.cfg.Category)
	}
	var denied *ops.DeniedError
	w.mu.Lock()
	st := w.regions[region]
	warn := !st.warned
	st.warned = true
	isDenied := errors.As(err, &denied)
	st.denied = isDenied
	w.mu.Unlock()
	switch {
	case !warn:
	case isDenied:
		w.cfg.Log.Warn("real users' usage not read: permission missing; the usage gauges stay absent", "region", region, "action", denied.Action)
	case errors.Is(err, ops.ErrNoData):
		w.cfg.Log.Warn("no usage data in CloudWatch yet; the usage gauges stay absent until some comes", "region", region, "category", w.cfg.Category)
	default:
		w.cfg.Log.Warn("reading usage metrics failed; the usage gauges stay absent until a reading succeeds", "region", region, "error", err)
	}
}
