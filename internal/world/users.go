package world

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Users is a source of real users' calls into the quota. Implementations
// are safe for concurrent use. The times a source gives are non-decreasing,
// so long as OnReset is never told of a reset before the last call taken.
type Users interface {
	// Peek returns the time of the next call, false when none is scheduled.
	Peek() (time.Time, bool)
	// Pop takes the next call and returns its time, false when none is
	// scheduled.
	Pop() (time.Time, bool)
	// OnReset tells the users that the worker reset a user at at (a call
	// the quota admitted); only the campaign's own users schedule calls
	// from it.
	OnReset(at time.Time)
}

// The arrival patterns of real users' calls.
const (
	// Even is rate calls per second, evenly spaced, each up to Jitter late.
	Even = "even"
	// Poisson is rate calls per second at random (exponential gaps).
	Poisson = "poisson"
	// Step is evenly spaced calls at rate/2 for StepPhase, 2×rate for
	// StepPhase, rate/2 for StepPhase, over and over: 5/s, 20/s, 5/s for a
	// rate of 10, whose mean over each 3×StepPhase is rate.
	Step = "step"
	// Confirm is the campaign's own users: each reset, with probability
	// ConfirmShare, makes one ConfirmForgotPassword call after a delay
	// drawn from a lognormal of median ConfirmMedian and ConfirmSigma. It
	// has no calls of its own (rate is ignored) and none before a reset.
	Confirm = "confirm"
)

// Jitter is how late an evenly spaced call may come (uniform in [0, Jitter]).
const Jitter = time.Millisecond

// StepPhase is the length of each of Step's phases: a 30 s cycle, so that a
// benchmark run of half a minute sees the rise and the fall.
const StepPhase = 10 * time.Second

// The campaign's own users, scaled so that their load reaches steady state
// within a benchmark run: real users confirm minutes to hours after the
// code arrives (codes are valid for an hour), here a median of 15 s with a
// long tail (sigma 1: 5% after 77 s, 1% after 154 s; 92% within 60 s).
// Half of them confirm: a worker at w/s then meets w/2 of its own users'
// calls per second once steady, 10/s at 20/s, the share the other patterns'
// real users take of a 30/s quota. A throttled confirmation is lost, not
// retried, and a user whose code expires does not ask again.
const (
	ConfirmShare  = 0.5
	ConfirmMedian = 15 * time.Second
	ConfirmSigma  = 1.0
)

// Patterns returns the names NewUsers accepts ("a+b" merges them).
func Patterns() []string { return []string{Even, Poisson, Step, Confirm} }

// NewUsers returns real users of the named pattern at a mean of rate calls
// per second, starting at start, with their random draws seeded by seed.
// Patterns joined by "+" ("poisson+confirm") are merged, each at rate.
func NewUsers(pattern string, rate float64, start time.Time, seed uint64) (Users, error) {
	if parts := strings.Split(pattern, "+"); len(parts) > 1 {
		var all []Users
		for i, p := range parts {
			u, err := NewUsers(p, rate, start, seed+uint64(i)*0x9e3779b97f4a7c15)
			if err != nil {
				return nil, err
			}
			all = append(all, u)
		}
		return Merge(all...), nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	if pattern == Confirm {
		return &confirm{rng: rng}, nil
	}
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("users %s: rate %v, want > 0", pattern, rate)
	}
	p := &process{rng: rng, start: start, rates: []float64{rate}}
	switch pattern {
	case Even:
		p.jitter = Jitter
	case Poisson:
		p.poisson = true
	case Step:
		p.jitter = Jitter
		p.rates, p.phase = []float64{rate / 2, 2 * rate, rate / 2}, StepPhase.Seconds()
	default:
		return nil, fmt.Errorf("unknown users pattern %q (want one of %v)", pattern, Patterns())
	}
	if p.poisson {
		p.at = p.advance(0, p.rng.ExpFloat64())
	}
	p.place() // evenly spaced: the first call at the start
	return p, nil
}

// process is a background of real users: calls whose rate is a function
// of time alone, repeating rates one phase each (one rate: constant).
type process struct {
	mu      sync.Mutex
	rng     *rand.Rand
	start   time.Time
	rates   []float64
	phase   float64 // seconds per rate, with more than one
	poisson bool
	jitter  time.Duration
	at      float64   // seconds from start of the next call, before jitter
	next    time.Time // the next call
	last    time.Time // the last call taken
}

// schedule sets the next call after one unit of work (an exponential one
// for Poisson) from the seconds from.
func (p *process) schedule(from float64) {
	work := 1.0
	if p.poisson {
		work = p.rng.ExpFloat64()
	}
	p.at = p.advance(from, work)
	p.place()
}

// place sets the next call at p.at, jittered, never before the last.
func (p *process) place() {
	next := p.start.Add(time.Duration(p.at * float64(time.Second)))
	if p.jitter > 0 {
		next = next.Add(time.Duration(p.rng.Int64N(int64(p.jitter) + 1)))
	}
	if next.Before(p.last) {
		next = p.last
	}
	p.next = next
}

// advance returns the seconds at which work calls' worth of rate has
// passed since from.
func (p *process) advance(from, work float64) float64 {
	if len(p.rates) == 1 {
		return from + work/p.rates[0]
	}
	for {
		k := math.Floor(from / p.phase)
		rate := p.rates[int(k)%len(p.rates)]
		end := (k + 1) * p.phase
		if have := (end - from) * rate; have >= work {
			return from + work/rate
		} else {
			work -= have
		}
		from = end
	}
}

func (p *process) Peek() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next, true
}

func (p *process) Pop() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.next
	p.last = t
	p.schedule(p.at)
	return t, true
}

func (p *process) OnReset(time.Time) {}

// confirm is the campaign's own users: calls scheduled by resets.
type confirm struct {
	mu      sync.Mutex
	rng     *rand.Rand
	pending timeHeap
}

func (c *confirm) OnReset(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rng.Float64() >= ConfirmShare {
		return
	}
	d := float64(ConfirmMedian) * math.Exp(ConfirmSigma*c.rng.NormFloat64())
	heap.Push(&c.pending, at.Add(time.Duration(d)))
}

func (c *confirm) Peek() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return time.Time{}, false
	}
	return c.pending[0], true
}

func (c *confirm) Pop() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return time.Time{}, false
	}
	return heap.Pop(&c.pending).(time.Time), true
}

type timeHeap []time.Time

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *timeHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// Merge returns the calls of all the sources, in time order; OnReset goes
// to each.
func Merge(sources ...Users) Users { return &merged{sources: sources} }

type merged struct {
	mu      sync.Mutex // makes Peek-then-Pop of the sources one step
	sources []Users
}

// first is the source with the earliest next call, -1 if none.
func (m *merged) first() (int, time.Time) {
	best, at := -1, time.Time{}
	for i, u := range m.sources {
		if t, ok := u.Peek(); ok && (best < 0 || t.Before(at)) {
			best, at = i, t
		}
	}
	return best, at
}

func (m *merged) Peek() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, t := m.first()
	return t, i >= 0
}

func (m *merged) Pop() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, _ := m.first(); i >= 0 {
		return m.sources[i].Pop()
	}
	return time.Time{}, false
}

func (m *merged) OnReset(at time.Time) {
	for _, u := range m.sources {
		u.OnReset(at)
	}
}

// Due takes every call of u at or before now and returns how many, for a
// simulation that steps its clock.
func Due(u Users, now time.Time) int {
	n := 0
	for t, ok := u.Peek(); ok && !t.After(now); t, ok = u.Peek() {
		u.Pop()
		n++
	}
	return n
}
