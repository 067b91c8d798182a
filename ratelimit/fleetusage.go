package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// String encodes s for Redis: cap, edge, cut, seen, judged (microseconds,
// 0: never), spare, informed; then real users' model: known, users, own,
// read (microseconds), base, returned, successes, base known; then 0,
// within, lost, calls. Fields are only ever appended (stateFields):
// replicas of other versions read it. The 16th was a time (the own cut's,
// written from 268a82c to 0ac0b3f): it is written 0 and never read.
func (s usageState) String() string {
	m := s.Users
	return fmt.Sprintf("%g %g %d %d %d %d %d %d %g %g %d %g %g %g %d 0 %d %g %g", s.Cap.Cap, s.Cap.Edge, micros(s.Cap.CutAt), micros(s.Seen), micros(s.JudgedAt), s.Spare, b2i(s.Informed),
		b2i(m.known), m.users, m.own, micros(m.readAt), m.base, m.num, m.den, b2i(m.baseKnown), s.Within, s.Lost, s.Calls)
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// parseUsageState decodes usageState.String, and the states of other
// versions (stateFields): before real users' model (7 fields) it is
// unknown; before within and the losses (16 fields or fewer) no minute
// was within the budget and none lost; "" is the zero state.
func parseUsageState(s string) (usageState, error) {
	if s == "" {
		return usageState{}, nil
	}
	f, err := stateFields(s, 19, "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0")
	if err != nil {
		return usageState{}, fmt.Errorf("usage state %q: %w", s, err)
	}
	var n [9]int64
	for i, v := range []string{f[2], f[3], f[4], f[5], f[6], f[7], f[10], f[14], f[16]} {
		var err error
		if n[i], err = strconv.ParseInt(v, 10, 64); err != nil || n[i] < 0 {
			return usageState{}, fmt.Errorf("usage state %q: bad field %q", s, v)
		}
	}
	var x [9]float64
	for i, v := range []string{f[0], f[1], f[8], f[9], f[11], f[12], f[13], f[17], f[18]} {
		var err error
		if x[i], err = strconv.ParseFloat(v, 64); err != nil || !(x[i] >= 0) || math.IsInf(x[i], 0) {
			return usageState{}, fmt.Errorf("usage state %q: bad field %q", s, v)
		}
	}
	if n[3] > spareMinutes || n[4] > 1 || n[5] > 1 || n[7] > 1 || n[8] > spareMinutes {
		return usageState{}, fmt.Errorf("usage state %q: bad field", s)
	}
	return usageState{Cap: harmCap{Cap: x[0], Edge: x[1], CutAt: fromMicros(n[0])}, Seen: fromMicros(n[1]),
		JudgedAt: fromMicros(n[2]), Spare: int(n[3]), Informed: n[4] == 1,
		Users:  userModel{known: n[5] == 1, users: x[2], own: x[3], readAt: fromMicros(n[6]), base: x[4], num: x[5], den: x[6], baseKnown: n[7] == 1},
		Within: int(n[8]), Lost: x[7], Calls: x[8]}, nil
}

// carried is a replica's calls and throttles in one minute that Redis has
// not counted yet: throttles, and calls made at the local share, go with
// the next booking.
type carried struct {
	minute           int64 // Unix minutes
	calls, throttled int64
	first, last      int64 // the first and last call, microseconds on Redis's clock (0: none)
}

// carry notes a call (or a throttle) at at on Redis's clock for the next
// booking to count. r.mu is held.
func (r *fleetRegion) carry(at time.Time, call bool) {
	c := carried{minute: at.Unix() / 60, throttled: 1}
	if call {
		us := at.UnixMicro()
		c = carried{minute: c.minute, calls: 1, first: us, last: us}
	}
	r.carryAll([]carried{c})
}

// carryAll adds cs to what the next booking carries, keeping the last
// fleetMinutes minutes (Redis keeps no more). r.mu is held.
func (r *fleetRegion) carryAll(cs []carried) {
next:
	for _, c := range cs {
		for i := range r.carried {
			if o := &r.carried[i]; o.minute == c.minute {
				o.calls, o.throttled = o.calls+c.calls, o.throttled+c.throttled
				if c.first > 0 && (o.first == 0 || c.first < o.first) {
					o.first = c.first
				}
				o.last = max(o.last, c.last)
				continue next
			}
		}
		r.carried = append(r.carried, c)
	}
	if n := len(r.carried); n > fleetMinutes {
		r.carried = r.carried[n-fleetMinutes:]
	}
}

// minuteFields are the fields of the call counts' hash that hold minute
// m's counts (see gcraScript).
func minuteFields(m int64) []string {
	i := strconv.FormatInt(m%fleetMinutes, 10)
	return []string{"m" + i, "c" + i, "t" + i, "f" + i, "l" + i}
}

// fleetMinute reads minute m's counts from the values of minuteFields(m):
// zero if the ring's slot holds another minute.
func fleetMinute(m int64, v []any) ownMinute {
	num := func(i int) int64 {
		if s, ok := v[i].(string); ok {
			n, _ := strconv.ParseInt(s, 10, 64)
			return n
		}
		return 0
	}
	if len(v) != 5 || num(0) != m {
		return ownMinute{}
	}
	return ownMinute{minute: m, calls: float64(num(1)), throttled: float64(num(2)), first: fromMicros(num(3)), last: fromMicros(num(4))}
}

// Observe takes the category's usage minutes in scope, oldest first, as
// Limiter.Observe does, with the whole fleet's calls and throttles in
// Redis as its own. With a HarmBudget, a reading with a fresh minute
// before the fleet's first cut, and before its first minute of calls is
// over, sets where the fleet starts; each settled minute in which the
// fleet called moves the fleet's cap. The usage state lives in Redis: the
// first replica to read a minute judges it for the fleet, and every
// replica paces under the one cap. While Redis is down it does nothing.
func (f *Fleet) Observe(scope string, minutes []Usage) {
	minutes = counted(minutes)
	if f.pc.HarmBudget <= 0 || len(minutes) == 0 || f.inFallback() {
		return
	}
	r := f.region(scope)
	ctx, cancel := context.WithTimeout(context.Background(), 4*f.fc.Timeout)
	defer cancel()
	var err error
	for range 3 {
		err = f.client.Watch(ctx, func(tx *redis.Tx) error { return f.observeTx(ctx, tx, r, minutes) }, r.keys[1], r.keys[3])
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	switch {
	case errors.Is(err, redis.TxFailedErr):
		// Other replicas judged the minutes meanwhile: the next booking hears it.
	case err != nil:
		f.failed(fmt.Errorf("redis %s: usage of %s: %w", f.fc.Redis, scope, err))
	}
}

func (f *Fleet) observeTx(ctx context.Context, tx *redis.Tx, r *fleetRegion, minutes []Usage) error {
	now := f.fc.Clock.Now()
	redisNow, err := tx.Time(ctx).Result()
	if err != nil {
		return err
	}
	redisNow = redisNow.Truncate(time.Microsecond)
	raw, err := getOrEmpty(ctx, tx, r.keys[3])
	if err != nil {
		return err
	}
	s := f.usageFrom(r, raw, now)
	praw, err := getOrEmpty(ctx, tx, r.keys[1])
	if err != nil {
		return err
	}
	var p pace
	if praw != "" {
		if p, err = parsePace(praw); err != nil {
			return fmt.Errorf("%s: %w", r.keys[1], err)
		}
	}
	var fields []string
	for _, u := range minutes {
		fields = append(fields, minuteFields(unixMinute(u.Minute))...)
	}
	v, err := tx.HMGet(ctx, r.keys[2], fields...).Result()
	if err != nil {
		return err
	}
	if len(v) != len(fields) {
		return fmt.Errorf("%s: %d values for %d fields", r.keys[2], len(v), len(fields))
	}
	own := f.fleetOwn(r, minutes, v)

	next, np, setPace, started := s, p, false, false
	// The start: before the fleet's first call, or within its first
	// minute of calls and before its first cut.
	if praw == "" || !s.Informed && !p.Cut && redisNow.Sub(p.CutAt) < time.Minute {
		if users, ok := busiestUsers(minutes, own, now); ok {
			next.Informed, np, setPace, started = true, f.pc.startFrom(redisNow, users), true, true
		}
	}
	ran := f.pc.informed(s, now).rateAt(np, redisNow)
	next, judged := f.pc.observe(next, minutes, own, now)
	if g := gainJudged(np.gain(), next); judged && (praw != "" || setPace) && g != np.gain() {
		// Real users' loss is known: it sets how fast the fleet probes.
		np.Gain, setPace = g, true
	}
	if fp, ok := f.pc.floored(np, ran, next, redisNow); judged && praw != "" && !started && ok {
		np, setPace = fp, true
	}
	if next.String() != s.String() || setPace {
		_, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, r.keys[3], next.String(), paceTTL)
			if setPace {
				pipe.Set(ctx, r.keys[1], np.String(), paceTTL)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.usage, r.usageRaw = next, next.String()
	r.mu.Unlock()
	if praw != "" || setPace {
		f.heardPace(r, np, redisNow)
	}
	return nil
}

// fleetOwn gives the fleet's calls in each of minutes from v, the values
// of their minuteFields in Redis, with this replica's not yet carried.
func (f *Fleet) fleetOwn(r *fleetRegion, minutes []Usage, v []any) func(time.Time) ownMinute {
	r.mu.Lock()
	pending := append([]carried(nil), r.carried...)
	r.mu.Unlock()
	byMinute := map[int64]ownMinute{}
	for i, u := range minutes {
		m := unixMinute(u.Minute)
		o := fleetMinute(m, v[5*i:5*i+5])
		for _, c := range pending {
			if c.minute != m {
				continue
			}
			o.minute, o.calls, o.throttled = m, o.calls+float64(c.calls), o.throttled+float64(c.throttled)
			if c.first > 0 && (o.first.IsZero() || time.UnixMicro(c.first).Before(o.first)) {
				o.first = time.UnixMicro(c.first)
			}
			if c.last > 0 && time.UnixMicro(c.last).After(o.last) {
				o.last = time.UnixMicro(c.last)
			}
		}
		byMinute[m] = o
	}
	return func(t time.Time) ownMinute { return byMinute[unixMinute(t)] }
}

func unixMinute(t time.Time) int64 { return t.Unix() / 60 }

// getOrEmpty is key's value, "" if it has none.
func getOrEmpty(ctx context.Context, tx *redis.Tx, key string) (string, error) {
	s, err := tx.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return s, err
}

// heardUsage notes the usage state as the script returned it.
func (f *Fleet) heardUsage(r *fleetRegion, raw string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if raw == r.usageRaw {
		return nil
	}
	r.usage, r.usageRaw = f.usageFrom(r, raw, f.fc.Clock.Now()), raw
	return nil
}

// usageFrom is the usage state raw encodes, or none, logged, if it does
// not parse or is not one resetq could have written at now (anyone who
// can write to Redis could otherwise hold the fleet at any rate, or
// unpaced: a cap under the floor books slots further apart than a fleet
// can explain, and the script starts them all from now). The next
// judged minute writes a good one.
func (f *Fleet) usageFrom(r *fleetRegion, raw string, now time.Time) usageState {
	u, err := parseUsageState(raw)
	if err == nil && !f.pc.plausible(u, now) {
		err = fmt.Errorf("usage state %q is not one resetq writes", raw)
	}
	if err != nil {
		f.fc.Logger.Warn("ignoring the fleet's usage state in Redis", "key", r.keys[3], "error", err)
		return usageState{}
	}
	return u
}

// Cap is scope's cap from the usage metrics as the fleet last said (0:
// none, or the metrics fell silent).
func (f *Fleet) Cap(scope string) float64 {
	r := f.region(scope)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.usage.judged(f.fc.Clock.Now()) {
		return 0
	}
	return r.usage.Cap.Cap
}

// Room is the room real users leave scope's fleet as the fleet last said
// (userModel.room), false when the usage metrics have not told it or fell
// silent.
func (f *Fleet) Room(scope string) (float64, bool) {
	r := f.region(scope)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usage.Users.room(f.pc, f.fc.Clock.Now())
}
