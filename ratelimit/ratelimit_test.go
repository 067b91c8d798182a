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
	steps := []struct {
		name    string
		advance time.Duration
		event   string // throttle | success
		want    float64
	}{
		{"starts at the ceiling; success keeps it", 0, "success", 20},
		{"throttle cuts by 0.7", time.Second, "throttle", 14},
		{"a second throttle inside the cut interval is the same event", 500 * time.Millisecond, "throttle", 14},
		{"after the interval it cuts again", 600 * time.Millisecond, "throttle", 9.8},
		{"recovers 1/s per second (5% of 20)", 2 * time.Second, "success", 11.8},
		{"recovery counts only elapsed time", 0, "success", 11.8},
		{"more recovery", 3 * time.Second, "success", 14.8},
		{"never above the ceiling", time.Hour, "success", 20},
	}
	for _, s := range steps {
		c.Advance(s.advance)
		switch s.event {
		case "throttle":
			l.Throttled()
		case "success":
			l.Succeeded()
		}
		if got := l.Limit(); !near(got, s.want) {
			t.Fatalf("%s: limit %v, want %v", s.name, got, s.want)
		}
		if got := float64(l.bucket.Limit()); !near(got, s.want) {
			t.Fatalf("%s: token bucket at %v, want %v", s.name, got, s.want)
		}
	}
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
	if !near(seen["us-east-1"], 7) || seen["eu-west-1"] != 10 {
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
