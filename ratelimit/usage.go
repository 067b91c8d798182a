package ratelimit

import (
	"math"
	"slices"
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

// cautiousBursts is startBursts for calls owed no speed (Config.Cautious).
const cautiousBursts = 4

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
	left, bursts := c.Quota-users, startBursts
	if c.Cautious {
		bursts = cautiousBursts
	}
	to := min(c.Ceiling, max(c.Floor, left-bursts*math.Sqrt(users)))
	return pace{CutAt: now, Cut: true, To: to, From: max(left, to), Shared: true}
}

// userModel is what the usage metrics tell of real users' calls: in the
// latest minute read, and the share of the limiter's own successful calls
// that its users answer with calls of theirs into the same quota (returns:
// the reset users' ConfirmForgotPassword), learned from the minutes it
// called through (wholeMinute) against real users' calls before its first.
type userModel struct {
	known     bool      // a reading told real users' calls
	users     float64   // real users' calls per second in the latest minute read, returns included
	own       float64   // the limiter's successes per second in it
	readAt    time.Time // when it was read
	base      float64   // real users' calls per second in their usual minute without the limiter's calls (usualUsers)
	baseKnown bool      // there was such a minute: returns can be told from real users' own calls
	num, den  float64   // real users' calls over base, and the limiter's successes, in the whole minutes judged
}

// share is the share of the limiter's successes its users return, once
// the minutes judged held a minute's worth of them at one a second; 0
// without a minute of real users alone to tell returns from their calls
// (a reading that begins mid-campaign: the room then counts the returns of
// the latest minute's rate among real users' calls, and leaves none for a
// faster one).
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
// r <= Quota - users - s*(r - own)), less SharedMargin, as a shared cut
// keeps under the quota it found: a window full to the quota on average
// throttles real users at every jitter, and real users who come evenly
// lose those races while the limiter is not throttled at all (on the
// long bench, with half the margin, real users at 10/s lost 40 calls a
// minute to a limiter at 19.25/s, which was throttled once in 11 minutes).
func (m userModel) room(c Config, now time.Time) (float64, bool) {
	if !m.known || c.HarmBudget <= 0 || now.Sub(m.readAt) >= usageStale {
		return 0, false
	}
	return m.left(c) - c.SharedMargin, true
}

// left is what real users leave of c.Quota in the latest minute read,
// with the returns of the limiter's calls above its rate then taken out
// (room, knee).
func (m userModel) left(c Config) float64 {
	s := m.share()
	return (c.Quota - m.users + s*m.own) / (1 + s)
}

// learn takes a judged minute in which real users made users calls and
// the limiter oks successful ones, read at now; whole says its calls ran
// through the minute, so that its returns can be told from real users'
// own calls in it.
func (m *userModel) learn(users, oks float64, whole bool, now time.Time) {
	if !(oks >= 0) || math.IsInf(oks, 0) {
		oks = 0
	}
	m.users, m.own, m.readAt = users/60, oks/60, now
	if m.baseKnown && whole {
		m.num += max(0, users-60*m.base)
		m.den += oks
	}
}

// wholeMinute is how many seconds the limiter's calls must have run in a
// minute (busySeconds) for its returns to be told from real users' own
// calls in it. In the campaign's first minute, begun late, real users'
// own noise (Poisson users at 10/s vary by 25 calls a minute) over a few
// hundred successes read as returns: about 0.4 of them (by the room's
// formula) on the long bench with no returns at all (calendar second,
// Poisson users), and the room held the rate at 13.2 to 13.3 of a
// frontier of 14.9 for a minute, in three of seven runs.
const wholeMinute = 50.0

// harmAim is the share of HarmBudget the cap aims at: a minute's count is
// noisy, and the budget holds on average only if the aim is under it.
const harmAim = 0.6

// harmCap is the cap the usage metrics put on a limiter's rate.
type harmCap struct {
	Cap   float64   // 0: none
	Edge  float64   // the rate of the last minute that cut the cap
	CutAt time.Time // when a minute last cut the cap
	OwnAt time.Time // when a throttle of the limiter's own last cut it (capThrottled)
	// OwnFrom is the cap that cut took it from, until it is back there
	// (0: none).
	OwnFrom float64
}

