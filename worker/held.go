package worker

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// heldSet tracks the messages this worker holds, from receive until their
// delete or release is settled, by receipt handle: when their visibility
// ends, and whether it lapsed because extending it failed.
type heldSet struct {
	mu sync.Mutex
	m  map[string]*heldMsg
}

type heldMsg struct {
	until time.Time
	lost  bool // extending failed after until: SQS may deliver it again
}

func (h *heldSet) add(receipt string, until time.Time) {
	h.mu.Lock()
	h.m[receipt] = &heldMsg{until: until}
	h.mu.Unlock()
}

// extend records an extension answered at answered, to until, and reports
// whether it holds: not if the visibility had ended by the answer (SQS may
// have handed the message on first; failed then marks it lost) or the
// message is lost or gone.
func (h *heldSet) extend(receipt string, answered, until time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[receipt]
	if e == nil || e.lost || !answered.Before(e.until) {
		return false
	}
	if until.After(e.until) {
		e.until = until
	}
	return true
}

// failed records a failed extension at now, and reports whether the
// message's visibility has lapsed (the first time only).
func (h *heldSet) failed(receipt string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[receipt]
	if e == nil || e.lost || now.Before(e.until) {
		return false
	}
	e.lost = true
	return true
}

// until is when the message's visibility ends as far as this worker knows,
// and false when it lapsed (or the message is not held).
func (h *heldSet) until(receipt string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[receipt]
	if e == nil || e.lost {
		return time.Time{}, false
	}
	return e.until, true
}

func (h *heldSet) remove(receipts ...string) {
	h.mu.Lock()
	for _, r := range receipts {
		delete(h.m, r)
	}
	h.mu.Unlock()
}

// due lists the held messages, not lost, whose visibility ends before t,
// the soonest first.
func (h *heldSet) due(t time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for r, e := range h.m {
		if !e.lost && e.until.Before(t) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return h.m[a].until.Compare(h.m[b].until) })
	return out
}

// userLocks runs the jobs of one user one at a time in this process.
type userLocks struct {
	mu      sync.Mutex
	m       map[string]chan struct{} // closed when the holder unlocks
	waiting atomic.Int64             // jobs waiting for another job of their user
}

// lock waits until no other job of key runs here, or ctx ends.
func (u *userLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	for {
		u.mu.Lock()
		busy, ok := u.m[key]
		if !ok {
			done := make(chan struct{})
			u.m[key] = done
			u.mu.Unlock()
			return func() {
				u.mu.Lock()
				delete(u.m, key)
				u.mu.Unlock()
				close(done)
			}, nil
		}
		u.mu.Unlock()
		u.waiting.Add(1)
		select {
		case <-busy:
			u.waiting.Add(-1)
		case <-ctx.Done():
			u.waiting.Add(-1)
			return nil, ctx.Err()
		}
	}
}

// poolSet is a set of pool IDs, safe for concurrent use.
type poolSet struct {
	mu sync.Mutex
	m  map[string]bool
}

// add adds id and reports whether it was new.
func (s *poolSet) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[id] {
		return false
	}
	if s.m == nil {
		s.m = map[string]bool{}
	}
	s.m[id] = true
	return true
}

func (s *poolSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

// emailKey is the breaker key of a Region's daily email limit.
func emailKey(region string) string { return "email:" + region }

// memo remembers what this process did for users, keyed by campaign and
// user: the steps done, in order, for ttl after the last. A later
// campaign, or the same one a day on, acts afresh. Safe for concurrent use.
type memo struct {
	mu    sync.Mutex
	m     map[string]memoEntry
	added int
}

type memoEntry struct {
	at    time.Time
	steps []string
}

// memoTTL is how long memo keeps an entry.
const memoTTL = 24 * time.Hour

func (s *memo) add(k, step string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]memoEntry{}
	}
	e := s.m[k]
	if now.Sub(e.at) >= memoTTL {
		e.steps = nil
	}
	s.m[k] = memoEntry{at: now, steps: history(e.steps, []string{step})}
	if s.added++; s.added%4096 == 0 { // drop what expired, now and then
		for key, e := range s.m {
			if now.Sub(e.at) >= memoTTL {
				delete(s.m, key)
			}
		}
	}
}

// steps are the steps remembered for k, oldest first.
func (s *memo) steps(k string, now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok || now.Sub(e.at) >= memoTTL {
		return nil
	}
	return slices.Clone(e.steps)
}

func (s *memo) has(k string, now time.Time) bool { return len(s.steps(k, now)) > 0 }
