package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/resetq/resetq/clock/clocktest"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/redisserver"
	"github.com/resetq/resetq/internal/redisserver/redistest"
	"github.com/resetq/resetq/worker"
)

var _ worker.Pacer = (*Fleet)(nil)

// syncClock is a clock tests move by hand, safe for concurrent use.
type syncClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *syncClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *syncClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// fallbackLog records OnFallback calls.
type fallbackLog struct {
	mu    sync.Mutex
	calls []bool
}

func (f *fallbackLog) record(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, on)
}

func (f *fallbackLog) get() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.calls...)
}

func startRedis(t *testing.T, args ...string) *redisserver.Server {
	t.Helper()
	redistest.Need(t)
	srv, err := redisserver.Start(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func newTestFleet(t *testing.T, cfg FleetConfig) *Fleet {
	t.Helper()
	if cfg.Timeout == 0 {
		// A loaded machine (the race detector, other packages' tests) can
		// take longer than the default 500 ms to answer; these tests are
		// about the shared limit, not about a slow Redis.
		cfg.Timeout = 5 * time.Second
	}
	f, err := NewFleet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// paceFor runs four callers per pacer on region for d and returns how
// many calls were admitted and the seconds it took.
func paceFor(ctx context.Context, d time.Duration, pacers []*Fleet, region string) (int64, float64) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, p := range pacers {
		for range 4 {
			wg.Go(func() {
				for p.Wait(ctx, region) == nil {
					admitted.Add(1)
				}
			})
		}
	}
	wg.Wait()
	return admitted.Load(), time.Since(start).Seconds()
}

func redisAddr(t *testing.T, url string) RedisAddr {
	t.Helper()
	a, err := ParseRedisURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFleetSharedLimit: two replicas' pacers, each allowed the full rate
// locally, share one Redis limit: together they never admit more than
// rate*seconds+1 calls (GCRA with a burst of 1), where each alone would
// admit about twice that. An upper bound only: a loaded machine may admit
// fewer.
func TestFleetSharedLimit(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	const rate = 20.0
	var fb fallbackLog
	cfg := FleetConfig{Redis: redisAddr(t, srv.URL), KeyPrefix: "test", Rate: rate, OnFallback: fb.record}
	pacers := []*Fleet{newTestFleet(t, cfg), newTestFleet(t, cfg)}

	n, elapsed := paceFor(context.Background(), 1500*time.Millisecond, pacers, "us-east-1")
	if limit := int64(rate*elapsed) + 1; n > limit {
		t.Errorf("%d calls admitted in %.2fs, more than rate*seconds+1 = %d", n, elapsed, limit)
	}
	if n == 0 {
		t.Error("no call admitted")
	}
	if got := fb.get(); len(got) != 0 {
		t.Errorf("OnFallback called %v with Redis up", got)
	}
	t.Logf("%d calls admitted in %.2fs at a fleet-wide %v/s", n, elapsed, rate)

	// The Region's key, with its prefix, expires by itself.
	c := adminClient(t, srv.URL)
	ttl, err := c.PTTL(context.Background(), "test:ratelimit:us-east-1").Result()
	if err != nil || ttl <= 0 || ttl > 2*time.Second {
		t.Errorf("PTTL test:ratelimit:us-east-1 = %v, %v; want a TTL of about a second", ttl, err)
	}
}

// TestFleetRegionsIndependent: a Region whose limit is used up does not
// hold back another Region.
func TestFleetRegionsIndependent(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, srv.URL), Rate: 0.1}) // one call per 10 s
	ctx := context.Background()
	if err := f.Wait(ctx, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := f.Wait(short, "us-east-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second us-east-1 call within 10 s at 0.1/s: %v, want DeadlineExceeded", err)
	}
	if err := f.Wait(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if f.Key("eu-west-1") != "resetq:ratelimit:eu-west-1" {
		t.Errorf("key %q", f.Key("eu-west-1"))
	}
}

// TestFleetFallbackAndRecovery: with Redis killed, Wait still returns, at
// the local share; the switch is logged once and reported to OnFallback;
// Redis is not asked again before RetryInterval (by the injected clock);
// once it answers again the fleet is back on the shared limit.
func TestFleetFallbackAndRecovery(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	clk := &syncClock{t: time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC)}
	var logs syncBuffer
	var fb fallbackLog
	f := newTestFleet(t, FleetConfig{
		Redis: redisAddr(t, srv.URL), Rate: 40, FleetSize: 4, RetryInterval: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnFallback: fb.record, Clock: clocktest.Func(clk.Now),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := func(step string, n int) {
		t.Helper()
		for range n {
			if err := f.Wait(ctx, "us-east-1"); err != nil {
				t.Fatalf("%s: Wait: %v", step, err)
			}
		}
	}
	expectCalls := func(step string, want ...bool) {
		t.Helper()
		if got := fb.get(); len(got) != len(want) || (len(got) > 0 && got[len(got)-1] != want[len(want)-1]) {
			t.Fatalf("%s: OnFallback calls %v, want %v", step, got, want)
		}
	}

	wait("redis up", 2)
	expectCalls("redis up")

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wait("redis down", 6)
	elapsed := time.Since(start).Seconds()
	expectCalls("redis down", true)
	if f.Share() != 10 {
		t.Errorf("share %v, want 40/4", f.Share())
	}
	if limit := 10*elapsed + 1; 6 > limit {
		t.Errorf("6 calls in %.2fs while falling back: above the local share 10/s", elapsed)
	}
	if got := strings.Count(logs.String(), "redis unreachable, pacing at local share"); got != 1 {
		t.Errorf("%d fallback warnings, want 1:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "share=10") {
		t.Errorf("the warning does not give the share:\n%s", logs.String())
	}

	// Redis is back, but RetryInterval has not passed: still the local share.
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	wait("redis back, before the retry", 3)
	expectCalls("redis back, before the retry", true)

	clk.Advance(time.Minute)
	wait("redis back, after the retry interval", 2) // the first asks Redis (EVALSHA, NOSCRIPT, EVAL on a fresh server)
	expectCalls("redis back, after the retry interval", true, false)
	if !strings.Contains(logs.String(), "redis reachable again") {
		t.Errorf("no info line on recovery:\n%s", logs.String())
	}
	c := adminClient(t, srv.URL)
	if v, err := c.Exists(ctx, "resetq:ratelimit:us-east-1").Result(); err != nil || v != 1 {
		t.Errorf("EXISTS the Region's key after recovery = %v, %v: the calls did not go through Redis", v, err)
	}
}

// TestFleetDeadRedisFromStart: a Redis that was never there costs one
// dial timeout, then calls go at the local share without asking it again.
func TestFleetDeadRedisFromStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	var fb fallbackLog
	var logs syncBuffer
	clk := &syncClock{t: time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC)}
	f := newTestFleet(t, FleetConfig{Redis: RedisAddr{Addr: addr}, Rate: 100, FleetSize: 2, Clock: clocktest.Func(clk.Now),
		OnFallback: fb.record, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 5 {
		if err := f.Wait(ctx, "us-east-1"); err != nil {
			t.Fatal(err)
		}
	}
	if got := fb.get(); len(got) != 1 || !got[0] {
		t.Errorf("OnFallback calls %v, want [true]", got)
	}
	if got := strings.Count(logs.String(), "redis unreachable"); got != 1 {
		t.Errorf("%d warnings, want 1:\n%s", got, logs.String())
	}
}

// TestFleetWaitCanceled: a Wait that ends with its context is not a Redis
// failure.
func TestFleetWaitCanceled(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	var fb fallbackLog
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, srv.URL), Rate: 0.1, OnFallback: fb.record})
	ctx := context.Background()
	if err := f.Wait(ctx, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := f.Wait(short, "us-east-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want DeadlineExceeded", err)
	}
	canceled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := f.Wait(canceled, "us-east-1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want Canceled", err)
	}
	if got := fb.get(); len(got) != 0 {
		t.Errorf("OnFallback calls %v after canceled waits", got)
	}
}

