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
}

func deadLetter(reason, detail string, attempts int) outcome {
	return outcome{Action: DeadLetter, Label: "dead_lettered", Reason: reason, Detail: detail, Attempts: attempts}
}

func released() outcome { return outcome{Action: Release, Label: "released"} }

// deferral is the outcome of a job its circuit refuses: sent back until a
// probe may go, or, once deferred for longer than maxDeferral, dead-lettered
// with the error that keeps the circuit open, for a redrive after the fix.
func deferral(r refusal, since, now time.Time, attempts int, maxDeferral time.Duration) outcome {
	if since.IsZero() && !r.forever { // waiting out the daily email limit does not start the clock
		since = now
	}
	reason := r.reason
	if reason == "" {
		reason = ReasonCircuitOpen
	}
	if now.Sub(since) >= maxDeferral && !r.forever {
		return deadLetter(reason, fmt.Sprintf("deferred since %s by an open circuit: %s", since.UTC().Format(time.RFC3339), r.detail), attempts)
	}
	return outcome{Action: Defer, Label: "deferred", Delay: r.wait, Attempts: attempts, DeferredSince: since,
		Detail: "circuit open: " + reason}
}

// handle takes one message to its outcome. soft ends at shutdown; hard ends
// when the shutdown timeout runs out.
func (w *Worker) handle(soft, hard context.Context, m job.Message) {
	defer w.finish(m)
	jl := w.log.With("message_id", m.ID, "campaign", m.Campaign())
	o, jl := w.process(soft, hard, m, jl)
	w.apply(hard, jl, m, o)
}

// process decides the outcome of m: the checks before any call, then the
// job's steps: end the user's sessions (if asked), read the user's status
// (the status check), and reset, or re-invite a user who never signed in,
// or disable a user who cannot receive a code.
func (w *Worker) process(soft, hard context.Context, m job.Message, jl *slog.Logger) (outcome, *slog.Logger) {
	if w.ended.take(m.ID) {
		return outcome{Action: Forget}, jl
	}
	job, o, ok := w.admit(m)
	if !ok {
		return o, jl
	}
	jl = jl.With("pool", job.UserPoolID, "user", w.user(job.Username))
	// Two jobs of one user in this process run one after the other, so the
	// second one's status check sees the first one's reset.
	unlock, err := w.users.lock(soft, userKey(job))
	if err != nil {
		return released(), jl
	}
	defer unlock()
	r := run{m: m, job: job, attempts: m.PriorAttempts(), since: m.DeferredSince()}
	if w.cfg.SigningKeys == nil {
		// resetq.steps is not signed: with signed jobs a copy's word that
		// its user was signed out is not taken, and the sign-out repeats.
		r.done = m.StepsDone()
	}
	return w.steps(soft, hard, &r), jl
}

// run is one job's progress through its steps.
type run struct {
	m        job.Message
	job      job.Job
	attempts int
	since    time.Time // when its deferrals began
	done     []string  // steps done: signed_out, reset, reinvited, disabled
}

func (r *run) finish(o outcome) outcome {
	o.Steps = r.done
	return o
}

// steps runs the job's calls in order; a step that does not succeed ends
// the job with its outcome.
func (w *Worker) steps(soft, hard context.Context, r *run) outcome {
	signOut := w.cfg.GlobalSignOut || r.m.Attributes[job.AttrGlobalSignOut].StringValue == "true"
	if signOut && !slices.Contains(r.done, "signed_out") {
		// First: idempotent, so a redelivery repeats it freely; the reset
		// that sends a code comes once. A copy sent back after it worked
		// says so (resetq.steps) and does not repeat it.
		if o, ok := w.step(soft, hard, r, w.signOutOp(), "signed_out"); !ok {
			return o
		}
	}
	// A job whose reset cannot go now (an open circuit, the daily email
	// limit) waits without more calls.
	if ref, refused := w.breaker.peek(w.cfg.Now(), w.keys(r.job, w.resetOp())...); refused {
		return r.finish(deferral(ref, r.since, w.cfg.Now(), r.attempts, w.cfg.Breaker.MaxDeferral))
	}
	status := ""
	if w.checkFirst(r.m) {
		status = w.userStatus(soft, hard, r.job)
	}
	if status == "RESET_REQUIRED" {
		return r.finish(outcome{Action: Delete, Label: "reset", AlreadyReset: true, Attempts: r.attempts})
	}
	if status == "FORCE_CHANGE_PASSWORD" && w.cfg.Reinvite {
		return w.reinvite(soft, hard, r)
	}
	cl, stop := w.callOp(soft, hard, r, w.resetOp())
	switch {
	case stop != nil:
		return r.finish(*stop)
	case cl.Kind == OK:
		w.stepDone(r, "reset")
		return r.finish(outcome{Action: Delete, Label: "reset", Attempts: r.attempts})
	case cannotBeReset(cl) && w.cfg.Reinvite:
		if status == "" { // not read yet: re-invite only a user who never signed in
			status = w.userStatus(soft, hard, r.job)
		}
		if status == "FORCE_CHANGE_PASSWORD" {
			return w.reinvite(soft, hard, r)
		}
	case unreachable(cl) && w.cfg.DisableUnreachable:
		if o, ok := w.step(soft, hard, r, w.disableOp(), "disabled"); !ok {
			return o
		}
		o := w.decide(r, cl)
		o.Remediation = "disabled"
		return r.finish(o)
	}
	return r.finish(w.decide(r, cl))
}

