package ratelimit

import (
	"context"
	"math"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestLimiterAdapts(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)}
	l, err := New(Config{Ceiling: 20, Now: c.Now})
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

	succeed(20, time.Second)
	check("starts at the ceiling; successes keep it there", 20)

	l.Throttled()
	check("throttle after 20 good calls in the last second: cut by 0.7", 14)
	c.Advance(500 * time.Millisecond)
	l.Throttled()
	check("a second throttle inside the cut interval is the same event", 14)

	c.Advance(2 * time.Second) // the last second holds no success
	succeed(5, time.Second)    // 5 calls got through in the last second
	l.Throttled()
	check("a throttle after 5 good calls in the last second: straight to 5", 5)

	c.Advance(2 * time.Second)
	l.Throttled()
	check("a throttle with no success in the last second: the floor (others use it all)", 1)
	succeed(4, 4*time.Second)
	check("recovery from the floor is fast (the plateau is around 0)", 5)

	succeed(4, 2*time.Second)
	check("below the plateau (4..6) it recovers 1/s per second (5% of 20)", 7)
	succeed(1, time.Hour)
	check("never above the ceiling", 20)

	succeed(20, time.Second)
	l.Throttled() // found 20 -> cut to 14; plateau is 16..24
	succeed(1, 2*time.Second)
	check("fast recovery below the plateau", 16)
	succeed(1, 10*time.Second)
	check("10x slower on the plateau around the rate that throttled", 17)
}

func TestLimiterFloor(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(0, 0)}
	l, _ := New(Config{Ceiling: 24, Now: c.Now})
	for range 50 {
		c.Advance(2 * time.Second)
		l.Throttled()
	}
	if got := l.Limit(); !near(got, 1.2) { // 5% of 24
		t.Fatalf("limit after many throttles %v, want the floor 1.2", got)
	}
	low, _ := New(Config{Ceiling: 2, Now: c.Now})
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
	c := &clock{t: time.Unix(0, 0)}
	seen := map[string]float64{}
	r, err := NewRegions(Config{Ceiling: 10, Now: c.Now}, func(region string, limit float64) { seen[region] = limit })
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