// capNear: calls at this share of the cap or more ran at the cap.
const capNear = 0.97

// ownCapEvery is the least time between two dips of the cap for
// throttles of the limiter's own (capThrottled): a burst of anyone's
// calls throttles the limiter many times; the minutes judge the rest.
const ownCapEvery = 10 * time.Minute

// capThrottled is s's cap after a throttle of the limiter's own at now,
// when its rate was limit and its calls ran at ran a second (Limiter.ranAt:
// from the spacing of the last second's successes, at most their count
// plus one, the throttled call included).
// Where minutes are judged and the calls ran at the cap, the cap has
// reached where the quota is full: the first such throttle in ownCapEvery
// dips the cap capNear under it, and the pace is not cut. The cap climbs
// back in the minutes that do not cut it, never past where it would have
// been (capAfter), and takes no other dip until it is back: a dip, not a
// ratchet, whatever anyone's bursts do. The edge and its memory are the
// minutes' alone. Only before spareMinutes spare minutes in a row, while
// the pace's cuts take the headroom (a fifth of the rate, minutes back)
// for a single throttle that real users, judged minute by minute, had not
// paid for; after them the pace's plain cut is the cheaper (for calls owed
// speed: a Cautious limiter's cuts keep the headroom, judgedBy). ok is false
// for every other throttle: the pace takes it (Config.cut).
func (c Config) capThrottled(s usageState, limit, ran float64, now time.Time) (next harmCap, ok bool) {
	h := s.Cap
	capped := s.cap(now)
	if capped <= 0 || min(limit, ran) < capNear*capped || h.OwnFrom > 0 || s.Spare >= spareMinutes ||
		!h.OwnAt.IsZero() && now.Sub(h.OwnAt) < ownCapEvery {
		return h, false
	}
	h.Cap, h.OwnAt, h.OwnFrom = max(c.Floor, capNear*capped), now, capped
	return h, true
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
// it to the rate of its few calls). The budget is HarmBudget times scale
// (lossScale); spare says real users lost within its aim, within that
// they lost within it (or within its noise, withinSigmas), or lost to
// others more than this limiter could cost them; ok is false for a minute
// that says nothing.
func (c Config) capAfter(h harmCap, u Usage, calls, throttled, ours float64, full bool, scale float64, now time.Time) (next harmCap, spare, within, ok bool) {
	if c.HarmBudget <= 0 || calls <= 0 {
		return h, false, false, false
	}
	users, lost := theirs(u, calls, throttled)
	over := 0.0 // nobody else called: nobody lost
	if users > 0 {
		over = lost / (c.HarmBudget * users)
	}
	judged := over / scale // by the budget the minutes are judged by (lossScale)
	step := min(0.015, max(-0.1, 0.05*(harmAim-judged)))
	if step < 0 && (judged <= 1 || lost < 3 || lost > lossPerCall*calls || !full) {
		step = 0 // within the budget, a call or two (noise), or not ours to take back
	}
	expect := c.HarmBudget * scale * users // what the budget allows them to lose
	noise := full && users >= poolUsers && lost <= expect+withinSigmas*math.Sqrt(expect)
	spare, within = judged <= harmAim, judged <= 1 || noise || lost > lossPerCall*calls
	switch {
	case step < 0 && u.Minute.Before(h.CutAt):
	case step < 0:
		base := ours
		if h.Cap > 0 {
			base = min(max(h.Cap, h.OwnFrom), ours) // an own throttle's dip is not a cut
		}
		return harmCap{Cap: max(c.Floor, base*(1+step)), Edge: base, CutAt: now, OwnAt: h.OwnAt}, spare, within, true
	case h.Cap > 0:
		climb := func(x float64) float64 {
			switch {
			case now.Sub(h.CutAt) < edgeMemory && x >= 0.97*h.Edge && x < 1.1*h.Edge:
				return x * min(step, 0.003)
			case spare && (x < h.Edge/2 || now.Sub(h.CutAt) >= edgeMemory):
				// Far under where it harmed, or long after: no reason to creep.
				return max(x*step, c.Ceiling/recoverySteps)
			}
			return x * step
		}
		up := climb(h.Cap)
		if h.OwnFrom > 0 {
			// Back from an own throttle's dip (capThrottled) at 1.5% a
			// minute at least, never past where the cap would be without it.
			h.OwnFrom += climb(h.OwnFrom)
			up = min(max(up, 0.015*h.Cap), h.OwnFrom-h.Cap)
		}
		if h.Cap += up; h.Cap >= h.OwnFrom {
			h.OwnFrom = 0
		}
		if h.Cap >= c.Ceiling {
			h = harmCap{}
		}
	}
	return h, spare, within, true
}

// theirs is real users' calls and lost calls in u, what is left of the
// category's after the limiter's calls calls, throttled of them throttled.
func theirs(u Usage, calls, throttled float64) (users, lost float64) {
	return max(0, u.Calls-calls), max(0, u.Throttles-throttled)
}

// withinSigmas: a judgement of poolUsers real users' calls or more, of a
// quota at least half full, in which they lost no more than this many
// standard deviations of a Poisson count over what the budget allows them
// counts within it (capAfter's within), stale or not: at the budget of
// 0.5%, 6 lost of 600 (2.15 times it), 15 of 1,800 (1.67 times). Counted
// over the budget itself, in the calendar second with Poisson users on the
// long bench, where their loss sits near the budget at the frontier,
// minutes of 4 to 6 lost of 600 brought the headroom back one after
// another, and each own throttle after them took 2 calls/s for 2 minutes
// off a rate the minutes had found harmless (0.836 of the frontier; 0.905
// with this bound, one run each). Losses come in bursts, so the Poisson
// count is a rough bound; a loss that stays over the budget is still seen:
// each such minute that is not stale cuts the cap (capAfter), and counts
// in the sums that lower the budget the minutes are judged by (lossScale),
// and this bound with it: at 1.5 times the budget (9 lost of 1,200) the
// headroom is back at the 7th minute after 6 without loss, the 19th after
// 30.
const withinSigmas = 2.0

// spareMinutes is how many judged minutes in a row real users must lose
// within the budget in before the limiter's cuts leave them no headroom.
const spareMinutes = 3

// lossClip is how many harm budgets of real users' calls one minute adds
// to usageState.Lost at most: a start that cost them 2 to 3% (4 to 6
// budgets) counts whole.
const lossClip = 6

// lossMemory weighs each judged minute's losses in usageState.Lost against
// the next one's: about the last half hour counts.
const lossMemory = 0.97

// lossScaleFrom is the share of the harm budget real users may have lost
// over the minutes judged lately before the next minutes are judged by a
// smaller budget (lossScale): between the aim and the budget.
const lossScaleFrom = 0.7

// lossScale is the share of the harm budget the next minutes are judged
// by: while real users lost more than lossScaleFrom of it over the
// minutes judged lately (usageState.Lost), less, by twice the excess, down
// to a quarter. The budget holds over the campaign, not minute by minute:
// a start that cost real users more than it (the campaign's own users
// returning before any minute told of them: 2 to 3% in its first minute
// in the sliding window with Poisson users and the confirmations) is paid
// back by a lower aim after it. In the simulation that row lost 0.60% of
// its real users' calls over 12-minute campaigns with it, 0.68% without
// (8 seeds). 1 until the minutes held poolUsers of real users' calls.
func (c Config) lossScale(s usageState) float64 {
	if s.Calls < poolUsers || c.HarmBudget <= 0 {
		return 1
	}
	over := s.Lost / (c.HarmBudget * s.Calls)
	return min(1, max(0.25, 1-2*(over-lossScaleFrom)))
}

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

// usageState is what a category's usage minutes have told a limiter: the
// cap on its rate, the newest minute taken, when a minute was last judged,
// how many judged minutes in a row real users lost little in, whether
// they set the start, and what they told of real users' calls.
type usageState struct {
	Cap      harmCap
	Seen     time.Time
	JudgedAt time.Time
	Spare    int
	Informed bool
	Users    userModel
	// Within is how many judged minutes in a row real users lost within
	// the budget in (or within its noise, withinSigmas), or lost more to
	// others (capAfter's within), at most spareMinutes.
	Within int
	// Lost and Calls weigh real users' lost calls and all their calls in
	// the judged minutes, each minute's by lossMemory per minute judged
	// since (lossScale).
	Lost, Calls float64
	// spareRate is the rate of the limiter's calls in the minutes the
	// last reading judged, if real users lost within the aim in them
	// (0: not), and spareEnd the end of the newest of them. They are not
	// kept in Redis: the reading that sets them uses them (floored).
	spareRate float64
	spareEnd  time.Time
}

// judged reports whether the usage metrics judged a minute lately.
func (s usageState) judged(now time.Time) bool {
	return !s.JudgedAt.IsZero() && now.Sub(s.JudgedAt) < usageStale
}

// observe is s after the category's usage minutes, oldest first, read at
// now, own giving the limiter's own calls in each minute: each settled
// minute in which it called moves the cap (capAfter, from the rate of the
// minute's busy part); a cap whose metrics fell silent lapses first.
// judged says a minute was judged: real users' loss is known.
func (c Config) observe(s usageState, minutes []Usage, own func(minute time.Time) ownMinute, now time.Time) (next usageState, judged bool) {
	if !s.JudgedAt.IsZero() && !s.judged(now) {
		// The metrics fell silent: a cap, and what the minutes told of
		// real users' losses, from before do not come back.
		s.Cap, s.Spare, s.Within, s.Lost, s.Calls = harmCap{}, 0, 0, 0, 0
	}
	if !s.Users.known && len(minutes) > 0 {
		// Real users' calls before any judged minute: their busiest
		// minute, none in a minute without a datapoint. Minutes without
		// the limiter's calls (before the campaign) say what they do
		// without its returns.
		users, _ := busiestUsers(minutes, own, now)
		s.Users = userModel{known: true, users: users, readAt: now}
		s.Users.base, s.Users.baseKnown = usualUsers(quiet(minutes, own), own, now)
	}
	for i, u := range minutes {
		if !u.Minute.After(s.Seen) || now.Sub(u.Minute.Add(time.Minute)) < usageSettle {
			continue
		}
		s.Seen = u.Minute
		o := own(u.Minute)
		if o.calls == 0 {
			continue
		}
		pu, pcalls, pthrottled, pbusy, n := pool(minutes[:i+1], own, s.Cap.CutAt)
		// How full the quota was while the limiter called: real users'
		// calls served spread over the minutes, its own over their busy part.
		oks := pcalls - pthrottled
		full := served(pu, ownMinute{calls: pcalls, throttled: pthrottled})/(60*float64(n))+oks/max(pbusy, 1) >= fullShare*c.Quota
		ours := pcalls / max(pbusy, 1)
		h, spare, within, ok := c.capAfter(s.Cap, pu, pcalls, pthrottled, ours, full, c.lossScale(s), now)
		if !ok {
			continue
		}
		s.Users.learn(served(u, o), o.calls-o.throttled, busySeconds(u, o) >= wholeMinute, now)
		if users, lost := theirs(u, o.calls, o.throttled); full && lost <= lossPerCall*o.calls {
			// A minute whose losses could cut the cap: not someone
			// else's (capAfter). One minute counts lossClip budgets
			// at most: one burst of anyone's calls does not hold the
			// budget down for an hour.
			lost = min(lost, lossClip*c.HarmBudget*users)
			s.Lost, s.Calls = lossMemory*s.Lost+lost, lossMemory*s.Calls+users
		}
		run := s.Spare
		s.Cap, s.JudgedAt, s.Spare, s.spareRate, judged = h, now, 0, 0, true
		s.Within = min(s.Within+1, spareMinutes)
		if !within {
			s.Within = 0
		}
		if spare {
			s.Spare, s.spareRate, s.spareEnd = min(run+1, spareMinutes), ours, u.Minute.Add(time.Minute)
		}
	}
	return s, judged
}

// counted is minutes without those whose counts are not counts (not
// finite, or negative): CloudWatch sends none, but one NaN, judged or
// pooled with the minute judged, would make the cap NaN, which reads as
// none. Limiter.Observe and Fleet.Observe take only these.
func counted(minutes []Usage) []Usage {
	ok := func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }
	out := minutes[:0:0]
	for _, u := range minutes {
		if ok(u.Calls) && ok(u.Throttles) {
			out = append(out, u)
		}
	}
	return out
}

