package ratelimit

import (
	"cmp"
	"context"
	"github.com/resetq/resetq/clock/clocktest"
	"math"
	"strings"
	"testing"
	"time"
)

type manualClock struct{ t time.Time }

func (c *manualClock) Now() time.Time          { return c.t }
func (c *manualClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestLimiterAdapts(t *testing.T) {
	t.Parallel()
	c := &manualClock{t: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)}
	// SharedRecovery 128 s and SharedMargin 1: of 2 calls/s of headroom, 1
	// comes back at 1/128 per second, a step exact in binary.
	l, err := New(Config{Ceiling: 20, SharedBelow: 19, SharedRecovery: 128 * time.Second, SharedMargin: 1, Clock: clocktest.Func(c.Now)})
	if err != nil {
		t.Fatal(err)
	}
	// succeed makes n calls succeed, evenly over d.
	succeed := func(n int, d time.Duration) {
		for range n {
			c.Advance(d / time.Duration(n))
			l.Succeeded()
		}
	}
	check := func(step string, want float64) {
		t.Helper()
		if got := l.Limit(); !near(got, want) {
			t.Fatalf("%s: limit %v, want %v", step, got, want)
		}
		if got := float64(l.bucket.Limit()); !near(got, want) {
			t.Fatalf("%s: token bucket at %v, want %v", step, got, want)
		}
	}

	succeed(40, 2*time.Second)
	check("starts at the ceiling; successes keep it there", 20)

	l.Throttled()
	check("throttle after 20 good calls in the last second: cut to 0.97 of them", 19.4)
	c.Advance(500 * time.Millisecond)
	l.Throttled()
	check("a second throttle inside the cut interval is the same event: no cut, the climb goes on", 19.4+0.5*0.06)
	succeed(5, 5*time.Second)
	check("near the quota found (20), recovery is 0.3% of it per second", 19.4+5.5*0.06)

	c.Advance(3 * time.Second)       // a pause; then calls again
	succeed(5, 500*time.Millisecond) // 5 got through in the first half second
	l.Throttled()
	check("a throttle before a full second of calls: cut to what got through less the headroom (2, or 20% of it if less)", 4)
	succeed(2, 2*time.Second)
	check("then recover fast (5% of the ceiling per second): that was no measure of the quota", 6)

	c.Advance(2 * time.Second)
	l.Throttled()
	check("a throttle with no success in the last second: the floor (others use it all)", 1)
	succeed(4, 4*time.Second)
	check("recovery away from the quota found is 5% of the ceiling per second", 5)
	succeed(1, time.Hour)
	check("never above the ceiling", 20)

	succeed(10, time.Second) // others take half the quota: 10 of ours got through
	l.Throttled()
	check("under 95% of the ceiling got through: real users have the rest; cut to 2 calls/s under the 10", 8)
	succeed(64, 64*time.Second)
	check("back toward 1 call/s under the quota found, slowly: 1 call/s in 128 s", 8.5)
	succeed(64, 64*time.Second)
	check("1 call/s under the quota found", 9)
	succeed(33, 33*time.Second)
	check("then probing gently up to 1.1 times it (0.03/s)", 9+33*0.03)
	succeed(40, 40*time.Second)
	check("past that (real users left), fast again: 1/s", 11+(73-2/0.03)*1)
	succeed(5, 5*time.Second)
	c.Advance(100 * time.Millisecond)
	succeed(18, 900*time.Millisecond) // at the ceiling, real users back: 18 of ours got through
	l.Throttled()
	check("cut to 2 calls/s under the 18", 16)
	succeed(64, 64*time.Second)
	check("back toward 1 call/s under the quota found in 128 s: 1/128 per second", 16.5)
	c.Advance(100 * time.Millisecond)
	succeed(16, 900*time.Millisecond) // still on the way back: 16 got through
	l.Throttled()
	check("a throttle on the way back takes the plain cut (0.97 of the 16), not the headroom again", 0.97*16)
}

