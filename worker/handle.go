package worker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resetq/resetq/internal/retry"
	"github.com/resetq/resetq/job"
)

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
	// Delayed: the job leaves without its code sent because the code
	// must wait (an open circuit, the daily email limit, a retry after a
	// failure or the per-user attempt limit), not because the user cannot
	// be reset: with KillPassword its password dies first.
	Delayed bool
}

func deadLetter(reason, detail string, attempts int) outcome {
	return outcome{Action: DeadLetter, Label: "dead_lettered", Reason: reason, Detail: detail, Attempts: attempts}
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

// handle takes one message to its outcome. soft ends at shutdown; hard ends
// when the shutdown timeout runs out.
func (w *Worker) handle(soft, hard context.Context, m job.Message) {
	defer w.finish(m)
	jl := w.log.With("message_id", m.ID, "campaign", m.Campaign())
	o, jl := w.process(soft, hard, m, jl)
	w.apply(hard, jl, m, o)
}

// keys are the circuits a job's call goes through: its Region, its pool
// for that operation, and, for a call that sends an email through
// Cognito's default email, the Region's daily email limit.
func (w *Worker) keys(job job.Job, o op) []string {
	pool := poolKey(job.UserPoolID)
	if o.name != opReset {
		pool += ":" + o.name
	}
	keys := []string{job.Region(), pool}
	if o.emails && w.emailPools.has(job.UserPoolID) {
		keys = append(keys, emailKey(job.Region()))
	}
	return keys
}

// admit checks a message before any call: signature, body, pool and
// Region. ok is false with the dead-letter outcome when one fails.
func (w *Worker) admit(m job.Message, attempts int) (job.Job, outcome, bool) {
	if w.cfg.SigningKeys != nil {
		if err := job.VerifySignature(w.cfg.SigningKeys, m); err != nil {
			return job.Job{}, deadLetter(job.ReasonBadSignature, err.Error(), attempts), false
		}
	}
	j, err := job.ParseJob([]byte(m.Body))
	if err != nil {
		return j, deadLetter(job.ReasonInvalidJob, err.Error(), attempts), false
	}
	allowed := w.cfg.AllowedPools[j.UserPoolID]
	if w.cfg.AllowedPools != nil && !allowed {
		return j, deadLetter(job.ReasonPoolNotAllowed, "pool "+j.UserPoolID+" is not in --allowed-pools", attempts), false
	}
	if !allowed && !job.KnownRegion(j.Region()) {
		return j, deadLetter(job.ReasonInvalidJob, "pool "+j.UserPoolID+" is in "+j.Region()+
			", not an AWS Region the SDK knows (name the pool in --allowed-pools to use a newer Region)", attempts), false
	}
	return j, outcome{}, true
}

// checkFirst reports whether r's user's status is read before the reset:
// for every job with CheckEveryJob, else for redeliveries (receive count
// above 1) and sent-back copies of a failed call (a timeout or a lost
// answer may have reset the user all the same).
func (w *Worker) checkFirst(r *run) bool {
	return w.cfg.Statuses != nil && !w.cfg.StatusesForReinviteOnly && (w.cfg.CheckEveryJob || r.again())
}

// opReset is the reset's operation name.
const opReset = "AdminResetUserPassword"

// op is one Cognito call a job's step makes, paced by its own limiter.
type op struct {
	name   string // the API operation, for metrics and logs
	pacer  Pacer
	call   func(context.Context, job.Job) error
	emails bool // it sends an email (a code, an invitation), so the daily email limit holds it
	// recovery: in the reset's quota (UserAccountRecovery), shared with real
	// users: its throttles count in resetq_throttles_total.
	recovery bool
}

func (w *Worker) resetOp() op {
	return op{name: opReset, pacer: w.cfg.Pacer, call: w.cfg.Cognito.ResetUserPassword, emails: true, recovery: true}
}
func (w *Worker) signOutOp() op {
	return op{name: "AdminUserGlobalSignOut", pacer: w.cfg.SignOutPacer, call: w.cfg.Remedies.GlobalSignOut}
}
func (w *Worker) disableOp() op {
	return op{name: "AdminDisableUser", pacer: w.cfg.SignOutPacer, call: w.cfg.Remedies.DisableUser}
}
func (w *Worker) reinviteOp() op {
	return op{name: "AdminCreateUser", pacer: w.cfg.ReinvitePacer, call: w.cfg.Remedies.Reinvite, emails: true}
}

// killOp sets a random password nobody learns (AdminSetUserPassword): in
// the reset's quota (UserAccountRecovery), so paced with the resets, and
// no message is sent, so the daily email limit does not hold it.
func (w *Worker) killOp(permanent bool) op {
	return op{name: "AdminSetUserPassword", pacer: w.cfg.Pacer, recovery: true, call: func(ctx context.Context, j job.Job) error {
		return w.cfg.Remedies.KillPassword(ctx, j, permanent)
	}}
}

// callOp makes o's call for r's job, paced and behind its circuits, again
// while throttled. It returns the class of the answer, or, when no answer
// is to be had (a circuit refuses, shutdown, the message's visibility
// lapsed), the job's outcome.
func (w *Worker) callOp(soft, hard context.Context, r *run, o op) (Class, *outcome) {
	region := r.job.Region()
	stop := func(out outcome) (Class, *outcome) { return Class{}, &out }
	for {
		keys := w.keys(r.job, o)
		if soft.Err() != nil {
			return stop(released())
		}
		if ref, refused := w.breaker.peek(w.cfg.Clock.Now(), keys...); refused {
			return stop(deferral(ref, r.since, w.cfg.Clock.Now(), r.attempts, w.cfg.Breaker.MaxDeferral))
		}
		waitStart := w.cfg.Clock.Now()
		if err := o.pacer.Wait(soft, region); err != nil {
			return stop(released())
		}
		w.m.RateLimitWait.Observe(w.cfg.Clock.Now().Sub(waitStart).Seconds())
		if w.held.lost(r.m.ReceiptHandle) {
			return stop(outcome{Action: Abandon, Label: "expired"})
		}
		// Checked again after the wait: a circuit may have opened during
		// it, and the daily email limit may have come to hold the pool.
		keys = w.keys(r.job, o)
		p, ref := w.breaker.admit(w.cfg.Clock.Now(), keys...)
		if ref != nil {
			return stop(deferral(*ref, r.since, w.cfg.Clock.Now(), r.attempts, w.cfg.Breaker.MaxDeferral))
		}

		callCtx, cancel := context.WithTimeout(hard, w.cfg.CallTimeout)
		callStart := w.cfg.Clock.Now()
		err := o.call(callCtx, r.job)
		cancel()
		cl := Classify(err)
		if err != nil && hard.Err() != nil {
			cl = Class{Kind: Canceled, Code: "canceled", Message: err.Error()}
		}
		if o.name == opReset {
			w.m.CognitoDuration.Observe(w.cfg.Clock.Now().Sub(callStart).Seconds())
			w.m.CognitoRequests.WithLabelValues(MetricCode(cl)).Inc()
		} else {
			w.m.CognitoCalls.WithLabelValues(o.name, MetricCode(cl)).Inc()
		}
		failed := region
		switch cl.Scope {
		case ScopePool:
			failed = keys[1]
		case ScopeEmail:
			failed = emailKey(region)
			if w.emailPools.add(r.job.UserPoolID) {
				w.log.Error("Cognito's daily email limit is reached: Cognito's default email sends 50 codes a day per account and Region. "+
					"This pool's jobs wait on the queue (no attempt used, nothing dead-lettered) and one probe goes every --email-limit-probe. "+
					"Configure the pool to send through Amazon SES (EmailSendingAccount=DEVELOPER) to go on",
					"region", region, "pool", r.job.UserPoolID)
			}
		}
		w.breaker.record(w.cfg.Clock.Now(), p, cl, keys, failed)
		switch cl.Kind {
		case Throttle:
			o.pacer.Throttled(region)
			if o.recovery {
				w.m.Throttles.WithLabelValues(region).Inc()
			}
		case Canceled:
			return stop(released())
		default:
			o.pacer.Succeeded(region)
		}
		if cl.Kind == Throttle {
			continue
		}
		return cl, nil
	}
}

// apply carries out o for m: the one place that sends, deletes, counts and
// logs a job's end.
func (w *Worker) apply(ctx context.Context, jl *slog.Logger, m job.Message, o outcome) {
	switch o.Action {
	case Forget:
		// Its job ended here (reset, sent back or dead-lettered) and only the
		// delete failed: handling it again would fork the job.
		w.deleteEnded(m, true)
		jl.Info("delivered again after its job ended; deleted", "receive_count", m.ReceiveCount)
		return
	case Abandon:
		w.held.remove(m.ReceiptHandle)
		jl.Warn("visibility of the message lapsed while it waited; left to its next delivery, no call made")
	case Release:
		w.releases.add(m.ReceiptHandle)
		jl.Info("job released", "outcome", o.Label)
	case Delete:
		// A re-invitation's delete goes at once: a crash in the linger would
		// send a second invitation, which no status check can prevent.
		w.deleteEnded(m, slices.Contains(o.Steps, "reinvited"))
		jl.Info("job done", "outcome", o.Label, "steps", strings.Join(o.Steps, ","), "already_reset", o.AlreadyReset,
			"attempts", o.Attempts, "receive_count", m.ReceiveCount)
	case Retry, Defer:
		if !w.requeue(ctx, jl, m, o) {
			return
		}
	case DeadLetter:
		if !w.deadLetter(ctx, jl, m, o) {
			return
		}
		w.m.DeadLetters.WithLabelValues(o.Reason).Inc()
	}
	w.m.Jobs.WithLabelValues(o.Label).Inc()
}

// requeue sends a copy of the job back to the queue, delayed, then deletes
// the original. The copy starts with a receive count of zero, so retries
// never run into the queue's maxReceiveCount. It reports whether the copy
// went; if not, the original comes back after the delay.
func (w *Worker) requeue(ctx context.Context, jl *slog.Logger, m job.Message, o outcome) bool {
	delay := min(maxDelay, max(time.Second, o.Delay.Round(time.Second)))
	var key []byte // with signing keys, the copy's progress is signed: see job.StateOf
	if len(w.cfg.SigningKeys) > 0 {
		key = w.cfg.SigningKeys[0]
	}
	st := job.State{JobID: o.JobID, Attempts: o.Attempts, DeferredSince: o.DeferredSince, Steps: o.Steps}
	attrs := st.Attributes(key, m)
	out := job.Outgoing{Body: m.Body, Delay: delay, Attributes: withAttributes(without(m.Attributes, progressAttrs...), attrs)}
	if err := w.send(ctx, w.cfg.Requeue, out); err != nil {
		jl.Error("requeue failed; the message comes back after its visibility timeout", "error", err)
		w.hide(m, delay)
		return false
	}
	w.deleteEnded(m, true)
	jl.Info("job sent back", "outcome", o.Label, "delay", delay, "attempts", o.Attempts, "why", sqsText(o.Detail))
	return true
}

// deadLetter sends the job to the DLQ with its reason, then deletes it
// from the source. A record the DLQ refuses is tried once more cut to the
// essentials (a body near SQS's size limit leaves no room for a long
// error). If that fails too, the message stays in the source queue, hidden
// for longer each time, counted and logged as an error.
func (w *Worker) deadLetter(ctx context.Context, jl *slog.Logger, m job.Message, o outcome) bool {
	record := map[string]string{
		job.AttrReason:   o.Reason,
		job.AttrError:    sqsText(o.Detail),
		job.AttrAttempts: strconv.Itoa(o.Attempts),
		job.AttrFailedAt: w.cfg.Clock.Now().UTC().Format(time.RFC3339),
		job.AttrJobID:    o.JobID,
	}
	if len(o.Steps) > 0 {
		record[job.AttrSteps] = strings.Join(o.Steps, ",")
	}
	if o.Remediation != "" {
		record[job.AttrRemediation] = o.Remediation
	}
	// A record is evidence, not a job's progress: it carries no state
	// signature, so a redrive starts the job afresh.
	base := without(m.Attributes, progressAttrs...)
	err := w.send(ctx, w.cfg.DeadLetters, job.Outgoing{Body: m.Body, Attributes: withAttributes(base, record)})
	if err != nil {
		record[job.AttrError] = job.Truncate(record[job.AttrError], 128)
		err = w.send(ctx, w.cfg.DeadLetters, job.Outgoing{Body: m.Body, Attributes: withAttributes(essentials(m.Attributes), record)})
	}
	if err != nil {
		w.m.DeadLetterFailures.Inc()
		delay := retry.Curve{Base: time.Minute, Max: 12 * time.Hour}.Delay(m.ReceiveCount, w.cfg.Rand())
		jl.Error("dead-letter send failed; the job stays in the source queue and is tried again later",
			"reason", o.Reason, "error", err, "retry_in", delay, "receive_count", m.ReceiveCount)
		if m.ReceiveCount >= deadLetterAlarm {
			jl.Error("a job has failed to reach the DLQ many times: fix the DLQ (permissions, KMS key, size) or it is lost when the source queue's retention ends",
				"reason", o.Reason, "job_id", o.JobID, "receive_count", m.ReceiveCount)
		}
		w.hide(m, delay)
		return false
	}
	w.deleteEnded(m, true)
	jl.Warn("job done", "outcome", o.Label, "reason", o.Reason, "steps", strings.Join(o.Steps, ","), "remediation", o.Remediation,
		"attempts", o.Attempts, "error", sqsText(o.Detail))
	return true
}

// deadLetterAlarm is the receive count from which a job that cannot reach
// the DLQ is logged as in danger of being lost.
const deadLetterAlarm = 5

// poolKey is the breaker key of a pool's circuit.
func poolKey(poolID string) string { return "pool:" + poolID }

// userKey identifies a user for the per-user lock: case folded, as
// Cognito's default case-insensitive usernames are.
func userKey(j job.Job) string { return j.UserPoolID + "\x00" + strings.ToLower(j.Username) }

// finish ends m's time in a handler. m stays held (its visibility
// extended) until its delete or release is settled.
func (w *Worker) finish(m job.Message) {
	if w.inflight.Add(-1) == 0 {
		w.lastIdle.Store(w.cfg.Clock.Now().UnixNano())
	}
	w.m.Inflight.Dec()
}

func (w *Worker) user(name string) string {
	if w.cfg.LogUsernames {
		return name
	}
	return hashUser(w.cfg.UsernameKey, name)
}

// send sends out within CallTimeout, so a send SQS never answers cannot
// hold the job, and its handler, until shutdown.
func (w *Worker) send(ctx context.Context, to Sender, out job.Outgoing) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	return to.Send(ctx, out)
}
