package ratelimit

import (
	"cmp"
	"context"
	"github.com/resetq/resetq/clock/clocktest"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStartFrom(t *testing.T) {
	c := Config{Ceiling: 30, Start: 22.5}.withDefaults()
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
	c := Config{Ceiling: 30, HarmBudget: 0.005}.withDefaults()
	minute := time.Unix(1_000_020, 0)
	now := minute.Add(3 * time.Minute)
	cut := minute.Add(-time.Minute) // before the minute: not stale
	// A minute of 600 real users' calls and 1,084 of ours at 18/s, 4 of
	// them throttled.
	u := func(lost float64) Usage { return Usage{Minute: minute, Calls: 600 + 1084, Throttles: lost + 4} }
	capped := func(v float64) harmCap { return harmCap{Cap: v, Edge: 25, CutAt: cut} }
	tests := []struct {
		name   string
		h      harmCap
		u      Usage
		calls  float64
		want   harmCap
		wantOK bool
	}{
		{"no loss, no cap: none", harmCap{}, u(0), 1084, harmCap{}, true},
		{"no loss: up 1.5%", capped(18), u(0), 1084, capped(18 * 1.015), true},
		{"no loss, far under the edge: up a Ceiling/40", capped(10), u(0), 1084, capped(10 + 30.0/recoverySteps), true},
		{"near the edge: up 0.3%", harmCap{Cap: 18, Edge: 18.5, CutAt: cut}, u(0), 1084, harmCap{Cap: 18 * 1.003, Edge: 18.5, CutAt: cut}, true},
		{"up to the ceiling: lifted", capped(29.9), u(0), 1084, harmCap{}, true},
		{"one lost call does not cut", capped(18), u(1), 1084, capped(18 * (1 + 0.05*(harmAim-1/3.0))), true},
		{"near the edge, long after the cut: the edge forgotten", harmCap{Cap: 18, Edge: 18.5, CutAt: now.Add(-edgeMemory)}, u(0), 1084,
			harmCap{Cap: 18 + 30.0/recoverySteps, Edge: 18.5, CutAt: now.Add(-edgeMemory)}, true},
		{"a quiet minute (2 calls of ours, 26 of theirs lost): held", capped(18), Usage{Minute: minute, Calls: 600 + 2, Throttles: 30}, 2, capped(18), true},
		{"within the budget: held", capped(18), u(3), 1084, capped(18), true},
		{"one lost call of a few: held", capped(18), Usage{Minute: minute, Calls: 1084 + 60, Throttles: 5}, 1084, capped(18), true},
		{"over the budget (6 of 600): down from the minute's rate", harmCap{}, u(6), 1084, harmCap{Cap: 18 * (1 - 0.05*(2-harmAim)), Edge: 18, CutAt: now}, true},
		{"far over: down 10% at most", capped(20), u(30), 1084, harmCap{Cap: 18 * 0.9, Edge: 18, CutAt: now}, true},
		{"under the minute's rate: from the cap", capped(15), u(30), 1084, harmCap{Cap: 15 * 0.9, Edge: 15, CutAt: now}, true},
		{"stale: no cut", harmCap{Cap: 15, Edge: 25, CutAt: minute.Add(time.Second)}, u(30), 1084, harmCap{Cap: 15, Edge: 25, CutAt: minute.Add(time.Second)}, true},
		{"we did not call: nothing", capped(15), u(30), 0, capped(15), false},
		{"nobody else: nobody lost, up", capped(15), Usage{Minute: minute, Calls: 1084, Throttles: 4}, 1084, capped(15 * 1.015), true},
		// A window under half full: the losses were someone's burst, not
		// this limiter's doing (or an attacker's ForgotPassword flood).
		{"far over, but the quota half empty: held", capped(20), u(30), 1084, capped(20), true},
		// An own throttle's dip (capThrottled) climbs back in any minute
		// that does not cut, and is no cut itself.
		{"an own throttle's dip, held: back up 1.5%", harmCap{Cap: 11.64, Edge: 25, CutAt: cut, OwnFrom: 12}, u(3), 1084,
			harmCap{Cap: 11.64 * 1.015, Edge: 25, CutAt: cut, OwnFrom: 12}, true},
		{"an own throttle's dip, back", harmCap{Cap: 11.9, Edge: 25, CutAt: cut, OwnFrom: 12}, u(3), 1084, capped(12), true},
		{"over the budget after an own throttle's dip: down from the cap before it", harmCap{Cap: 11.64, Edge: 25, CutAt: cut, OwnAt: cut, OwnFrom: 12}, u(30), 1084,
			harmCap{Cap: 12 * 0.9, Edge: 12, CutAt: now, OwnAt: cut}, true},
		// Near the edge the cap before the dip would climb 0.3%: the dip,
		// under the edge's band, climbs 1.5%, but never past that.
		{"a dip near the edge: up 1.5%, the cap before it 0.3%", harmCap{Cap: 11.3, Edge: 12, CutAt: cut, OwnFrom: 11.65}, u(0), 1084,
			harmCap{Cap: 11.3 * 1.015, Edge: 12, CutAt: cut, OwnFrom: 11.65 * 1.003}, true},
		{"a dip near the edge, back: where the cap before it got to", harmCap{Cap: 11.62, Edge: 12, CutAt: cut, OwnFrom: 11.65}, u(0), 1084,
			harmCap{Cap: 11.65 * 1.003, Edge: 12, CutAt: cut}, true},
	}
	for _, tt := range tests {
		full := !strings.Contains(tt.name, "half empty")
		got, _, within, ok := c.capAfter(tt.h, tt.u, tt.calls, 4, 18, full, 1, now)
		if math.Abs(got.Cap-tt.want.Cap) > 1e-9 || got.Edge != tt.want.Edge || !got.CutAt.Equal(tt.want.CutAt) || !got.OwnAt.Equal(tt.want.OwnAt) || math.Abs(got.OwnFrom-tt.want.OwnFrom) > 1e-9 || ok != tt.wantOK {
			t.Errorf("%s: %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
		// Within the budget: every minute that neither cuts nor would but
		// for being stale, the noise of a few calls or a half-empty quota
		// (someone else's burst: it does not drop real users' headroom),
		// and the 6 of 600 that cut: within two standard deviations of
		// the budget's 3.
		notWithin := strings.HasPrefix(tt.name, "stale") || strings.Contains(tt.name, "of a few") || strings.Contains(tt.name, "half empty")
		if wantWithin := ok && (!got.CutAt.Equal(now) || strings.Contains(tt.name, "6 of 600")) && !notWithin; within != wantWithin {
			t.Errorf("%s: within %v, want %v", tt.name, within, wantWithin)
		}
	}
	// Judged by half the budget (lossScale): the budget's 3 lost of 600
	// cut, and are over it, but within the noise of the 1.5 it allows
	// (two standard deviations: 3.9); 4 are not; one lost call is within
	// it, over its aim: the cap holds.
	if got, spare, within, _ := c.capAfter(capped(18), u(3), 1084, 4, 18, true, 0.5, now); math.Abs(got.Cap-18*(1+0.05*(harmAim-2))) > 1e-9 || spare || !within {
		t.Errorf("3 lost of 600 at half the budget: cap %v, spare %v, within %v; want %v, false, true", got.Cap, spare, within, 18*(1+0.05*(harmAim-2)))
	}
	if _, _, within, _ := c.capAfter(capped(18), u(4), 1084, 4, 18, true, 0.5, now); within {
		t.Error("4 lost of 600 at half the budget: within; want not")
	}
	// The noise's bound (at the whole budget, 3 allowed: 6.46): 6 lost of
	// 600 are within, 7 are not; of 1,800 (9 allowed: 15), 15 are within
	// and 16 are not. A stale minute is judged as any other; a half-empty
	// quota's, or fewer than poolUsers real users' calls, by the budget
	// itself.
	for _, tt := range []struct {
		users, lost float64
		stale, full bool
		want        bool
	}{
		{600, 6, false, true, true}, {600, 7, false, true, false},
		{1800, 15, false, true, true}, {1800, 16, false, true, false},
		{600, 6, true, true, true}, {600, 7, true, true, false},
		{600, 6, false, false, false}, {600, 3, false, false, true},
		{599, 5, false, true, false}, {599, 2.9, false, true, true},
	} {
		h := capped(18)
		if tt.stale {
			h.CutAt = minute.Add(time.Second)
		}
		m := Usage{Minute: minute, Calls: tt.users + 1084, Throttles: tt.lost + 4}
		if _, _, within, _ := c.capAfter(h, m, 1084, 4, 18, tt.full, 1, now); within != tt.want {
			t.Errorf("%v lost of %v (stale %v, full %v): within %v, want %v", tt.lost, tt.users, tt.stale, tt.full, within, tt.want)
		}
	}
	if got, spare, within, _ := c.capAfter(capped(18), u(1), 1084, 4, 18, true, 0.5, now); got.Cap != 18 || spare || !within {
		t.Errorf("1 lost of 600 at half the budget: cap %v, spare %v, within %v; want 18 held, not spare, within", got.Cap, spare, within)
	}
}

// TestObserve: the first reading sets the start from real users' busiest
// recent minute less the limiter's own calls; a later minute over the
// budget caps the rate; the limiter's own throttles stop slowing its
// probes once a minute has been judged.
func TestObserve(t *testing.T) {
	now := time.Unix(1_000_020, 0) // 20 s into a minute
	l, err := New(Config{Ceiling: 30, Start: 22.5, HarmBudget: 0.005, ThrottleTarget: 0.001, Clock: clocktest.Func(func() time.Time { return now })})
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
	minute := []Usage{{Minute: m0.Add(time.Minute), Calls: float64(calls) + 600, Throttles: 30}}
	l.Observe(minute) // just ended: CloudWatch may still be filling it
	if l.Cap() != 0 || l.usage.judged(now) {
		t.Fatalf("a minute that ended just now was judged: cap %v", l.Cap())
	}
	now = now.Add(usageSettle)
	l.Observe(minute)
	if got := l.Cap(); math.Abs(got-0.9*rate) > 1e-9 || l.Limit() > got {
		t.Fatalf("cap %v (limit %v), want 0.9 x the minute's %v/s", got, l.Limit(), rate)
	}
	if !l.usage.judged(now) {
		t.Fatal("a minute with calls was not judged")
	}
	// The same minute again changes nothing.
	before := l.Cap()
	l.Observe([]Usage{{Minute: m0.Add(time.Minute), Calls: float64(calls) + 600, Throttles: 300}})
	if l.Cap() != before {
		t.Fatalf("a minute taken twice moved the cap to %v", l.Cap())
	}

	// The metrics fall silent past usageStale: the cap lapses, and a minute
	// judged after the pause starts with no cap, not the old one.
	now = now.Add(usageStale + time.Minute)
	if l.Cap() != 0 {
		t.Fatalf("cap %v after the metrics fell silent", l.Cap())
	}
	quiet := now.Truncate(time.Minute).Add(-3 * time.Minute)
	for at := quiet; at.Before(quiet.Add(time.Minute)); at = at.Add(100 * time.Millisecond) {
		l.Allow(at)
	}
	l.Observe([]Usage{{Minute: quiet, Calls: 600 + 600, Throttles: 0}})
	if !l.usage.judged(now) || l.Cap() != 0 {
		t.Fatalf("after a pause, a minute within the budget left cap %v (judged %v): the old one came back", l.Cap(), l.usage.judged(now))
	}
}

// TestWaitCanceledIsNoCall: a Wait whose context ends before its slot
// made no call, so the usage minutes do not count it as the limiter's.
func TestWaitCanceledIsNoCall(t *testing.T) {
	l, err := New(Config{Ceiling: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx); err == nil {
		t.Fatal("Wait with an ended context and a slot a second away returned nil")
	}
	total := 0.0
	for _, o := range l.own {
		total += o.calls
	}
	if total != 1 {
		t.Fatalf("%v own calls counted, want the 1 that went", total)
	}
}

// TestObserveEdges: what the usage metrics must not do.
func TestObserveEdges(t *testing.T) {
	start := time.Unix(1_000_020, 0)
	m0 := start.Truncate(time.Minute)
	users := []Usage{{Minute: m0.Add(-2 * time.Minute), Calls: 600}}
	newLimiter := func(budget float64, now *time.Time) *Limiter {
		l, err := New(Config{Ceiling: 30, Start: 22.5, HarmBudget: budget, Clock: clocktest.Func(func() time.Time { return *now })})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	t.Run("no budget: usage changes nothing", func(t *testing.T) {
		now := start
		l := newLimiter(0, &now)
		l.Observe(users)
		if got := l.Limit(); got != 22.5 {
			t.Fatalf("limit %v, want the plain start 22.5", got)
		}
	})
	t.Run("no fresh minute: the plain start", func(t *testing.T) {
		now := start
		l := newLimiter(0.005, &now)
		l.Observe([]Usage{{Minute: m0.Add(-20 * time.Minute), Calls: 600}})
		if got := l.Limit(); got != 22.5 {
			t.Fatalf("limit %v from a 20-minute-old minute, want the plain start 22.5", got)
		}
	})
	t.Run("a reading after the first minute of calls: no start, but the room real users leave", func(t *testing.T) {
		now := start
		l := newLimiter(0.005, &now)
		for end := start.Add(90 * time.Second); now.Before(end); now = now.Add(10 * time.Millisecond) {
			l.Allow(now)
		}
		before := l.Limit()
		l.Observe(users)
		if got, want := l.Limit(), min(before, 30-10-1.5); got != want {
			t.Fatalf("limit %v after a late first reading (10/s of real users), want %v: the pace left at %v, under the room", got, want, before)
		}
	})
	t.Run("a minute whose counts are not numbers says nothing", func(t *testing.T) {
		now := m0.Add(time.Minute)
		l := newLimiter(0.005, &now)
		for end := now.Add(2 * time.Minute); now.Before(end); now = now.Add(10 * time.Millisecond) {
			l.Allow(now)
		}
		now = m0.Add(2*time.Minute + usageSettle)
		for _, bad := range []Usage{
			{Minute: m0.Add(time.Minute), Calls: 2000, Throttles: math.NaN()},
			{Minute: m0.Add(time.Minute), Calls: math.Inf(1), Throttles: 30},
			{Minute: m0.Add(time.Minute), Calls: 2000, Throttles: -30},
		} {
			l.usage = usageState{Cap: harmCap{Cap: 12, Edge: 14, CutAt: m0}, JudgedAt: now}
			l.Observe([]Usage{bad})
			if got := l.Cap(); got != 12 || l.usage.JudgedAt != now {
				t.Fatalf("%+v: cap %v (judged at %v), want 12 as it was, nothing judged", bad, got, l.usage.JudgedAt)
			}
		}
		// Nor as a minute pooled under a good one: 300 real calls in the
		// next minute are judged with the minute before, but not this one.
		now = m0.Add(3*time.Minute + usageSettle)
		l.usage = usageState{Cap: harmCap{Cap: 12, Edge: 14, CutAt: m0}, JudgedAt: now}
		next := m0.Add(2 * time.Minute)
		l.Observe([]Usage{{Minute: m0.Add(time.Minute), Calls: 2000, Throttles: math.NaN()}, {Minute: next, Calls: l.ownIn(next).calls + 300}})
		if got := l.Cap(); !(got >= 12) || math.IsInf(got, 0) {
			t.Fatalf("cap %v after a good minute pooled over a NaN one, want 12 or over", got)
		}
	})
	t.Run("calls that stop mid-minute: the cap from their rate", func(t *testing.T) {
		now := m0.Add(time.Minute)
		l := newLimiter(0.005, &now)
		l.Observe(users)
		calls := 0
		for end := now.Add(10 * time.Second); now.Before(end); now = now.Add(time.Millisecond) {
			if l.Allow(now) {
				calls++
			}
		}
		rate := float64(calls) / 10
		now = m0.Add(2*time.Minute + usageSettle)
		l.Observe([]Usage{{Minute: m0.Add(time.Minute), Calls: float64(calls) + 600, Throttles: 30}})
		if got := l.Cap(); got < 0.75*rate || got > 0.95*rate { // the busy part counts a second after the last call
			t.Fatalf("cap %v after 10 s of calls at %.1f/s: want about 0.9 x that rate, not of the minute's average", got, rate)
		}
		// The metrics fall silent: the cap and the flags go stale.
		now = now.Add(usageStale)
		if got := l.Cap(); got != 0 {
			t.Fatalf("cap %v after %v without a judged minute, want none", got, usageStale)
		}
	})
}

// TestUserRoom: the room real users leave, and the returns learned from
// the minutes: a table of what the usage minutes said.
func TestUserRoom(t *testing.T) {
	c := Config{Ceiling: 30, HarmBudget: 0.005}.withDefaults() // SharedMargin 1.5
	now := time.Unix(1_000_000, 0)
	tests := []struct {
		name        string
		base        float64      // real users' calls a second before the first call
		minutes     [][2]float64 // each judged minute: real users' calls, own successes
		at          time.Duration
		midCampaign bool    // the first reading held no minute of real users alone
		want        float64 // 0: no room known
	}{
		{"nothing read", -1, nil, 0, false, 0},
		{"read before any call: what real users leave, less the margin", 10, nil, 0, false, 20 - 1.5},
		{"they take it all: none left", 31, nil, 0, false, -1},
		{"a minute at the base: nothing returns", 10, [][2]float64{{600, 1080}}, 0, false, 20 - 1.5},
		// 900 real calls against a base of 600: 300 of 1,200 own successes
		// came back (a quarter); the room leaves the returns of a faster rate.
		{"a quarter returns", 10, [][2]float64{{900, 1200}}, 0, false, (30-15+0.25*20)/1.25 - 1.5},
		{"returns learned over minutes", 0, [][2]float64{{300, 600}, {900, 1200}}, 0, false, (30-15+(1200.0/1800)*20)/(1+1200.0/1800) - 1.5},
		{"under a minute's successes: not learned yet", 0, [][2]float64{{30, 59}}, 0, false, 30 - 0.5 - 1.5},
		{"silent for usageStale: forgotten", 10, nil, usageStale, false, 0},
		// Read first mid-campaign: 900 calls might be real users' or
		// returns; none is learned, and the room counts them all.
		{"no minute of real users alone: no returns learned", 10, [][2]float64{{900, 1200}}, 0, true, 30 - 15 - 1.5},
	}
	for _, tt := range tests {
		var m userModel
		if tt.base >= 0 {
			m = userModel{known: true, users: tt.base, base: tt.base, baseKnown: !tt.midCampaign, readAt: now}
		}
		for _, mm := range tt.minutes {
			m.learn(mm[0], mm[1], true, now)
		}
		got, ok := m.room(c, now.Add(tt.at))
		switch {
		case tt.want == 0 && ok:
			t.Errorf("%s: room %.3f, want none", tt.name, got)
		case tt.want < 0 && (!ok || got > 0):
			t.Errorf("%s: room %.3f (%v), want under 0", tt.name, got, ok)
		case tt.want > 0 && (!ok || math.Abs(got-tt.want) > 1e-9):
			t.Errorf("%s: room %.3f (%v), want %.3f", tt.name, got, ok, tt.want)
		}
	}
}

// TestRoomCapsRate: a limiter told that real users take 25 of a quota of
// 30 does not climb past the 5 they leave, whatever its pace says, and a
// throttle-free limiter told nothing climbs to its ceiling.
func TestRoomCapsRate(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clk := clocktest.Func(func() time.Time { return now })
	l, err := New(Config{Ceiling: 30, HarmBudget: 0.005, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	l.Observe([]Usage{{Minute: now.Add(-3 * time.Minute).Truncate(time.Minute), Calls: 25 * 60}})
	now = now.Add(5 * time.Minute) // the pace alone would be back at the ceiling
	if got := l.Limit(); got > 5 {
		t.Errorf("real users take 25/s of 30: rate %.2f, want at most 5", got)
	}
	quiet, _ := New(Config{Ceiling: 30, HarmBudget: 0.005, Clock: clk})
	if got := quiet.Limit(); got != 30 {
		t.Errorf("told nothing: rate %.2f, want the ceiling 30", got)
	}
}

// TestCounted: what Limiter.Observe and Fleet.Observe keep of a reading.
func TestCounted(t *testing.T) {
	m := time.Unix(1_000_020, 0).Truncate(time.Minute)
	good := []Usage{{Minute: m, Calls: 600, Throttles: 3}, {Minute: m.Add(time.Minute)}}
	in := append([]Usage{
		{Minute: m, Calls: math.NaN()}, {Minute: m, Calls: 600, Throttles: math.Inf(1)}, {Minute: m, Calls: -1},
	}, good...)
	if got := counted(in); len(got) != 2 || got[0] != good[0] || got[1] != good[1] {
		t.Fatalf("counted kept %+v, want %+v", got, good)
	}
	if in[3] != good[0] {
		t.Fatal("counted wrote over its input")
	}
}

// TestThrottledAtTheCap: a throttle of the limiter's own while its calls
// ran at the cap of judged minutes cuts the cap capNear under it, leaving
// the pace (and its headroom) and the minutes' edge alone; the rest of its
// burst is absorbed; another within ownCapEvery, a throttle under the cap
// or when few calls got through, and one after the metrics fell silent
// take the pace's cut.
func TestThrottledAtTheCap(t *testing.T) {
	t0 := time.Unix(1_000_020, 0)
	setup := func(capped float64) (*Limiter, *time.Time) {
		now := t0
		l, err := New(Config{Ceiling: 30, SharedBelow: 28.5, HarmBudget: 0.005, Clock: clocktest.Func(func() time.Time { return now })})
		if err != nil {
			t.Fatal(err)
		}
		// A pace at about 14.4/s, climbing slowly.
		l.p = pace{CutAt: now.Add(-10 * time.Second), Cut: true, To: 14, From: 14, Shared: true, Gain: 1}
		l.usage = usageState{Cap: harmCap{Cap: capped, Edge: 13, CutAt: now.Add(-5 * time.Minute)}, JudgedAt: now.Add(-time.Minute)}
		l.Limit()
		return l, &now
	}
	tick := func(l *Limiter, now *time.Time, d time.Duration) {
		for end := now.Add(d); now.Before(end); *now = now.Add(50 * time.Millisecond) {
			l.Succeeded()
		}
	}

	l, now := setup(12)
	tick(l, now, 2*time.Second)
	t1 := *now
	before := l.p
	if got, _ := l.Throttled(); math.Abs(got-12*capNear) > 1e-9 || l.p != before {
		t.Fatalf("at the cap of 12: rate %v, pace %+v; want %v, the pace as it was", got, l.p, 12*capNear)
	}
	if h := l.usage.Cap; h.Edge != 13 || !h.OwnAt.Equal(t1) || !h.CutAt.Equal(t0.Add(-5*time.Minute)) {
		t.Fatalf("cap after the throttle %+v: want the own cut marked now, the minutes' edge and cut kept", h)
	}
	*now = now.Add(300 * time.Millisecond)
	if got, _ := l.Throttled(); math.Abs(got-12*capNear) > 1e-9 || l.p != before {
		t.Fatalf("the same burst: rate %v, pace %+v; want it absorbed", got, l.p)
	}
	tick(l, now, 5*time.Second)
	if got, _ := l.Throttled(); got >= 12*capNear-1 || !l.p.Cut || !l.p.CutAt.Equal(*now) || !l.p.Shared {
		t.Fatalf("at the cap again 5 s later: rate %v, pace %+v; want the pace's shared cut, 2/s under", got, l.p)
	}
	if l.usage.Cap.Cap != 12*capNear {
		t.Fatalf("cap %v, want it cut once: %v", l.usage.Cap.Cap, 12*capNear)
	}
	// After ownCapEvery, not yet back where it was: the pace's cut.
	*now = t1.Add(ownCapEvery)
	l.p = pace{CutAt: now.Add(-10 * time.Second), Cut: true, To: 14, From: 14, Shared: true, Gain: 1}
	l.usage.JudgedAt = *now
	tick(l, now, 2*time.Second)
	if l.Throttled(); !l.p.CutAt.Equal(*now) || l.usage.Cap.Cap != 12*capNear {
		t.Fatalf("at the cap after %v, not back: pace %+v, cap %+v; want the pace cut, the cap as it was", ownCapEvery, l.p, l.usage.Cap)
	}
	// Back (the minutes climbed it): the next cuts the cap again.
	*now = now.Add(5 * time.Second)
	l.p = pace{CutAt: now.Add(-10 * time.Second), Cut: true, To: 14, From: 14, Shared: true, Gain: 1}
	l.usage.Cap.Cap, l.usage.Cap.OwnFrom = 12, 0
	tick(l, now, 2*time.Second)
	if got, _ := l.Throttled(); math.Abs(got-12*capNear) > 1e-9 || !l.usage.Cap.OwnAt.Equal(*now) || l.usage.Cap.OwnFrom != 12 {
		t.Fatalf("at the cap, back: rate %v, cap %+v; want it cut again", got, l.usage.Cap)
	}
	// After spareMinutes spare minutes the pace's cut is plain, and takes it.
	l, now = setup(12)
	l.usage.Spare, l.usage.Within = spareMinutes, spareMinutes
	tick(l, now, 2*time.Second)
	if l.Throttled(); !l.p.CutAt.Equal(*now) || l.p.Shared || l.usage.Cap.Cap != 12 {
		t.Fatalf("at the cap after %d spare minutes: pace %+v, cap %+v; want the pace's plain cut", spareMinutes, l.p, l.usage.Cap)
	}

	// Under the cap, the pace sets the rate and takes the throttle, even
	// with more calls than the cap got through (bunched answers).
	l, now = setup(20)
	for end := now.Add(2 * time.Second); now.Before(end); *now = now.Add(40 * time.Millisecond) {
		l.Succeeded()
	}
	if got, _ := l.Throttled(); got >= 14 || !l.p.CutAt.Equal(*now) || l.usage.Cap.Cap != 20 || !l.usage.Cap.OwnAt.IsZero() {
		t.Fatalf("under the cap: rate %v, pace %+v, cap %+v; want the pace cut, the cap as it was", got, l.p, l.usage.Cap)
	}
	// Calls that ran under the cap (the queue trickles): the cap says
	// nothing of them, and the pace takes the throttle.
	l, now = setup(12)
	for end := now.Add(2 * time.Second); now.Before(end); *now = now.Add(200 * time.Millisecond) {
		l.Succeeded()
	}
	if l.Throttled(); !l.p.CutAt.Equal(*now) || l.usage.Cap.Cap != 12 {
		t.Fatalf("5 calls a second under a cap of 12: pace %+v, cap %+v; want the pace cut, the cap as it was", l.p, l.usage.Cap)
	}
	// Metrics fallen silent: no cap to cut.
	l, now = setup(12)
	*now = now.Add(usageStale)
	tick(l, now, 2*time.Second)
	if l.Throttled(); !l.p.CutAt.Equal(*now) || !l.usage.Cap.OwnAt.IsZero() {
		t.Fatalf("metrics silent: pace %+v, cap %+v; want the pace cut", l.p, l.usage.Cap)
	}
}

// TestThrottledAtTheCapEvenCalls holds the dip's gate to the rate the
// calls ran at, evenly spaced as the limiter sends them, whenever the
// throttle's answer comes: the throttled call took one of the last
// second's slots, so one fewer got through than ran. A gate on the count
// alone never dipped at a cap of 12 or 12.5; one on the count plus one, or
// on the span from the oldest success to the throttle, dipped for calls
// trickling under the cap.
func TestThrottledAtTheCapEvenCalls(t *testing.T) {
	t0 := time.Unix(1_000_020, 0)
	for _, tt := range []struct {
		name            string
		ceiling, capped float64
		every           time.Duration // between the successes (0: none)
		n               int           // successes (0: for 4 s)
		late            time.Duration // the throttle after the last success (0: every)
		dip             bool
	}{
		{"11.9/s at a cap of 12", 30, 12, 84 * time.Millisecond, 0, 0, true},
		{"11.9/s at a cap of 12, the throttle 10 ms after a success", 30, 12, 84 * time.Millisecond, 0, 10 * time.Millisecond, true},
		{"12.5/s at a cap of 12.5", 30, 12.5, 80 * time.Millisecond, 0, 0, true},
		{"11.1/s under a cap of 12", 30, 12, 90 * time.Millisecond, 0, 0, false},
		{"11/s under a cap of 12, the throttle 10 ms after a success", 30, 12, 91 * time.Millisecond, 0, 10 * time.Millisecond, false},
		{"10/s under a cap of 12", 30, 12, 100 * time.Millisecond, 0, 0, false},
		{"12 answers bunched in 110 ms at a cap of 12", 30, 12, 10 * time.Millisecond, 12, 0, true},
		{"6 answers bunched in 50 ms under a cap of 12", 30, 12, 10 * time.Millisecond, 6, 0, false},
		{"1/s under a cap of 2, the throttle 10 ms after a success", 30, 2, time.Second, 0, 10 * time.Millisecond, false},
		{"no success, a cap of 1 at the floor", 20, 1, 0, 0, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := t0
			l, err := New(Config{Ceiling: tt.ceiling, SharedBelow: 0.95 * tt.ceiling, HarmBudget: 0.005, Clock: clocktest.Func(func() time.Time { return now })})
			if err != nil {
				t.Fatal(err)
			}
			l.p = pace{CutAt: now.Add(-10 * time.Second), Cut: true, To: 14, From: 14, Shared: true, Gain: 1}
			l.usage = usageState{Cap: harmCap{Cap: tt.capped, Edge: 13, CutAt: now.Add(-5 * time.Minute)}, JudgedAt: now.Add(-time.Minute)}
			l.Limit()
			if tt.every > 0 {
				n := tt.n
				if n == 0 {
					n = int(4 * time.Second / tt.every)
				}
				for i := range n {
					if i > 0 {
						now = now.Add(tt.every)
					}
					l.Succeeded()
				}
				now = now.Add(cmp.Or(tt.late, tt.every))
			}
			found := l.recentOKs(now)
			got, _ := l.Throttled()
			dipped := l.usage.Cap.OwnAt.Equal(now) && l.usage.Cap.OwnFrom == tt.capped && !l.p.CutAt.Equal(now)
			if dipped != tt.dip || tt.dip && math.Abs(got-tt.capped*capNear) > 1e-9 {
				t.Fatalf("%d got through in the last second: rate %v, pace %+v, cap %+v; want dipped %v", found, got, l.p, l.usage.Cap, tt.dip)
			}
			if !tt.dip && (!l.p.CutAt.Equal(now) || l.usage.Cap.Cap != tt.capped) {
				t.Fatalf("rate %v, pace %+v, cap %+v; want the pace cut, the cap as it was", got, l.p, l.usage.Cap)
			}
		})
	}
}

// TestReturnsBase: the share of the campaign's users who come back is
// told against real users' usual minute before the campaign, so neither
// their noise nor one minute of anyone's flood hides it.
func TestReturnsBase(t *testing.T) {
	now := time.Unix(1_000_000, 0).Truncate(time.Minute)
	noisy := []float64{560, 640, 590, 610, 700, 550, 620, 600, 580, 650} // Poisson users at 10/s, busiest 700
	tests := []struct {
		name   string
		before []float64 // real users' served calls in the minutes before the campaign
		back   float64   // share of the campaign's 780 successes a minute that come back
		during []float64 // real users' own calls in the campaign's minutes
	}{
		{"noisy users, a tenth come back", noisy, 0.1, []float64{620, 585, 640, 575, 600, 610}},
		{"noisy users, none come back", noisy, 0, []float64{620, 585, 640, 575, 600, 610}},
		{"a flood minute before, a tenth come back", append(slices.Clone(noisy[:9]), 1800), 0.1, []float64{620, 585, 640, 575, 600, 610}},
		{"even users, a fifth come back", []float64{600, 600, 600, 600, 600}, 0.2, []float64{600, 600, 600, 600, 600, 600}},
	}
	for _, tt := range tests {
		var minutes []Usage
		for i, c := range tt.before {
			minutes = append(minutes, Usage{Minute: now.Add(time.Duration(i-len(tt.before)) * time.Minute), Calls: c})
		}
		base, ok := usualUsers(minutes, func(time.Time) ownMinute { return ownMinute{} }, now)
		if !ok {
			t.Fatalf("%s: no base", tt.name)
		}
		m := userModel{known: true, baseKnown: true, base: base}
		for _, u := range tt.during {
			m.learn(u+tt.back*780, 780, true, now)
		}
		// Noise of real users' own calls reads as a few returns, never as fewer.
		if got := m.share(); got < tt.back-0.02 || got > tt.back+0.04 {
			t.Errorf("%s: base %.2f/s, share %.3f, want about %.2f", tt.name, base, got, tt.back)
		}
	}
	if _, ok := usualUsers(nil, nil, now); ok {
		t.Error("no minute: want no base")
	}
}

// TestCautious: calls owed no speed (the categories beside the reset's)
// start further under what real users leave, probe past the quota found
// fast only to half the ceiling and then at the plateau's speed, and keep
// real users' headroom after spare minutes; the reset's pacing does none
// of these.
func TestCautious(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, cautious := range []bool{false, true} {
		c := Config{Ceiling: 30, Quota: 30, SharedBelow: 28.5, Cautious: cautious}.withDefaults() // Increase 1.5/s a second
		bursts := startBursts
		if cautious {
			bursts = cautiousBursts
		}
		if p := c.startFrom(now, 10); math.Abs(p.To-(20-bursts*math.Sqrt(10))) > 1e-9 {
			t.Errorf("cautious %v: start %.3f, want %.3f", cautious, p.To, 20-bursts*math.Sqrt(10))
		}
		// A plain cut that found from/s, its rate 10 s after the plateau's
		// slow climb (0.3% of it a second, gain 1) reached 1.1 x it.
		for _, tt := range []struct{ from, want, cautiousWant float64 }{
			// A burst's few calls found: fast back to half the ceiling,
			// then 0.3% of that a second.
			{2, 2.2 + 10*1.5, 15 + (10-(15-2.2)/1.5)*0.003*15},
			// A quota found over half the ceiling: 0.3% of it a second.
			{20, 30, 22 + 10*0.003*20}, // 22 + 10 x 1.5, over the ceiling
		} {
			p := pace{CutAt: now, Cut: true, To: 0.97 * tt.from, From: tt.from, Gain: 1}
			plateau := (1.1 - 0.97) / 0.003 // seconds, whatever was found
			at := now.Add(time.Duration(plateau * float64(time.Second)))
			want := tt.want
			if cautious {
				want = tt.cautiousWant
			}
			if got := c.rateAt(p, at.Add(10*time.Second)); math.Abs(got-want) > 1e-6 {
				t.Errorf("cautious %v, %v/s found: 10 s past 1.1 x it, rate %.3f, want %.3f", cautious, tt.from, got, want)
			}
		}
		for within := range spareMinutes + 1 {
			// Within the budget, not only the aim: minutes that did not
			// cut the cap.
			s := usageState{JudgedAt: now, Within: within}
			if got := c.judgedBy(s, now).SharedBelow; (got > 0) != (cautious || within < spareMinutes) {
				t.Errorf("cautious %v: after %d minutes within the budget SharedBelow %v", cautious, within, got)
			}
		}
	}
}

// TestShareFromWholeMinutes: the share of the limiter's successes its
// users return is learned from the minutes its calls ran through, not from
// one it began late in, where real users' own noise over its few calls
// reads as many returns.
func TestShareFromWholeMinutes(t *testing.T) {
	c := Config{Ceiling: 30, Quota: 30, HarmBudget: 0.005}.withDefaults()
	t0 := time.Unix(1_000_000, 0).Truncate(time.Minute)
	for _, tt := range []struct {
		name      string
		begun     time.Duration // into the minute
		wantShare float64
	}{
		{"calls all minute", 0, 0.5},
		{"calls from 5 s in", 5 * time.Second, 0.5},
		{"calls from 30 s in", 30 * time.Second, 0},
		{"calls from 50 s in", 50 * time.Second, 0},
	} {
		// Real users at 10/s before; in the minute, 200 successes of
		// the limiter's and 100 calls over real users' usual 600.
		minutes := []Usage{{Minute: t0.Add(-2 * time.Minute), Calls: 600}, {Minute: t0.Add(-time.Minute), Calls: 600}, {Minute: t0, Calls: 900}}
		mine := ownMinute{minute: t0.Unix() / 60, calls: 200, first: t0.Add(tt.begun), last: t0.Add(59 * time.Second)}
		own := func(m time.Time) ownMinute {
			if m.Equal(t0) {
				return mine
			}
			return ownMinute{}
		}
		s, judged := c.observe(usageState{}, minutes, own, t0.Add(4*time.Minute))
		if !judged {
			t.Fatalf("%s: the minute was not judged", tt.name)
		}
		if got := s.Users.share(); math.Abs(got-tt.wantShare) > 1e-9 {
			t.Errorf("%s: share %.3f, want %.3f", tt.name, got, tt.wantShare)
		}
		if s.Users.users != 700.0/60 || s.Users.own != 200.0/60 {
			t.Errorf("%s: real users %.2f/s, own %.2f/s; the latest minute is taken whole or not", tt.name, s.Users.users, s.Users.own)
		}
	}
}

// TestObserveBase: the first reading takes real users' usual quiet minute
// for the base the returns are told from, not one flood minute.
func TestObserveBase(t *testing.T) {
	c := Config{Ceiling: 30, HarmBudget: 0.005}.withDefaults()
	now := time.Unix(1_000_000, 0).Truncate(time.Minute)
	var minutes []Usage
	for i, calls := range []float64{600, 610, 1800, 590, 605} {
		minutes = append(minutes, Usage{Minute: now.Add(time.Duration(i-6) * time.Minute), Calls: calls})
	}
	s, _ := c.observe(usageState{}, minutes, func(time.Time) ownMinute { return ownMinute{} }, now)
	if !s.Users.baseKnown || s.Users.base != 605.0/60 {
		t.Errorf("base %.2f/s (known %v), want the upper median, 605 calls a minute", s.Users.base, s.Users.baseKnown)
	}
}

// TestObserveOverTheCampaign: each judged minute that did not cut the cap
// counts towards the minutes within the budget, and one that cut it starts
// them again; real users' calls and losses add up, older minutes weighing
// less, but not a minute of someone else's losses; the rate of a minute
// within the aim is kept for the reading (floored).
func TestObserveOverTheCampaign(t *testing.T) {
	c := Config{Ceiling: 30, HarmBudget: 0.005}.withDefaults()
	m0 := time.Unix(1_000_020, 0).Truncate(time.Minute)
	own := func(m time.Time) ownMinute {
		return ownMinute{minute: m.Unix() / 60, calls: 600, first: m, last: m.Add(59 * time.Second)}
	}
	var s usageState
	var minutes []Usage
	judge := func(i int, throttles float64) {
		t.Helper()
		minutes = append(minutes, Usage{Minute: m0.Add(time.Duration(i) * time.Minute), Calls: 600 + 1200, Throttles: throttles})
		var judged bool
		if s, judged = c.observe(s, minutes, own, m0.Add(time.Duration(i+1)*time.Minute+usageSettle)); !judged {
			t.Fatalf("minute %d was not judged", i)
		}
	}
	judge(0, 2) // 2 of 1,200: within the aim
	if s.Within != 1 || s.Lost != 2 || s.Calls != 1200 || s.spareRate != 10 {
		t.Fatalf("after a minute within the aim: within %d, lost %v of %v, spare rate %v; want 1, 2 of 1200, 10/s", s.Within, s.Lost, s.Calls, s.spareRate)
	}
	judge(1, 4.5) // 0.75 of the budget: within it, not the aim
	if s.Within != 2 || s.spareRate != 0 || s.Cap.Cap != 0 {
		t.Fatalf("after a minute within the budget: within %d, spare rate %v, cap %v; want 2, 0, none", s.Within, s.spareRate, s.Cap.Cap)
	}
	judge(2, 30) // over the budget: cuts the cap
	if s.Within != 0 || s.Cap.Cap == 0 {
		t.Fatalf("after a minute over the budget: within %d, cap %v; want 0 and a cap", s.Within, s.Cap.Cap)
	}
	wantLost, wantCalls := (lossMemory*2+4.5)*lossMemory+30, (lossMemory*1200+1200)*lossMemory+1200
	if math.Abs(s.Lost-wantLost) > 1e-9 || math.Abs(s.Calls-wantCalls) > 1e-9 {
		t.Fatalf("lost %v of %v, want %v of %v", s.Lost, s.Calls, wantLost, wantCalls)
	}
	before := s
	judge(3, 1200+lossPerCall*600+1) // more lost than the limiter's calls could cost: not its own
	if s.Lost != before.Lost || s.Calls != before.Calls {
		t.Fatalf("someone else's losses counted: lost %v of %v, want %v of %v", s.Lost, s.Calls, before.Lost, before.Calls)
	}
	judge(4, 600) // half of them lost (a burst): counts lossClip budgets at most
	if want := lossMemory*before.Lost + lossClip*c.HarmBudget*1200; math.Abs(s.Lost-want) > 1e-9 {
		t.Fatalf("a burst's minute: lost %v, want %v", s.Lost, want)
	}
	// The metrics fall silent: what they told of real users' losses
	// lapses with the cap.
	if s, _ = c.observe(s, nil, own, m0.Add(6*time.Minute+usageSettle+usageStale)); s.Lost != 0 || s.Calls != 0 || s.Within != 0 || s.Cap.Cap != 0 {
		t.Fatalf("after the metrics fell silent: lost %v of %v, within %d, cap %v; want none", s.Lost, s.Calls, s.Within, s.Cap.Cap)
	}
}

// TestWithinNoise: minutes in which real users lost over the budget but
// within its noise (withinSigmas) keep the minutes within it, and the
// limiter's cuts without headroom (judgedBy); a loss that stays there
// brings the headroom back once the campaign's sums lower the budget
// (lossScale): 9 lost of 1,200 (1.5 times the budget) after 6 minutes
// without loss, at the 7th.
func TestWithinNoise(t *testing.T) {
	c := Config{Ceiling: 30, HarmBudget: 0.005, SharedBelow: 30}.withDefaults()
	m0 := time.Unix(1_000_020, 0).Truncate(time.Minute)
	own := func(m time.Time) ownMinute {
		return ownMinute{minute: m.Unix() / 60, calls: 600, first: m, last: m.Add(59 * time.Second)}
	}
	var s usageState
	var minutes []Usage
	judge := func(i int, lost float64) time.Time {
		t.Helper()
		minutes = append(minutes, Usage{Minute: m0.Add(time.Duration(i) * time.Minute), Calls: 600 + 1200, Throttles: lost})
		now := m0.Add(time.Duration(i+1)*time.Minute + usageSettle)
		var judged bool
		if s, judged = c.observe(s, minutes, own, now); !judged {
			t.Fatalf("minute %d was not judged", i)
		}
		return now
	}
	for i := range 6 {
		judge(i, 0)
	}
	if s.Within != spareMinutes {
		t.Fatalf("after 6 minutes without loss: within %d, want %d", s.Within, spareMinutes)
	}
	for i := 6; i < 12; i++ {
		now := judge(i, 9)
		if s.Within != spareMinutes || c.judgedBy(s, now).SharedBelow != 0 {
			t.Fatalf("minute %d, 9 lost of 1,200 (within the noise): within %d, shared below %v; want %d, no headroom",
				i, s.Within, c.judgedBy(s, now).SharedBelow, spareMinutes)
		}
		if i == 6 && s.Cap.Cap == 0 {
			t.Fatal("a minute over the budget, within its noise, did not cut the cap")
		}
	}
	now := judge(12, 9)
	if s.Within != 0 || c.judgedBy(s, now).SharedBelow != 30 {
		t.Fatalf("the 7th minute of 9 lost of 1,200: within %d, shared below %v (budget scaled by %.2f); want 0 and the headroom back",
			s.Within, c.judgedBy(s, now).SharedBelow, c.lossScale(s))
	}
	// Past the noise the headroom comes back at once.
	s = usageState{}
	minutes = nil
	for i := range 6 {
		judge(i, 0)
	}
	if judge(6, 11); s.Within != 0 {
		t.Fatalf("11 lost of 1,200 (past the noise's 10.9): within %d, want 0", s.Within)
	}
}

// TestLossScale: the budget the minutes are judged by shrinks by twice
// what real users lost lately over lossScaleFrom of it, down to a quarter.
func TestLossScale(t *testing.T) {
	c := Config{Ceiling: 30, HarmBudget: 0.005}.withDefaults()
	for _, tt := range []struct {
		lost, calls, want float64
	}{
		{0, 0, 1},
		{100, poolUsers - 1, 1}, // too few calls to say
		{0, 1000, 1},
		{lossScaleFrom * 5, 1000, 1},
		{5, 1000, 1 - 2*(1-lossScaleFrom)}, // the whole budget
		{4, 1000, 1 - 2*(0.8-lossScaleFrom)},
		{50, 1000, 0.25},
	} {
		if got := c.lossScale(usageState{Lost: tt.lost, Calls: tt.calls}); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%v lost of %v: scale %v, want %v", tt.lost, tt.calls, got, tt.want)
		}
	}
	c.HarmBudget = 0
	if got := c.lossScale(usageState{Lost: 50, Calls: 1000}); got != 1 {
		t.Errorf("without a budget: scale %v, want 1", got)
	}
}

// TestFloored: a reading that judged minutes within the aim at a rate the
// pace is under takes the pace on from that rate, and for the quota found
// if that was lower; nothing else changes it.
func TestFloored(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	minutes := now.Add(-3 * time.Minute) // the end of the minutes judged
	c := Config{Ceiling: 30}.withDefaults()
	cut := pace{CutAt: now.Add(-time.Minute), Cut: true, To: 9, From: 11, Shared: true, Gain: 0.5}
	plain := pace{CutAt: now.Add(-time.Minute), Cut: true, To: 9, From: 9.3, Gain: 1}
	for _, tt := range []struct {
		name     string
		p        pace
		ran      float64
		spare    float64
		cautious bool
		want     pace
	}{
		{"no minute within the aim", cut, 9.5, 0, false, cut},
		{"before any cut", pace{CutAt: now.Add(-time.Minute), To: 9}, 9.5, 12, false, pace{CutAt: now.Add(-time.Minute), To: 9}},
		{"at the rate already", cut, 12, 12, false, cut},
		{"under it", cut, 9.5, 12, false, pace{CutAt: now, Cut: true, To: 12, From: 12, Shared: true, Gain: 0.5}},
		{"under it, the quota found over it", pace{CutAt: now.Add(-time.Minute), Cut: true, To: 9, From: 14, Shared: true, Gain: 1}, 9.5, 12, false,
			pace{CutAt: now, Cut: true, To: 12, From: 14, Shared: true, Gain: 1}},
		{"a plain cut since the minutes: the newer news", plain, 9.5, 12, false, plain},
		{"a plain cut before the minutes", pace{CutAt: minutes.Add(-time.Second), Cut: true, To: 9, From: 9.3, Gain: 1}, 9.5, 12, false,
			pace{CutAt: now, Cut: true, To: 12, From: 12, Gain: 1}},
		{"owed no speed", cut, 9.5, 12, true, cut},
	} {
		c.Cautious = tt.cautious
		got, changed := c.floored(tt.p, tt.ran, usageState{spareRate: tt.spare, spareEnd: minutes}, now)
		if got != tt.want || changed != (got != tt.p) {
			t.Errorf("%s: %+v, %v; want %+v", tt.name, got, changed, tt.want)
		}
	}
}

// TestKnee: with a fresh reading of real users' calls, the pace's fast
// climb past the quota found stops where their bursts begin to fill the
// quota (Config.informed), and the probe goes on at the plateau's speed;
// without one (stale, none, no budget) or for calls owed no speed, the
// climb is as before.
func TestKnee(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	base := Config{Ceiling: 30, Quota: 30, SharedBelow: 28.5, HarmBudget: 0.005}.withDefaults() // Increase 1.5/s a second
	fresh := usageState{Users: userModel{known: true, users: 10, readAt: now}}
	knee := 30 - 10 - startBursts*math.Sqrt(10) // 12.09
	for _, tt := range []struct {
		name string
		c    Config
		s    usageState
		at   time.Duration // after the reading
		want float64       // 0: none
	}{
		{"fresh reading", base, fresh, time.Minute, knee},
		{"stale reading", base, fresh, usageStale, 0},
		{"no reading", base, usageState{}, 0, 0},
		{"nobody there", base, usageState{Users: userModel{known: true, readAt: now}}, 0, 0},
		{"no harm budget", func() Config { c := base; c.HarmBudget = 0; return c }(), fresh, 0, 0},
		{"owed no speed", func() Config { c := base; c.Cautious = true; return c }(), fresh, 0, 0},
		{"real users fill the quota", base, usageState{Users: userModel{known: true, users: 29, readAt: now}}, 0, base.Floor},
		// Half the limiter's 13 successes a second come back: 16.5/s in
		// all, 10 of them real users' own. The returns are taken out as
		// the room takes them out: (30 - 16.5 + 6.5 - 2.5 sqrt(10)) / 1.5.
		{"returns", base, usageState{Users: userModel{known: true, users: 16.5, own: 13, readAt: now, num: 390, den: 780}}, 0,
			(30 - 16.5 + 6.5 - startBursts*math.Sqrt(10)) / 1.5},
	} {
		if got := tt.c.informed(tt.s, now.Add(tt.at)).knee; math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: knee %.3f, want %.3f", tt.name, got, tt.want)
		}
	}

	// A plain cut that found from/s: its rate some seconds after.
	c := base.informed(fresh, now)
	for _, tt := range []struct {
		from, gain, after, want, without float64
	}{
		// Plateau from 0.97 to 1.1 x 8 at 0.3% of 8 a second (43.3 s),
		// fast to the knee (2.19 s), then 0.3% of the knee a second.
		{8, 1, 60, knee + (60-(1.1-0.97)/0.003-(knee-8.8)/1.5)*0.003*knee, 30},
		// Found over the knee: past 1.1 x 14, 0.3% of 14 a second.
		{14, 1, 60, 15.4 + (60-(1.1-0.97)/0.003)*0.003*14, 30},
		// The gain slows the plateau (8 times slower: 346.7 s), not the
		// climb past the knee.
		{8, 1.0 / 8, 400, knee + (400-(1.1-0.97)/0.003*8-(knee-8.8)/1.5)*0.003*knee, 30},
	} {
		p := pace{CutAt: now, Cut: true, To: 0.97 * tt.from, From: tt.from, Gain: tt.gain}
		at := now.Add(time.Duration(tt.after * float64(time.Second)))
		if got := c.rateAt(p, at); math.Abs(got-tt.want) > 1e-6 {
			t.Errorf("found %v/s, gain %v: %v s after the cut, rate %.3f, want %.3f", tt.from, tt.gain, tt.after, got, tt.want)
		}
		if got := base.rateAt(p, at); math.Abs(got-tt.without) > 1e-6 {
			t.Errorf("found %v/s, no reading: %v s after the cut, rate %.3f, want %.3f", tt.from, tt.after, got, tt.without)
		}
	}
}

// TestKneeWired: a Limiter's rate and a fleet's, for the same pace and
// usage state, both take the knee.
func TestKneeWired(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clk := clocktest.Func(func() time.Time { return now })
	cfg := Config{Ceiling: 30, Quota: 30, SharedBelow: 28.5, HarmBudget: 0.005, Clock: clk}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := pace{CutAt: now.Add(-time.Minute), Cut: true, To: 0.97 * 8, From: 8, Gain: 1}
	s := usageState{Users: userModel{known: true, users: 10, readAt: now}}
	knee := 30 - 10 - startBursts*math.Sqrt(10)
	want := knee + (60-(1.1-0.97)/0.003-(knee-8.8)/1.5)*0.003*knee // as TestKnee
	l.mu.Lock()
	l.p, l.usage = p, s
	l.mu.Unlock()
	if got := l.Limit(); math.Abs(got-want) > 1e-6 {
		t.Errorf("limiter: rate %.3f, want %.3f under the knee", got, want)
	}
	f := &Fleet{fc: FleetConfig{Clock: clk}, pc: cfg.withDefaults()}
	if got := f.limit(p, s, now); math.Abs(got-want) > 1e-6 {
		t.Errorf("fleet: rate %.3f, want %.3f under the knee", got, want)
	}
}
