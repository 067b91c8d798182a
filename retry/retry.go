// Package retry has the waits between tries: an exponential backoff curve,
// pure (the caller draws the jitter); clock.Sleep waits them out.
package retry

import (
	"time"
)

// Curve is exponential backoff with jitter: the n-th retry waits
// between half and all of min(Max, Base*2^(n-1)).
type Curve struct {
	Base, Max time.Duration
}

// Delay is the wait before retry number attempt (1-based) for a jitter draw
// r in [0,1). It is pure: the same inputs give the same delay.
func (b Curve) Delay(attempt int, r float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := b.Base
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2 // stops doubling at Max, so it cannot overflow
	}
	if d > b.Max {
		d = b.Max
	}
	if r < 0 {
		r = 0
	} else if r >= 1 {
		r = 0.999999
	}
	return d/2 + time.Duration(r*float64(d/2))
}
