package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/resetq/resetq/clock"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/retry"
)

// Ledger is the campaign's record outside this process (the ledger
// package, in DynamoDB): the claim a job takes before its user's code or
// invitation goes, so that one job in a whole fleet sends it, and the
// steps done, with their times. Only jobs of a named campaign use it.
type Ledger interface {
	// Claim claims u for holder, or says who holds u until when, or that
	// u is done for the campaign (and by which step). With from not "",
	// a claim from holds is taken over as if its lease had ended.
	Claim(ctx context.Context, u LedgerUser, holder, from string, now time.Time) (Claim, error)
	// Release gives up holder's claim on u, if holder still has it.
	Release(ctx context.Context, u LedgerUser, holder string, now time.Time) error
	// Record records a step done for u (a job.Step* name, or
	// StepDeadLettered with the reason as detail). It ends no claim.
	Record(ctx context.Context, u LedgerUser, step, detail string, now time.Time) error
}

// ErrLedgerUnavailable marks a ledger error that is the ledger's, not the
// job's (unreachable, throttled past its retries, access denied, no
// table): it opens the ledger's circuit. Any other error fails the job's
// claim alone.
var ErrLedgerUnavailable = errors.New("the campaign ledger cannot be used")

// StepDeadLettered is the ledger's step for a job sent to the DLQ.
const StepDeadLettered = "dead_lettered"

// LedgerUser is one user of one campaign in one pool, as the job names it
// (the ledger compares names as the pool does).
type LedgerUser struct{ Campaign, Pool, Username string }

// Claim is the answer to a claim.
type Claim struct {
	Held    bool      // the caller holds the claim now
	Holder  string    // else: who does
	Until   time.Time // the end of the holder's lease
	Done    bool      // the user is done for the campaign: no claim is granted
	Outcome string    // the step that made it done (reset, reinvited)
}

// ledgerKey is the breaker key of the ledger's circuit: while the ledger
// cannot be used, jobs wait, and nothing is reset without a claim.
const ledgerKey = "ledger:"

// claimWait is the longest a job waits before it looks again at a user
// another job holds: the holder's record usually comes within seconds,
// its lease (the longest wait) only if it died.
const claimWait = 15 * time.Second

// usesLedger reports whether r's job goes through the ledger: a ledger is
// set and the job names its campaign. A job sent by hand without one
// would share one campaign with every other such job, for the rows'
// whole retention: a user reset once would never be reset again.
func (w *Worker) usesLedger(r *run) bool { return w.cfg.Ledger != nil && r.m.Campaign() != "" }

// holder is r's name in the ledger's claims: this delivery of the job's
// message (see holderName).
func (r *run) holder() string {
	return holderName(r.jobID, r.m.ID, r.m.ReceiveCount, r.m.ReceiptHandle)
}

// holderName names one delivery of one message of one job:
// JOBID/MESSAGEID/RECEIVECOUNT/DIGEST, the digest a hash of the delivery's
// receipt handle. Two deliveries of one message at once (SQS delivers at
// least once) are two holders, so one of them sends the code; a sent-back
// copy and its original, should the original's delete fail, never hold
// the claim together either.
func holderName(jobID, messageID string, receiveCount int, receipt string) string {
	sum := sha256.Sum256([]byte(receipt))
	return jobID + "/" + messageID + "/" + strconv.Itoa(receiveCount) + "/" + hex.EncodeToString(sum[:6])
}

// takesOver reports whether holder mine may take over the claim held
// holds: both are deliveries of one message, held's the earlier (a lower
// receive count). SQS delivers a message again once the earlier
// delivery's visibility ended: its worker died, let it go (a shutdown, a
// failed send-back) or lost it before its call; so the message SQS
// delivers again after a crash claims at once, not after the lease. So
// does any delivery over an older resetq's JOBID/MESSAGEID holder, which
// re-claimed at once itself (a rolling upgrade: an older replica shut
// down with the job in its pacer).
func takesOver(held, mine string) bool {
	if !sameMessage(held, mine) {
		return false
	}
	_, hn, newForm := delivery(held)
	_, mn, _ := delivery(mine)
	return !newForm || hn < mn // the older form re-claimed at once too
}

