package worker

import (
	"sync"
	"time"
)

// BreakerConfig sets the per-Region circuit breaker.
type BreakerConfig struct {
	// Threshold is how many Transient failures in a row (no success between)
	// open the circuit. A Systemic failure opens it at once. Default 8.
	Threshold int
	// Cooldown is the first wait before a probe call; it doubles after each
	// failed probe, up to MaxCooldown. Defaults 30s and 10m.
	Cooldown, MaxCooldown time.Duration
}

func (c *BreakerConfig) setDefaults() {
	if c.Threshold <= 0 {
		c.Threshold = 8
	}
	if c.Cooldown <= 0 {
		c.Cooldown = 30 * time.Second
	}
	if c.MaxCooldown < c.Cooldown {
		c.MaxCooldown = max(10*time.Minute, c.Cooldown)
	}
}

// breaker keeps one circuit per Region. Closed: calls flow. Open: no call
// until the cooldown ends. Half-open: one probe call; its success closes the
// circuit, its failure opens it again with a doubled cooldown. It is safe
// for concurrent use.
type breaker struct {
	cfg      BreakerConfig
	now      func() time.Time
	onChange func(region string, open bool, reason string)

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
	until       time.Time     // end of the current cooldown (open)
	cooldown    time.Duration // length of the current cooldown
	consecutive int           // transient failures in a row
}

func newBreaker(cfg BreakerConfig, now func() time.Time, onChange func(string, bool, string)) *breaker {
	cfg.setDefaults()
	if onChange == nil {
		onChange = func(string, bool, string) {}
	}
	return &breaker{cfg: cfg, now: now, onChange: onChange, circuits: map[string]*circuit{}}
}

func (b *breaker) get(region string) *circuit {
	c := b.circuits[region]
	if c == nil {
		c = &circuit{}
		b.circuits[region] = c
	}
	return c
}

// Allow reports whether a call to region may go now. When it may not, wait
// is how long until the circuit lets a probe through.
func (b *breaker) Allow(region string) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.get(region)
	switch c.state {
	case closed:
		return true, 0
	case open:
		now := b.now()
		if !now.Before(c.until) {
			c.state = halfOpen // the caller is the probe
			return true, 0
		}
		return false, c.until.Sub(now)
	default: // half-open with a probe under way
		return false, b.cfg.Cooldown
	}
}

// Record feeds the class of an allowed call back.
func (b *breaker) Record(region string, cl Class) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.get(region)
	switch cl.Kind {
	case Systemic:
		b.trip(region, c, cl.Code)
	case Transient:
		c.consecutive++
		if c.consecutive >= b.cfg.Threshold || c.state == halfOpen {
			b.trip(region, c, cl.Code)
		}
	case Canceled:
		if c.state == halfOpen { // the probe gave up; let another one try
			c.state, c.until = open, b.now()
		}
	default: // the service answered about the user or the quota: it works
		c.consecutive = 0
		if c.state != closed {
			c.state, c.cooldown = closed, 0
			b.onChange(region, false, "")
		}
	}
}

// trip opens the circuit. A late failure of a call that started before the
// circuit opened does not extend the cooldown.
func (b *breaker) trip(region string, c *circuit, reason string) {
	switch c.state {
	case open:
		return
	case halfOpen:
		c.cooldown = min(2*c.cooldown, b.cfg.MaxCooldown)
	default:
		c.cooldown = b.cfg.Cooldown
	}
	c.state, c.consecutive = open, 0
	c.until = b.now().Add(c.cooldown)
	b.onChange(region, true, reason)
}

// OpenRegions lists the Regions whose circuit is not closed.
func (b *breaker) OpenRegions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for r, c := range b.circuits {
		if c.state != closed {
			out = append(out, r)
		}
	}
	return out
}
