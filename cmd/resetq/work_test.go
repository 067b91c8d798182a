package main

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/resetq/resetq/internal/redisserver"
	"github.com/resetq/resetq/internal/redisserver/redistest"
	"github.com/resetq/resetq/metrics"
	"github.com/resetq/resetq/ratelimit"
	"github.com/resetq/resetq/usagemetrics"
)

// TestCategoryFleets: with --redis-url the status checks' pacer is a
// fleet's too, on keys of its own beside the reset's (which keep theirs):
// each has its own pace, a throttle of the status checks cuts theirs
// alone, and their usage minutes reach the fleet (the start from real
// users' busiest minute) and the cap gauge.
func TestCategoryFleets(t *testing.T) {
	t.Parallel()
	redistest.Need(t)
	ctx := context.Background()
	srv, err := redisserver.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f := &workFlags{rate: 24, redisURL: srv.URL, redisKeyPrefix: "resetq", fleetSize: 3}
	m := metrics.New(prometheus.NewRegistry(), "test")
	fallbacks := &fallbackGauge{gauge: m.RateLimitFallback}
	log := slog.New(slog.DiscardHandler)
	const budget = 0.005
	reset, closeReset, err := newPacer(f, usagemetrics.RecoveryCategory,
		ratelimit.Config{Ceiling: f.rate, Start: 0.75 * f.rate, HarmBudget: budget, Quota: cognitoQuota}, nil, fallbacks, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeReset()
	reads, closeReads, err := newPacer(f, usagemetrics.ReadCategory, categoryPace(50, userReadQuota, budget), nil, fallbacks, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeReads()
	if _, ok := reads.(*ratelimit.Fleet); !ok {
		t.Fatalf("the status checks' pacer is a %T with --redis-url, want a fleet's", reads)
	}

	const scope = "111122223333/us-east-1"
	for _, p := range []scopePacer{reset, reads} {
		if err := p.Wait(ctx, scope); err != nil {
			t.Fatal(err)
		}
	}
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { admin.Close() })
	get := func(key string) string {
		t.Helper()
		v, err := admin.Get(ctx, key).Result()
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
		return v
	}
	resetPace, readPace := get("resetq:pace:"+scope), get("resetq:UserRead:pace:"+scope)
	if resetPace == readPace {
		t.Fatalf("the reset and the status checks share a pace %q", resetPace)
	}
	reads.Throttled(scope)
	if got := get("resetq:UserRead:pace:" + scope); got == readPace {
		t.Error("a throttle of the status checks left their pace uncut")
	}
	if got := get("resetq:pace:" + scope); got != resetPace {
		t.Errorf("a throttle of the status checks cut the reset's pace: %q, was %q", got, resetPace)
	}

	// Usage read before a Region's first status check sets where the
	// fleet starts: real users made 60 reads/s of the 120 in their busiest
	// minute, so it starts under the 60 they leave, not at 37.5.
	const fresh = "111122223333/eu-west-1"
	minute := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Minute)
	observeUsage(reads, m, fresh, usagemetrics.ReadCategory, []usagemetrics.Minute{{At: minute, Calls: 3600}})
	if err := reads.Wait(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if got, want := reads.(*ratelimit.Fleet).Rate(fresh), 60-2.5*math.Sqrt(60); math.Abs(got-want) > 0.01 {
		t.Errorf("the status checks' fleet starts at %v, want %v from real users' 60/s", got, want)
	}
	if n := testutil.CollectAndCount(m.CategoryCap); n != 1 {
		t.Errorf("%d usage cap series, want the status checks' in %s", n, fresh)
	}
}

// TestFallbackGauge: resetq_ratelimit_fallback is 1 while any category's
// fleet paces at its local share.
func TestFallbackGauge(t *testing.T) {
	t.Parallel()
	m := metrics.New(prometheus.NewRegistry(), "test")
	g := &fallbackGauge{gauge: m.RateLimitFallback}
	for _, step := range []struct {
		category string
		on       bool
		want     float64
	}{
		{usagemetrics.RecoveryCategory, true, 1},
		{usagemetrics.ReadCategory, true, 1},
		{usagemetrics.RecoveryCategory, false, 1},
		{usagemetrics.ReadCategory, false, 0},
	} {
		g.set(step.category, step.on)
		if got := testutil.ToFloat64(m.RateLimitFallback); got != step.want {
			t.Fatalf("after %s %v: gauge %v, want %v", step.category, step.on, got, step.want)
		}
	}
}
