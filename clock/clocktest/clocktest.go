// Package clocktest has a clock for tests: time stands still until the test
// moves it, and moving it fires the timers, tickers and functions due.
package clocktest

import (
	"sync"
	"time"

	"github.com/resetq/resetq/clock"
)

// Fake is a clock.Clock whose time moves only by Set and Advance. It is
// safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*waiter
}

var _ clock.Clock = (*Fake)(nil)

// New returns a Fake at t.
func New(t time.Time) *Fake { return &Fake{now: t} }

// Now is the Fake's time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the time by d and fires what falls due.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the time to t (never back) and fires what falls due, in order.
func (f *Fake) Set(t time.Time) {
	for {
		f.mu.Lock()
		if t.After(f.now) {
			f.now = t
		}
		w := f.due()
		f.mu.Unlock()
		if w == nil {
			return
		}
		w.fire()
	}
}

// Waiters is how many timers, tickers and functions wait on the Fake: a test
// moves time once the code under test waits.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// due takes the earliest waiter due at f.now off the list (a ticker goes
// back on at its next tick); nil when none is due. f.mu is held.
func (f *Fake) due() *waiter {
	best := -1
	for i, w := range f.waiters {
		if !w.at.After(f.now) && (best < 0 || w.at.Before(f.waiters[best].at)) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	w := f.waiters[best]
	f.waiters = append(f.waiters[:best], f.waiters[best+1:]...)
	w.firedAt = w.at
	if w.every > 0 {
		w.at = w.at.Add(w.every)
		f.waiters = append(f.waiters, w)
	}
	return w
}

// add puts w on the list, due d from now.
func (f *Fake) add(w *waiter, d time.Duration) *waiter {
	f.mu.Lock()
	w.f, w.at = f, f.now.Add(d)
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	return w
}

func (f *Fake) remove(w *waiter) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// NewTimer fires once, d from the Fake's now.
func (f *Fake) NewTimer(d time.Duration) clock.Timer {
	return f.add(&waiter{c: make(chan time.Time, 1)}, d)
}

// NewTicker fires every d (d > 0).
func (f *Fake) NewTicker(d time.Duration) clock.Ticker {
	if d <= 0 {
		panic("clocktest: non-positive ticker interval")
	}
	return ticker{f.add(&waiter{c: make(chan time.Time, 1), every: d}, d)}
}

// AfterFunc calls fn in its own goroutine once the time is d from now.
func (f *Fake) AfterFunc(d time.Duration, fn func()) clock.Timer {
	return f.add(&waiter{fn: fn}, d)
}

type waiter struct {
	f       *Fake
	at      time.Time
	firedAt time.Time
	every   time.Duration
	c       chan time.Time
	fn      func()
}

func (w *waiter) fire() {
	if w.fn != nil {
		go w.fn()
		return
	}
	select {
	case w.c <- w.firedAt:
	default: // a slow reader misses the tick, as with time.Ticker
	}
}

func (w *waiter) C() <-chan time.Time { return w.c }
func (w *waiter) Stop() bool          { return w.f.remove(w) }

type ticker struct{ w *waiter }

func (t ticker) C() <-chan time.Time { return t.w.c }
func (t ticker) Stop()               { t.w.Stop() }

// Func is a clock whose Now is now and whose timers and tickers are the
// wall clock's: for code whose waits are short and whose Now a test sets.
func Func(now func() time.Time) clock.Clock { return &funcClock{now: now} }

type funcClock struct {
	clock.Real
	now func() time.Time
}

func (c *funcClock) Now() time.Time { return c.now() }
