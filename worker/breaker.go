package worker

import (
	"cmp"
	"strings"
	"sync"
	"time"

	"github.com/resetq/resetq/job"
)

// BreakerConfig sets the circuit breakers: one per Region and one per pool.
type BreakerConfig struct {
	// Threshold is how many Transient failures in a row (no success between)
	// open a circuit. A Systemic failure opens its circuit at once. Default 8.
	Threshold int
	// Cooldown is the first wait before a probe call; it doubles after each
	// failed probe, up to MaxCooldown. Defaults 30s and 10m.
	Cooldown, MaxCooldown time.Duration
	// MaxDeferral is how long a job may be deferred by open circuits before
	// it is dead-lettered with the error that opened them. Default 24h.
	// Jobs waiting on the daily email limit are never dead-lettered for it.
	MaxDeferral time.Duration
	// EmailProbe is the fixed wait between probes of the daily email
	// limit's circuit. Default 10m.
	EmailProbe time.Duration
}

// Defaults of BreakerConfig's zero fields.
const (
	DefaultCircuitThreshold = 8
	DefaultCircuitCooldown  = 30 * time.Second
	DefaultMaxCooldown      = 10 * time.Minute
	DefaultMaxDeferral      = 24 * time.Hour
	DefaultEmailProbe       = 10 * time.Minute
)

// WithDefaults returns c with its zero fields set to their defaults.
func (c BreakerConfig) WithDefaults() BreakerConfig {
	c.Threshold = cmp.Or(c.Threshold, DefaultCircuitThreshold)
	c.Cooldown = cmp.Or(c.Cooldown, DefaultCircuitCooldown)
	c.MaxCooldown = max(cmp.Or(c.MaxCooldown, DefaultMaxCooldown), c.Cooldown)
	c.MaxDeferral = cmp.Or(c.MaxDeferral, DefaultMaxDeferral)
	c.EmailProbe = cmp.Or(c.EmailProbe, DefaultEmailProbe)
	return c
}

// breaker keeps circuits by key: a Region ("us-east-1"), a pool
// ("pool:us-east-1_AbC") or a Region's daily email limit ("email:us-east-1").
// Closed: calls flow. Open: none until the cooldown (EmailProbe for the
// email limit) ends. Half-open: one probe, whose success closes the circuit
// and whose failure opens it with a doubled cooldown; a probe silent for a
// cooldown is given up. Only admit changes state; peek reads. It is safe
// for concurrent use.
type breaker struct {
	cfg      BreakerConfig
	onChange func(key string, open bool, reason string)

	mu       sync.Mutex
	circuits map[string]*circuit
}

type circuitState int

const (
	closed circuitState = iota
	open
	halfOpen
)

type circuit struct {
	state       circuitState
	until       time.Time     // open: end of the cooldown; half-open: when the probe is given up
	cooldown    time.Duration // length of the current cooldown
	consecutive int           // transient failures in a row
	reason      string        // the error code that opened it
	detail      string        // that error's message
}

// permit is what admit grants a call: probe names the circuit the call
// probes, if any.
type permit struct{ probe string }

// refusal says why a call may not go: the wait until a probe may, and the
// error that opened the circuit.
type refusal struct {
	wait           time.Duration
	reason, detail string
	forever        bool // the daily email limit: never a reason to dead-letter
}

func refuse(k string, c *circuit, now time.Time) refusal {
	return refusal{wait: c.until.Sub(now), reason: c.reason, detail: c.detail, forever: strings.HasPrefix(k, "email:")}
}

func newBreaker(cfg BreakerConfig, onChange func(string, bool, string)) *breaker {
	if onChange == nil {
		onChange = func(string, bool, string) {}
	}
	return &breaker{cfg: cfg.WithDefaults(), onChange: onChange, circuits: map[string]*circuit{}}
}

func (b *breaker) get(key string) *circuit {
	c := b.circuits[key]
	if c == nil {
		c = &circuit{}
		b.circuits[key] = c
	}
	return c
}

// peek reports, changing nothing, whether a call under keys would be
// refused at now, and why.
func (b *breaker) peek(now time.Time, keys ...string) (refusal, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		c := b.circuits[k]
		if c != nil && c.state != closed && now.Before(c.until) {
			return refuse(k, c, now), true
		}
	}
	return refusal{}, false
}

// admit lets a call under keys go at now, or refuses it. When a circuit's
// cooldown is over (or its probe was given up), the caller becomes its
// probe and must report with record.
func (b *breaker) admit(now time.Time, keys ...string) (permit, *refusal) {
	if r, refused := b.peek(now, keys...); refused {
		return permit{}, &r
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		c := b.circuits[k]
		if c == nil || c.state == closed {
			continue
		}
		if !now.Before(c.until) { // cooldown over, or the last probe given up
			c.state, c.until = halfOpen, now.Add(b.cfg.Cooldown)
			return permit{probe: k}, nil
		}
		r := refuse(k, c, now)
		return permit{}, &r
	}
	return permit{}, nil
}

// record feeds back the result of a call admitted with p. failed is the
// key of the circuit the result is about (the job's Region or pool), or ""
// when the service answered and so works for every key.
func (b *breaker) record(now time.Time, p permit, cl Class, keys []string, failed string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch cl.Kind {
	case Systemic:
		b.trip(now, failed, b.get(failed), cl)
	case Transient:
		c := b.get(failed)
		c.consecutive++
		if c.consecutive >= b.cfg.Threshold || p.probe == failed {
			b.trip(now, failed, c, cl)
		}
	case Canceled:
	default: // the service answered about the user or the quota: it works
		for _, k := range keys { // a closed circuit with no failures needs no entry
			if strings.HasPrefix(k, "email:") && cl.Kind != OK {
				continue // only a code sent says the daily email limit lifted
			}
			if c := b.circuits[k]; c != nil {
				delete(b.circuits, k)
				if c.state != closed {
					b.onChange(k, false, "")
				}
			}
		}
	}
	// A probe whose result said nothing of its circuit (canceled, or a
	// failure of the other circuit) hands over to the next probe at once.
	if c := b.circuits[p.probe]; c != nil && c.state == halfOpen {
		c.state, c.until = open, now
	}
}

// trip opens the circuit of key. A late failure of a call that started
// before the circuit opened does not extend the cooldown.
func (b *breaker) trip(now time.Time, key string, c *circuit, cl Class) {
	wasClosed := c.state == closed
	switch {
	case c.state == open:
		return
	case strings.HasPrefix(key, "email:"):
		c.cooldown = b.cfg.EmailProbe
	case c.state == halfOpen:
		c.cooldown = min(2*c.cooldown, b.cfg.MaxCooldown)
	default:
		c.cooldown = b.cfg.Cooldown
	}
	c.state, c.consecutive = open, 0
	c.until = now.Add(c.cooldown)
	c.reason, c.detail = MetricCode(cl), cl.Message // bounded: it may become a DLQ reason, a metric label
	if c.reason == "other" {
		c.reason = job.ReasonCircuitOpen
	}
	if wasClosed { // a failed probe keeps it open: no change
		b.onChange(key, true, cl.Code)
	}
}

// OpenKeys lists the circuits that refuse calls at now: open within their
// cooldown, or half-open with a probe out. One whose cooldown is over with
// no job left to probe it does not count.
func (b *breaker) OpenKeys(now time.Time) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for k, c := range b.circuits {
		if c.state != closed && now.Before(c.until) {
			out = append(out, k)
		}
	}
	return out
}