// busySeconds is how long the busy part of u's minute was, o being the
// limiter's calls in it: the first minute, or one the calls stopped in,
// is partial.
func busySeconds(u Usage, o ownMinute) float64 {
	from, end := u.Minute, u.Minute.Add(time.Minute)
	if o.first.After(from) {
		from = o.first
	}
	if o.last.Add(time.Second).Before(end) {
		end = o.last.Add(time.Second)
	}
	return max(end.Sub(from).Seconds(), 0)
}

// poolUsers is how many real users' calls a judgement needs: under it a
// minute is judged with the minutes before it (up to poolMinutes), since a
// loss of one or two calls in a few hundred says nothing. At the budget of
// 0.5%, 600 calls allow 3 lost.
const (
	poolUsers   = 600
	poolMinutes = 5
)

// pool is the newest of minutes (the one judged) with the minutes before
// it in which the limiter called, back until real users made poolUsers
// calls, at most poolMinutes minutes, none begun before since (the last
// cut: the minutes before it ran at another rate): their usage summed, the
// limiter's calls and throttles in them, and their busy seconds.
func pool(minutes []Usage, own func(time.Time) ownMinute, since time.Time) (u Usage, calls, throttled, busy float64, n int) {
	newest := minutes[len(minutes)-1]
	u.Minute = newest.Minute
	for i := len(minutes) - 1; i >= 0 && n < poolMinutes; i-- {
		m := minutes[i]
		o := own(m.Minute)
		if i < len(minutes)-1 && (o.calls == 0 || m.Minute.Before(since) || newest.Minute.Sub(m.Minute) >= poolMinutes*time.Minute) {
			break
		}
		u.Calls, u.Throttles = u.Calls+m.Calls, u.Throttles+m.Throttles
		calls, throttled, busy, n = calls+o.calls, throttled+o.throttled, busy+busySeconds(m, o), n+1
		if u.Calls-calls >= poolUsers {
			break
		}
	}
	return u, calls, throttled, busy, n
}

