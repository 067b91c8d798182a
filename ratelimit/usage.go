package ratelimit

import (
	"math"
	"time"
)

// Usage is one minute of the quota category's calls in a Region as
// Cognito's usage metrics count them (CloudWatch AWS/Usage CallCount and
// ThrottleCount): real users' and this limiter's together.
type Usage struct {
	Minute           time.Time // the minute's start
	Calls, Throttles float64
}

// startBursts is how many standard deviations of Poisson real users an
// informed start leaves them: a quota window a second long sees their
// bursts, not their average.
const startBursts = 2.5

// usageFresh is how old a minute may be and still tell where to start.
const usageFresh = 10 * time.Minute

// startFrom is the pace before any call, or before any cut, when real users
// made users calls per second in their busiest recent minute. It starts
// under what they leave of Quota by their bursts, as after a shared cut:
// the rate returns to what they leave on average over SharedRecovery, then
// probes. With nobody there it starts at the ceiling.
func (c Config) startFrom(now time.Time, users float64) pace {
	if users <= 0 {
		return pace{CutAt: now, To: c.Ceiling}
	}
	left := c.Quota - users
	to := min(c.Ceiling, max(c.Floor, left-startBursts*math.Sqrt(users)))
	return pace{CutAt: now, Cut: true, To: to, From: max(left, to), Shared: true}
}

// userModel is what the usage metrics tell of real users' calls: in the
// latest minute read, and the share of the limiter's own successful calls
// that its users answer with calls of theirs into the same quota (returns:
// the reset users' ConfirmForgotPassword), learned from the minutes it
// called in against real users' calls before its first.
type userModel struct {
	known    bool      // a reading told real users' calls
	users    float64   // real users' calls per second in the latest minute read, returns included
	own      float64   // the limiter's successes per second in it
	readAt   time.Time // when it was read
	base     float64   // real users' calls per second in their busiest minute before the first call
	num, den float64   // real users' calls over base, and the limiter's successes, in the minutes judged
}

// share is the share of the limiter's successes its users return, once
// the minutes judged held a minute's worth of them at one a second.
func (m userModel) share() float64 {
	if m.den < 60 {
		return 0
	}
	return min(1, max(0, m.num/m.den))
}

// room is the highest rate that leaves real users their calls at now,
// false when the usage metrics have not told or fell silent: the quota less real
// users' calls in the latest minute and less the returns of the limiter's
// calls above its rate then (with returns at s of r,
// r <= Quota - users - s*(r - own)), less SharedMargin once the returns
// are learned: a window full to the quota on average throttles real users
// at every jitter.
func (m userModel) room(c Config, now time.Time) (float64, bool) {
	if !m.known || c.HarmBudget <= 0 || now.Sub(m.readAt) >= usageStale {
		return 0, false
	}
	s := m.share()
	room := (c.Quota - m.users + s*m.own) / (1 + s)
	if m.den >= 60 {
		room -= c.SharedMargin / 2
	}
	return room, true
}

// learn takes a judged minute in which real users made users calls and
// the limiter oks successful ones, read at now.
func (m *userModel) learn(users, oks float64, now time.Time) {
	m.users, m.own, m.readAt = users/60, oks/60, now
	m.num += max(0, users-60*m.base)
	m.den += oks
}

// harmAim is the share of HarmBudget the cap aims at: a minute's count is
// noisy, and the budget holds on average only if the aim is under it.
const harmAim = 0.6

// harmCap is the cap the usage metrics put on a limiter's rate.
type harmCap struct {
	Cap   float64   // 0: none
	Edge  float64   // the rate of the last minute that cut the cap
	CutAt time.Time // when the cap was last cut
}

// lossPerCall bounds the real users' calls one of the limiter's own calls
// can cost them in a minute: a minute in which they lost more than this
// many times its calls lost them to their own load (or another caller),
// and a cut of this limiter would not give them back.
const lossPerCall = 4

// edgeMemory is how long after a cut the cap climbs slowly near the edge
// it was cut from; after it the edge is forgotten.
const edgeMemory = 30 * time.Minute