// sameMessage reports whether held and mine are deliveries of one
// message (an older resetq's JOBID/MESSAGEID included).
func sameMessage(held, mine string) bool {
	ml, _, ok := delivery(mine)
	if !ok {
		return false
	}
	hl, _, hok := delivery(held)
	return held == ml || hok && hl == ml
}

// delivery splits a holderName into its message (JOBID/MESSAGEID) and its
// receive count.
func delivery(holder string) (message string, receiveCount int, ok bool) {
	rest, _, ok := cutLast(holder)
	if !ok {
		return "", 0, false
	}
	message, count, ok := cutLast(rest)
	if !ok || !strings.Contains(message, "/") {
		return "", 0, false
	}
	n, err := strconv.Atoi(count)
	return message, n, err == nil
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// claimFor asks the ledger for r's user's claim, and takes over a claim
// an earlier delivery of r's message holds (takesOver); a granted one is
// noted in r.
func (w *Worker) claimFor(hard context.Context, r *run) (Claim, error) {
	ctx, cancel := context.WithTimeout(hard, w.cfg.CallTimeout)
	defer cancel()
	now := w.cfg.Clock.Now()
	u, h := w.ledgerUser(r), r.holder()
	c, err := w.cfg.Ledger.Claim(ctx, u, h, "", now)
	w.m.LedgerCalls.WithLabelValues("claim", ledgerResult(err, c)).Inc()
	if err == nil && !c.Held && !c.Done && takesOver(c.Holder, h) {
		w.log.Info("taking over the claim of an earlier delivery of the message", "pool", u.Pool, "user", w.user(u.Username),
			"from", c.Holder, "receive_count", r.m.ReceiveCount)
		c, err = w.cfg.Ledger.Claim(ctx, u, h, c.Holder, now)
		w.m.LedgerCalls.WithLabelValues("claim", ledgerResult(err, c)).Inc()
	}
	switch {
	case err == nil && c.Held:
		r.held, r.claimedAt, r.claimUntil = true, now, c.Until
	case err != nil:
		r.mayHold = true // the answer may be lost with the claim granted: released at the job's end
	}
	return c, err
}

// claim takes r's user in the ledger before a code or an invitation goes.
// It returns nil when the call may go (claimed, or no ledger); else the
// job's outcome: done already (the sign-out owed follows), held by another
// job (sent back to look again soon, no password killed meanwhile), the
// ledger unusable (deferred behind its circuit), or the claim failed for
// this job alone (retried).
func (w *Worker) claim(hard context.Context, r *run) *outcome {
	if !w.usesLedger(r) {
		return nil
	}
	now := w.cfg.Clock.Now()
	p, ref := w.breaker.admit(now, ledgerKey)
	if ref != nil {
		o := deferral(*ref, r.since, now, r.attempts, w.cfg.Breaker.MaxDeferral)
		return &o
	}
	c, err := w.claimFor(hard, r)
	now = w.cfg.Clock.Now()
	var o outcome
	switch {
	case err != nil && hard.Err() != nil:
		w.breaker.record(now, p, Class{Kind: Canceled}, []string{ledgerKey}, ledgerKey)
		o = released()
	case errors.Is(err, ErrLedgerUnavailable):
		cl := Class{Kind: Systemic, Code: job.ReasonLedgerUnavailable, Message: err.Error()}
		w.breaker.record(now, p, cl, []string{ledgerKey}, ledgerKey)
		w.log.Warn("the ledger cannot be used: the job waits, no code goes without a claim", "error", err)
		ref, refused := w.breaker.peek(now, ledgerKey)
		if !refused {
			ref = refusal{wait: time.Second}
		}
		ref.reason, ref.detail = cl.Code, cl.Message
		o = deferral(ref, r.since, now, r.attempts, w.cfg.Breaker.MaxDeferral)
	case err != nil:
		// The ledger answered; this job's claim failed (its pool cannot be
		// described, a key the table refuses): the job alone is retried.
		w.breaker.record(now, p, Class{Kind: OK}, []string{ledgerKey}, ledgerKey)
		o = w.decide(r, Class{Kind: Transient, Code: "ledger_claim_failed", Message: err.Error()})
	case c.Held:
		w.breaker.record(now, p, Class{Kind: OK}, []string{ledgerKey}, ledgerKey)
		return nil
	case c.Done:
		w.breaker.record(now, p, Class{Kind: OK}, []string{ledgerKey}, ledgerKey)
		o = outcome{Action: Delete, Label: c.Outcome, AlreadyReset: true, Attempts: r.attempts}
	case sameMessage(c.Holder, r.holder()):
		// Another delivery of this very message holds it (SQS delivers at
		// least once): it owns the job. Sent back, this one would delete
		// the message from under it (its visibility then lapses and it
		// abandons the job: the user waits out the lease, with no kill).
		// Hidden until the lease ends, the message comes back only if the
		// holder did not end the job; a later delivery then takes over.
		w.breaker.record(now, p, Class{Kind: OK}, []string{ledgerKey}, ledgerKey)
		// At least the visibility timeout: never shorter than the holder's
		// own, should the two deliveries share one (however long it is).
		o = outcome{Action: Hide, Label: "delivered_twice", Delay: max(w.cfg.Visibility, min(maxDelay, c.Until.Sub(now)+time.Second)),
			Attempts: r.attempts, Detail: "another delivery of the message holds the user until " + c.Until.UTC().Format(time.RFC3339)}
	default:
		// Another job of the user holds it: its code may be on its way.
		// This one looks again soon; it kills no password meanwhile (the
		// holder's call may be the reset).
		w.breaker.record(now, p, Class{Kind: OK}, []string{ledgerKey}, ledgerKey)
		wait := min(claimWait, max(time.Second, c.Until.Sub(now)+time.Second))
		o = outcome{Action: Retry, Label: "claimed_elsewhere", Delay: wait, Attempts: r.attempts,
			Detail: "the ledger says another job holds the user until " + c.Until.UTC().Format(time.RFC3339)}
	}
	return &o
}

// renewDue reports whether r's claim, about to be used for a call that
// sends a code, is past half its lease (a long wait in the pacer): it is
// then renewed first, so a duplicate cannot have taken it over.
func (w *Worker) renewDue(r *run) bool {
	return r.held && w.cfg.Clock.Now().Sub(r.claimedAt) > r.claimUntil.Sub(r.claimedAt)/2
}

// mayKill reports whether r's job may kill its user's password: with a
// ledger, not when the ledger says the user is done or another job holds
// it (its reset may be landing: a kill after it would undo the code). In
// doubt (the ledger does not answer) the password dies.
func (w *Worker) mayKill(hard context.Context, r *run) bool {
	if !w.usesLedger(r) || r.held {
		return true
	}
	c, err := w.claimFor(hard, r)
	if err == nil && !c.Held {
		w.log.Info("no password kill: the ledger says the user is done or another job holds it",
			"pool", r.job.UserPoolID, "user", w.user(r.job.Username), "done", c.Done)
		return false
	}
	return true
}

// foundReset records in the ledger a user the status check found
// RESET_REQUIRED, when this job holds (or now takes) the claim: an
// earlier delivery's reset whose record was lost, or a user reset before
// the campaign. Either way the old password is dead and the user done.
func (w *Worker) foundReset(hard context.Context, r *run) {
	if !w.usesLedger(r) {
		return
	}
	if c, err := w.claimFor(hard, r); err == nil && c.Held {
		w.record(hard, w.ledgerUser(r), job.StepReset, "")
	}
}

// record writes a step done for u to the ledger. A failed write is logged
// and counted: the step happened, and the claim (until its lease ends)
// and the status check keep a second code from going.
func (w *Worker) record(hard context.Context, u LedgerUser, step, detail string) {
	if w.cfg.Ledger == nil || u.Campaign == "" || u.Username == "" {
		return
	}
	ctx, cancel := context.WithTimeout(hard, w.cfg.CallTimeout)
	err := w.cfg.Ledger.Record(ctx, u, step, detail, w.cfg.Clock.Now())
	cancel()
	w.m.LedgerCalls.WithLabelValues("record", ledgerResult(err, Claim{Held: true})).Inc()
	if err != nil {
		w.log.Warn("recording a step in the ledger failed; tried again in the background", "step", step, "pool", u.Pool, "user", w.user(u.Username), "error", err)
		if w.retryRecord(pendingRecord{u: u, step: step, detail: detail, at: w.cfg.Clock.Now()}) {
			w.pendingN.Add(1)
		}
	}
}

// recordsWait is how long past --exit-when-idle an idle worker waits for
// the ledger records still to make before it exits.
const recordsWait = 5 * time.Minute

// pendingRecord is a step the ledger refused, to be recorded again with
// the time it happened.
type pendingRecord struct {
	u            LedgerUser
	step, detail string
	at           time.Time
}

// maxPendingRecords bounds the records kept for a retry (a long outage of
// a big campaign): past it a record is dropped, logged as an error.
const maxPendingRecords = 10000

// retryRecord keeps r for recordRetrier, or reports that a full queue
// dropped it.
func (w *Worker) retryRecord(r pendingRecord) bool {
	select {
	case w.pendingRecords <- r:
		return true
	default:
		w.log.Error("too many ledger records wait for a retry: this one is dropped (the row keeps no outcome: status counts the user left)",
			"step", r.step, "pool", r.u.Pool, "user", w.user(r.u.Username))
		return false
	}
}

// recordRetrier records again, oldest first, the steps the ledger refused,
// each after a backoff, until ctx ends: a reset whose record failed in an
// outage would otherwise leave its row without an outcome (status counts
// the user left, and once the claim's lease ends only the status check
// guards the user from a second code). What is left at the end is logged.
func (w *Worker) recordRetrier(ctx context.Context) {
	curve := retry.Curve{Base: time.Second, Max: time.Minute}
	failures := 0 // in a row: once the ledger answers, the rest go at once
	for {
		var r pendingRecord
		select {
		case <-ctx.Done():
			if n := w.pendingN.Load(); n > 0 {
				w.log.Error("ledger records not made at shutdown: their rows keep no outcome", "records", n)
			}
			return
		case r = <-w.pendingRecords:
		}
		if failures > 0 && clock.Sleep(ctx, w.cfg.Clock, curve.Delay(failures, w.cfg.Rand())) != nil {
			w.retryRecord(r)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
		err := w.cfg.Ledger.Record(rctx, r.u, r.step, r.detail, r.at)
		cancel()
		w.m.LedgerCalls.WithLabelValues("record", ledgerResult(err, Claim{Held: true})).Inc()
		switch {
		case err == nil:
			failures = 0
			w.pendingN.Add(-1)
		case w.retryRecord(r):
			failures++
		default:
			failures++
			w.pendingN.Add(-1)
		}
	}
}

// release gives up the claim a job held when it left without its user
// done (sent back, dead-lettered), so its copy or another job need not
// wait for the lease.
func (w *Worker) release(ctx context.Context, u LedgerUser, holder string) {
	if w.cfg.Ledger == nil || holder == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	err := w.cfg.Ledger.Release(ctx, u, holder, w.cfg.Clock.Now())
	cancel()
	w.m.LedgerCalls.WithLabelValues("release", ledgerResult(err, Claim{Held: true})).Inc()
	if err != nil {
		w.log.Warn("releasing the ledger's claim failed: other jobs of the user wait for its lease", "pool", u.Pool, "user", w.user(u.Username), "error", err)
	}
}

// ledgerUser is r's user in the ledger.
func (w *Worker) ledgerUser(r *run) LedgerUser {
	return LedgerUser{Campaign: r.m.Campaign(), Pool: r.job.UserPoolID, Username: r.job.Username}
}

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
