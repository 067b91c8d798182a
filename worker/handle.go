package worker

import (
	"cmp"
	"context"
	"strings"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/userpool"
)

// handle takes one message to its outcome. soft ends at shutdown; hard ends
// when the shutdown timeout runs out.
func (w *Worker) handle(soft, hard context.Context, m job.Message) {
	defer w.finish(m)
	jl := w.log.With("message_id", m.ID, "campaign", m.Campaign())
	o, jl := w.process(soft, hard, m, jl)
	w.apply(hard, jl, m, o)
}

// keys are the circuits a job's call goes through: its account and
// Region, its pool for that operation, and, for a call that sends an email
// through Cognito's default email, the account-Region's daily email limit.
func (w *Worker) keys(j job.Job, o op) []string {
	pool := poolKey(j.UserPoolID)
	if o.name != userpool.OpResetPassword {
		pool += ":" + o.name
	}
	scope := w.scope(j)
	keys := []string{scope, pool}
	if role := w.roleKey(j); role != "" {
		keys = append(keys, role)
	}
	if o.emails && w.emailPools.has(j.UserPoolID) {
		keys = append(keys, emailKey(scope))
	}
	return keys
}

// roleKey is the circuit key of the role that reaches the job's pool
// ("role:SCOPE ROLE"), "" for the default credentials.
func (w *Worker) roleKey(j job.Job) string {
	if w.cfg.Accounts == nil {
		return ""
	}
	if role := w.cfg.Accounts.Role(j.UserPoolID); role != "" {
		return "role:" + w.scope(j) + " " + role
	}
	return ""
}

// scope is the key of the job's quota scope (job.Scope): its pool's account
// and Region, or its Region without Accounts.
func (w *Worker) scope(j job.Job) string {
	s := job.Scope{Region: j.Region()}
	if w.cfg.Accounts != nil {
		s.Account = w.cfg.Accounts.Account(j.UserPoolID)
	}
	return s.Key()
}

// countCall counts a call that reached Cognito in its category, and its
// throttle.
func (w *Worker) countCall(scope, category string, cl Class) {
	labels := append(scopeLabels(scope), category)
	w.m.CategoryCalls.WithLabelValues(labels...).Inc()
	if cl.Kind == Throttle {
		w.m.CategoryThrottles.WithLabelValues(labels...).Inc()
	}
}

