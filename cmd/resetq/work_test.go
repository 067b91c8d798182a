package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/resetq/resetq/clock/clocktest"
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
	reset, closeReset, err := newPacer(context.Background(), f, usagemetrics.RecoveryCategory,
		ratelimit.Config{Ceiling: f.rate, Start: 0.75 * f.rate, HarmBudget: budget, Quota: cognitoQuota}, nil, fallbacks, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeReset()
	reads, closeReads, err := newPacer(context.Background(), f, usagemetrics.ReadCategory, categoryPace(50, userReadQuota, budget, false), nil, fallbacks, nil, log)
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
	// minute, so it starts under the 60 they leave, not at 37.5: 4 standard
	// deviations of their bursts under, since status checks are owed no
	// speed (ratelimit.Config.Cautious).
	const fresh = "111122223333/eu-west-1"
	minute := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Minute)
	observeUsage(reads, m, fresh, usagemetrics.ReadCategory, []usagemetrics.Minute{{At: minute, Calls: 3600}})
	if err := reads.Wait(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if got, want := reads.(*ratelimit.Fleet).Rate(fresh), 60-4*math.Sqrt(60); math.Abs(got-want) > 0.01 {
		t.Errorf("the status checks' fleet starts at %v, want %v from real users' 60/s", got, want)
	}
	if n := testutil.CollectAndCount(m.CategoryCap); n != 1 {
		t.Errorf("%d usage cap series, want the status checks' in %s", n, fresh)
	}
	// The room they leave: 120 less their 60, less the margin (1.5).
	if got := testutil.ToFloat64(m.CategoryRoom.WithLabelValues("111122223333", "eu-west-1", usagemetrics.ReadCategory)); got != 58.5 {
		t.Errorf("resetq_category_room %v, want the 60 real users leave of 120, less 1.5", got)
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

// TestKeepCallRecord: a replica without Redis records its calls in
// --state-dir every recordEvery (a process killed without its exit leaves
// them to its successor), at each usage reading and at exit; a folder it
// cannot make is one warning, and the worker runs on.
func TestKeepCallRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	f := workFlags{stateDir: dir, harmBudget: 0.005, usageMetrics: true, rate: 10}
	local, err := ratelimit.NewRegions(categoryPace(10, 30, 0.005, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Now())
	save := keepCallRecord(context.Background(), &f, usagemetrics.RecoveryCategory, local, nil, clk, slog.New(slog.DiscardHandler))
	if err := local.Wait(context.Background(), "111/us-east-1"); err != nil {
		t.Fatal(err)
	}
	record := func() string {
		files, _ := filepath.Glob(filepath.Join(dir, usagemetrics.RecoveryCategory+"-*.json"))
		if len(files) != 1 {
			return fmt.Sprint(files)
		}
		b, _ := os.ReadFile(files[0])
		return string(b)
	}
	holdsCall := func(s string) bool {
		return strings.Contains(s, `"111/us-east-1":[{"minute"`) && strings.Contains(s, `"calls":1`)
	}
	clk.Advance(recordEvery - time.Millisecond)
	if got := record(); holdsCall(got) {
		t.Fatalf("the record holds the call before recordEvery: %s", got)
	}
	clk.Advance(time.Millisecond)
	for deadline := time.Now().Add(10 * time.Second); !holdsCall(record()) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // the save runs on the ticker's goroutine
	}
	if got := record(); !holdsCall(got) {
		t.Fatalf("after recordEvery, without an exit, the record holds %s; want the call in 111/us-east-1", got)
	}
	save()
	if got := record(); !holdsCall(got) {
		t.Errorf("after the exit's save the record holds %s, want the call in 111/us-east-1", got)
	}
	if n := clk.Waiters(); n != 0 {
		t.Errorf("%d tickers left after the exit, want none", n)
	}

	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	f.stateDir = filepath.Join(blocker, "state") // under a file: cannot be made
	keepCallRecord(context.Background(), &f, usagemetrics.RecoveryCategory, local, nil, clk, slog.New(slog.NewTextHandler(&logs, nil)))()
	if got := strings.Count(logs.String(), "cannot keep the record"); got != 1 {
		t.Errorf("%d warnings, want 1:\n%s", got, logs.String())
	}

	// With the ledger's table (here a store in memory) and no folder, the
	// record is kept there, for a successor on any machine.
	shared := &sharedStore{}
	f.stateDir = ""
	keepCallRecord(context.Background(), &f, usagemetrics.RecoveryCategory, local, shared, clk, slog.New(slog.DiscardHandler))()
	if got := string(shared.saved); !holdsCall(got) {
		t.Errorf("the shared store holds %s, want the call in 111/us-east-1", got)
	}
}

// sharedStore is a ratelimit.RecordStore in memory that keeps the last
// record saved and whether each save said it was the last.
type sharedStore struct {
	mu    sync.Mutex
	saved []byte
	lasts []bool
}

func (s *sharedStore) Save(_ string, b []byte, _ time.Time, last bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = append([]byte(nil), b...)
	s.lasts = append(s.lasts, last)
	return nil
}

func (s *sharedStore) saves() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lasts)
}

// TestCallRecordLast: the record says it is the process's last from the
// moment the worker stops taking jobs (SIGTERM ends ctx: a successor
// started meanwhile takes these calls for resetq's), and at exit; before,
// it does not (a worker running elsewhere is not a stopped one). Each
// category's record goes to its own place in the ledger.
func TestCallRecordLast(t *testing.T) {
	f := workFlags{harmBudget: 0.005, usageMetrics: true, rate: 10}
	var asked []string
	shared := &sharedStore{}
	records := func(category string) ratelimit.RecordStore {
		asked = append(asked, category)
		return shared
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pacer, closePacer, err := newPacer(ctx, &f, usagemetrics.ReadCategory, categoryPace(50, userReadQuota, 0.005, false), nil,
		&fallbackGauge{gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})}, records, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []string{usagemetrics.ReadCategory}) {
		t.Fatalf("the ledger was asked for the records of %v, want %s's", asked, usagemetrics.ReadCategory)
	}
	if err := pacer.Wait(context.Background(), "111/us-east-1"); err != nil {
		t.Fatal(err)
	}
	local := pacer.(*ratelimit.Regions)
	if err := local.SaveRecord(false); err != nil { // as the ticker does
		t.Fatal(err)
	}
	running := shared.saves() // the ticker's too, if the machine stalled for its 5 s
	cancel()                  // SIGTERM
	var stopping []bool
	for deadline := time.Now().Add(10 * time.Second); len(stopping) <= len(running) && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		stopping = shared.saves()
	}
	closePacer()
	exited := shared.saves()
	if slices.Contains(running, true) || len(stopping) <= len(running) || len(exited) <= len(stopping) || slices.Contains(exited[len(running):], false) {
		t.Errorf("saves said last %v (%d while running, %d by SIGTERM's save), want false while running, then true from SIGTERM on and at exit", exited, len(running), len(stopping))
	}
}

func (s *sharedStore) Load(string, time.Time, time.Time) (map[string][]byte, error) { return nil, nil }
