package ratelimit

import (
	"math"
	"testing"
	"time"
)

func TestStartFrom(t *testing.T) {
	c, err := Config{Ceiling: 30, Start: 22.5}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	tests := []struct {
		name   string
		users  float64
		quota  float64
		to     float64
		from   float64
		shared bool
	}{
		{"nobody: the ceiling", 0, 30, 30, 0, false},
		{"10/s: what they leave less 2.5 sd", 10, 30, 20 - 2.5*math.Sqrt(10), 20, true},
		{"1/s", 1, 30, 26.5, 29, true},
		{"a higher quota than --rate", 10, 60, 30, 50, true},
		{"they take it all: the floor", 29, 30, 1.5, 1.5, true},
	}
	for _, tt := range tests {
		c.Quota = tt.quota
		p := c.startFrom(now, tt.users)
		if math.Abs(p.To-tt.to) > 1e-9 || p.From != tt.from || p.Shared != tt.shared || !p.CutAt.Equal(now) {
			t.Errorf("%s: %+v, want to %.3f from %.3f shared %v", tt.name, p, tt.to, tt.from, tt.shared)
		}
	}
}

func TestCapAfter(t *testing.T) {
	c, err := Config{Ceiling: 30, HarmBudget: 0.005}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	// A minute of 600 real users' calls and 1,080 of ours at 18/s.
	u := func(lost float64) Usage { return Usage{Calls: 1680 + 4, Throttles: lost + 4} }
	tests := []struct {
		name   string
		cap    float64
		u      Usage
		calls  float64
		stale  bool
		want   float64
		wantOK bool
	}{
		{"no loss, no cap: none", 0, u(0), 1084, false, 0, true},
		{"no loss: up 1.5%", 18, u(0), 1084, false, 18 * 1.015, true},
		{"up to the ceiling: lifted", 29.9, u(0), 1084, false, 0, true},
		{"one lost call does not cut", 18, u(1), 1084, false, 18 * (1 + 0.05*(harmAim-1/3.0)), true},
		{"one lost call of a few: held", 18, Usage{Calls: 1084 + 60, Throttles: 5}, 1084, false, 18, true},
		{"at the budget (3 of 600): down from the minute's rate", 0, u(3), 1084, false, 18 * (1 - 0.05*(1-harmAim)), true},
		{"far over: down 10% at most", 20, u(30), 1084, false, 18 * 0.9, true},
		{"under the minute's rate: from the cap", 15, u(30), 1084, false, 15 * 0.9, true},
		{"stale: no cut", 15, u(30), 1084, true, 15, true},
		{"we did not call: nothing", 15, u(30), 0, false, 15, false},
		{"nobody else: nothing", 15, Usage{Calls: 1084, Throttles: 4}, 1084, false, 15, false},
	}
	for _, tt := range tests {
		got, ok := c.capAfter(tt.cap, tt.u, tt.calls, 4, 18, tt.stale)
		if math.Abs(got-tt.want) > 1e-9 || ok != tt.wantOK {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestObserve: the first reading sets the start from real users' busiest
// recent minute less the limiter's own calls; a later minute over the
// budget caps the rate; the limiter's own throttles stop slowing its
// probes once a minute has been judged.
func TestObserve(t *testing.T) {
	now := time.Unix(1_000_020, 0) // 20 s into a minute
	l, err := New(Config{Ceiling: 30, Start: 22.5, HarmBudget: 0.005, ThrottleTarget: 0.001, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	m0 := now.Truncate(time.Minute)
	l.Observe([]Usage{{Minute: m0.Add(-3 * time.Minute), Calls: 300}, {Minute: m0.Add(-2 * time.Minute), Calls: 600}})
	if got, want := l.Limit(), 20-2.5*math.Sqrt(10); math.Abs(got-want) > 1e-9 {
		t.Fatalf("start %v, want %v (real users at 10/s in their busiest minute)", got, want)
	}
	// A whole minute of calls at the limiter's pace, then usage saying
	// real users lost 30 of 600.
	calls := 0
	for end := m0.Add(2 * time.Minute); now.Before(end); now = now.Add(time.Millisecond) {
		if now.Before(m0.Add(time.Minute)) {
			continue
		}
		if l.Allow(now) {
			calls++
		}
	}
	if l.Cap() != 0 {
		t.Fatalf("cap %v before any usage of a minute with calls", l.Cap())
	}
	rate := float64(calls) / 60
	l.Observe([]Usage{{Minute: m0.Add(time.Minute), Calls: float64(calls) + 600, Throttles: 30}})
	if got := l.Cap(); math.Abs(got-0.9*rate) > 1e-9 || l.Limit() > got {
		t.Fatalf("cap %v (limit %v), want 0.9 x the minute's %v/s", got, l.Limit(), rate)
	}
	if !l.judged {
		t.Fatal("a minute with calls was not judged")
	}
	// The same minute again changes nothing.
	before := l.Cap()
	l.Observe([]Usage{{Minute: m0.Add(time.Minute), Calls: float64(calls) + 600, Throttles: 300}})
	if l.Cap() != before {
		t.Fatalf("a minute taken twice moved the cap to %v", l.Cap())
	}
}
