package worker

import (
	"cmp"
	"context"
	"time"

	"github.com/resetq/resetq/job"
)

// Ledger is the campaign's record outside this process (the ledger
// package, in DynamoDB): the claim a job takes before its user's code or
// invitation goes, so that one job in a whole fleet sends it, and the
// steps done, with their times.
type Ledger interface {
	// Claim claims u for holder, or says who holds u until when, or that
	// u is done for the campaign (and by which step).
	Claim(ctx context.Context, u LedgerUser, holder string, now time.Time) (Claim, error)
	// Record records a step done for u (a job.Step* name, or
	// StepDeadLettered with the reason as detail).
	Record(ctx context.Context, u LedgerUser, step, detail string, now time.Time) error
}

// StepDeadLettered is the ledger's step for a job sent to the DLQ.
const StepDeadLettered = "dead_lettered"

// LedgerUser is one user of one campaign in one pool, as the job names it
// (the ledger compares names as the pool does).
type LedgerUser struct{ Campaign, Pool, Username string }

// Claim is the answer to a claim.
type Claim struct {
	Held    bool      // the caller holds the claim now
	Holder  string    // else: who does
	Until   time.Time // and until when
	Done    bool      // the user is done for the campaign: no claim is granted
	Outcome string    // the step that made it done (reset, reinvited, disabled)
}

// ledgerKey is the breaker key of the ledger's circuit: while the ledger
// cannot be reached, jobs wait, and nothing is reset without a claim.
const ledgerKey = "ledger:"

// claimWait is the longest a job waits before it looks again at a user
// another job holds: the holder's record usually comes within seconds,
// its lease (the longest wait) only if it died.
const claimWait = 15 * time.Second

// claim takes r's user in the ledger before a code or an invitation goes.
// It returns nil when the call may go (claimed, or no ledger); else the
// job's outcome: done already (the sign-out owed follows), held by another
// job (sent back to look again once the claim may have ended), or the
// ledger unreachable (deferred behind its circuit).
func (w *Worker) claim(hard context.Context, r *run) *outcome {
	if w.cfg.Ledger == nil {
		return nil
	}
	now := w.cfg.Clock.Now()
	p, ref := w.breaker.admit(now, ledgerKey)
	if ref != nil {
		o := deferral(*ref, r.since, now, r.attempts, w.cfg.Breaker.MaxDeferral)
		return &o
	}
	ctx, cancel := context.WithTimeout(hard, w.cfg.CallTimeout)
	c, err := w.cfg.Ledger.Claim(ctx, w.ledgerUser(r), r.jobID, now)
	cancel()
	cl := Class{Kind: OK}
	if err != nil {
		cl = Class{Kind: Systemic, Code: job.ReasonLedgerUnavailable, Message: err.Error()}
	}
	now = w.cfg.Clock.Now()
	w.breaker.record(now, p, cl, []string{ledgerKey}, ledgerKey)
	w.m.LedgerCalls.WithLabelValues("claim", ledgerResult(err, c)).Inc()
	var o outcome
	switch {
	case err != nil:
		w.log.Warn("the ledger cannot be reached: the job waits, no code goes without a claim", "error", err)
		ref, refused := w.breaker.peek(now, ledgerKey)
		if !refused {
			ref = refusal{wait: time.Second}
		}
		ref.reason, ref.detail = cl.Code, cl.Message
		o = deferral(ref, r.since, now, r.attempts, w.cfg.Breaker.MaxDeferral)
	case c.Held:
		return nil
	case c.Done:
		o = outcome{Action: Delete, Label: cmp.Or(c.Outcome, job.StepReset), AlreadyReset: true, Attempts: r.attempts}
	default:
		// Another job of the user holds it: its code may be on its way.
		// This one looks again once the claim may have ended; it kills no
		// password meanwhile (the holder's call may be the reset).
		wait := min(claimWait, max(time.Second, c.Until.Sub(now)+time.Second))
		o = outcome{Action: Retry, Label: "claimed_elsewhere", Delay: wait, Attempts: r.attempts,
			Detail: "the ledger says another job holds the user until " + c.Until.UTC().Format(time.RFC3339)}
	}
	return &o
}

// record writes a step done for r's user to the ledger. A failed write is
// logged and counted: the step happened, and the claim (until its lease
// ends) and the status check keep a second code from going.
func (w *Worker) record(hard context.Context, u LedgerUser, step, detail string) {
	if w.cfg.Ledger == nil || u.Username == "" {
		return
	}
	ctx, cancel := context.WithTimeout(hard, w.cfg.CallTimeout)
	err := w.cfg.Ledger.Record(ctx, u, step, detail, w.cfg.Clock.Now())
	cancel()
	w.m.LedgerCalls.WithLabelValues("record", ledgerResult(err, Claim{Held: true})).Inc()
	if err != nil {
		w.log.Warn("recording a step in the ledger failed", "step", step, "pool", u.Pool, "user", w.user(u.Username), "error", err)
	}
}

// ledgerUser is r's user in the ledger; a job sent without a campaign
// (by hand, not by resetq enqueue) counts in the campaign "none".
func (w *Worker) ledgerUser(r *run) LedgerUser {
	return LedgerUser{Campaign: cmp.Or(r.m.Campaign(), NoCampaign), Pool: r.job.UserPoolID, Username: r.job.Username}
}

// NoCampaign is the ledger's campaign of jobs sent without one.
const NoCampaign = "none"

// ledgerResult is resetq_ledger_calls_total's result label.
func ledgerResult(err error, c Claim) string {
	switch {
	case err != nil:
		return "error"
	case c.Held:
		return "ok"
	case c.Done:
		return "done"
	}
	return "held_elsewhere"
}