// reinvite sends a user who never signed in a new invitation (a new
// temporary password; the old one stops working).
func (w *Worker) reinvite(soft, hard context.Context, r *run) outcome {
	// The status cannot tell a re-invited user (still FORCE_CHANGE_PASSWORD):
	// this process remembers whom it re-invited, so a second job of the
	// user here sends no second invitation.
	if w.reinvited.has(userKey(r.job)) {
		return r.finish(outcome{Action: Delete, Label: "reinvited", Attempts: r.attempts, AlreadyReset: true})
	}
	if o, ok := w.step(soft, hard, r, w.reinviteOp(), "reinvited"); !ok {
		return o
	}
	w.reinvited.add(userKey(r.job))
	return r.finish(outcome{Action: Delete, Label: "reinvited", Attempts: r.attempts})
}

// step makes o's call; ok says it succeeded (and the step is recorded),
// else the outcome ends the job.
func (w *Worker) step(soft, hard context.Context, r *run, o op, name string) (outcome, bool) {
	cl, stop := w.callOp(soft, hard, r, o)
	switch {
	case stop != nil:
		return r.finish(*stop), false
	case cl.Kind != OK:
		return r.finish(w.decide(r, cl)), false
	}
	w.stepDone(r, name)
	return outcome{}, true
}

func (w *Worker) stepDone(r *run, step string) {
	r.done = append(r.done, step)
	w.m.Steps.WithLabelValues(step).Inc()
}