// fullShare is how full of calls served (everyone's) the quota must have
// been over the minutes judged for real users' losses to cut the cap: the
// limiter's calls take real users' only from a window they help fill. In
// the simulation a harmful rate fills 67% of it or more (the sliding
// window with Poisson users and the campaign's returns); a burst of calls,
// most of them throttled, once a minute fills far less, and without this
// cut the cap by 10% every judged minute, to the floor in 100 minutes,
// for 0.7 calls a second from anyone on the internet (ForgotPassword needs
// no sign-in).
const fullShare = 0.5

// quiet are the minutes in which the limiter made no call.
func quiet(minutes []Usage, own func(minute time.Time) ownMinute) []Usage {
	var q []Usage
	for _, u := range minutes {
		if own(u.Minute).calls == 0 {
			q = append(q, u)
		}
	}
	return q
}

// busiestUsers is real users' calls per second in their busiest minute of
// the last usageFresh, the category's calls served less own's; ok is false
// without such a minute.
func busiestUsers(minutes []Usage, own func(minute time.Time) ownMinute, now time.Time) (users float64, ok bool) {
	v := freshServed(minutes, own, now)
	if len(v) == 0 {
		return 0, false
	}
	return slices.Max(v) / 60, true
}

// usualUsers is as busiestUsers for their usual minute: the upper median
// (of two minutes, the busier: the first may be partial). It is the base
// the campaign's returns are told from. The busiest minute, the base
// before, hid a tenth of the campaign's users coming back as real users'
// own noise (Poisson users at 10/s vary by 40 to 80 calls a minute), and
// one minute of anyone's ForgotPassword flood before the campaign hid all
// of them.
func usualUsers(minutes []Usage, own func(minute time.Time) ownMinute, now time.Time) (users float64, ok bool) {
	v := freshServed(minutes, own, now)
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	return v[len(v)/2] / 60, true
}