func TestNewFleetChecks(t *testing.T) {
	t.Parallel()
	for _, cfg := range []FleetConfig{
		{Rate: 1},
		{Redis: RedisAddr{Addr: "h:1"}},
		{Redis: RedisAddr{Addr: "h:1"}, Rate: -1},
		{Redis: RedisAddr{Addr: "h:1"}, Rate: 1, FleetSize: -1},
	} {
		if _, err := NewFleet(cfg); err == nil {
			t.Errorf("NewFleet(%+v) accepted", cfg)
		}
	}
}

// TestFleetReservesSlots: asks that come together are not refused but
// given consecutive slots, one interval apart on Redis's clock, so an ask
// that comes late loses no slot. At 1/s the k-th of five asks in a row is
// told to wait about k seconds (less the time the asks took).
func TestFleetReservesSlots(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, srv.URL), Rate: 1})
	ctx := context.Background()
	start := time.Now()
	var waits []time.Duration
	r := f.region("reserve")
	for range 5 {
		w, err := f.reserve(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	took := time.Since(start)
	for k, w := range waits {
		want := time.Duration(k) * time.Second
		if w > want || w < want-took-time.Millisecond {
			t.Errorf("ask %d: wait %v, want %v less at most the %v the asks took", k, w, want, took)
		}
	}
}

// TestFleetClockSteppedBack: a TAT an hour ahead of Redis's clock, as a
// step back of the clock leaves it, is not waited out: the next ask goes
// at once and the slots after it are one interval apart again. Bookings
// that a fleet can make (up to 4 × fleet size intervals ahead) are kept.
func TestFleetClockSteppedBack(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, srv.URL), Rate: 10, FleetSize: 5})
	if got := maxWaitFor(1e5, 5); got != 2e6 {
		t.Fatalf("maxWait %vµs, want 4 × 5 × 100ms", got)
	}
	ctx := context.Background()
	c := adminClient(t, srv.URL)
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	future := (now.Unix() + 3600) * 1e6
	if err := c.Set(ctx, f.Key("stepped"), strconv.FormatInt(future, 10), 0).Err(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	var waits []time.Duration
	for range 15 { // 1.5 s of slots: under the 2 s cap, all kept
		w, err := f.reserve(ctx, f.region("stepped"))
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	took := time.Since(start)
	for k, w := range waits {
		want := time.Duration(k) * 100 * time.Millisecond
		if w > want || w < want-took-time.Millisecond {
			t.Errorf("ask %d: wait %v, want %v less at most the %v the asks took", k, w, want, took)
		}
	}
	v, err := c.Get(ctx, f.Key("stepped")).Result()
	if tat, _ := strconv.ParseInt(v, 10, 64); err != nil || tat >= future {
		t.Errorf("the TAT is still %v (%v), not back to Redis's clock", v, err)
	}
}

// TestFleetWaitAboveCap: an answer beyond the longest wait (a script that
// does not cap it) is a Redis failure: the replica paces at its share.
func TestFleetWaitAboveCap(t *testing.T) {
	t.Parallel()
	fr := startFakeRedis(t, func(cmd string) string {
		if cmd == "HELLO" {
			return "-ERR unknown command 'HELLO'\r\n"
		}
		return ":3600000000\r\n"
	})
	var fb fallbackLog
	f := newTestFleet(t, FleetConfig{Redis: RedisAddr{Addr: fr.ln.Addr().String()}, Rate: 100, OnFallback: fb.record})
	if _, err := f.reserve(context.Background(), f.region("k")); err == nil || !strings.Contains(err.Error(), "0 to 1000000") {
		t.Fatalf("reserve: %v, want an error for a wait of an hour", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Wait(ctx, "us-east-1"); err != nil {
		t.Fatalf("Wait: %v, want the local share", err)
	}
	if got := fb.get(); len(got) != 1 || !got[0] {
		t.Errorf("OnFallback calls %v, want [true]", got)
	}
}

// campaign is workers pacing jobs through a Fleet, each job one Wait,
// until stopped: what a test checks is that every job taken got its call,
// once, without error.
type campaign struct {
	t        *testing.T
	ctx      context.Context
	next     atomic.Int64 // the last job taken
	mu       sync.Mutex
	calls    map[int64]int // job: calls made for it
	stopped  chan struct{}
	progress chan int // jobs done so far, after each (dropped when full)
	errs     chan error
	wg       sync.WaitGroup
}

func startCampaign(t *testing.T, ctx context.Context, f *Fleet, workers int) *campaign {
	c := &campaign{t: t, ctx: ctx, calls: map[int64]int{}, stopped: make(chan struct{}),
		progress: make(chan int, 1000), errs: make(chan error, workers)}
	for range workers {
		c.wg.Go(func() {
			for {
				select {
				case <-c.stopped:
					return
				default:
				}
				job := c.next.Add(1)
				if err := f.Wait(ctx, "us-east-1"); err != nil {
					c.errs <- fmt.Errorf("job %d: %w", job, err)
					return
				}
				c.mu.Lock()
				c.calls[job]++
				n := len(c.calls)
				c.mu.Unlock()
				select {
				case c.progress <- n:
				default:
				}
			}
		})
	}
	return c
}

// done is the number of jobs that got their call.
func (c *campaign) done() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// waitFor waits until n jobs got their call.
func (c *campaign) waitFor(what string, n int) {
	c.t.Helper()
	for {
		select {
		case got := <-c.progress:
			if got >= n {
				return
			}
		case err := <-c.errs:
			c.t.Fatalf("%s: %v", what, err)
		case <-c.ctx.Done():
			c.t.Fatalf("%s: %d jobs done, want %d", what, c.done(), n)
		}
	}
}

// stop stops the workers and checks that every job taken got one call.
func (c *campaign) stop() {
	c.t.Helper()
	close(c.stopped)
	c.wg.Wait()
	close(c.errs)
	for err := range c.errs {
		c.t.Error(err)
	}
	if taken := c.next.Load(); int64(len(c.calls)) != taken {
		c.t.Errorf("%d jobs taken, %d got their call", taken, len(c.calls))
	}
	for job, n := range c.calls {
		if n != 1 {
			c.t.Errorf("job %d: %d calls", job, n)
		}
	}
}

// TestFleetRedisRestartMidCampaign: Redis killed and started again (empty)
// while four workers pace a campaign: every job taken gets its call, once,
// with no error; the fleet falls back to its local share while Redis is
// down and comes back to the shared limit (the Region's key is in the new
// Redis) once it answers again. Steps follow the campaign's progress, not
// the clock.
func TestFleetRedisRestartMidCampaign(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	const rate = 60.0
	fallback := make(chan bool, 10)
	f := newTestFleet(t, FleetConfig{
		Redis: redisAddr(t, srv.URL), KeyPrefix: "test", Rate: rate, FleetSize: 2, RetryInterval: 100 * time.Millisecond,
		OnFallback: func(on bool) { fallback <- on },
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	expectFallback := func(want bool) {
		t.Helper()
		select {
		case on := <-fallback:
			if on != want {
				t.Fatalf("OnFallback(%v), want %v", on, want)
			}
		case <-ctx.Done():
			t.Fatalf("no OnFallback(%v)", want)
		}
	}

	c := startCampaign(t, ctx, f, 4)
	c.waitFor("redis up", 20)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	expectFallback(true)
	down, start := c.done(), time.Now()
	c.waitFor("redis down", down+15)
	if n, limit := c.done()-down, f.Share()*time.Since(start).Seconds()+4; float64(n) > limit {
		t.Errorf("%d calls in %v while Redis was down: above the local share %v/s", n, time.Since(start), f.Share())
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	expectFallback(false)
	c.waitFor("redis back", c.done()+20)
	c.stop()
	if n, err := adminClient(t, srv.URL).Exists(ctx, "test:ratelimit:us-east-1").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS the Region's key in the restarted Redis = %v, %v: the fleet is not back on it", n, err)
	}
	select {
	case on := <-fallback:
		t.Errorf("OnFallback(%v) after the recovery", on)
	default:
	}
	t.Logf("%d jobs, at least 15 of them while Redis was down", c.done())
}

// failoverProxy forwards TCP connections to a target that can move, as a
// primary endpoint's DNS name moves to the new primary in a failover:
// moving it drops every connection to the old one.
type failoverProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	conns  []net.Conn
}

func startFailoverProxy(t *testing.T, target string) *failoverProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &failoverProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.moveTo("") })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *failoverProxy) moveTo(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestFleetPrimaryFailover: a replica promoted, and the old primary
// killed, while workers pace a campaign through the primary's endpoint:
// every job taken gets its call, once, without error; the fleet is on the
// new primary afterwards, which had the Region's slot from replication
// (the script replicates its effects); any fallback on the way has ended.
func TestFleetPrimaryFailover(t *testing.T) {
	t.Parallel()
	primary := startRedis(t, "--repl-diskless-sync-delay", "0")
	_, port, _ := net.SplitHostPort(primary.Addr)
	replica := startRedis(t, "--replicaof", "127.0.0.1", port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	replicaAdmin := adminClient(t, replica.URL)
	for {
		info, err := replicaAdmin.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the replica did not sync: %q, %v", info, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	proxy := startFailoverProxy(t, primary.Addr)
	var fb fallbackLog
	const rate = 60.0
	f := newTestFleet(t, FleetConfig{
		Redis: RedisAddr{Addr: proxy.ln.Addr().String()}, KeyPrefix: "test", Rate: rate, FleetSize: 2,
		RetryInterval: 100 * time.Millisecond, OnFallback: fb.record,
	})

	c := startCampaign(t, ctx, f, 4)
	c.waitFor("on the primary", 20)
	for { // the script's effects reach the replica
		n, err := replicaAdmin.Exists(ctx, "test:ratelimit:us-east-1").Result()
		if err == nil && n == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the Region's key never reached the replica: %v, %v", n, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := replicaAdmin.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	proxy.moveTo(replica.Addr)
	if err := primary.Close(); err != nil {
		t.Fatal(err)
	}
	c.waitFor("on the promoted replica", c.done()+30)
	c.stop()
	if n, err := replicaAdmin.Exists(ctx, "test:ratelimit:us-east-1").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS the Region's key on the new primary = %v, %v", n, err)
	}
	if got := fb.get(); len(got) > 0 && got[len(got)-1] {
		t.Errorf("OnFallback calls %v: still falling back after the failover", got)
	}
	t.Logf("%d jobs; OnFallback calls %v", c.done(), fb.get())
}

// TestFleetOneThrottleOneCut: three replicas throttled at once cut the
// fleet's rate once, every replica paces to that one rate (one that was
// not throttled learns it on its next call), and a throttle after
// CutInterval cuts again.
func TestFleetOneThrottleOneCut(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	cfg := FleetConfig{Redis: redisAddr(t, srv.URL), KeyPrefix: "test", Rate: 100, FleetSize: 4,
		Pace: Config{CutInterval: 200 * time.Millisecond}}
	fleet := []*Fleet{newTestFleet(t, cfg), newTestFleet(t, cfg), newTestFleet(t, cfg), newTestFleet(t, cfg)}
	ctx := context.Background()
	const region = "eu-west-1"
	for range 10 {
		for _, f := range fleet {
			if _, err := f.reserve(ctx, f.region(region)); err != nil {
				t.Fatal(err)
			}
			f.Succeeded(region) // reported with the replica's next booking
		}
	}
	if got := fleet[3].Rate(region); got != 100 {
		t.Fatalf("before any throttle: rate %v, want 100", got)
	}
	var wg sync.WaitGroup
	for _, f := range fleet[:3] {
		wg.Go(func() { f.Throttled(region) })
	}
	wg.Wait()
	stored := func() pace {
		t.Helper()
		return storedPace(t, adminClient(t, srv.URL), "test:pace:"+region)
	}
	p := stored()
	if !p.Cut || p.To < 0.97*30 || p.To > 0.97*40 {
		t.Fatalf("pace after the throttles %+v, want one cut to 0.97 of the 36 successes Redis heard of", p)
	}
	for i, f := range fleet[:3] {
		if got := f.region(region).pace; got != p {
			t.Errorf("replica %d: pace %+v, Redis has %+v: a second cut overwrote the first", i, got, p)
		}
	}
	if _, err := fleet[3].reserve(ctx, fleet[3].region(region)); err != nil {
		t.Fatal(err)
	}
	if got := fleet[3].Rate(region); got >= 100 || got < p.To {
		t.Errorf("the replica that was not throttled paces at %v, want the fleet's %v or a little above (the climb)", got, p.To)
	}
	time.Sleep(250 * time.Millisecond)
	fleet[3].Throttled(region)
	if q := stored(); !q.CutAt.After(p.CutAt) {
		t.Errorf("a throttle after CutInterval left the pace at %+v, want a new cut", q)
	}
}

// TestPaceString: a pace goes through Redis unchanged, and a bad one is
// refused.
func TestPaceString(t *testing.T) {
	t.Parallel()
	p := pace{CutAt: time.UnixMicro(1764460800123456), Cut: true, To: 18.25, From: 20.5, Shared: true, Gain: 0.25}
	got, err := parsePace(p.String())
	if err != nil || got != p {
		t.Fatalf("parsePace(%q) = %+v, %v; want %+v", p.String(), got, err, p)
	}
	// Another version's: a newer one's extra fields are ignored; before
	// the gain (5 fields) it is 1.
	if got, err := parsePace(p.String() + " 7 later"); err != nil || got != p {
		t.Errorf("parsePace(%q) = %+v, %v; want %+v", p.String()+" 7 later", got, err, p)
	}
	if got, err := parsePace("1764460800123456 1 18.25 20.5 1"); err != nil || got.gain() != 1 || got.To != 18.25 || !got.Shared {
		t.Errorf("parsePace of a 5-field pace = %+v, %v; want gain 1, to 18.25, shared", got, err)
	}
	for _, bad := range []string{"", "1 1 2 3", "1 2 2 3 0 1", "x 1 2 3 0 1", "1 1 -2 3 0 1", "1 1 NaN 3 0 1", "1 1 2 3 0 0", "1 1 2 3 0 1.5"} {
		if _, err := parsePace(bad); err == nil {
			t.Errorf("parsePace(%q) accepted", bad)
		}
	}
}

// TestFleetFoundCountsSuccesses: the quota found at a fleet cut is what
// succeeded, not what was booked: with half the fleet's calls throttled,
// the cut goes to 0.97 of the half that got through.
func TestFleetFoundCountsSuccesses(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	cfg := FleetConfig{Redis: redisAddr(t, srv.URL), KeyPrefix: "test", Rate: 100, FleetSize: 2}
	a, b := newTestFleet(t, cfg), newTestFleet(t, cfg)
	ctx := context.Background()
	const region = "us-west-2"
	for range 20 {
		for _, f := range []*Fleet{a, b} {
			if _, err := f.reserve(ctx, f.region(region)); err != nil {
				t.Fatal(err)
			}
		}
		a.Succeeded(region) // b's calls are all throttled
	}
	if _, err := a.reserve(ctx, a.region(region)); err != nil { // reports a's last success
		t.Fatal(err)
	}
	b.Throttled(region)
	if got := b.region(region).pace; !got.Cut || got.To > 0.97*20+0.01 || got.To < 0.97*15 {
		t.Fatalf("pace %+v, want a cut to 0.97 of the 20 calls that succeeded, not of the 41 booked", got)
	}
}

// TestFleetReportsFirstRate: a replica reports its Region's rate to OnRate
// on the first answer, even when it is the rate it started with (the
// Region's metrics and usage watching start from that call).
func TestFleetReportsFirstRate(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	var mu sync.Mutex
	var heard []float64
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, srv.URL), KeyPrefix: "test", Rate: 40,
		OnRate: func(region string, rate float64) { mu.Lock(); heard = append(heard, rate); mu.Unlock() }})
	for range 3 {
		if _, err := f.reserve(context.Background(), f.region("eu-north-1")); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 1 || heard[0] != 40 {
		t.Fatalf("OnRate heard %v, want [40] once", heard)
	}
}

// TestFleetPaceClockSteppedBack: a pace cut after Redis's clock (a
// failover to a node whose clock is behind) neither freezes the rate nor
// refuses the next cut.
func TestFleetPaceClockSteppedBack(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, srv.URL), KeyPrefix: "test", Rate: 100})
	ctx := context.Background()
	c := adminClient(t, srv.URL)
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	ahead := pace{CutAt: now.Add(time.Hour), Cut: true, To: 10, Gain: 1}
	if err := c.Set(ctx, "test:pace:ap-south-1", ahead.String(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	r := f.region("ap-south-1")
	if _, err := f.reserve(ctx, r); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := f.reserve(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := f.Rate("ap-south-1"); got <= 10 {
		t.Errorf("rate %v 200 ms after hearing a pace cut an hour ahead: frozen at the cut", got)
	}
	f.Throttled("ap-south-1")
	s, err := c.Get(ctx, "test:pace:ap-south-1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if p, err := parsePace(s); err != nil || !p.CutAt.Before(ahead.CutAt) {
		t.Errorf("pace after a throttle %q (%v): the cut an hour ahead refused it", s, err)
	}
}

// TestFleetCalls: the fleet's calls in the last second from the per
// second counts, with a second's count spread over the part of it the run
// was busy in (a run that began mid-second put its first calls in half a
// second, not a whole one).
func TestFleetCalls(t *testing.T) {
	t.Parallel()
	const s = 1_000_000 // a Unix second
	at := func(sec, us int64) time.Time { return time.UnixMicro(sec*1e6 + us) }
	hash := func(sec, n, prev, last, since int64) []any {
		return []any{strconv.FormatInt(sec, 10), strconv.FormatInt(n, 10), strconv.FormatInt(prev, 10),
			strconv.FormatInt(last, 10), strconv.FormatInt(since, 10)}
	}
	for _, tt := range []struct {
		name  string
		c     []any
		now   time.Time
		found float64
		busy  time.Duration
	}{
		{"steady 60/s, 0.4 s into the second", hash(s, 24, 60, s*1e6+400_000, (s-10)*1e6), at(s, 400_000), 24 + 60*0.6, 10400 * time.Millisecond},
		{"the run began at .5 of the last second: its 30 calls all in the window", hash(s, 36, 30, s*1e6+600_000, (s-1)*1e6+500_000), at(s, 600_000), 36 + 30*0.8, 1100 * time.Millisecond},
		{"no call yet this second", hash(s, 60, 60, s*1e6+999_000, (s-10)*1e6), at(s+1, 250_000), 60 * 0.75, 11250 * time.Millisecond},
		{"counts two seconds old", hash(s, 60, 60, s*1e6, (s-10)*1e6), at(s+2, 0), 0, 0},
		{"no hash", nil, at(s, 0), 0, 0},
	} {
		found, busy := fleetCalls(tt.c, tt.now)
		if math.Abs(found-tt.found) > 1e-6 || busy != tt.busy {
			t.Errorf("%s: found %v, busy %v; want %v, %v", tt.name, found, busy, tt.found, tt.busy)
		}
	}
}

// TestFleetThrottleAfterCutStaysLocal: a throttle that follows the fleet's
// cut closely (the rest of one full window's throttles) does not ask Redis
// again: with Redis gone it neither waits on it nor falls back.
func TestFleetThrottleAfterCutStaysLocal(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	var fb fallbackLog
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, srv.URL), KeyPrefix: "test", Rate: 50, OnFallback: fb.record,
		Pace: Config{CutInterval: time.Minute}})
	if _, err := f.reserve(context.Background(), f.region("sa-east-1")); err != nil {
		t.Fatal(err)
	}
	f.Throttled("sa-east-1")
	if p := f.region("sa-east-1").pace; !p.Cut {
		t.Fatalf("pace %+v after the first throttle, want a cut", p)
	}
	srv.Close()
	f.Throttled("sa-east-1")
	if got := fb.get(); len(got) != 0 {
		t.Errorf("OnFallback %v: the second throttle asked Redis", got)
	}
	if r := f.region("sa-east-1"); r.calls != 1 || r.throttled != 1 {
		t.Errorf("counted %d answers, %d throttled since the cut; want the second throttle counted", r.calls, r.throttled)
	}
}

