package ratelimit

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resetq/resetq/clock"
)

// gcraScript is GCRA (the generic cell rate algorithm) with a burst of 1,
// as a reservation: each call gets the next free slot, the Region's
// theoretical arrival time (TAT) or now if that has passed, and moves the
// TAT one emission interval past that slot, on Redis's clock (TIME). A TAT
// further ahead than ARGV[2], or Redis's clock behind the last booking,
// means the clock stepped back: the script starts again from now. It also
// adds the successes the caller reports (ARGV[3]) to the fleet's per
// second (for the quota found at a cut), counts the call in its slot's
// minute, adds what the caller carries to the minutes it names, and
// returns the fleet's pace and what the usage metrics told the fleet.
//
// A minute's counts live in the call counts' hash at its index in a ring
// of fleetMinutes (fields m, c, t, f and l with the index: the minute, the
// calls, the throttles, the first and the last call in microseconds), so
// the hash holds the last fleetMinutes minutes and no more; a carried
// minute older than the one its index holds is dropped.
//
// KEYS: the TAT, the pace, the call counts, the usage state. ARGV: the
// emission interval and the longest wait, in microseconds, the caller's
// successes since its last booking, fleetMinutes, then per minute it
// carries: the Unix minute, calls, throttles, first and last call
// (microseconds, 0: none). It returns the microseconds until the caller's
// slot, Redis's time in microseconds, the pace and the usage state (each
// "" if none yet).
const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local sec = tonumber(t[1])
local c = redis.call('HMGET', KEYS[3], 'sec', 'n', 'prev', 'last', 'since')
local last = tonumber(c[4]) or 0
local interval = tonumber(ARGV[1])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
if slot - now > tonumber(ARGV[2]) or now < last then slot = now end
local tat = slot + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
local n, prev, since = tonumber(c[2]) or 0, tonumber(c[3]) or 0, tonumber(c[5]) or now
if tonumber(c[1]) ~= sec then
  if tonumber(c[1]) == sec - 1 then prev = n else prev = 0 end
  n = 0
end
if now - last > 1000000 or now < last then since = now end
redis.call('HSET', KEYS[3], 'sec', string.format('%d', sec), 'n', n + tonumber(ARGV[3]), 'prev', prev,
  'last', string.format('%d', now), 'since', string.format('%d', since))
local function count(m, calls, throttles, first, last)
  local i = string.format('%d', m % tonumber(ARGV[4]))
  local v = redis.call('HMGET', KEYS[3], 'm' .. i, 'c' .. i, 't' .. i, 'f' .. i, 'l' .. i)
  local f, l = first, last
  if (tonumber(v[1]) or 0) > m then return end -- older than the ring: gone
  if tonumber(v[1]) == m then
    calls, throttles = calls + (tonumber(v[2]) or 0), throttles + (tonumber(v[3]) or 0)
    local f0, l0 = tonumber(v[4]) or 0, tonumber(v[5]) or 0
    if f0 > 0 and (f == 0 or f0 < f) then f = f0 end
    if l0 > l then l = l0 end
  end
  redis.call('HSET', KEYS[3], 'm' .. i, string.format('%d', m), 'c' .. i, string.format('%d', calls),
    't' .. i, string.format('%d', throttles), 'f' .. i, string.format('%d', f), 'l' .. i, string.format('%d', l))
end
count(math.floor(slot / 60000000), 1, 0, slot, slot)
for j = 5, #ARGV - 4, 5 do
  count(tonumber(ARGV[j]), tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3]), tonumber(ARGV[j + 4]))
end
redis.call('PEXPIRE', KEYS[3], 3600000)
return {slot - now, now, redis.call('GET', KEYS[2]) or '', redis.call('GET', KEYS[4]) or ''}
`

// fleetMinutes is how many minutes of the fleet's calls Redis keeps: more
// than the usage metrics look back.
const fleetMinutes = 40

// gcra runs gcraScript by EVALSHA, and EVAL when Redis has not cached it.
var gcra = redis.NewScript(gcraScript)

// replacePace sets KEYS[1] to ARGV[2] for ARGV[3] ms if it still holds
// ARGV[1].
var replacePace = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return false
`)

// paceTTL keeps a fleet's pace in Redis between campaigns' calls.
const paceTTL = 24 * time.Hour

