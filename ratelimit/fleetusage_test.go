package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resetq/resetq/clock/clocktest"
	"github.com/resetq/resetq/internal/redisserver"
)

// harmPace is the fleet's Config in these tests: --rate 30, the quota 30
// shared with real users, a harm budget of 0.5%.
var harmPace = Config{Start: 22.5, SharedBelow: 28.5, ThrottleTarget: 0.001, HarmBudget: 0.005}

// harmFleet is a replica of a fleet at 30/s under harmPace, on clk.
func harmFleet(t *testing.T, url, prefix string, clk *syncClock) *Fleet {
	t.Helper()
	return newTestFleet(t, FleetConfig{Redis: redisAddr(t, url), KeyPrefix: prefix, Rate: 30, FleetSize: 2, Pace: harmPace,
		Clock: clocktest.Func(clk.Now)})
}

// redisMinute is Redis's clock, and the start of its minute.
func redisMinute(t *testing.T, c *redis.Client) (time.Time, time.Time) {
	t.Helper()
	now, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now, now.Truncate(time.Minute)
}

// harmRedis starts a Redis for a fleet test: it, an admin client on it,
// Redis's time and its minute, and a clock for the replicas that agrees
// with Redis's.
func harmRedis(t *testing.T) (srv *redisserver.Server, c *redis.Client, now, m0 time.Time, clk *syncClock) {
	t.Helper()
	srv = startRedis(t)
	c = adminClient(t, srv.URL)
	now, m0 = redisMinute(t, c)
	return srv, c, now, m0, &syncClock{t: now}
}