// freshServed is real users' served calls (served) in each of minutes of
// the last usageFresh.
func freshServed(minutes []Usage, own func(minute time.Time) ownMinute, now time.Time) []float64 {
	var v []float64
	for _, u := range minutes {
		if now.Sub(u.Minute) <= usageFresh {
			v = append(v, served(u, own(u.Minute)))
		}
	}
	return v
}

// served is real users' calls in u's minute that the quota served (own's
// taken away): what they took of the quota. Their throttled calls took
// none of it, so a burst of calls most of which are throttled (anyone may
// call ForgotPassword) does not shrink the room.
func served(u Usage, o ownMinute) float64 {
	v := (u.Calls - u.Throttles) - (o.calls - o.throttled)
	if !(v >= 0) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// clockSkew is how far ahead of a replica's clock another replica's may
// be: a time in a usage state further ahead is not one resetq wrote.
const clockSkew = 5 * time.Minute

// plausible reports whether s is a state c's limiter could have reached by
// now: its times not in the future, a cap of none or between the floor
// and the ceiling, real users' calls and the limiter's within ten times
// the quota a second (in the minutes lossMemory weighs too), and what
// they lost no more than lossClip budgets of it.
func (c Config) plausible(s usageState, now time.Time) bool {
	for _, t := range []time.Time{s.Cap.CutAt, s.Seen, s.JudgedAt, s.Users.readAt} {
		if t.After(now.Add(clockSkew)) {
			return false
		}
	}
	ok := func(v, most float64) bool { return v >= 0 && v <= most }
	m := s.Users
	return (s.Cap.Cap == 0 || s.Cap.Cap >= c.Floor*(1-1e-9) && s.Cap.Cap <= c.Ceiling) && ok(s.Cap.Edge, 10*c.Ceiling) &&
		ok(m.users, 10*c.Quota) && ok(m.own, 10*c.Quota) && ok(m.base, 10*c.Quota) && ok(m.num, 1e12) && ok(m.den, 1e12) &&
		ok(s.Calls, 60*10*c.Quota/(1-lossMemory)) && ok(s.Lost, lossClip*c.HarmBudget*s.Calls*(1+1e-9))
}

// cap is the cap the usage metrics put on the rate at now (0: none, or
// the metrics fell silent).
func (s usageState) cap(now time.Time) float64 {
	if !s.judged(now) {
		return 0
	}
	return s.Cap.Cap
}

// limited is rate under what the usage metrics told at now: the cap, and
// the room real users leave.
func (c Config) limited(rate float64, s usageState, now time.Time) float64 {
	if limit := s.cap(now); limit > 0 {
		rate = min(rate, limit)
	}
	if room, ok := s.Users.room(c, now); ok {
		rate = min(rate, max(room, c.Floor))
	}
	if !(rate >= c.Floor) { // NaN too: never unlimited
		return c.Floor
	}
	return min(rate, c.Ceiling)
}

// informed is c with what the usage minutes tell of real users at now:
// past 2-Plateau times the quota found at the last cut, the pace climbs
// fast only to the knee (userModel.knee), then at the plateau's speed.
// The fast climb went on to the room, 16.5 to 18.4/s where the calendar
// second's frontier with Poisson users is 14.9: 3 seconds past it cost
// real users the minute's budget, and the cap that followed held the
// campaign under the frontier. Nothing changes without a fresh reading
// (the room's), or for calls owed no speed (Cautious), which climb fast
// only to half the ceiling.
func (c Config) informed(s usageState, now time.Time) Config {
	if _, ok := s.Users.room(c, now); ok && !c.Cautious {
		c.knee = s.Users.knee(c)
	}
	return c
}

// knee is where the informed start would begin from the latest minute
// read: the room without its margin, less startBursts standard deviations
// of real users' own calls (the returns taken out, as the room takes them
// out of what is left), at least the floor. Past it their bursts begin to
// fill a window a second long. 0 with nobody there.
func (m userModel) knee(c Config) float64 {
	s := m.share()
	own := max(0, m.users-s*m.own) // real users' own calls, without the returns
	if own <= 0 {
		return 0
	}
	return max(c.Floor, m.left(c)-startBursts*math.Sqrt(own)/(1+s))
}

// judgedBy is c for a cut at now (informed): while the usage metrics judge minutes
// the cap holds real users' loss, so the limiter's own throttles need not
// slow its probes, and after spareMinutes minutes in a row within the
// budget (capAfter's within) its cuts leave real users no headroom, unless the
// calls are owed no speed (Cautious): the minutes judge a rate 3 minutes
// late or more, and the plain cuts' probes had by then climbed far past
// what real users could bear. Minutes within the aim were asked before:
// in the calendar second with Poisson users, whose lost share sits near
// the aim at the frontier, a minute just over it brought the headroom
// back, and each throttle after it took 2 calls/s off a rate the minutes
// had found harmless (10 of a frontier of 14.4, for minutes).
func (c Config) judgedBy(s usageState, now time.Time) Config {
	c = c.informed(s, now)
	if s.judged(now) {
		c.ThrottleTarget = 0
		if s.Within >= spareMinutes && !c.Cautious {
			c.SharedBelow = 0
		}
	}
	return c
}

// Observe takes the category's usage minutes in the limiter's Region,
// oldest first. With a HarmBudget, a reading with a fresh minute before
// any cut, and before the limiter's first minute of calls is over, sets
// where it starts; each settled minute in which it called moves its cap
// and tells the room real users leave (Config.observe).
func (l *Limiter) Observe(minutes []Usage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.HarmBudget <= 0 {
		return
	}
	minutes = counted(minutes)
	now := l.cfg.Clock.Now()
	early := l.firstCall.IsZero() || now.Sub(l.firstCall) < time.Minute
	started := false
	if !l.usage.Informed && !l.p.Cut && early {
		if users, ok := busiestUsers(minutes, l.ownIn, now); ok {
			l.usage.Informed, started = true, true
			l.p = l.cfg.startFrom(now, users)
		}
	}
	ran := l.cfg.informed(l.usage, now).rateAt(l.p, now)
	var judged bool
	if l.usage, judged = l.cfg.observe(l.usage, minutes, l.ownIn, now); judged {
		l.p.Gain = gainJudged(l.p.gain(), l.usage)
		if !started {
			l.p, _ = l.cfg.floored(l.p, ran, l.usage, now)
		}
	}
	l.update(now)
}

// floored is p after a reading at now that judged minutes into s, p's
// rate having been ran before it: real users lost within the aim while
// the calls ran at s.spareRate, so the pace goes on from that rate if it
// was under it, and takes it for the quota found if that was lower. The
// minutes are 3 or more late, and in the meantime the pace's own
// throttles, each taken as real users' (with the headroom), had taken it
// down a step at a time in the calendar second with Poisson users: to 10
// of a frontier of 14.4, with real users losing nothing, for minutes. Not
// before a cut; not over a plain cut (no headroom: the quota was full)
// made after the minutes, which is the newer news; not for calls owed no
// speed (Cautious: their minutes judge a rate too late); nor in the
// reading that set the start (a restart's minutes judged are its
// predecessor's): the start climbs on its own. ok says p changed.
func (c Config) floored(p pace, ran float64, s usageState, now time.Time) (next pace, ok bool) {
	r := s.spareRate
	if r <= 0 || !p.Cut || ran >= r || c.Cautious || !p.Shared && p.CutAt.After(s.spareEnd) {
		return p, false
	}
	p.CutAt, p.To, p.From = now, r, max(p.From, r)
	return p, true
}

// ownIn is the limiter's own calls in the minute starting at m (zero if
// forgotten), with those other resetq processes recorded.
func (l *Limiter) ownIn(m time.Time) ownMinute {
	var o ownMinute
	if s := l.ownSlot(m); s != nil {
		o = *s
	}
	if other, ok := l.others[m.Unix()/60]; ok {
		o = addMinutes(o, other)
	}
	return o
}

// ownMinutes are the minutes the limiter remembers calls in.
func (l *Limiter) ownMinutes() []ownMinute {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ms []ownMinute
	for _, o := range l.own {
		if o.calls > 0 || o.throttled > 0 {
			ms = append(ms, o)
		}
	}
	return ms
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
	return l.usage.cap(l.cfg.Clock.Now())
}

// Observe passes region's usage minutes to its Limiter, with the calls
// the other resetq processes recorded (KeepRecord) as its own. The records
// are read once for all regions read within othersFresh (a reading of
// every account-Region), and this process's is written by the caller of
// SaveRecord.
func (r *Regions) Observe(region string, minutes []Usage) {
	l := r.Get(region)
	if others, ok := r.othersAt(l.cfg.Clock.Now()); ok {
		l.mu.Lock()
		l.others = others[region]
		l.mu.Unlock()
	}
	before := l.Limit()
	l.Observe(minutes)
	if after := l.Limit(); after != before {
		r.onChange(region, after)
	}
}

// othersFresh is how long one reading of the other processes' records
// serves Observe.
const othersFresh = 5 * time.Second

// othersAt is the other processes' recorded calls by scope at now, read
// again only once the last reading is othersFresh old; false when r keeps
// no record.
func (r *Regions) othersAt(now time.Time) (map[string]map[int64]ownMinute, bool) {
	r.othersMu.Lock()
	defer r.othersMu.Unlock()
	r.mu.Lock()
	rec, onErr := r.record, r.onRecordErr
	r.mu.Unlock()
	if rec == nil {
		return nil, false
	}
	if r.othersRead.IsZero() || now.Sub(r.othersRead) >= othersFresh || now.Before(r.othersRead) {
		others, err := rec.others(now)
		if err != nil {
			onErr(err)
		}
		r.others, r.othersRead = others, now
	}
	return r.others, true
}

// KeepRecord makes r record its calls in rec, and take the calls other
// processes recorded there for its own when it reads the usage minutes
// (a restart does not read its predecessor's calls as real users', nor
// two workers sharing a record each other's).
// onErr hears each failure to read or write it.
func (r *Regions) KeepRecord(rec *CallRecord, onErr func(error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record, r.onRecordErr = rec, onErr
}

// SaveRecord writes every scope's calls to the record, if r keeps one: as
// the worker's ticker says, and from its stop on with last.
func (r *Regions) SaveRecord(last bool) error {
	r.mu.Lock()
	rec := r.record
	byScope := map[string][]ownMinute{}
	for scope, l := range r.limiters {
		byScope[scope] = l.ownMinutes()
	}
	r.mu.Unlock()
	if rec == nil {
		return nil
	}
	return rec.save(byScope, r.cfg.withDefaults().Clock.Now(), last)
}

// Cap is region's cap from the usage metrics (0: none, or the metrics
// fell silent).
func (r *Regions) Cap(region string) float64 { return r.Get(region).Cap() }

// Room is region's room real users leave (userModel.room), false when the
// usage metrics have not told it or fell silent.
func (r *Regions) Room(region string) (float64, bool) { return r.Get(region).Room() }

// Room is the room real users leave the limiter (userModel.room), false
// when the usage metrics have not told it or fell silent.
func (l *Limiter) Room() (float64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.usage.Users.room(l.cfg, l.cfg.Clock.Now())
}

// gainJudged is a probe's gain after judged minutes: real users' loss is
// known, and says how fast the limiter may probe. A minute in which they
// lost little (spare) doubles it, up to 1; any other keeps it (a minute
// over the budget cuts the cap instead). The limiter's own throttles no
// longer lower it (Config.judgedBy). Back to 1 at once, as it was, the
// probes of the first judged minutes took real users' calls in the
// sliding window: 0.65% of them over 12 minutes with the campaign's own
// confirmations, 0.37% now (4 seeds). Raised by the square root of 2 at
// every minute that did not cut, sliding x Poisson with the confirmations
// lost 0.63% instead of 0.50%, for no gain of rate. Someone who keeps real
// users' loss a little over the aim minute after minute holds the gain
// where it is: the probes slow, not the cuts nor the rate found.
func gainJudged(g float64, s usageState) float64 {
	if s.Spare > 0 {
		return min(maxGain, 2*g)
	}
	return g
}
