package usagemetrics

import (
	"cmp"
	"context"
	"errors"
	"github.com/resetq/resetq/clock"
	"github.com/resetq/resetq/job"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultInterval is how often a Watcher reads each Region.
const DefaultInterval = time.Minute

// WatcherConfig sets up a Watcher.
type WatcherConfig struct {
	// Reader reads the usage metrics (awscheck.Client).
	Reader Reader
	// Categories are the quota categories read in each Region (default
	// RecoveryCategory alone).
	Categories []string
	// Interval is how often each Region is read (default DefaultInterval).
	Interval time.Duration
	// Lookback is how far back a reading looks for the latest minute with
	// data (default DefaultLookback).
	Lookback time.Duration
	// Log receives one warning per Region when reading fails.
	Log *slog.Logger
	// OnRead, if not nil, receives each Region's minutes of each category
	// with data after each reading, oldest first (the limiters' outside
	// signal).
	OnRead func(region, category string, minutes []Minute)
	// Clock gives the time and the ticker (default clock.Real).
	Clock clock.Clock
}

func (c WatcherConfig) withDefaults() WatcherConfig {
	if len(c.Categories) == 0 {
		c.Categories = []string{RecoveryCategory}
	}
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.Lookback = cmp.Or(c.Lookback, DefaultLookback)
	c.Log = cmp.Or(c.Log, slog.New(slog.DiscardHandler))
	c.Clock = cmp.Or[clock.Clock](c.Clock, clock.Real{})
	return c
}

// Validate reports a WatcherConfig that cannot work: no Reader, or a negative
// Interval or Lookback (zero is the default).
func (c WatcherConfig) Validate() error {
	switch {
	case c.Reader == nil:
		return errors.New("usage watcher: no Reader")
	case c.Interval < 0:
		return errors.New("usage watcher: negative Interval")
	case c.Lookback < 0:
		return errors.New("usage watcher: negative Lookback")
	}
	return nil
}

// Watcher reads each Region it is given and sets its gauges: the latest
// minute's calls and throttles, everyone's. The dashboard subtracts
// resetq's own counts to show real users'. Add is safe for concurrent use.
type Watcher struct {
	cfg                  WatcherConfig
	calls, throttles, at *prometheus.GaugeVec

	mu      sync.Mutex
	regions map[watchKey]*regionState
	added   chan struct{} // a Region was added: read it now
}

// watchKey is one category in one Region (or job.Scope key).
type watchKey struct{ region, category string }

type regionState struct {
	denied bool // a missing permission: not read again
	warned bool // a failure was logged; the next success clears it
}

// NewWatcher returns a Watcher whose gauges are registered on reg. It
// panics when cfg does not Validate, as it does when the gauges are
// registered twice.
func NewWatcher(cfg WatcherConfig, reg prometheus.Registerer) *Watcher {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	labels := []string{"account", "region", "category"}
	w := &Watcher{cfg: cfg, regions: map[watchKey]*regionState{}, added: make(chan struct{}, 1),
		calls: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resetq_usage_calls_per_minute",
			Help: "Calls of the quota category in the account and Region in the latest minute CloudWatch has (AWS/Usage CallCount): real users' and every resetq's."}, labels),
		throttles: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resetq_usage_throttles_per_minute",
			Help: "Throttled calls of the quota category in the account and Region in that minute (AWS/Usage ThrottleCount): real users' and every resetq's."}, labels),
		at: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resetq_usage_minute_timestamp_seconds",
			Help: "Start of the minute the usage gauges are for, in Unix seconds."}, labels),
	}
	reg.MustRegister(w.calls, w.throttles, w.at)
	return w
}

// Add makes Run read each category of region at once, and every Interval
// after.
func (w *Watcher) Add(region string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.cfg.Categories {
		k := watchKey{region, c}
		if w.regions[k] == nil {
			w.regions[k] = &regionState{}
			select {
			case w.added <- struct{}{}:
			default:
			}
		}
	}
}

// Run reads every Region each Interval, and a Region just added at once,
// until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := w.cfg.Clock.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		w.Poll(ctx, w.cfg.Clock.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-w.added:
		}
	}
}

// Poll reads every category of every Region once, as of now.
func (w *Watcher) Poll(ctx context.Context, now time.Time) {
	w.mu.Lock()
	var keys []watchKey
	for k, st := range w.regions {
		if !st.denied {
			keys = append(keys, k)
		}
	}
	w.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].region < keys[j].region || keys[i].region == keys[j].region && keys[i].category < keys[j].category
	})
	for _, k := range keys {
		w.poll(ctx, k, now)
	}
}

func (w *Watcher) poll(ctx context.Context, k watchKey, now time.Time) {
	minutes, err := Read(ctx, w.cfg.Reader, k.region, k.category, w.cfg.Lookback, now)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		w.fail(k, err)
		return
	}
	last := minutes[len(minutes)-1]
	w.mu.Lock()
	w.regions[k].warned = false
	w.mu.Unlock()
	s := job.ParseScope(k.region)
	w.calls.WithLabelValues(s.Account, s.Region, k.category).Set(last.Calls)
	w.throttles.WithLabelValues(s.Account, s.Region, k.category).Set(last.Throttles)
	w.at.WithLabelValues(s.Account, s.Region, k.category).Set(float64(last.At.Unix()))
	if w.cfg.OnRead != nil {
		w.cfg.OnRead(k.region, k.category, minutes)
	}
}

// fail removes the category's gauges in the Region and warns once until a
// reading succeeds; a missing permission stops its readings.
func (w *Watcher) fail(k watchKey, err error) {
	region := k.region
	s := job.ParseScope(region)
	for _, g := range []*prometheus.GaugeVec{w.calls, w.throttles, w.at} {
		g.DeleteLabelValues(s.Account, s.Region, k.category)
	}
	state, action := State(err)
	w.mu.Lock()
	st := w.regions[k]
	warn := !st.warned
	st.warned = true
	st.denied = state == StateDenied
	w.mu.Unlock()
	switch {
	case !warn:
	case state == StateDenied:
		w.cfg.Log.Warn("real users' usage not read: permission missing; the usage gauges stay absent", "region", region, "action", action)
	case state == StateNoData:
		w.cfg.Log.Warn("no usage data in CloudWatch yet; the usage gauges stay absent until some comes", "region", region, "category", k.category)
	default:
		w.cfg.Log.Warn("reading usage metrics failed; the usage gauges stay absent until a reading succeeds", "region", region, "error", err)
	}
}