// FleetConfig sets a Fleet. Zero fields take the defaults given.
type FleetConfig struct {
	// Redis is where the fleet's limits live. Required.
	Redis RedisAddr
	// Cluster says Redis is a Redis Cluster: Redis.Addr is any node, and
	// each Region's keys share a hash tag.
	Cluster bool
	// SentinelMaster, if set, names the primary that Redis Sentinels
	// watch: Redis.Addr lists the Sentinels (ParseSentinelURL). Not with
	// Cluster.
	SentinelMaster string
	// RootCAs verify a rediss:// server. Default: the system roots.
	RootCAs *x509.CertPool
	// KeyPrefix starts each Region's keys. Default "resetq".
	KeyPrefix string
	// Rate is the fleet-wide limit per Region, in calls per second. Required.
	Rate float64
	// FleetSize is how many replicas share Rate: while Redis is down each
	// paces at Rate/FleetSize. Default 1.
	FleetSize int
	// Pace adapts the fleet's rate to throttles; its Ceiling is Rate. The
	// fallback limiter takes the same settings scaled to Rate/FleetSize.
	Pace Config
	// OnRate, if not nil, hears each Region's rate when it changes: the
	// fleet's while Redis answers, this replica's share while it does not.
	OnRate func(region string, rate float64)
	// Timeout bounds the dial and each command, each tried at most twice.
	// Default 500ms.
	Timeout time.Duration
	// RetryInterval is the least time between two tries of a Redis that
	// failed. Default 3s.
	RetryInterval time.Duration
	// Logger hears about each switch to and from the local share.
	// Default: discard.
	Logger *slog.Logger
	// OnFallback, if not nil, hears true when the replica switches to its
	// local share and false when Redis answers again.
	OnFallback func(on bool)
	// Clock gives the time and the waits. Default clock.Real.
	Clock clock.Clock
}

// Fleet paces one replica of a fleet that shares Cognito's quota. The
// fleet's rate and its GCRA slots live in Redis: a call takes the next
// slot of its Region, and a throttle cuts the fleet's rate once, for every
// replica (see gcraScript and Config). Its calls and throttles per minute
// live there too, so the category's usage minutes (Observe) cap the
// fleet's rate as they cap a Limiter's. While Redis cannot be reached the
// replica paces on its own at Rate/FleetSize with a local adaptive limiter,
// and tries Redis again at most every RetryInterval. Fleet is safe for
// concurrent use.
type Fleet struct {
	fc      FleetConfig
	pc      Config // fc.Pace with its defaults
	client  redis.UniversalClient
	share   float64 // Rate/FleetSize
	maxWait int64   // the longest wait for a slot, in microseconds
	local   *Regions

	mu       sync.Mutex
	regions  map[string]*fleetRegion
	fallback bool      // Redis failed last time it was asked
	nextTry  time.Time // while fallback: when Redis may be asked again
}

// fleetRegion is one Region's state in a Fleet.
type fleetRegion struct {
	name string
	keys []string      // TAT, pace, call counts, usage state
	turn chan struct{} // one caller per Region asks Redis at a time

	mu        sync.Mutex
	pace      pace       // the fleet's, as Redis last said
	rate      float64    // the fleet's rate at the last answer
	calls     int        // this replica's answers since the pace's cut
	throttled int        // of which throttles
	oks       int        // successes not yet reported to Redis
	heard     bool       // a pace was heard and reported to OnRate
	redisNow  time.Time  // Redis's clock at the last answer
	heardAt   time.Time  // this replica's clock then
	usage     usageState // what the usage metrics told the fleet, as Redis last said
	usageRaw  string     // usage as Redis encoded it
	carried   []carried  // counts not yet in Redis, oldest minute first
}

// Defaults of FleetConfig's zero fields.
const (
	DefaultFleetSize     = 1
	DefaultKeyPrefix     = "resetq"
	DefaultRedisTimeout  = 500 * time.Millisecond
	DefaultRetryInterval = 3 * time.Second
)