func TestLimiterFloor(t *testing.T) {
	t.Parallel()
	c := &manualClock{t: time.Unix(0, 0)}
	l, _ := New(Config{Ceiling: 24, Clock: clocktest.Func(c.Now)})
	for range 50 {
		c.Advance(2 * time.Second)
		l.Throttled()
	}
	if got := l.Limit(); !near(got, 1.2) { // 5% of 24
		t.Fatalf("limit after many throttles %v, want the floor 1.2", got)
	}
	low, _ := New(Config{Ceiling: 2, Clock: clocktest.Func(c.Now)})
	for range 20 {
		c.Advance(2 * time.Second)
		low.Throttled()
	}
	if got := low.Limit(); !near(got, 0.5) {
		t.Fatalf("floor of a low ceiling %v, want 0.5", got)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, r := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, err := New(Config{Ceiling: r}); err == nil {
			t.Errorf("New with ceiling %v: no error", r)
		}
		if _, err := NewRegions(Config{Ceiling: r}, nil); err == nil {
			t.Errorf("NewRegions with ceiling %v: no error", r)
		}
	}
}

func TestRegionsAreIndependent(t *testing.T) {
	t.Parallel()
	c := &manualClock{t: time.Unix(0, 0)}
	seen := map[string]float64{}
	r, err := NewRegions(Config{Ceiling: 10, Clock: clocktest.Func(c.Now)}, func(region string, limit float64) { seen[region] = limit })
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(context.Background(), "us-east-1"); err != nil {
		t.Fatal(err)
	}
	r.Get("eu-west-1")
	if seen["us-east-1"] != 10 || seen["eu-west-1"] != 10 {
		t.Fatalf("onChange on creation: %v", seen)
	}
	r.Throttled("us-east-1")
	if seen["us-east-1"] >= 10 || seen["eu-west-1"] != 10 {
		t.Fatalf("after a throttle in us-east-1: %v", seen)
	}
	if first, again := r.Get("us-east-1"), r.Get("us-east-1"); first != again {
		t.Fatal("Get returns a new limiter each time")
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	l, _ := New(Config{Ceiling: 0.001}) // one token, then one every 1000s
	ctx, cancel := context.WithCancel(context.Background())
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("first token: %v", err)
	}
	cancel()
	if err := l.Wait(ctx); err == nil {
		t.Fatal("Wait on a canceled context returned nil")
	}
}

// TestCutGain: with a ThrottleTarget, a shared cut slows the probes when
// the share throttled since the last cut was over the target, speeds them
// back up (never past the default) when under, and leaves them alone
// without a target, before a first cut, or when the cut finds nobody else
// in the quota (alone, resetq's throttles cost nobody).
func TestCutGain(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	cut := pace{CutAt: now.Add(-time.Minute), Cut: true, To: 10, From: 12, Gain: 0.5}
	for _, tt := range []struct {
		name             string
		target           float64
		p                pace
		calls, throttled int
		want             float64
	}{
		{"no target", 0, cut, 100, 10, 0.5},
		{"throttled 4x the target: half speed", 0.001, cut, 4000, 16, 0.25},
		{"10x the target: at most half speed per cut", 0.001, cut, 1000, 10, 0.25},
		{"a quarter of the target: double speed", 0.001, cut, 4000, 1, 1},
		{"never past the default speed", 0.001, pace{CutAt: cut.CutAt, Cut: true, To: 10, From: 12, Gain: 1}, 100000, 1, 1},
		{"never under the least", 0.001, pace{CutAt: cut.CutAt, Cut: true, To: 10, From: 12, Gain: minGain}, 100, 50, minGain},
		{"the start is not a cut", 0.001, pace{CutAt: cut.CutAt, To: 10, Gain: 0.5}, 100, 50, 0.5},
		{"not shared (nobody else in the quota): left as it was", 0.001, cut, 1000, 10, 0.5},
	} {
		c := Config{Ceiling: 20, SharedBelow: 19, ThrottleTarget: tt.target}.withDefaults()
		found := 12.0 // under SharedBelow: real users have the rest
		if strings.HasPrefix(tt.name, "not shared") {
			found = 19.5
		}
		got, ok := c.cut(tt.p, now, c.rateAt(tt.p, now), found, 10*time.Second, tt.calls, tt.throttled)
		if !ok || !near(got.Gain, tt.want) {
			t.Errorf("%s: gain %v (cut %v), want %v", tt.name, got.Gain, ok, tt.want)
		}
	}
	// The gain scales the probe near the quota found: at half speed it
	// climbs 0.3% × 12 / 2 per second.
	c := Config{Ceiling: 20}.withDefaults()
	p := pace{CutAt: now, Cut: true, To: 11.7, From: 12, Gain: 0.5}
	if got := c.rateAt(p, now.Add(10*time.Second)); !near(got, 11.7+10*0.003*12/2) {
		t.Errorf("rate 10 s after a cut at gain 0.5: %v", got)
	}
	// It does not slow the way back from a shared cut's headroom to
	// SharedMargin (1.5/s) under the quota found: that takes
	// SharedRecovery (2 minutes) at any gain. At the least gain the way
	// back from 10 to 11.5 had taken 41 minutes.
	p = pace{CutAt: now, Cut: true, To: 10, From: 13, Shared: true, Gain: minGain}
	for _, w := range []struct {
		after time.Duration
		want  float64
	}{{time.Minute, 10.75}, {2 * time.Minute, 11.5}, {2*time.Minute + 10*time.Second, 11.5 + 10*0.003*13*minGain}} {
		if got := c.rateAt(p, now.Add(w.after)); !near(got, w.want) {
			t.Errorf("rate %v after a shared cut at the least gain: %v, want %v", w.after, got, w.want)
		}
	}
}