// scopeLabels are the account and region labels of a scope key.
func scopeLabels(key string) []string {
	s := job.ParseScope(key)
	return []string{s.Account, s.Region}
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

// op is one Cognito call a job's step makes, paced by its own limiter.
type op struct {
	name   string // the API operation, for metrics and logs
	pacer  Pacer
	call   func(context.Context, job.Job) error
	emails bool // it sends an email (a code, an invitation), so the daily email limit holds it
	// alone: it must not run beside another delivery's calls of the job:
	// it sends a code, or it sets the password (after another delivery's
	// code, that undoes it). It holds the ledger's claim renewed and its
	// message kept through the call (keepsThrough). A sign-out or a disable
	// may run twice at once.
	alone bool
	// recovery: in the reset's quota (UserAccountRecovery), shared with real
	// users: its throttles count in resetq_throttles_total.
	recovery bool
	category string // its quota category (userpool.Category*)
}

func (w *Worker) resetOp() op {
	return op{name: userpool.OpResetPassword, pacer: w.cfg.Pacer, call: w.cfg.Cognito.ResetUserPassword, emails: true, alone: true, recovery: true,
		category: userpool.CategoryRecovery}
}
func (w *Worker) signOutOp() op {
	return op{name: userpool.OpGlobalSignOut, pacer: w.cfg.SignOutPacer, call: w.cfg.Remedies.GlobalSignOut, category: userpool.CategoryUpdate}
}
func (w *Worker) disableOp() op {
	return op{name: userpool.OpDisableUser, pacer: w.cfg.SignOutPacer, call: w.cfg.Remedies.DisableUser, category: userpool.CategoryUpdate}
}
func (w *Worker) reinviteOp() op {
	return op{name: userpool.OpCreateUser, pacer: w.cfg.ReinvitePacer, call: w.cfg.Remedies.Reinvite, emails: true, alone: true, category: userpool.CategoryCreation}
}

// killOp sets a random password nobody learns (AdminSetUserPassword): in
// the reset's quota (UserAccountRecovery), so paced with the resets, and
// no message is sent, so the daily email limit does not hold it.
func (w *Worker) killOp(permanent bool) op {
	return op{name: userpool.OpSetPassword, pacer: w.cfg.Pacer, alone: true, recovery: true, category: userpool.CategoryRecovery, call: func(ctx context.Context, j job.Job) error {
		return w.cfg.Remedies.KillPassword(ctx, j, permanent)
	}}
}

// callOp makes o's call for r's job, paced and behind its circuits, again
// while throttled. It returns the class of the answer, or, when no answer
// is to be had (a circuit refuses, shutdown, the message's visibility
// lapsed), the job's outcome.
func (w *Worker) callOp(soft, hard context.Context, r *run, o op) (Class, *outcome) {
	scope := w.scope(r.job)
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
		if err := o.pacer.Wait(soft, scope); err != nil {
			return stop(released())
		}
		w.m.RateLimitWait.Observe(w.cfg.Clock.Now().Sub(waitStart).Seconds())
		if o.alone && w.renewDue(r) {
			if st := w.claim(hard, r); st != nil {
				return stop(*st)
			}
		}
		if o.alone && !w.keepsThrough(hard, r, w.needs(o)) {
			if hard.Err() != nil {
				return stop(released())
			}
			return stop(outcome{Action: Abandon, Label: "expired"})
		}
		// Checked again after the wait: a circuit may have opened during
		// it, and the daily email limit may have come to hold the pool.
		keys = w.keys(r.job, o)
		p, ref := w.breaker.admit(w.cfg.Clock.Now(), keys...)
		if ref != nil {
			return stop(deferral(*ref, r.since, w.cfg.Clock.Now(), r.attempts, w.cfg.Breaker.MaxDeferral))
		}

		callCtx, cancel := context.WithTimeout(job.WithCampaign(hard, r.m.Campaign()), w.cfg.CallTimeout)
		callStart := w.cfg.Clock.Now()
		r.codeCalled = r.codeCalled || o.emails
		err := o.call(callCtx, r.job)
		cancel()
		cl := Classify(err)
		if err != nil && hard.Err() != nil {
			cl = Class{Kind: Canceled, Code: "canceled", Message: err.Error()}
		}
		if cl.Scope != ScopeRole && cl.Code != "credentials" { // those never reached Cognito
			w.countCall(scope, o.category, cl)
			if o.recovery {
				w.m.QuotaCalls.WithLabelValues(scopeLabels(scope)...).Inc()
			}
		}
		if o.name == userpool.OpResetPassword {
			w.m.CognitoDuration.Observe(w.cfg.Clock.Now().Sub(callStart).Seconds())
			w.m.CognitoRequests.WithLabelValues(MetricCode(cl)).Inc()
		} else {
			w.m.CognitoCalls.WithLabelValues(o.name, MetricCode(cl)).Inc()
		}
		failed := scope
		switch cl.Scope {
		case ScopePool:
			failed = keys[1]
		case ScopeRole:
			failed = cmp.Or(w.roleKey(r.job), scope)
		case ScopeEmail:
			failed = emailKey(scope)
			if w.emailPools.add(r.job.UserPoolID) {
				w.log.Error("Cognito's daily email limit is reached: Cognito's default email sends 50 codes a day per account and Region. "+
					"This pool's jobs wait on the queue (no attempt used, nothing dead-lettered) and one probe goes every --email-limit-probe. "+
					"Configure the pool to send through Amazon SES (EmailSendingAccount=DEVELOPER) to go on",
					"scope", scope, "pool", r.job.UserPoolID)
			}
		}
		w.breaker.record(w.cfg.Clock.Now(), p, cl, keys, failed)
		switch cl.Kind {
		case Throttle:
			o.pacer.Throttled(scope)
			if o.recovery {
				w.m.Throttles.WithLabelValues(scopeLabels(scope)...).Inc()
			}
		case Canceled:
			return stop(released())
		default:
			o.pacer.Succeeded(scope)
		}
		if cl.Kind == Throttle {
			continue
		}
		return cl, nil
	}
}

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