// recoverySteps bounds the judged minutes without harm that lift a cap
// from the floor to the ceiling once the edge is forgotten: each lifts it
// by a Ceiling/recoverySteps at least.
const recoverySteps = 40

// capAfter is h after a minute of the category's usage u, judged at now,
// in which the limiter itself made calls calls at rate ours, of which
// throttled were throttled. What is left after its own is what real users
// did and lost. The cap moves by 5% of the cap per budget between real
// users' loss and harmAim of HarmBudget, down at most 10% and up at most
// 1.5% a minute, and 0.3% from 3% under the edge, where it was last cut
// from (that rate cost real users too much), to 10% over it, for
// edgeMemory after the cut; in a minute within the aim, by a
// Ceiling/recoverySteps at least while it is under half the edge or once
// the edge is forgotten. Down, it starts from the minute's rate if that was under
// the cap; up to the ceiling it is lifted. Only a minute over the budget,
// with three lost calls at least, cuts (a minute's count is noisy), and
// not a stale one, one that began before the last cut took effect (the
// metrics come minutes late), nor one in which real users lost more than
// lossPerCall times the limiter's calls (a quiet minute: a probe, the end
// of a campaign; cutting the limiter would not help them, and would cut
// it to the rate of its few calls). spare says real users lost within
// the aim; ok is false for a minute that says nothing.
func (c Config) capAfter(h harmCap, u Usage, calls, throttled, ours float64, now time.Time) (next harmCap, spare, ok bool) {
	if c.HarmBudget <= 0 || calls <= 0 {
		return h, false, false
	}
	users := max(0, u.Calls-calls)
	lost := max(0, u.Throttles-throttled)
	over := 0.0 // nobody else called: nobody lost
	if users > 0 {
		over = lost / (c.HarmBudget * users)
	}
	step := min(0.015, max(-0.1, 0.05*(harmAim-over)))
	if step < 0 && (over <= 1 || lost < 3 || lost > lossPerCall*calls) {
		step = 0 // within the budget, a call or two (noise), or not ours to take back
	}
	spare = over <= harmAim
	switch {
	case step < 0 && u.Minute.Before(h.CutAt):
	case step < 0:
		base := ours
		if h.Cap > 0 {
			base = min(h.Cap, ours)
		}
		return harmCap{Cap: max(c.Floor, base*(1+step)), Edge: base, CutAt: now}, spare, true
	case h.Cap > 0:
		up := h.Cap * step
		switch {
		case now.Sub(h.CutAt) < edgeMemory && h.Cap >= 0.97*h.Edge && h.Cap < 1.1*h.Edge:
			up = h.Cap * min(step, 0.003)
		case spare && (h.Cap < h.Edge/2 || now.Sub(h.CutAt) >= edgeMemory):
			// Far under where it harmed, or long after: no reason to creep.
			up = max(up, c.Ceiling/recoverySteps)
		}
		if h.Cap += up; h.Cap >= c.Ceiling {
			h = harmCap{}
		}
	}
	return h, spare, true
}

// spareMinutes is how many judged minutes in a row real users must lose
// little in before the limiter's cuts leave them no headroom.
const spareMinutes = 3

// ownMinutes is how many minutes of its own calls a limiter remembers:
// more than usage metrics arrive late.
const ownMinutes = 32

// ownMinute is a limiter's own calls in one minute.
type ownMinute struct {
	minute           int64 // Unix minutes
	calls, throttled float64
	first, last      time.Time // its first and last call
}

// called counts a call of the limiter's own at at.
func (l *Limiter) called(at time.Time) {
	o := l.ownAt(at)
	o.calls++
	o.last = at
	if l.firstCall.IsZero() {
		l.firstCall = at
	}
}

// ownAt is the minute of at in l.own, reset if it held an older one.
func (l *Limiter) ownAt(at time.Time) *ownMinute {
	m := at.Unix() / 60
	o := &l.own[m%ownMinutes]
	if o.minute != m {
		*o = ownMinute{minute: m, first: at}
	}
	return o
}

// usageSettle is how long after its end a usage minute is judged: the
// newest minutes CloudWatch returns may still be filling.
const usageSettle = 2 * time.Minute