// TestLimiterStart: with Start, the first call goes at Start and the rate
// climbs at StartIncrease to the ceiling.
func TestLimiterStart(t *testing.T) {
	t.Parallel()
	c := &manualClock{t: time.Unix(0, 0)}
	l, _ := New(Config{Ceiling: 20, Start: 10, StartIncrease: 1, Clock: clocktest.Func(c.Now)})
	c.Advance(time.Hour) // the ramp starts at the first call, not at New
	if got := l.Limit(); got != 10 {
		t.Fatalf("first limit %v, want the start 10", got)
	}
	c.Advance(5 * time.Second)
	if got := l.Limit(); !near(got, 15) {
		t.Fatalf("5 s later %v, want 10 + 5 × 1/s", got)
	}
	c.Advance(time.Minute)
	if got := l.Limit(); got != 20 {
		t.Fatalf("a minute later %v, want the ceiling", got)
	}
}

// TestCutBunched: more calls got through in the last second than the rate
// (they bunched on the way: workers on busy CPUs, a network, a fleet's
// late reports) is no quota found over the rate, nor over the rate the
// cap or the room held the calls to. Taken for one, a plain cut climbed
// fast (5% of the ceiling a second) up to 0.9 times it: found 23 at a
// rate of 18 sent the rate over 20/s within 2 s of the cut.
func TestCutBunched(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	climbing := pace{CutAt: now.Add(-10 * time.Second), Cut: true, To: 18, From: 18.5, Gain: 1} // at 18 + 10 s × 0.3% of 18.5
	long := pace{CutAt: now.Add(-time.Hour), Cut: true, To: 18, From: 18.5, Gain: 1}            // at the ceiling, 30
	for _, tt := range []struct {
		name             string
		sharedBelow      float64
		p                pace
		ran              float64 // 0: the pace's rate
		found            float64
		wantTo, wantFrom float64 // of the rate the calls ran at
	}{
		{"plain cut", 0, climbing, 0, 23, 0.97, 1},
		{"shared cut: 2/s of headroom under the rate", 28.5, climbing, 0, 23, 1 - 2/18.555, 1},
		{"the cap holds the pace's 30 at 15", 0, long, 15, 19, 0.97, 1},
	} {
		c := Config{Ceiling: 30, SharedBelow: tt.sharedBelow}.withDefaults()
		ran := cmp.Or(tt.ran, c.rateAt(tt.p, now))
		got, ok := c.cut(tt.p, now, ran, tt.found, 10*time.Second, 100, 1)
		if !ok || math.Abs(got.To-tt.wantTo*ran) > 0.01 || !near(got.From, tt.wantFrom*ran) {
			t.Errorf("%s: cut at %v with %v through: %+v, want to %.2f from %.2f", tt.name, ran, tt.found, got, tt.wantTo*ran, tt.wantFrom*ran)
			continue
		}
		if r := c.rateAt(got, now.Add(2*time.Second)); r > got.To+2*c.PlateauIncrease*ran+1e-9 {
			t.Errorf("%s: %v 2 s after the cut to %v, want at most the plateau's slow climb", tt.name, r, got.To)
		}
	}
}