// Validate checks cfg; it fills in nothing (see withDefaults).
func (cfg FleetConfig) Validate() error {
	pc := cfg.Pace
	pc.Ceiling = cfg.Rate
	switch {
	case cfg.Redis.Addr == "":
		return errors.New("fleet limiter: no Redis address")
	case !(cfg.Rate > 0) || cfg.Rate > 1e6:
		return fmt.Errorf("fleet limiter: rate must be a positive number up to 1e6, got %v", cfg.Rate)
	case cfg.FleetSize < 0:
		return fmt.Errorf("fleet limiter: fleet size must be at least 1, got %d", cfg.FleetSize)
	case cfg.Timeout < 0, cfg.RetryInterval < 0:
		return errors.New("fleet limiter: Timeout and RetryInterval must not be negative")
	}
	if err := pc.Validate(); err != nil {
		return fmt.Errorf("fleet limiter: %w", err)
	}
	return nil
}

// withDefaults returns cfg with its zero fields set to their defaults.
func (cfg FleetConfig) withDefaults() FleetConfig {
	cfg.FleetSize = cmp.Or(cfg.FleetSize, DefaultFleetSize)
	cfg.KeyPrefix = cmp.Or(cfg.KeyPrefix, DefaultKeyPrefix)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultRedisTimeout)
	cfg.RetryInterval = cmp.Or(cfg.RetryInterval, DefaultRetryInterval)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	cfg.Clock = cmp.Or[clock.Clock](cfg.Clock, clock.Real{})
	if cfg.OnFallback == nil {
		cfg.OnFallback = func(bool) {}
	}
	if cfg.OnRate == nil {
		cfg.OnRate = func(string, float64) {}
	}
	return cfg
}

// NewFleet checks cfg and returns a Fleet. It does not dial: Redis is
// first asked on the first Wait. Close releases its connections.
func NewFleet(cfg FleetConfig) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	pc := cfg.Pace
	pc.Ceiling = cfg.Rate
	pc.Clock = cmp.Or(pc.Clock, cfg.Clock)
	pc = pc.withDefaults()
	share := cfg.Rate / float64(cfg.FleetSize)
	scale := share / cfg.Rate
	lc := pc
	lc.Ceiling, lc.Floor, lc.Increase, lc.StartIncrease = share, pc.Floor*scale, pc.Increase*scale, pc.StartIncrease*scale
	lc.Start, lc.SharedBelow = pc.Start*scale, pc.SharedBelow*scale
	local, err := NewRegions(lc, cfg.OnRate)
	if err != nil {
		return nil, fmt.Errorf("fleet limiter: %w", err)
	}
	client, err := newRedisClient(redisConn{Addr: cfg.Redis, Cluster: cfg.Cluster, SentinelMaster: cfg.SentinelMaster, RootCAs: cfg.RootCAs, Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("fleet limiter: %w", err)
	}
	// Slots as far ahead as the fleet's bookings at the floor rate can go,
	// and never less than 10 s: a shorter clock step back is waited out.
	maxWait := int64(max(maxWaitFor(math.Ceil(1e6/pc.Floor), cfg.FleetSize), 10e6))
	return &Fleet{fc: cfg, pc: pc, client: client, share: share, maxWait: maxWait, local: local, regions: map[string]*fleetRegion{}}, nil
}

// maxWaitFor is the longest wait for a slot, in microseconds, that the
// bookings of a fleet can explain: each replica books at most one slot
// ahead, so fleetSize intervals, times 4 for replicas beyond fleetSize,
// and at least a second.
func maxWaitFor(interval float64, fleetSize int) float64 {
	return max(1e6, 4*float64(fleetSize)*interval)
}

// Key is the Redis key that holds region's GCRA slots. In a cluster the
// Region is a hash tag, so a Region's keys share one slot.
func (f *Fleet) Key(region string) string { return f.key(region, "ratelimit") }

func (f *Fleet) key(region, what string) string {
	if f.fc.Cluster {
		return f.fc.KeyPrefix + ":{" + region + "}:" + what
	}
	return f.fc.KeyPrefix + ":" + what + ":" + region
}

// Share is the rate this replica keeps to while Redis is down.
func (f *Fleet) Share() float64 { return f.share }

// Close closes the connections to Redis.
func (f *Fleet) Close() error { return f.client.Close() }