// TestFleetLateReportsFindNoQuota: successes reported late (a replica's
// next booking carries them into the current second) can count more
// calls in the last second than the fleet's rate. That is no quota found
// over the rate: the cut is from the rate, or the pace would climb fast
// to 0.9 times the count.
func TestFleetLateReportsFindNoQuota(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	cfg := FleetConfig{Redis: redisAddr(t, srv.URL), KeyPrefix: "test", Rate: 100, FleetSize: 2}
	f := newTestFleet(t, cfg)
	ctx := context.Background()
	const region = "ap-south-1"
	admin := adminClient(t, srv.URL)
	now, err := admin.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The fleet paces at 20/s after a plain cut that found 20.
	p := pace{CutAt: now.Add(-time.Second).Truncate(time.Microsecond), Cut: true, To: 20, From: 20, Gain: 1}
	if err := admin.Set(ctx, "test:pace:"+region, p.String(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // calls for over a second, so the cut measures a quota
		if i == 2 {
			for range 60 {
				f.Succeeded(region) // reported with the next booking, in its second
			}
		}
		if _, err := f.reserve(ctx, f.region(region)); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			time.Sleep(600 * time.Millisecond)
		}
	}
	f.Throttled(region)
	got := storedPace(t, admin, "test:pace:"+region)
	if !got.Cut || got.CutAt.Equal(p.CutAt) {
		t.Fatalf("pace %+v after the throttle, want a cut", got)
	}
	if got.From > 21 || got.To > 0.97*21 {
		t.Errorf("pace %+v: 60 successes reported at once read as a quota of 60 at a rate of about 20", got)
	}
}
