package ratelimit

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// gcraScript is GCRA (the generic cell rate algorithm) with a burst of 1,
// as a reservation: each call gets the next free slot, the key's
// theoretical arrival time (TAT) or now if that has passed, and moves the
// TAT one emission interval past that slot. So slots across the fleet are
// exactly one interval apart on Redis's own clock (TIME), whatever the
// replicas' clocks say, and over any window of T seconds at most T*rate+1
// slots start. A caller that asks late takes the slot that is free then,
// and the next caller's slot is an interval after it: no ask has to land
// on the TAT to the microsecond (a refusal that says "ask again at the
// TAT" loses the time each ask is late, about 5% of 60/s on a loopback).
//
// A TAT further ahead than the replicas' bookings can explain (ARGV[2])
// was set before Redis's clock stepped back: the script starts again from
// now rather than make the fleet wait out the step.
//
// KEYS[1]: the Region's key. ARGV[1]: the emission interval in
// microseconds (1e6 / rate). ARGV[2]: the longest wait in microseconds. It
// returns the microseconds from now until the caller's slot (0: go now).
// The key expires one second after the TAT, when it no longer holds
// anything.
const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
if slot - now > tonumber(ARGV[2]) then slot = now end
local tat = slot + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return slot - now
`

// gcra runs gcraScript by EVALSHA, and EVAL when Redis has not cached it.
var gcra = redis.NewScript(gcraScript)

// FleetConfig sets a Fleet. Zero fields take the defaults given.
type FleetConfig struct {
	// Redis is where the fleet's limits live (--redis-url). Required.
	Redis RedisAddr
	// Cluster says Redis is a Redis Cluster (--redis-cluster): Redis.Addr
	// is any node, and each Region's key is hash-tagged.
	Cluster bool
	// RootCAs verify a rediss:// server (--redis-ca-file). Default: the
	// system roots.
	RootCAs *x509.CertPool
	// KeyPrefix starts each Region's key: PREFIX:ratelimit:REGION, or
	// PREFIX:{REGION}:ratelimit in a cluster. Default "resetq".
	KeyPrefix string
	// Rate is the fleet-wide limit in calls per second per Region
	// (--rate): what all replicas together may send. Required.
	Rate float64
	// FleetSize is how many replicas share Rate (--fleet-size). Without
	// Redis each paces at Rate/FleetSize, its conservative share.
	// Default 1.
	FleetSize int
	// Local is this replica's adaptive limiter, waited on before the
	// shared one; Throttled and Succeeded go to it. Required.
	Local *Regions
	// Timeout bounds the dial and each command, each tried at most twice
	// (a pooled connection may have died with a restarted Redis). Default
	// 500ms, so a dead Redis costs a call at most a second once per
	// RetryInterval.
	Timeout time.Duration
	// RetryInterval is the least time between two tries of a Redis that
	// failed; in between the replica paces at its local share. Default 3s.
	RetryInterval time.Duration
	// Logger hears about each switch to and from the local share.
	// Default: discard.
	Logger *slog.Logger
	// OnFallback, if not nil, is called with true when Redis fails and the
	// replica switches to its local share, and with false when Redis
	// answers again (for the resetq_ratelimit_fallback gauge).
	OnFallback func(on bool)
	// Now is the clock for RetryInterval. Default time.Now.
	Now func() time.Time
}

// Fleet paces one replica of a fleet that shares Cognito's quota. A call
// first waits on the replica's local adaptive limiter (Local, whose ceiling
// is the fleet's Rate), then asks Redis for the next slot of the fleet-wide
// limit of its Region (GCRA, burst 1, on Redis's clock) and waits until
// that slot starts.
//
// The two compose: the shared limit keeps the fleet at or below Rate, and
// each replica's local limiter still cuts on TooManyRequestsException, to
// what got through for it in the last second, so it converges to its share
// of what the quota leaves after real users.
//
// When Redis cannot be reached or answers an error, the replica paces at
// Rate/FleetSize on its own (one log line and OnFallback(true) per switch)
// and tries Redis again at most every RetryInterval, so a dead Redis does
// not add a timeout to every call. Fleet is safe for concurrent use.
type Fleet struct {
	fc       FleetConfig
	client   redis.UniversalClient
	share    float64 // Rate/FleetSize
	interval int64   // microseconds between two calls, rounded up: never above Rate
	maxWait  int64   // microseconds: the longest wait for a slot (maxWaitFor)

	mu       sync.Mutex
	regions  map[string]*fleetRegion
	fallback bool      // Redis failed last time it was asked
	nextTry  time.Time // while fallback: when Redis may be asked again
}

// fleetRegion is one Region's state in a Fleet.
type fleetRegion struct {
	key      string
	turn     chan struct{} // one caller per Region asks Redis at a time
	fallback *rate.Limiter // Rate/FleetSize, used while Redis is down
}

// NewFleet checks cfg and returns a Fleet. It does not dial: Redis is
// first asked on the first Wait. Close releases its connections.
func NewFleet(cfg FleetConfig) (*Fleet, error) {
	switch {
	case cfg.Redis.Addr == "":
		return nil, errors.New("fleet limiter: no Redis address")
	case cfg.Local == nil:
		return nil, errors.New("fleet limiter: no local limiter")
	case !(cfg.Rate > 0) || cfg.Rate > 1e6:
		return nil, fmt.Errorf("fleet limiter: rate must be a positive number up to 1e6, got %v", cfg.Rate)
	case cfg.FleetSize < 0:
		return nil, fmt.Errorf("fleet limiter: fleet size must be at least 1, got %d", cfg.FleetSize)
	}
	if cfg.FleetSize == 0 {
		cfg.FleetSize = 1
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "resetq"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.OnFallback == nil {
		cfg.OnFallback = func(bool) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	interval := math.Ceil(1e6 / cfg.Rate)
	maxWait := int64(min(maxWaitFor(interval, cfg.FleetSize), 1<<53))
	client, err := newRedisClient(redisConn{Addr: cfg.Redis, Cluster: cfg.Cluster, RootCAs: cfg.RootCAs, Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("fleet limiter: %w", err)
	}
	return &Fleet{
		fc:       cfg,
		client:   client,
		share:    cfg.Rate / float64(cfg.FleetSize),
		interval: int64(interval),
		maxWait:  maxWait,
		regions:  map[string]*fleetRegion{},
	}, nil
}

// maxWaitFor is the longest wait for a slot, in microseconds, that the
// bookings of a fleet can explain: each replica books at most one slot
// ahead, so fleetSize intervals, times 4 for replicas beyond fleetSize,
// and at least a second.
func maxWaitFor(interval float64, fleetSize int) float64 {
	return max(1e6, 4*float64(fleetSize)*interval)
}

// Key is the Redis key that holds region's fleet-wide limit. In a cluster
// the Region is a hash tag, so a Region's keys share one slot.
func (f *Fleet) Key(region string) string {
	if f.fc.Cluster {
		return f.fc.KeyPrefix + ":{" + region + "}:ratelimit"
	}
	return f.fc.KeyPrefix + ":ratelimit:" + region
}

// Share is the rate this replica keeps to while Redis is down:
// Rate/FleetSize.
func (f *Fleet) Share() float64 { return f.share }

// Close closes the connections to Redis.
func (f *Fleet) Close() error { return f.client.Close() }

func (f *Fleet) region(name string) *fleetRegion {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.regions[name]
	if r == nil {
		r = &fleetRegion{
			key:      f.Key(name),
			turn:     make(chan struct{}, 1),
			fallback: rate.NewLimiter(rate.Limit(f.share), 1),
		}
		f.regions[name] = r
	}
	return r
}

// Wait blocks until a call to region may go, or ctx ends.
func (f *Fleet) Wait(ctx context.Context, region string) error {
	if err := f.fc.Local.Wait(ctx, region); err != nil {
		return err
	}
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
		return r.fallback.Wait(ctx)
	}
	wait, err := f.reserve(ctx, r.key)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.failed(err)
		return r.fallback.Wait(ctx)
	}
	f.answered()
	if wait <= 0 {
		return nil
	}
	// The slot is ours: the replica's next caller asks for the one after
	// it only once this one has gone (the turn), so a replica holds at
	// most one slot ahead per Region.
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Throttled cuts region's local rate after a TooManyRequestsException.
func (f *Fleet) Throttled(region string) { f.fc.Local.Throttled(region) }

// Succeeded lets region's local rate recover.
func (f *Fleet) Succeeded(region string) { f.fc.Local.Succeeded(region) }

// shouldAsk reports whether to ask Redis now: always while it works; while
// it is down, once per RetryInterval (the caller that gets true is the one
// that tries; the others keep to the local share meanwhile).
func (f *Fleet) shouldAsk() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.fallback {
		return true
	}
	now := f.fc.Now()
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
	f.fallback, f.nextTry = true, f.fc.Now().Add(f.fc.RetryInterval)
	f.mu.Unlock()
	if !was {
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
		f.fc.Logger.Info("redis reachable again, pacing by the fleet-wide limit", "redis", f.fc.Redis.String(), "rate", f.fc.Rate)
		f.fc.OnFallback(false)
	}
}

// reserve runs the GCRA script for key and returns how long until the
// slot it got starts, at most maxWait.
func (f *Fleet) reserve(ctx context.Context, key string) (time.Duration, error) {
	v, err := gcra.Run(ctx, f.client, []string{key}, f.interval, f.maxWait).Result()
	if err != nil && ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("redis %s: %w", f.fc.Redis, err)
	}
	wait, ok := v.(int64)
	if !ok || wait < 0 || wait > f.maxWait {
		return 0, fmt.Errorf("redis: rate limit script answered %v, want the microseconds until the slot, 0 to %d", v, f.maxWait)
	}
	return time.Duration(wait) * time.Microsecond, nil
}