func (f *Fleet) region(name string) *fleetRegion {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.regions[name]
	if r == nil {
		r = &fleetRegion{
			name: name,
			keys: []string{f.key(name, "ratelimit"), f.key(name, "pace"), f.key(name, "calls"), f.key(name, "usage")},
			turn: make(chan struct{}, 1),
			pace: f.pc.start(time.Time{}),
			rate: f.fc.Rate,
		}
		f.regions[name] = r
	}
	return r
}

// Rate is region's fleet-wide rate as Redis last said.
func (f *Fleet) Rate(region string) float64 {
	r := f.region(region)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rate
}

// Wait blocks until a call to region may go, or ctx ends.
func (f *Fleet) Wait(ctx context.Context, region string) error {
	r := f.region(region)
	// One caller per Region at a time asks Redis and holds a slot, so a
	// replica never books slots it has no caller ready for.
	select {
	case r.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.turn }()
	if !f.shouldAsk() {
		return f.localWait(ctx, r)
	}
	wait, err := f.reserve(ctx, r)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.failed(err)
		return f.localWait(ctx, r)
	}
	f.answered()
	r.mu.Lock()
	slot := r.redisTime(f.fc.Clock.Now()).Add(wait)
	r.mu.Unlock()
	if err := clock.Sleep(ctx, f.fc.Clock, wait); err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.carryAll([]carried{{minute: unixMinute(slot), calls: -1}}) // the call never went
		return err
	}
	return nil
}

// localWait waits for a call at the local share, and counts the call for
// the fleet's minutes (with the next booking).
func (f *Fleet) localWait(ctx context.Context, r *fleetRegion) error {
	if err := f.local.Wait(ctx, r.name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.carry(r.redisTime(f.fc.Clock.Now()), true)
	return nil
}

// Throttled cuts region's fleet-wide rate after a TooManyRequestsException,
// once for the whole fleet per CutInterval; while Redis is down, this
// replica's share.
func (f *Fleet) Throttled(region string) {
	r := f.region(region)
	if f.inFallback() {
		r.mu.Lock()
		r.carry(r.redisTime(f.fc.Clock.Now()), false)
		r.mu.Unlock()
		f.local.Throttled(region)
		return
	}
	r.count(true, f.fc.Clock.Now())
	if r.cutJustNow(f.fc.Clock.Now(), f.pc.CutInterval/2) {
		return // the throttles of one full window: the fleet has cut for them
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*f.fc.Timeout)
	defer cancel()
	if err := f.cut(ctx, r); err != nil {
		f.failed(err)
		f.local.Throttled(region)
	}
}

// Succeeded lets the local share recover while Redis is down; the fleet's
// rate climbs back with time alone.
func (f *Fleet) Succeeded(region string) {
	if f.inFallback() {
		f.local.Succeeded(region)
		return
	}
	f.region(region).count(false, f.fc.Clock.Now())
}

// cutJustNow reports whether the fleet's last cut is under d old on
// Redis's clock at this replica's now, as far as it can tell without asking.
func (r *fleetRegion) cutJustNow(now time.Time, d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	age := r.redisTime(now).Sub(r.pace.CutAt)
	return r.pace.Cut && !r.heardAt.IsZero() && age >= 0 && age < d
}

// redisTime is Redis's clock at this replica's now, as far as it can tell
// without asking (now itself before Redis first answered). r.mu is held.
func (r *fleetRegion) redisTime(now time.Time) time.Time {
	if r.heardAt.IsZero() {
		return now
	}
	return r.redisNow.Add(now.Sub(r.heardAt))
}

// count notes an answer for the throttled share since the fleet's cut,
// and a throttle for the fleet's minutes.
func (r *fleetRegion) count(throttled bool, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if throttled {
		r.throttled++
		r.carry(r.redisTime(now), false)
	} else {
		r.oks++
	}
}

func (f *Fleet) inFallback() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fallback
}

// shouldAsk reports whether to ask Redis now: always while it works; while
// it is down, once per RetryInterval (the caller that gets true is the one
// that tries; the others keep to the local share meanwhile).
func (f *Fleet) shouldAsk() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.fallback {
		return true
	}
	now := f.fc.Clock.Now()
	if now.Before(f.nextTry) {
		return false
	}
	f.nextTry = now.Add(f.fc.RetryInterval)
	return true
}