// usageStale is how long the usage metrics may be silent before the cap
// and what they told of the limiter's own throttles are dropped.
const usageStale = 10 * time.Minute

// Observe takes the category's usage minutes in the limiter's Region,
// oldest first. With a HarmBudget, a reading with a fresh minute before
// any cut, and before the limiter's first minute of calls is over, sets
// where it starts; each settled minute in which it called moves its cap.
func (l *Limiter) Observe(minutes []Usage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.HarmBudget <= 0 {
		return
	}
	now := l.cfg.Clock.Now()
	if !l.judgedAt.IsZero() && !l.judged(now) {
		l.cap = harmCap{} // the metrics fell silent: a cap from before does not come back
	}
	early := l.firstCall.IsZero() || now.Sub(l.firstCall) < time.Minute
	busiest, fresh := 0.0, false
	for _, u := range minutes {
		if now.Sub(u.Minute) <= usageFresh && (l.firstCall.IsZero() || u.Minute.Add(time.Minute).Before(l.firstCall)) {
			busiest, fresh = max(busiest, u.Calls-l.ownIn(u.Minute).calls), true
		}
	}
	if !l.informed && !l.p.Cut && early && fresh {
		l.informed = true
		l.p = l.cfg.startFrom(now, busiest/60)
	}
	if !l.users.known && len(minutes) > 0 {
		// Real users' calls before the limiter's first: none in a minute
		// without a datapoint.
		l.users = userModel{known: true, users: busiest / 60, base: busiest / 60, readAt: now}
	}
	for _, u := range minutes {
		end := u.Minute.Add(time.Minute)
		if !u.Minute.After(l.seen) || now.Sub(end) < usageSettle {
			continue
		}
		l.seen = u.Minute
		o := l.ownIn(u.Minute)
		if o.calls == 0 {
			continue
		}
		// The rate of the minute's busy part: the first minute, or one
		// the calls stopped in, is partial.
		from := u.Minute
		if o.first.After(from) {
			from = o.first
		}
		if o.last.Add(time.Second).Before(end) {
			end = o.last.Add(time.Second)
		}
		busy := end.Sub(from).Seconds()
		if l.users.known {
			l.users.learn(max(0, u.Calls-o.calls), o.calls-o.throttled, now)
		}
		var spare, ok bool
		run := l.spare
		if l.cap, spare, ok = l.cfg.capAfter(l.cap, u, o.calls, o.throttled, o.calls/max(busy, 1), now); ok {
			// Real users' loss is known: the cap holds it, and the
			// limiter's own throttles need not slow its probes, nor,
			// while real users lose little, leave them headroom.
			l.judgedAt, l.p.Gain = now, 0
			if l.spare = 0; spare {
				l.spare = min(run+1, spareMinutes)
			}
		}
	}
	l.update(now)
}

// judged reports whether the usage metrics judged a minute lately.
func (l *Limiter) judged(now time.Time) bool {
	return !l.judgedAt.IsZero() && now.Sub(l.judgedAt) < usageStale
}

// ownIn is the limiter's own calls in the minute starting at m (zero if
// forgotten).
func (l *Limiter) ownIn(m time.Time) ownMinute {
	if o := l.ownSlot(m); o != nil {
		return *o
	}
	return ownMinute{}
}

// ownSlot is the minute of at in l.own, nil if forgotten.
func (l *Limiter) ownSlot(at time.Time) *ownMinute {
	o := &l.own[(at.Unix()/60)%ownMinutes]
	if o.minute != at.Unix()/60 {
		return nil
	}
	return o
}

// Cap is the limiter's cap from the usage metrics (0: none, or the
// metrics fell silent).
func (l *Limiter) Cap() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.judged(l.cfg.Clock.Now()) {
		return 0
	}
	return l.cap.Cap
}

// Observe passes region's usage minutes to its Limiter.
func (r *Regions) Observe(region string, minutes []Usage) {
	l := r.Get(region)
	before := l.Limit()
	l.Observe(minutes)
	if after := l.Limit(); after != before {
		r.onChange(region, after)
	}
}

// Cap is region's cap from the usage metrics (0: none, or the metrics
// fell silent).
func (r *Regions) Cap(region string) float64 { return r.Get(region).Cap() }