// carryMinute has f count calls calls and throttled throttles of its own
// in minute m, run from the minute's start for busy, with its next
// booking, as a replica that paced at its local share carries them: a
// past minute, which the usage metrics can judge now.
func carryMinute(t *testing.T, f *Fleet, scope string, m time.Time, calls, throttled int64, busy time.Duration) {
	t.Helper()
	r := f.region(scope)
	r.mu.Lock()
	c := carried{minute: unixMinute(m), calls: calls, throttled: throttled}
	if calls > 0 {
		c.first, c.last = m.UnixMicro(), m.Add(busy).UnixMicro()
	}
	r.carryAll([]carried{c})
	r.mu.Unlock()
	if _, err := f.reserve(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// readMinute is the fleet's counts of minute m in Redis.
func readMinute(t *testing.T, c *redis.Client, f *Fleet, scope string, m time.Time) ownMinute {
	t.Helper()
	v, err := c.HMGet(context.Background(), f.region(scope).keys[2], minuteFields(unixMinute(m))...).Result()
	if err != nil {
		t.Fatal(err)
	}
	return fleetMinute(unixMinute(m), v)
}

// storedPace is the fleet's pace in Redis.
func storedPace(t *testing.T, c *redis.Client, key string) pace {
	t.Helper()
	s, err := c.Get(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePace(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// setOldPace gives the fleet a pace that started an hour ago: at its
// ceiling, and past the first minute in which usage may set the start.
func setOldPace(t *testing.T, c *redis.Client, f *Fleet, scope string, gain float64) {
	t.Helper()
	now, _ := redisMinute(t, c)
	p := pace{CutAt: now.Add(-time.Hour).Truncate(time.Microsecond), To: 22.5, Gain: gain}
	if err := c.Set(context.Background(), f.region(scope).keys[1], p.String(), 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestFleetMinuteCounts: two replicas' calls and throttles add up in
// Redis, in the minute of each call's slot, with the first and last call
// on Redis's clock; a carried minute is added to the one it names, and a
// minute older than the ring holds does not overwrite a newer one.
func TestFleetMinuteCounts(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := adminClient(t, srv.URL)
	clk := &syncClock{t: time.Now()}
	a, b := harmFleet(t, srv.URL, "test", clk), harmFleet(t, srv.URL, "test", clk)
	ctx := context.Background()
	const scope = "111122223333/eu-west-1"
	before, m0 := redisMinute(t, c)
	for range 5 {
		if _, err := a.reserve(ctx, a.region(scope)); err != nil {
			t.Fatal(err)
		}
	}
	for range 7 {
		if _, err := b.reserve(ctx, b.region(scope)); err != nil {
			t.Fatal(err)
		}
	}
	a.Throttled(scope)
	a.Throttled(scope)
	b.Throttled(scope)
	for _, f := range []*Fleet{a, b} { // the throttles go with the next booking
		if _, err := f.reserve(ctx, f.region(scope)); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := redisMinute(t, c)
	var calls, throttled float64
	first, last := time.Time{}, time.Time{}
	for _, m := range []time.Time{m0, m0.Add(time.Minute)} { // the calls may cross a minute's end
		o := readMinute(t, c, a, scope, m)
		calls, throttled = calls+o.calls, throttled+o.throttled
		if o.calls > 0 && (first.IsZero() || o.first.Before(first)) {
			first = o.first
		}
		if o.last.After(last) {
			last = o.last
		}
	}
	if calls != 14 || throttled != 3 {
		t.Errorf("the fleet's minutes hold %v calls and %v throttles, want the 14 and 3 of both replicas", calls, throttled)
	}
	// The calls are at their slots: one interval (1/30 s, longer after
	// the throttles' cut) apart from the first call, the last booked
	// ahead of Redis's clock by at most the longest wait.
	latest := after.Add(time.Duration(a.maxWait) * time.Microsecond)
	if first.Before(before) || last.After(latest) || last.Sub(first) < 13*time.Second/30 {
		t.Errorf("first call %v, last %v: want them between %v and %v, 13 intervals apart at least", first, last, before, latest)
	}

	old := m0.Add(-5 * time.Minute)
	carryMinute(t, a, scope, old, 100, 4, 30*time.Second)
	carryMinute(t, b, scope, old, 50, 1, 40*time.Second)
	if o := readMinute(t, c, a, scope, old); o.calls != 150 || o.throttled != 5 || !o.first.Equal(old) || !o.last.Equal(old.Add(40*time.Second)) {
		t.Errorf("a carried minute: %+v, want both replicas' 150 calls and 5 throttles from its start for 40 s", o)
	}
	carryMinute(t, a, scope, old.Add(-fleetMinutes*time.Minute), 1000, 0, time.Second) // the same slot of the ring
	if o := readMinute(t, c, a, scope, old); o.calls != 150 {
		t.Errorf("a minute %d minutes older overwrote the newer one: %+v", fleetMinutes, o)
	}
}

// TestFleetObserveOneCap: two replicas read the same usage minutes. Each
// subtracts the fleet's calls and throttles, not only its own: a minute in
// which the other replica's throttles would read as real users' losses
// cuts nothing. A minute in which real users lost 5% of their calls cuts
// the fleet's cap once, from the fleet's rate in it, whichever replica
// reads it first; both pace under that cap, their slots one capped
// interval apart. The probes' gain moves with real users' loss: kept by
// minutes over the aim, doubled by a spare one.
func TestFleetObserveOneCap(t *testing.T) {
	t.Parallel()
	srv, c, _, m0, clk := harmRedis(t)
	a, b := harmFleet(t, srv.URL, "test", clk), harmFleet(t, srv.URL, "test", clk)
	const scope = "111122223333/us-east-1"
	setOldPace(t, c, a, scope, 0.25)
	m1, m2 := m0.Add(-6*time.Minute), m0.Add(-5*time.Minute)
	// Minute 1: each replica 600 calls; b throttled 20 times, a once; real
	// users made 600 calls and lost 2 (within the budget).
	carryMinute(t, a, scope, m1, 600, 1, 59*time.Second)
	carryMinute(t, b, scope, m1, 600, 20, 59*time.Second)
	// Minute 2: each 600 calls at 10/s, the fleet's 20/s; real users lost
	// 30 of their 600.
	carryMinute(t, a, scope, m2, 600, 0, 59*time.Second)
	carryMinute(t, b, scope, m2, 600, 0, 59*time.Second)
	minutes := []Usage{{Minute: m1, Calls: 1800, Throttles: 23}, {Minute: m2, Calls: 1800, Throttles: 30}}

	a.Observe(scope, minutes[:1])
	if got := a.Cap(scope); got != 0 {
		t.Fatalf("cap %v after a minute in which real users lost 2 of 600: b's throttles were taken for theirs", got)
	}
	if a.region(scope).usage.JudgedAt.IsZero() {
		t.Fatal("the first minute was not judged")
	}
	a.Observe(scope, minutes)
	want := 20 * 0.9
	if got := a.Cap(scope); math.Abs(got-want) > 1e-9 {
		t.Fatalf("cap %v, want 0.9 x the fleet's 20/s in the minute", got)
	}
	b.Observe(scope, minutes)
	if got := b.Cap(scope); math.Abs(got-want) > 1e-9 {
		t.Fatalf("the other replica's cap %v, want the fleet's %v, cut once", got, want)
	}
	if p := storedPace(t, c, a.region(scope).keys[1]); p.gain() != 0.25 {
		t.Errorf("pace %+v: minutes over the aim changed the fleet's probes' gain from 0.25", p)
	}
	ctx := context.Background()
	for _, f := range []*Fleet{a, b} {
		if _, err := f.reserve(ctx, f.region(scope)); err != nil {
			t.Fatal(err)
		}
		if got := f.Rate(scope); math.Abs(got-want) > 1e-9 {
			t.Errorf("rate %v, want the cap %v (the pace alone is at 30)", got, want)
		}
	}
	// The next slots are one capped interval apart.
	var waits []time.Duration
	for range 4 {
		w, err := a.reserve(ctx, a.region(scope))
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	interval := time.Duration(math.Ceil(1e6/want)) * time.Microsecond
	for k := 1; k < len(waits); k++ {
		if d := waits[k] - waits[k-1]; d < interval-15*time.Millisecond || d > interval {
			t.Errorf("slots %v apart, want the capped interval %v (less the time an ask takes)", d, interval)
		}
	}

	// The metrics fall silent: the cap lapses on every replica.
	clk.Advance(usageStale)
	if _, err := b.reserve(ctx, b.region(scope)); err != nil {
		t.Fatal(err)
	}
	if a.Cap(scope) != 0 || b.Rate(scope) != 30 {
		t.Errorf("after %v without a judged minute: cap %v, rate %v; want none and the pace's 30", usageStale, a.Cap(scope), b.Rate(scope))
	}
	// Minute 3: real users lost nothing: the probes go twice as fast.
	m3 := m0.Add(-4 * time.Minute)
	carryMinute(t, a, scope, m3, 600, 0, 59*time.Second)
	carryMinute(t, b, scope, m3, 600, 0, 59*time.Second)
	b.Observe(scope, append(minutes, Usage{Minute: m3, Calls: 1800}))
	if p := storedPace(t, c, a.region(scope).keys[1]); p.gain() != 0.5 {
		t.Errorf("pace %+v: a spare minute left the fleet's probes' gain at %v, want 0.5", p, p.gain())
	}
}

// TestFleetRestartReadsPredecessor: a replica restarted within a minute of
// the fleet's first call finds its predecessor's calls and throttles in
// Redis. It neither takes them for real users' calls (the start is from
// the 10/s real users made, not the floor 30/s would give) nor their
// throttles for real users' losses (no cut).
func TestFleetRestartReadsPredecessor(t *testing.T) {
	t.Parallel()
	srv, c, _, m0, clk := harmRedis(t)
	const scope = "111122223333/ap-south-1"
	old := harmFleet(t, srv.URL, "test", clk)
	m := m0.Add(-4 * time.Minute)
	carryMinute(t, old, scope, m, 1200, 20, 59*time.Second) // its 20/s, 20 of them throttled
	carryMinute(t, old, scope, m.Add(time.Minute), 1200, 20, 59*time.Second)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	restarted := harmFleet(t, srv.URL, "test", clk)
	restarted.Observe(scope, []Usage{{Minute: m, Calls: 1200 + 600, Throttles: 20 + 1}})
	p := storedPace(t, c, restarted.region(scope).keys[1])
	if w := restarted.pc.startFrom(p.CutAt, 599.0/60); !p.Cut || math.Abs(p.To-w.To) > 1e-9 { // their 600 less the one throttled: what the quota served them
		t.Errorf("pace %+v after the restart, want the start from real users' 10/s (%v/s); from 30/s it would be the floor", p, w.To)
	}
	u := restarted.region(scope).usage
	if u.JudgedAt.IsZero() || restarted.Cap(scope) != 0 {
		t.Errorf("usage %+v, cap %v: want the minute judged, and no cut (real users lost 1 of 600)", u, restarted.Cap(scope))
	}
	// The next reading judges the predecessor's next minute, within the
	// aim at 20/s: the fleet's pace goes on from there (floored).
	restarted.Observe(scope, []Usage{{Minute: m, Calls: 1200 + 600, Throttles: 20 + 1}, {Minute: m.Add(time.Minute), Calls: 1200 + 600, Throttles: 20 + 1}})
	if p := storedPace(t, c, restarted.region(scope).keys[1]); !p.Cut || math.Abs(p.To-20) > 1e-9 || p.From < 20 {
		t.Errorf("pace %+v after a minute within the aim at 20/s, want it to go on from 20/s", p)
	}
	if u := restarted.region(scope).usage; u.Within != 2 || u.Calls != lossMemory*600+600 || u.Lost != lossMemory+1 {
		t.Errorf("usage %+v after two minutes within the budget, want 2 of them, and real users' 600 calls and 1 lost in each", u)
	}
}

// TestFleetObserveStart: usage read before the fleet's first call sets
// its first pace, which every replica's first booking takes; read after
// the fleet's first minute of calls, it leaves the pace alone.
func TestFleetObserveStart(t *testing.T) {
	t.Parallel()
	srv, c, _, m0, clk := harmRedis(t)
	a, b := harmFleet(t, srv.URL, "test", clk), harmFleet(t, srv.URL, "test", clk)
	const scope = "111122223333/eu-north-1"
	users := []Usage{{Minute: m0.Add(-3 * time.Minute), Calls: 300}, {Minute: m0.Add(-2 * time.Minute), Calls: 600}}
	a.Observe(scope, users)
	if _, err := b.reserve(context.Background(), b.region(scope)); err != nil {
		t.Fatal(err)
	}
	if got, want := b.Rate(scope), 20-2.5*math.Sqrt(10); math.Abs(got-want) > 0.01 {
		t.Errorf("the other replica's first rate %v, want the start from real users' busiest 10/s, %v", got, want)
	}

	late := "111122223333/eu-south-1"
	setOldPace(t, c, a, late, 0)
	a.Observe(late, users)
	if p := storedPace(t, c, a.region(late).keys[1]); p.Cut || p.To != 22.5 {
		t.Errorf("pace %+v: a reading an hour after the first call set the start", p)
	}
}

// TestFleetSpareMinutesPlainCut: after three judged minutes in which real
// users lost little, a throttle cuts the fleet's pace without headroom; a
// fleet without them leaves real users headroom.
func TestFleetSpareMinutesPlainCut(t *testing.T) {
	t.Parallel()
	srv, c, _, m0, clk := harmRedis(t)
	f := harmFleet(t, srv.URL, "test", clk)
	ctx := context.Background()
	cutAfter := func(scope string, spare int) pace {
		t.Helper()
		setOldPace(t, c, f, scope, 1)
		var minutes []Usage
		for i := range spare {
			m := m0.Add(time.Duration(i-6) * time.Minute)
			carryMinute(t, f, scope, m, 600, 0, 59*time.Second)
			minutes = append(minutes, Usage{Minute: m, Calls: 1200})
		}
		f.Observe(scope, minutes)
		for range 10 {
			if _, err := f.reserve(ctx, f.region(scope)); err != nil {
				t.Fatal(err)
			}
			f.Succeeded(scope)
		}
		if _, err := f.reserve(ctx, f.region(scope)); err != nil { // reports the successes
			t.Fatal(err)
		}
		f.Throttled(scope)
		return storedPace(t, c, f.region(scope).keys[1])
	}
	if p := cutAfter("111122223333/us-west-1", spareMinutes); !p.Cut || p.Shared {
		t.Errorf("pace %+v after %d spare minutes, want a plain cut", p, spareMinutes)
	}
	if p := cutAfter("111122223333/us-west-2", 0); !p.Cut || !p.Shared {
		t.Errorf("pace %+v without judged minutes, want a cut that leaves real users headroom", p)
	}
}

// TestFleetObserveRedisDown: usage read while Redis cannot be reached
// switches the replica to its local share, as a booking would, and
// returns.
func TestFleetObserveRedisDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var fb fallbackLog
	f := newTestFleet(t, FleetConfig{Redis: RedisAddr{Addr: addr}, Rate: 30, Pace: harmPace, OnFallback: fb.record})
	now := time.Now().Truncate(time.Minute)
	f.Observe("us-east-1", []Usage{{Minute: now.Add(-3 * time.Minute), Calls: 600}})
	if got := fb.get(); len(got) != 1 || !got[0] {
		t.Errorf("OnFallback calls %v, want [true]", got)
	}
	if f.Cap("us-east-1") != 0 {
		t.Error("a cap without Redis")
	}
}

// TestUsageStateString: a usage state goes through Redis unchanged, and a
// bad one is refused.
func TestUsageStateString(t *testing.T) {
	t.Parallel()
	at := func(us int64) time.Time { return time.UnixMicro(us) }
	for _, s := range []usageState{
		{},
		{Cap: harmCap{Cap: 17.123456789, Edge: 19.5, CutAt: at(1764460800123456)}, Seen: at(1764460740000000), JudgedAt: at(1764460800123456), Spare: 2, Informed: true},
		{JudgedAt: at(1764460800123456), Within: 3, Lost: 4.25, Calls: 1234.5},
	} {
		got, err := parseUsageState(s.String())
		if err != nil || got.String() != s.String() || got.Cap.Cap != s.Cap.Cap || got.Seen.IsZero() != s.Seen.IsZero() || got.Within != s.Within || got.Lost != s.Lost || got.Calls != s.Calls {
			t.Errorf("parseUsageState(%q) = %+v, %v; want %+v", s.String(), got, err, s)
		}
	}
	// Another version's: a newer one's extra fields are ignored; an older
	// one's lack real users' model (before it, 7 fields), whether their
	// usual minute is known (14; its base was their busiest minute then,
	// which learns a smaller share of returns: the cautious side), or the
	// minutes within the budget and the losses (15, and 16 with the own
	// cut's time that 268a82c to 0ac0b3f wrote: none within, none lost,
	// as those versions judged).
	full := usageState{Cap: harmCap{Cap: 17.5, Edge: 19.5, CutAt: at(1764460800123456)}, Seen: at(1764460740000000), JudgedAt: at(1764460800123456), Spare: 1, Informed: true,
		Users:  userModel{known: true, users: 9.5, own: 12, readAt: at(1764460800123456), base: 600, num: 30, den: 600, baseKnown: true},
		Within: 2, Lost: 3, Calls: 900}
	users15 := full
	users15.Within, users15.Lost, users15.Calls = 0, 0, 0
	if got, err := parseUsageState(full.String() + " 1 2.5 later"); err != nil || got.String() != full.String() {
		t.Errorf("a newer state: %+v, %v; want %+v", got, err, full)
	}
	f := strings.Fields(full.String())
	for n, want := range map[int]usageState{
		7:  {Cap: full.Cap, Seen: full.Seen, JudgedAt: full.JudgedAt, Spare: 1, Informed: true},
		14: {Cap: full.Cap, Seen: full.Seen, JudgedAt: full.JudgedAt, Spare: 1, Informed: true, Users: userModel{known: true, users: 9.5, own: 12, readAt: full.Users.readAt, base: 600, num: 30, den: 600}},
		15: users15,
	} {
		if got, err := parseUsageState(strings.Join(f[:n], " ")); err != nil || got.String() != want.String() {
			t.Errorf("a %d-field state: %+v, %v; want %+v", n, got, err, want)
		}
	}
	if got, err := parseUsageState(strings.Join(f[:15], " ") + " 1764460800123456"); err != nil || got.String() != users15.String() {
		t.Errorf("a 16-field state with the own cut's time: %+v, %v; want %+v", got, err, users15)
	}
	if s, err := parseUsageState(""); err != nil || !s.JudgedAt.IsZero() || s.Cap.Cap != 0 {
		t.Errorf(`parseUsageState("") = %+v, %v; want the zero state`, s, err)
	}
	within := func(w, lost, calls string) string {
		return strings.Join(f[:16], " ") + " " + w + " " + lost + " " + calls
	}
	for _, bad := range []string{"1 2 3", "x 0 0 0 0 0 0", "1 2 3 4 5 6 2", "1 2 3 4 5 4 0", "-1 0 0 0 0 0 0", "NaN 0 0 0 0 0 0", "1 2 -3 4 5 0 0",
		within("4", "0", "0"), within("-1", "0", "0"), within("1", "-2", "5"), within("1", "NaN", "5"), within("1", "2", "Inf")} {
		if _, err := parseUsageState(bad); err == nil {
			t.Errorf("parseUsageState(%q) accepted", bad)
		}
	}
}

// TestBusyRate: a minute's rate is over the part of it the calls ran in.
func TestBusyRate(t *testing.T) {
	t.Parallel()
	m := time.Unix(1_000_020, 0).Truncate(time.Minute)
	for _, tt := range []struct {
		name        string
		first, last time.Duration
		want        float64
	}{
		{"the whole minute", 0, 59 * time.Second, 10},
		{"from mid-minute", 30 * time.Second, 59 * time.Second, 20},
		{"stopped after 9 s", 0, 9 * time.Second, 60},
		{"one instant: a second at least", 10 * time.Second, 10 * time.Second, 600},
	} {
		o := ownMinute{minute: unixMinute(m), calls: 600, first: m.Add(tt.first), last: m.Add(tt.last)}
		if got := o.calls / max(busySeconds(Usage{Minute: m}, o), 1); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: %v/s, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFleetWaitCanceledIsNoCall: a Wait whose context ends before its
// slot made no call, so the fleet's minutes do not count it.
func TestFleetWaitCanceledIsNoCall(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := adminClient(t, srv.URL)
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, srv.URL), KeyPrefix: "test", Rate: 0.1}) // one call per 10 s
	ctx := context.Background()
	_, m0 := redisMinute(t, c)
	if err := f.Wait(ctx, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := f.Wait(short, "us-east-1"); err == nil {
		t.Fatal("a second call within 10 s at 0.1/s went")
	}
	if _, err := f.reserve(ctx, f.region("us-east-1")); err != nil { // carries the correction
		t.Fatal(err)
	}
	calls := 0.0
	for m := m0; !m.After(m0.Add(time.Minute)); m = m.Add(time.Minute) { // the slots are 10 s apart
		calls += readMinute(t, c, f, "us-east-1", m).calls
	}
	if calls != 2 {
		t.Errorf("the fleet's minutes count %v calls, want 2: the first, and the booking that carried the correction", calls)
	}
}

// TestFleetForgedUsageState: a usage state in Redis that resetq could not
// have written (a cap under the floor, times in the future, real users at
// a million a second) is ignored, not obeyed: the fleet paces by its pace,
// stays on Redis (no fallback), and its next judged minute writes a good
// state over it.
func TestFleetForgedUsageState(t *testing.T) {
	t.Parallel()
	srv, c, now, m0, clk := harmRedis(t)
	const scope = "111122223333/eu-west-1"
	f := harmFleet(t, srv.URL, "test", clk)
	setOldPace(t, c, f, scope, 1) // an hour old: at the ceiling
	future := now.Add(100 * 365 * 24 * time.Hour)
	forged := []usageState{
		{Cap: harmCap{Cap: 0.05, CutAt: now}, JudgedAt: now},
		{Cap: harmCap{Cap: 10, CutAt: future}, Seen: future, JudgedAt: future},
		{Users: userModel{known: true, users: 1e6, readAt: now}},
	}
	ctx := context.Background()
	for _, s := range forged {
		if err := c.Set(ctx, f.region(scope).keys[3], s.String(), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.reserve(ctx, f.region(scope)); err != nil {
			t.Fatalf("forged %q: %v", s.String(), err)
		}
		if got := f.Rate(scope); got != 30 {
			t.Errorf("forged %q: rate %v, want the pace's 30", s.String(), got)
		}
		if f.inFallback() {
			t.Errorf("forged %q: the fleet fell back to its local share", s.String())
		}
	}
	// A judged minute replaces the forged state with one resetq writes.
	m := m0.Add(-4 * time.Minute)
	carryMinute(t, f, scope, m, 600, 0, 59*time.Second)
	f.Observe(scope, []Usage{{Minute: m, Calls: 1200}})
	raw, err := c.Get(ctx, f.region(scope).keys[3]).Result()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := parseUsageState(raw); err != nil || !f.pc.plausible(s, clk.Now()) || s.Seen.IsZero() {
		t.Errorf("after a judged minute Redis holds %q (%v), want a state resetq wrote", raw, err)
	}
}

// TestStateFormatsOnlyGrow pins what a fleet keeps in Redis. Replicas of
// two versions share it during a rolling update (stateFields): a change
// that fails here must append fields, never reorder, drop or redefine
// them, and give the new ones a default that means what this version does.
func TestStateFormatsOnlyGrow(t *testing.T) {
	t.Parallel()
	at := func(us int64) time.Time { return time.UnixMicro(us) }
	p := pace{CutAt: at(1764460800123456), Cut: true, To: 18.25, From: 20.5, Shared: true, Gain: 0.25}
	if got, want := p.String(), "1764460800123456 1 18.25 20.5 1 0.25"; got != want {
		t.Errorf("pace %q, want %q", got, want)
	}
	u := usageState{Cap: harmCap{Cap: 17.5, Edge: 19.5, CutAt: at(1764460800123456)}, Seen: at(1764460740000000), JudgedAt: at(1764460800123457), Spare: 2, Informed: true,
		Users:  userModel{known: true, users: 9.5, own: 12.25, readAt: at(1764460800123458), base: 600, num: 30, den: 601, baseKnown: true},
		Within: 3, Lost: 2.5, Calls: 1800.25}
	if got, want := u.String(), "17.5 19.5 1764460800123456 1764460740000000 1764460800123457 2 1 1 9.5 12.25 1764460800123458 600 30 601 1 0 3 2.5 1800.25"; got != want {
		t.Errorf("usage state %q, want %q", got, want)
	}
}

// TestStateFields: the known fields of a longer state, a shorter one's
// with the defaults of its missing later fields (the last ones given),
// and too few refused.
func TestStateFields(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"a b", []string{"a", "b", "x", "y", "z"}},
		{"a b c d", []string{"a", "b", "c", "d", "z"}},
		{"a b c d e", []string{"a", "b", "c", "d", "e"}},
		{" a\tb c d e f g ", []string{"a", "b", "c", "d", "e"}},
	} {
		got, err := stateFields(tt.in, 5, "x", "y", "z")
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("stateFields(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "a", "   "} {
		if got, err := stateFields(bad, 5, "x", "y", "z"); err == nil {
			t.Errorf("stateFields(%q) = %q, want an error: fewer than the 2 fixed fields", bad, got)
		}
	}
}

// TestFleetMixedVersions: during a rolling update a replica reads what
// a replica of another version wrote: a newer one's pace and usage state,
// with fields it does not know, and an older one's, without the later
// ones. It paces under that state's cap, cuts that pace, and judges the
// next minute from that cap, neither falling back to its local share nor
// writing a state without a cap over the fleet's.
func TestFleetMixedVersions(t *testing.T) {
	t.Parallel()
	srv, c, now, m0, clk := harmRedis(t)
	ctx := context.Background()
	m := m0.Add(-4 * time.Minute)
	s := usageState{Cap: harmCap{Cap: 12, Edge: 12.5, CutAt: m.Add(-5 * time.Minute)}, Seen: m.Add(-time.Minute), JudgedAt: now, Informed: true}
	p := pace{CutAt: now.Add(-time.Hour).Truncate(time.Microsecond), To: 22.5, Gain: 1}
	for i, v := range []struct{ name, pace, usage string }{
		{"newer", p.String() + " 1 later", s.String() + " 0.5 7 later"},
		{"older", strings.Join(strings.Fields(p.String())[:5], " "), strings.Join(strings.Fields(s.String())[:7], " ")},
	} {
		scope := fmt.Sprintf("11112222333%d/eu-west-1", i)
		f := harmFleet(t, srv.URL, "test", clk)
		r := f.region(scope)
		if err := c.Set(ctx, r.keys[1], v.pace, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, r.keys[3], v.usage, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.reserve(ctx, r); err != nil {
			t.Fatalf("%s replica's state: %v", v.name, err)
		}
		if got := f.Rate(scope); got != 12 {
			t.Errorf("%s replica's state: rate %v, want its cap 12 (the pace alone is at 30)", v.name, got)
		}
		f.Throttled(scope)
		if f.inFallback() {
			t.Fatalf("%s replica's state: the fleet fell back to its local share", v.name)
		}
		if got := storedPace(t, c, r.keys[1]); !got.Cut {
			t.Errorf("%s replica's pace %+v after a throttle, want it cut", v.name, got)
		}
		// A minute in which real users lost nothing: the cap climbs from 12.
		carryMinute(t, f, scope, m, 600, 0, 59*time.Second)
		f.Observe(scope, []Usage{{Minute: m, Calls: 1200}})
		raw, err := c.Get(ctx, r.keys[3]).Result()
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseUsageState(raw)
		if err != nil || got.Cap.Cap < 12 || got.Cap.Cap > 12*1.015 || !got.Seen.Equal(m) {
			t.Errorf("%s replica's state, then a judged minute: Redis holds %q (%v), want the cap 12 climbed at most 1.5%%", v.name, raw, err)
		}
	}
}