// failed switches to the local share, logging once per switch.
func (f *Fleet) failed(err error) {
	f.mu.Lock()
	was := f.fallback
	f.fallback, f.nextTry = true, f.fc.Clock.Now().Add(f.fc.RetryInterval)
	f.mu.Unlock()
	if !was {
		f.reportRates(true)
		f.fc.Logger.Warn("redis unreachable, pacing at local share", "error", err, "redis", f.fc.Redis.String(),
			"share", f.share, "fleet_size", f.fc.FleetSize, "retry_every", f.fc.RetryInterval)
		f.fc.OnFallback(true)
	}
}

// answered switches back to the shared limit, logging once per switch.
func (f *Fleet) answered() {
	f.mu.Lock()
	was := f.fallback
	f.fallback = false
	f.mu.Unlock()
	if was {
		f.reportRates(false)
		f.fc.Logger.Info("redis reachable again, pacing by the fleet-wide limit", "redis", f.fc.Redis.String(), "rate", f.fc.Rate)
		f.fc.OnFallback(false)
	}
}

// reportRates tells OnRate the rate each known Region now paces at: this
// replica's share in fallback, else the fleet's as last heard.
func (f *Fleet) reportRates(fallback bool) {
	f.mu.Lock()
	regions := make([]*fleetRegion, 0, len(f.regions))
	for _, r := range f.regions {
		regions = append(regions, r)
	}
	f.mu.Unlock()
	for _, r := range regions {
		if fallback {
			f.fc.OnRate(r.name, f.local.Get(r.name).Limit())
			continue
		}
		r.mu.Lock()
		rate := r.rate
		r.mu.Unlock()
		f.fc.OnRate(r.name, rate)
	}
}

// reserve runs the GCRA script for r at the fleet's rate and returns how
// long until the slot it got starts.
func (f *Fleet) reserve(ctx context.Context, r *fleetRegion) (time.Duration, error) {
	r.mu.Lock()
	interval := math.Ceil(1e6 / r.rate)
	oks, carried := r.oks, r.carried
	r.oks, r.carried = 0, nil
	r.mu.Unlock()
	args := make([]any, 0, 4+5*len(carried))
	args = append(args, int64(interval), f.maxWait, oks, fleetMinutes)
	for _, c := range carried {
		args = append(args, c.minute, c.calls, c.throttled, c.first, c.last)
	}
	v, err := gcra.Run(ctx, f.client, r.keys, args...).Result()
	if err != nil {
		r.mu.Lock()
		r.oks += oks // not counted: tell the next booking
		r.carryAll(carried)
		r.mu.Unlock()
	}
	if err != nil && ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("redis %s: %w", f.fc.Redis, err)
	}
	wait, now, p, u, err := parseReply(v, f.maxWait)
	if err != nil {
		return 0, err
	}
	if err := f.heardUsage(r, u); err != nil {
		return 0, err
	}
	if p == "" {
		f.startPace(ctx, r, now)
		return wait, nil
	}
	pc, err := parsePace(p)
	if err != nil {
		return 0, fmt.Errorf("redis: %s: %w", r.keys[1], err)
	}
	if pc.CutAt.After(now) {
		// Cut before Redis's clock stepped back: the fleet climbs from now.
		pc.CutAt = now
		if err := replacePace.Run(ctx, f.client, r.keys[1:2], p, pc.String(), paceTTL.Milliseconds()).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("redis %s: %w", f.fc.Redis, err)
		}
	}
	f.heardPace(r, pc, now)
	return wait, nil
}

// parseReply checks the GCRA script's answer: the wait, Redis's time, the
// pace and the usage state.
func parseReply(reply any, maxWait int64) (time.Duration, time.Time, string, string, error) {
	if v, ok := reply.([]any); ok && len(v) == 4 {
		wait, ok1 := v[0].(int64)
		now, ok2 := v[1].(int64)
		p, ok3 := v[2].(string)
		u, ok4 := v[3].(string)
		if ok1 && ok2 && ok3 && ok4 && wait >= 0 && wait <= maxWait {
			return time.Duration(wait) * time.Microsecond, time.UnixMicro(now), p, u, nil
		}
	}
	return 0, time.Time{}, "", "", fmt.Errorf("redis: rate limit script answered %v, want the wait (0 to %d µs), the time, the pace and the usage state", reply, maxWait)
}

