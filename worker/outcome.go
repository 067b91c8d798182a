package worker

// An outcome is what becomes of one message: process decides it, apply
// carries it out.

import (
	"fmt"
	"time"

	"github.com/resetq/resetq/job"
)

func deadLetter(reason, detail string, attempts int) outcome {
	return outcome{Action: DeadLetter, Label: "dead_lettered", Reason: reason, Detail: detail, Attempts: attempts}
}

// outcome is what becomes of one message. process decides exactly one per
// message, from what happened; apply alone carries it out: it sends,
// deletes, counts and logs.
type outcome struct {
	Action        Action
	Label         string        // resetq_jobs_total's outcome label
	Delay         time.Duration // Retry, Defer
	Attempts      int           // attempts used so far
	Reason        string        // DeadLetter: resetq.reason
	Detail        string        // DeadLetter: resetq.error; Retry, Defer: why, for the log
	DeferredSince time.Time     // Defer: when this job's deferrals began
	AlreadyReset  bool          // Delete: the user was RESET_REQUIRED; no call was made
	Steps         []string      // the steps done: signed_out, reset, reinvited, disabled
	Remediation   string        // DeadLetter: what was done for the user instead ("disabled")
	JobID         string        // the job's ID (job.State), for the copy and the record
	User          LedgerUser    // the job's user, once the job is admitted: for the ledger's record
	Holder        string        // the ledger's claim the job holds at its end, released unless the user is done
	// CodeCalled: a call that sends a code or an invitation was made in
	// this delivery (answered or not). A job that leaves without an end
	// of its own (Release, Abandon) frees its claim only if not: a call
	// cut off may have sent the code, and the claim keeps a second one
	// from going until its lease ends.
	CodeCalled bool
	// Delayed: the job leaves without its code sent because the code
	// must wait (an open circuit, the daily email limit, a retry after a
	// failure or the per-user attempt limit), not because the user cannot
	// be reset: with KillPassword its password dies first.
	Delayed bool
}

func released() outcome { return outcome{Action: Release, Label: "released"} }

// deferral is the outcome of a job its circuit refuses: sent back until a
// probe may go, or, once deferred for longer than maxDeferral, dead-lettered
// with the error that keeps the circuit open, for a redrive after the fix.
func deferral(r refusal, since, now time.Time, attempts int, maxDeferral time.Duration) outcome {
	switch {
	case r.forever:
		// Waiting out the daily email limit neither starts the clock nor
		// counts toward it: a pool circuit after it starts a new one.
		since = time.Time{}
	case since.IsZero():
		since = now
	}
	reason := r.reason
	if reason == "" {
		reason = job.ReasonCircuitOpen
	}
	if now.Sub(since) >= maxDeferral && !r.forever {
		o := deadLetter(reason, fmt.Sprintf("deferred since %s by an open circuit: %s", since.UTC().Format(time.RFC3339), r.detail), attempts)
		o.Delayed = true
		return o
	}
	return outcome{Action: Defer, Label: "deferred", Delay: r.wait, Attempts: attempts, DeferredSince: since,
		Detail: "circuit open: " + reason, Delayed: true}
}
