package ledger

import (
	"maps"
	"strings"
)

// Counts are one pool's users in a campaign by what happened to them.
// Each user is counted once in Enqueued (the first enqueue) and at most
// once among the outcomes (the latest one, see Record).
type Counts struct {
	Enqueued     int64
	Reset        int64
	Reinvited    int64
	Disabled     int64
	DeadLettered map[string]int64 // by reason; nil when none
}

// Done is the users finished: reset, re-invited or disabled.
func (c Counts) Done() int64 { return c.Reset + c.Reinvited + c.Disabled }

// DeadLetteredTotal is the users whose last outcome is a dead letter.
func (c Counts) DeadLetteredTotal() int64 {
	var n int64
	for _, v := range c.DeadLettered {
		n += v
	}
	return n
}

// Left is the users enqueued and not yet ended (done or dead-lettered),
// never below 0 (a user can end without being enqueued through the ledger).
func (c Counts) Left() int64 { return max(0, c.Enqueued-c.Done()-c.DeadLetteredTotal()) }

// add adds n to the count of bucket (see bucketOf).
func (c *Counts) add(bucket string, n int64) {
	switch {
	case bucket == bucketEnqueued:
		c.Enqueued += n
	case bucket == string(StepReset):
		c.Reset += n
	case bucket == string(StepReinvited):
		c.Reinvited += n
	case bucket == string(StepDisabled):
		c.Disabled += n
	case strings.HasPrefix(bucket, deadLetterPrefix):
		if c.DeadLettered == nil {
			c.DeadLettered = map[string]int64{}
		}
		reason := strings.TrimPrefix(bucket, deadLetterPrefix)
		if c.DeadLettered[reason] += n; c.DeadLettered[reason] == 0 {
			delete(c.DeadLettered, reason)
		}
	}
}

func (c Counts) plus(o Counts) Counts {
	c.Enqueued += o.Enqueued
	c.Reset += o.Reset
	c.Reinvited += o.Reinvited
	c.Disabled += o.Disabled
	if len(o.DeadLettered) > 0 {
		dl := maps.Clone(c.DeadLettered)
		if dl == nil {
			dl = map[string]int64{}
		}
		for r, n := range o.DeadLettered {
			dl[r] += n
		}
		c.DeadLettered = dl
	}
	return c
}

// Progress is a campaign's counts by user pool ID.
type Progress map[string]Counts

// Total is the counts of every pool together.
func (p Progress) Total() Counts {
	var t Counts
	for _, c := range p {
		t = t.plus(c)
	}
	return t
}

// addAttr adds a counter item's attribute (name, value) to p; other
// attributes are ignored.
func (p Progress) addAttr(name string, n int64) {
	pool, bucket, ok := parseCounterAttr(name)
	if !ok {
		return
	}
	c := p[pool]
	c.add(bucket, n)
	p[pool] = c
}

// Buckets are what a counter counts; a counter item's attribute
// "n:POOL:BUCKET" holds one pool's count of one bucket in that shard.
const (
	bucketEnqueued   = "enqueued"
	deadLetterPrefix = string(StepDeadLettered) + ":"
	counterPrefix    = "n:"
)

func counterAttr(pool, bucket string) string { return counterPrefix + pool + ":" + bucket }

// parseCounterAttr splits a counter attribute name. A pool ID has no ':',
// a reason may.
func parseCounterAttr(name string) (pool, bucket string, ok bool) {
	rest, ok := strings.CutPrefix(name, counterPrefix)
	if !ok {
		return "", "", false
	}
	pool, bucket, ok = strings.Cut(rest, ":")
	if !ok || pool == "" || bucket == "" {
		return "", "", false
	}
	return pool, bucket, true
}

// state is a row's outcome: none (""), a done step, or a dead letter and
// its reason.
type state struct {
	Outcome Step
	Reason  string
}

// bucket is the counter the state is counted in; "" for none.
func (s state) bucket() string {
	if s.Outcome == StepDeadLettered {
		return deadLetterPrefix + s.Reason
	}
	return string(s.Outcome)
}

// transition is the row's outcome after recording step with detail in
// state cur, and whether it changed (so the counters move). The first done
// outcome is final; a dead letter is replaced by a done outcome (a
// redriven job that succeeded) or by a dead letter for another reason.
func transition(cur state, step Step, detail string) (state, bool) {
	if !step.Outcome() || cur.Outcome.Done() {
		return cur, false
	}
	next := state{Outcome: step}
	if step == StepDeadLettered {
		next.Reason = detail
	}
	return next, next != cur
}
