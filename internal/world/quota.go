// Package world is what a worker meets outside its own process: a quota
// whose counting rule nobody outside AWS knows, and real users who share it.
// It models Cognito's UserAccountRecovery quota three ways (Models) and real
// users' calls four ways (Patterns), and finds the best constant rate a
// worker could have used had it known them in advance (Frontier).
//
// Time is always passed in, so the same values serve a simulation stepping
// a virtual clock and a stand-in answering concurrent callers in real time.
// Everything random is drawn from a seeded source: same seed, same world.
package world

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Quota admits or throttles calls. Implementations are safe for concurrent
// use; callers that want exact results pass non-decreasing times.
type Quota interface {
	// Admit reports whether one call arriving at now is under the quota;
	// an admitted call counts against it, a throttled one does not.
	Admit(now time.Time) bool
}

// The quota models.
const (
	// Sliding admits at most floor(perSecond) calls in any window (t-1s, t].
	Sliding = "sliding"
	// Second admits at most floor(perSecond) calls per calendar Unix second.
	Second = "second"
	// Bucket is a token bucket refilled at perSecond, holding at most burst
	// tokens, full at the first call.
	Bucket = "bucket"
)

// Models returns the names NewQuota accepts.
func Models() []string { return []string{Sliding, Second, Bucket} }

// NewQuota returns an empty quota of the named model. burst is the bucket's
// capacity (0: floor(perSecond)); the other models ignore it.
func NewQuota(model string, perSecond float64, burst int) (Quota, error) {
	limit := int(math.Floor(perSecond))
	if math.IsNaN(perSecond) || math.IsInf(perSecond, 0) {
		return nil, fmt.Errorf("quota %s: rate %v", model, perSecond)
	}
	switch model {
	case Sliding, Second:
		if limit < 1 {
			return nil, fmt.Errorf("quota %s: rate %v admits no call; want at least 1/s", model, perSecond)
		}
		if model == Sliding {
			return &sliding{admitted: make([]time.Time, limit)}, nil
		}
		return &calendar{limit: limit}, nil
	case Bucket:
		if burst < 0 {
			return nil, fmt.Errorf("quota bucket: burst %d < 0", burst)
		}
		if burst == 0 {
			burst = limit
		}
		if perSecond <= 0 || burst < 1 {
			return nil, fmt.Errorf("quota bucket: rate %v, burst %d admit no call", perSecond, burst)
		}
		return &bucket{rate: perSecond, capacity: float64(burst)}, nil
	}
	return nil, fmt.Errorf("unknown quota model %q (want one of %v)", model, Models())
}

// sliding keeps the times of the last limit admitted calls in a ring.
type sliding struct {
	mu       sync.Mutex
	admitted []time.Time // ring, len = limit; zero until filled
	n        int         // calls admitted so far, capped at len(admitted)
	head     int         // the oldest of the ring once full
}

func (s *sliding) Admit(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n < len(s.admitted) {
		s.admitted[s.n] = now
		s.n++
		return true
	}
	// The oldest of the last limit calls must have left the window.
	if s.admitted[s.head].After(now.Add(-time.Second)) {
		return false
	}
	s.admitted[s.head] = now
	s.head = (s.head + 1) % len(s.admitted)
	return true
}

// calendar counts the calls admitted in the current Unix second.
type calendar struct {
	mu     sync.Mutex
	limit  int
	second int64
	count  int
}

func (c *calendar) Admit(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := now.Unix(); s > c.second || c.count == 0 {
		c.second, c.count = s, 0
	}
	if c.count >= c.limit {
		return false
	}
	c.count++
	return true
}

// bucket is a token bucket; tokens may sit a rounding error under zero.
type bucket struct {
	mu       sync.Mutex
	rate     float64
	capacity float64
	tokens   float64
	last     time.Time
	started  bool
}

// tokenEpsilon absorbs rounding: calls spaced 1/rate apart, rounded down
// to the nanosecond, find a whole token.
const tokenEpsilon = 1e-6

func (b *bucket) Admit(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started {
		b.tokens, b.last, b.started = b.capacity, now, true
	}
	if now.After(b.last) {
		b.tokens = min(b.capacity, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1-tokenEpsilon {
		return false
	}
	b.tokens--
	return true
}
