// Package clock is the time the product reads: the present, timers and
// tickers, behind one small interface so tests move time instead of
// sleeping (client-go's clock.WithTicker). Real is the wall clock.
package clock

import (
	"context"
	"time"
)

// Clock gives the time, timers and tickers.
type Clock interface {
	Now() time.Time
	// NewTimer fires once, d from now.
	NewTimer(d time.Duration) Timer
	// NewTicker fires every d; a slow reader misses ticks, as time.Ticker.
	NewTicker(d time.Duration) Ticker
	// AfterFunc calls f in its own goroutine d from now, unless stopped.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a time.Timer (C is nil for AfterFunc's).
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// Ticker is a time.Ticker.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time                   { return time.Now() }
func (Real) NewTimer(d time.Duration) Timer   { return realTimer{time.NewTimer(d)} }
func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
func (Real) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

// Sleep waits d on c, or until ctx ends and returns its error.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