// limit is the fleet's rate at now on Redis's clock: its pace's, under
// the cap of the usage metrics while they judge minutes.
func (f *Fleet) limit(p pace, u usageState, now time.Time) float64 {
	local := f.fc.Clock.Now()
	return f.pc.limited(f.pc.informed(u, local).rateAt(p, now), u, local)
}

// heardPace notes the fleet's pace as Redis said it at now.
func (f *Fleet) heardPace(r *fleetRegion, p pace, now time.Time) {
	r.mu.Lock()
	rate := f.limit(p, r.usage, now)
	changed := rate != r.rate || !r.heard
	if p.CutAt != r.pace.CutAt {
		r.calls, r.throttled = 0, 0
	}
	r.pace, r.rate, r.heard = p, rate, true
	r.redisNow, r.heardAt = now, f.fc.Clock.Now()
	r.mu.Unlock()
	if changed {
		f.fc.OnRate(r.name, rate)
	}
}

// startPace sets the fleet's first pace for r, unless a replica did first.
func (f *Fleet) startPace(ctx context.Context, r *fleetRegion, now time.Time) {
	p := f.pc.start(now)
	if set, err := f.client.SetNX(ctx, r.keys[1], p.String(), paceTTL).Result(); err == nil && set {
		f.heardPace(r, p, now)
	}
}

// cut cuts the fleet's pace for r after a throttle: under WATCH, so of
// the replicas throttled together one cuts, and the others find the cut
// made within CutInterval and leave it.
func (f *Fleet) cut(ctx context.Context, r *fleetRegion) error {
	var err error
	for range 3 {
		if err = f.client.Watch(ctx, func(tx *redis.Tx) error { return f.cutTx(ctx, tx, r) }, r.keys[1]); !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("redis %s: cut %s: %w", f.fc.Redis, r.keys[1], err)
	}
	return nil
}

func (f *Fleet) cutTx(ctx context.Context, tx *redis.Tx, r *fleetRegion) error {
	now, err := tx.Time(ctx).Result()
	if err != nil {
		return err
	}
	now = now.Truncate(time.Microsecond)
	p := f.pc.start(now)
	switch s, err := tx.Get(ctx, r.keys[1]).Result(); {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return err
	default:
		if p, err = parsePace(s); err != nil {
			return err
		}
	}
	c, err := tx.HMGet(ctx, r.keys[2], "sec", "n", "prev", "last", "since").Result()
	if err != nil {
		return err
	}
	found, busy := fleetCalls(c, now)
	r.mu.Lock()
	calls, throttled, u := r.calls, r.throttled, r.usage
	r.mu.Unlock()
	np, ok := f.pc.judgedBy(u, f.fc.Clock.Now()).cut(p, now, f.limit(p, u, now), found, busy, calls, throttled)
	if ok {
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, r.keys[1], np.String(), paceTTL)
			return nil
		})
		if err != nil {
			return err
		}
	}
	f.heardPace(r, np, now)
	return nil
}

// fleetCalls reads the script's call counts at now: the fleet's calls in
// the last second (the current second's, plus the part of the previous
// one still in that window) and how long calls have run without a gap
// over a second.
func fleetCalls(c []any, now time.Time) (found float64, busy time.Duration) {
	num := func(i int) int64 {
		if i < len(c) {
			if s, ok := c[i].(string); ok {
				n, _ := strconv.ParseInt(s, 10, 64)
				return n
			}
		}
		return 0
	}
	sec, n, prev, last, since := num(0), num(1), num(2), num(3), num(4)
	// A second's count is spread over the part of it calls ran in (from
	// since, when the run began inside it); the window takes its share.
	at, from := now.UnixMicro(), now.UnixMicro()-1e6
	part := func(count, start, end int64) float64 {
		start = max(start, since)
		if count == 0 || end <= start {
			return float64(count)
		}
		return float64(count) * float64(min(end, at)-max(start, from)) / float64(end-start)
	}
	switch s := sec * 1e6; now.Unix() {
	case sec:
		found = float64(n) + max(0, part(prev, s-1e6, s))
	case sec + 1:
		found = max(0, part(n, s, s+1e6))
	}
	if now.UnixMicro()-last <= 1e6 && since > 0 {
		busy = time.Duration(now.UnixMicro()-since) * time.Microsecond
	}
	return found, busy
}