// decide turns the failed result of a step into the job's outcome.
func (w *Worker) decide(r *run, cl Class) outcome {
	if cl.Kind == Transient || cl.Kind == Limit || cl.Kind == Permanent {
		r.attempts++
	}
	d := Decide(cl, r.attempts, w.cfg.Policy, w.cfg.Rand())
	switch d.Action {
	case Delete:
		return outcome{Action: Delete, Label: "reset", Attempts: r.attempts}
	case Retry:
		return outcome{Action: Retry, Label: "retried", Delay: d.Delay, Attempts: r.attempts, Detail: cl.Code + ": " + cl.Message}
	case Defer:
		keys := w.keys(r.job, w.resetOp())
		ref, refused := w.breaker.peek(w.cfg.Now(), keys...)
		if !refused { // closed again meanwhile by another call's success
			ref = refusal{wait: time.Second}
		}
		ref.reason, ref.detail, ref.forever = cl.Code, cl.Message, cl.Scope == ScopeEmail
		return deferral(ref, r.since, w.cfg.Now(), r.attempts, w.cfg.Breaker.MaxDeferral)
	case DeadLetter:
		msg := cl.Message
		if d.Reason == ReasonAttemptsExhausted {
			msg = cl.Code + ": " + cl.Message
		}
		return deadLetter(d.Reason, msg, r.attempts)
	default:
		return released()
	}
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
func (w *Worker) admit(m job.Message) (job.Job, outcome, bool) {
	attempts := m.PriorAttempts()
	if w.cfg.SigningKeys != nil {
		if err := job.VerifySignature(w.cfg.SigningKeys, m); err != nil {
			return job.Job{}, deadLetter(ReasonBadSignature, err.Error(), attempts), false
		}
	}
	j, err := job.ParseJob([]byte(m.Body))
	if err != nil {
		return j, deadLetter(ReasonInvalidJob, err.Error(), attempts), false
	}
	allowed := w.cfg.AllowedPools[j.UserPoolID]
	if w.cfg.AllowedPools != nil && !allowed {
		return j, deadLetter(ReasonPoolNotAllowed, "pool "+j.UserPoolID+" is not in --allowed-pools", attempts), false
	}
	if !allowed && !job.KnownRegion(j.Region()) {
		return j, deadLetter(ReasonInvalidJob, "pool "+j.UserPoolID+" is in "+j.Region()+
			", not an AWS Region the SDK knows (name the pool in --allowed-pools to use a newer Region)", attempts), false
	}
	return j, outcome{}, true
}

// checkFirst reports whether m's user's status is read before the reset:
// for every job with CheckEveryJob, else for redeliveries (receive count
// above 1) and sent-back copies of a failed call (a timeout or a lost
// answer may have reset the user all the same).
func (w *Worker) checkFirst(m job.Message) bool {
	return w.cfg.Statuses != nil && !w.cfg.StatusesForReinviteOnly && (w.cfg.CheckEveryJob || m.ReceiveCount > 1 || m.PriorAttempts() > 0)
}

// opReset is the reset's operation name.
const opReset = "AdminResetUserPassword"

// op is one Cognito call a job's step makes, paced by its own limiter.
type op struct {
	name   string // the API operation, for metrics and logs
	pacer  Pacer
	call   func(context.Context, job.Job) error
	emails bool // it sends an email (a code, an invitation), so the daily email limit holds it
}

func (w *Worker) resetOp() op {
	return op{name: opReset, pacer: w.cfg.Pacer, call: w.cfg.Cognito.ResetUserPassword, emails: true}
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
		if ref, refused := w.breaker.peek(w.cfg.Now(), keys...); refused {
			return stop(deferral(ref, r.since, w.cfg.Now(), r.attempts, w.cfg.Breaker.MaxDeferral))
		}
		waitStart := w.cfg.Now()
		if err := o.pacer.Wait(soft, region); err != nil {
			return stop(released())
		}
		w.m.RateLimitWait.Observe(w.cfg.Now().Sub(waitStart).Seconds())
		if w.held.lost(r.m.ReceiptHandle) {
			return stop(outcome{Action: Abandon, Label: "expired"})
		}
		// Checked again after the wait: the circuit may have opened during it.
		p, ref := w.breaker.admit(w.cfg.Now(), keys...)
		if ref != nil {
			return stop(deferral(*ref, r.since, w.cfg.Now(), r.attempts, w.cfg.Breaker.MaxDeferral))
		}

		callCtx, cancel := context.WithTimeout(hard, w.cfg.CallTimeout)
		callStart := w.cfg.Now()
		err := o.call(callCtx, r.job)
		cancel()
		cl := Classify(err)
		if err != nil && hard.Err() != nil {
			cl = Class{Kind: Canceled, Code: "canceled", Message: err.Error()}
		}
		if o.name == opReset {
			w.m.CognitoDuration.Observe(w.cfg.Now().Sub(callStart).Seconds())
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
		w.breaker.record(w.cfg.Now(), p, cl, keys, failed)
		switch cl.Kind {
		case Throttle:
			o.pacer.Throttled(region)
			if o.name == opReset {
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
		w.deleteEnded(m, o.Label == "reinvited")
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
	attrs := map[string]string{job.AttrAttempts: strconv.Itoa(o.Attempts), job.AttrJobID: m.JobID()}
	if !o.DeferredSince.IsZero() {
		attrs[job.AttrDeferredSince] = o.DeferredSince.UTC().Format(time.RFC3339)
	}
	if len(o.Steps) > 0 {
		attrs[job.AttrSteps] = strings.Join(o.Steps, ",")
	}
	out := job.Outgoing{Body: m.Body, Delay: delay, Attributes: withAttributes(without(m.Attributes, job.AttrDeferredSince, job.AttrSteps), attrs)}
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
		job.AttrFailedAt: w.cfg.Now().UTC().Format(time.RFC3339),
		job.AttrJobID:    m.JobID(),
	}
	if len(o.Steps) > 0 {
		record[job.AttrSteps] = strings.Join(o.Steps, ",")
	}
	if o.Remediation != "" {
		record[job.AttrRemediation] = o.Remediation
	}
	err := w.send(ctx, w.cfg.DeadLetters, job.Outgoing{Body: m.Body, Attributes: withAttributes(m.Attributes, record)})
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
				"reason", o.Reason, "job_id", m.JobID(), "receive_count", m.ReceiveCount)
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

// userStatus reads the user's status (AdminGetUser), e.g. RESET_REQUIRED,
// which for a redelivered job means an earlier delivery reset it and its
// delete was lost. Any doubt (the check fails or times out) gives "": a
// second code is better than a user not reset.
func (w *Worker) userStatus(soft, hard context.Context, job job.Job) string {
	region := job.Region()
	if err := w.cfg.StatusPacer.Wait(soft, region); err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(hard, w.cfg.CallTimeout)
	status, err := w.cfg.Statuses.UserStatus(ctx, job)
	cancel()
	result := "not_reset"
	switch {
	case err != nil:
		result, status = "error", ""
		if Classify(err).Kind == Throttle {
			w.cfg.StatusPacer.Throttled(region)
		}
		w.log.Debug("status check failed; going on as if not reset", "error", err)
	case status == "RESET_REQUIRED":
		result = "already_reset"
		w.cfg.StatusPacer.Succeeded(region)
	default:
		w.cfg.StatusPacer.Succeeded(region)
	}
	w.m.RedeliveryChecks.WithLabelValues(result).Inc()
	return status
}

// finish ends m's time in a handler. m stays held (its visibility
// extended) until its delete or release is settled.
func (w *Worker) finish(m job.Message) {
	if w.inflight.Add(-1) == 0 {
		w.lastIdle.Store(w.cfg.Now().UnixNano())
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
