package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resetq/resetq/job"
)

// TestSlowJobDoesNotStrandHalfOpenCircuit: a job admitted before the
// circuit opened waits in the pacer past the cooldown, then fails
// systemically. The circuit must not end half-open with no probe in
// flight: once the fault clears and the cooldown passes, a probe goes and
// every job is reset.
func TestSlowJobDoesNotStrandHalfOpenCircuit(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	broken.Store(true)
	b := newBundle(func(context.Context, job.Job) error {
		if broken.Load() {
			return codeErr("InvalidEmailRoleAccessPolicyException", "no")
		}
		return nil
	})
	gate := make(chan struct{})
	var waits atomic.Int64
	b.pacer.wait = func(ctx context.Context, _ string) error {
		if waits.Add(1) == 1 { // the first job is slow in the pacer
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return ctx.Err()
	}
	b.cfg.Concurrency = 2
	b.cfg.Breaker = BreakerConfig{Cooldown: time.Minute, MaxDeferral: 6 * time.Hour}
	b.cfg.ExitWhenIdle = 0
	b.q.park = func(job.Outgoing) bool { return true } // deferred copies wait, so nobody else probes
	b.q.push(jobBody(pool, "slow"), nil)
	b.q.push(jobBody(pool, "fast"), nil)
	_, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()

	b.q.waitFor(t, "the fast job deferred by the open circuit", func() bool { return b.jobs("deferred") >= 1 })
	b.clock.Advance(2 * time.Minute) // past the cooldown while the slow job is in the pacer
	close(gate)                      // the slow job calls and fails systemically
	b.q.waitFor(t, "the slow job deferred", func() bool { return b.jobs("deferred") >= 2 })

	broken.Store(false)
	b.clock.Advance(time.Hour) // past any cooldown: a probe must go
	b.q.unpark()
	b.q.waitFor(t, "both jobs reset after the fault cleared", func() bool { return b.jobs("reset") >= 2 })
}

// TestBadPoolDoesNotStallGoodPool: one pool of a Region is misconfigured
// (a pool-level error). The other pool's jobs are all reset; the bad
// pool's jobs are deferred (no DLQ) with calls bounded by the probes, and
// after MaxDeferral they are dead-lettered with the systemic reason.
func TestBadPoolDoesNotStallGoodPool(t *testing.T) {
	t.Parallel()
	const bad, good = "us-east-1_Bad", "us-east-1_Good"
	var badCalls atomic.Int64
	b := newBundle(func(_ context.Context, j job.Job) error {
		if j.UserPoolID == bad {
			badCalls.Add(1)
			return codeErr("InvalidSmsRoleAccessPolicyException", "role cannot be assumed")
		}
		return nil
	})
	b.cfg.Concurrency = 4
	b.cfg.Breaker = BreakerConfig{Cooldown: time.Minute, MaxDeferral: 6 * time.Hour}
	b.cfg.ExitWhenIdle = 0
	for i := range 20 {
		b.q.push(jobBody(bad, "b"+string(rune('a'+i))), nil)
		b.q.push(jobBody(good, "g"+string(rune('a'+i))), nil)
	}
	w, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()
	b.q.waitFor(t, "every good-pool job reset", func() bool { return b.jobs("reset") >= 20 })
	if n := badCalls.Load(); n > int64(b.cfg.Concurrency) {
		t.Fatalf("%d calls for the bad pool before any probe; want at most Concurrency (%d)", n, b.cfg.Concurrency)
	}
	if len(b.dlq.all()) != 0 {
		t.Fatal("a pool-level error dead-lettered jobs before MaxDeferral")
	}
	if err := w.Ready(); err != nil {
		t.Fatalf("a bad pool made the worker not ready: %v", err)
	}
	// Each cooldown lets one probe through, no more.
	for range 3 {
		before := badCalls.Load()
		b.clock.Advance(11 * time.Minute) // past the longest cooldown
		b.q.waitFor(t, "a probe", func() bool { return badCalls.Load() > before })
		if n := badCalls.Load() - before; n > 1 {
			t.Fatalf("%d calls for the bad pool in one cooldown; want one probe", n)
		}
	}
	// Past MaxDeferral. A job whose handling spans the jump can take its
	// first deferral after it (seen in 1 run of about 50), which starts
	// its clock then: time goes on, an hour a queue event, as it would.
	b.clock.Advance(7 * time.Hour)
	b.q.waitFor(t, "the bad pool's jobs dead-lettered", func() bool {
		if len(b.dlq.all()) >= 20 {
			return true
		}
		b.clock.Advance(time.Hour)
		return false
	})
	for _, d := range b.dlq.all() {
		if r := d.Attributes[job.AttrReason].StringValue; r != "InvalidSmsRoleAccessPolicyException" {
			t.Fatalf("reason %q, want the systemic code", r)
		}
	}
}
