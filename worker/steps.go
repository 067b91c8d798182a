package worker

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/userpool"
)

// process decides the outcome of m: the checks before any call, then the
// job's steps (see steps).
func (w *Worker) process(soft, hard context.Context, m job.Message, jl *slog.Logger) (outcome, *slog.Logger) {
	if w.ended.take(m.ID) {
		return outcome{Action: Forget}, jl
	}
	state, verified := job.StateOf(w.cfg.SigningKeys, m)
	o, jl := w.decideJob(soft, hard, m, state, verified, jl)
	o.JobID = state.JobID
	return o, jl
}

// decideJob is process's part after the job's state is read.
func (w *Worker) decideJob(soft, hard context.Context, m job.Message, state job.State, verified bool, jl *slog.Logger) (outcome, *slog.Logger) {
	job, o, ok := w.admit(m, state.Attempts)
	if !ok {
		return o, jl
	}
	jl = jl.With("pool", job.UserPoolID, "user", w.user(job.Username))
	if c := m.Campaign(); c != "" {
		w.noteCampaign(c)
	}
	// Two jobs of one user in this process run one after the other, so the
	// second one's status check sees the first one's reset.
	unlock, err := w.users.lock(soft, userKey(job))
	if err != nil {
		return released(), jl
	}
	defer unlock()
	r := run{m: m, jobID: state.JobID, job: job, opt: w.options(m), attempts: state.Attempts, since: state.DeferredSince, prior: state.Steps}
	if verified {
		r.trusted = state.Steps
	}
	o = w.steps(soft, hard, &r)
	o.User = w.ledgerUser(&r)
	if r.held || r.mayHold {
		o.Holder, o.CodeCalled = r.holder(), r.codeCalled
	}
	return o, jl
}

// options are what a job asks for beyond the reset: the worker's own
// settings, or, per job, its resetq.global-sign-out and resetq.incident
// attributes (signed with the job when jobs are signed). A job can only
// ask for more protection, never for less.
type options struct {
	signOut  bool // end the user's sessions once the password is dead, and at the job's end
	kill     bool // kill the password at once when the code must wait
	reinvite bool // re-invite a user who never signed in
	disable  bool // disable a user who cannot receive a code
}

func (w *Worker) options(m job.Message) options {
	incident := m.Attributes[job.AttrIncident].StringValue == "true"
	kill := (w.cfg.KillPassword || incident) && w.cfg.Statuses != nil
	return options{
		// A kill without the sign-out after it would leave the sessions the
		// attacker made with the old password.
		signOut:  w.cfg.GlobalSignOut || incident || kill || m.Attributes[job.AttrGlobalSignOut].StringValue == "true",
		kill:     kill,
		reinvite: (w.cfg.Reinvite || incident) && w.cfg.Statuses != nil,
		disable:  w.cfg.DisableUnreachable || incident,
	}
}

// run is one job's progress through its steps.
type run struct {
	m        job.Message
	jobID    string // the job's ID (job.State): with the message's, the ledger's claim holder
	job      job.Job
	opt      options
	attempts int
	since    time.Time // when its deferrals began
	prior    []string  // steps its earlier messages say were done (for the record)
	trusted  []string  // the same, when a worker's state signature vouches for them
	done     []string  // steps done in this delivery, in order
	user     *User     // the user as last read (AdminGetUser); nil: not read, or the read failed

	held                  bool      // this job holds its user's claim in the ledger
	mayHold               bool      // a claim's answer was lost: it may hold it
	codeCalled            bool      // a call that sends a code or an invitation went (outcome.CodeCalled)
	claimedAt, claimUntil time.Time // when it claimed last, and the lease's end
}

// again reports whether the job ran before: delivered again, or a copy.
func (r *run) again() bool { return r.m.ReceiveCount > 1 || r.attempts > 0 || len(r.prior) > 0 }

func (r *run) status() string {
	if r.user == nil {
		return ""
	}
	return r.user.Status
}

// finish gives o the job's steps, for the copy or the record.
func (r *run) finish(o outcome) outcome {
	o.Steps = history(r.prior, r.done)
	return o
}

// maxSteps bounds the steps a job carries: a job held for days may kill
// and sign out on many deliveries.
const maxSteps = 16

func history(prior, done []string) []string {
	h := append(append([]string(nil), prior...), done...)
	if len(h) > maxSteps {
		h = h[len(h)-maxSteps:]
	}
	return h
}

// killing are the steps after which the user's old password no longer works.
var killing = []string{job.StepReset, job.StepPasswordKilled, job.StepReinvited, job.StepDisabled}

// secured reports whether steps end with the password dead and the
// sessions ended after it: a sign-out after the last step that killed a
// password.
func secured(steps []string) bool {
	lastKill, lastSignOut := -1, -1
	for i, s := range steps {
		switch {
		case slices.Contains(killing, s):
			lastKill = i
		case s == job.StepSignedOut:
			lastSignOut = i
		}
	}
	return lastKill >= 0 && lastSignOut > lastKill
}

// steps runs the job's calls and decides its outcome. In order: a job
// whose code cannot go now waits (see settle); the status check; a user
// already RESET_REQUIRED is done; a user who never signed in is
// re-invited (with the option); else the reset, and for a user who cannot
// be reached, the disable (with the option). settle then makes the calls
// the job owes its user before its outcome: the password killed when the
// code must wait, the sign-out after the password died.
func (w *Worker) steps(soft, hard context.Context, r *run) outcome {
	// A code (or invitation) already went for this user in this campaign,
	// as this process remembers or a signed copy says: a second would only
	// undo the first; the job owes at most the sign-out after it.
	if label, sent := w.codeSent(r); sent {
		return w.settle(soft, hard, r, outcome{Action: Delete, Label: label, AlreadyReset: true, Attempts: r.attempts})
	}
	if ref, refused := w.breaker.peek(w.cfg.Clock.Now(), w.keys(r.job, w.resetOp())...); refused {
		return w.settle(soft, hard, r, deferral(ref, r.since, w.cfg.Clock.Now(), r.attempts, w.cfg.Breaker.MaxDeferral))
	}
	if w.checkFirst(r) {
		w.readUser(soft, hard, r)
	}
	switch r.status() {
	case "RESET_REQUIRED":
		w.foundReset(hard, r)
		return w.settle(soft, hard, r, outcome{Action: Delete, Label: "reset", AlreadyReset: true, Attempts: r.attempts})
	case "FORCE_CHANGE_PASSWORD":
		if r.opt.reinvite {
			return w.reinvite(soft, hard, r)
		}
	}
	if stop := w.claim(hard, r); stop != nil {
		return w.settle(soft, hard, r, *stop)
	}
	cl, stop := w.callOp(soft, hard, r, w.resetOp())
	if answerLost(cl) {
		r.user = nil // the reset may have gone: what was read is stale
	}
	switch {
	case stop != nil:
		return w.settle(soft, hard, r, *stop)
	case cl.Kind == OK:
		w.stepDone(hard, r, job.StepReset)
		return w.settle(soft, hard, r, outcome{Action: Delete, Label: "reset", Attempts: r.attempts})
	case cannotBeReset(cl) && r.opt.reinvite:
		if r.user == nil || r.user.Status != "FORCE_CHANGE_PASSWORD" {
			w.readUser(soft, hard, r) // re-invite only a user who never signed in
		}
		switch r.status() {
		case "FORCE_CHANGE_PASSWORD":
			return w.reinvite(soft, hard, r)
		case "":
			// Not known whom it refused: a throttled read is no reason to
			// dead-letter a user who may need a new invitation.
			return w.settle(soft, hard, r, w.decide(r, Class{Kind: Transient, Code: "status_unknown",
				Message: "the reset was refused for the user's state, and reading the state failed: " + cl.Message}))
		case "RESET_REQUIRED":
			w.foundReset(hard, r)
			return w.settle(soft, hard, r, outcome{Action: Delete, Label: "reset", AlreadyReset: true, Attempts: r.attempts})
		case "CONFIRMED":
			// Someone (perhaps the attacker, answering the invitation's
			// challenge) set a password since the reset was refused: killed
			// now, and sent back to be reset.
			return w.settle(soft, hard, r, w.decide(r, Class{Kind: Transient, Code: "user_state_changed",
				Message: "the user became CONFIRMED after the reset was refused for its state: to be reset (" + cl.Message + ")"}))
		}
	case unreachable(cl) && r.opt.disable:
		if o, ok := w.step(soft, hard, r, w.disableOp(), job.StepDisabled); !ok {
			return w.settle(soft, hard, r, o)
		}
		o := w.decide(r, cl)
		o.Remediation = "disabled"
		return w.settle(soft, hard, r, o)
	case userDisabled(cl) && r.opt.disable:
		// An earlier delivery may have disabled the user and not lived to
		// record it (the DLQ send failed, or the worker died): the record
		// says so, so the runbook's re-enable step finds the user.
		o := w.decide(r, cl)
		if ours, why := w.disabledByCampaign(soft, hard, r); ours {
			o.Remediation = "disabled"
			if why != "" {
				o.Detail = cl.Message + " (" + why + ")"
			}
		}
		return w.settle(soft, hard, r, o)
	}
	return w.settle(soft, hard, r, w.decide(r, cl))
}

// settle makes the calls a job owes its user before its outcome o:
//   - with the kill option, a job that leaves without its password dead
//     (its code must wait, or it is dead-lettered with no remediation)
//     first kills the password: a random one nobody learns;
//   - with the sign-out option, the sessions end after the password died
//     here or before (a user already RESET_REQUIRED, a kill whose sign-out
//     failed), and at the job's end (reset, re-invited, dead-lettered),
//     so that no session survives it and none can be made again.
//
// A held job whose user this process (or a signed copy) already secured
// makes no call. The sign-out owed runs until the hard deadline, past a
// shutdown. A sign-out that fails at the job's end replaces o: the job
// goes on.
func (w *Worker) settle(soft, hard context.Context, r *run, o outcome) outcome {
	if o.Action.leaves() {
		return r.finish(o)
	}
	ending := o.Action == Delete || o.Action == DeadLetter
	owesKill := (o.Delayed || o.Action == DeadLetter) && o.Remediation == "" && userExists(o)
	dead := false // the password is dead, and sessions made before may live
	if owesKill && (r.opt.kill || r.opt.signOut) {
		switch {
		case w.securedAlready(r):
			if !ending {
				return r.finish(o)
			}
		case w.killedAlready(r):
			dead = true // only the sign-out after it failed: no second kill
		case r.opt.kill:
			d, stop := w.kill(soft, hard, r)
			if stop != nil && (stop.Action.leaves() || !userExists(*stop)) {
				return r.finish(*stop)
			}
			dead = d
		}
	}
	if !r.opt.signOut || !(dead || ending) || !userExists(o) || secured(r.done) {
		return r.finish(o)
	}
	so, ok := w.step(hard, hard, r, w.signOutOp(), job.StepSignedOut)
	switch {
	case ok:
		return r.finish(o)
	case so.Action.leaves() || ending:
		return so
	}
	return r.finish(o) // held: its next delivery signs out again
}

// known are the steps done for r's user in this campaign: as a signed
// copy says, then as this process remembers.
func (w *Worker) known(r *run) []string {
	return append(slices.Clone(r.trusted), w.done.steps(w.memoKey(r, r.job.Username), w.cfg.Clock.Now())...)
}

// securedAlready reports whether r's user's password was killed and the
// sessions ended after it, in this campaign.
func (w *Worker) securedAlready(r *run) bool { return secured(w.known(r)) }

// killedAlready reports whether r's user's password died in this
// campaign (killed, reset, re-invited, disabled): only the sign-out after
// it may be owed.
func (w *Worker) killedAlready(r *run) bool {
	return slices.ContainsFunc(w.known(r), func(s string) bool { return slices.Contains(killing, s) })
}

// codeSent reports whether this campaign already sent r's user a code or
// an invitation, and the outcome label for it.
func (w *Worker) codeSent(r *run) (string, bool) {
	known := w.known(r)
	for i := len(known) - 1; i >= 0; i-- {
		switch known[i] {
		case job.StepReset, job.StepReinvited:
			return known[i], true
		}
	}
	return "", false
}

// memoKey identifies a user of r's campaign for the worker's memos.
func (w *Worker) memoKey(r *run, username string) string {
	return r.m.Campaign() + "\x00" + r.job.UserPoolID + "\x00" + username
}

// kill sets a random password nobody learns, so the old one dies now
// while the code waits: permanent for a user who signed in (the later
// reset then works) or whose state cannot be read, temporary for one who
// never did (the later re-invitation then works). dead reports whether
// the password is dead now (killed here, or the user already
// RESET_REQUIRED or disabled); stop is the outcome when no answer was to
// be had (shutdown, a lapsed visibility). A kill that fails or is refused
// is logged as an error and counted: the old password works until the
// code goes out or a later delivery kills it.
func (w *Worker) kill(soft, hard context.Context, r *run) (dead bool, stop *outcome) {
	if r.user == nil {
		w.readUser(soft, hard, r)
	}
	permanent, needed, already := killMode(r.user)
	if !needed {
		return already, nil
	}
	if !w.mayKill(hard, r) {
		return false, nil
	}
	cl, stop := w.callOp(soft, hard, r, w.killOp(permanent))
	switch {
	case stop != nil && stop.Action != Defer && !stop.Action.leaves():
		// The claim's renewal before the kill: the user is done, or
		// another job holds it. The job's claim before its code says so.
		w.log.Info("no password kill: the ledger says the user is done or another job holds it",
			"pool", r.job.UserPoolID, "user", w.user(r.job.Username), "outcome", stop.Label)
		return false, nil
	case stop != nil && !stop.Action.leaves():
		w.m.CognitoCalls.WithLabelValues(userpool.OpSetPassword, "circuit_open").Inc()
		w.log.Error("killing the password was refused by an open circuit: the old one works until the code goes out or a later delivery kills it",
			"pool", r.job.UserPoolID, "user", w.user(r.job.Username), "why", sqsText(stop.Detail))
		return false, nil
	case stop != nil:
		return false, stop
	case cl.Code == "UserNotFoundException":
		o := w.decide(r, cl) // gone: nobody to kill for, nothing to wait for
		return false, &o
	case cl.Kind != OK:
		w.log.Error("killing the password failed: the old one works until the code goes out or a later delivery kills it",
			"pool", r.job.UserPoolID, "user", w.user(r.job.Username), "code", cl.Code, "error", sqsText(cl.Message))
		return false, nil
	}
	w.stepDone(hard, r, job.StepPasswordKilled)
	return true, nil
}

// killMode says how to kill the password of a user in state u (nil: the
// state could not be read). needed is false where no password can sign
// in now; already then says whether the old password is dead (the user
// RESET_REQUIRED or disabled) rather than never usable (not confirmed, a
// federated user). An unknown state gets a permanent kill: safe in every
// state, at worst a confirmed user where an invitation was due.
func killMode(u *User) (permanent, needed, already bool) {
	switch {
	case u == nil:
		return true, true, false
	case !u.Enabled, u.Status == "RESET_REQUIRED":
		return false, false, true
	case u.Status == "CONFIRMED":
		return true, true, false
	case u.Status == "FORCE_CHANGE_PASSWORD":
		return false, true, false
	}
	return false, false, false
}

// reinvite sends a user who never signed in a new invitation (a new
// temporary password; the old one stops working).
func (w *Worker) reinvite(soft, hard context.Context, r *run) outcome {
	// The status cannot tell a re-invited user (still FORCE_CHANGE_PASSWORD):
	// this process remembers whom it re-invited, by the name the pool
	// stores (Bob and bob are one user only in a case-insensitive pool), so
	// a second job of the user here sends no second invitation.
	key := w.memoKey(r, r.user.Username)
	if w.reinvited.has(key, w.cfg.Clock.Now()) {
		return w.settle(soft, hard, r, outcome{Action: Delete, Label: "reinvited", Attempts: r.attempts, AlreadyReset: true})
	}
	if stop := w.claim(hard, r); stop != nil {
		return w.settle(soft, hard, r, *stop)
	}
	before := r.user.LastModified
	cl, stop := w.callOp(soft, hard, r, w.reinviteOp())
	switch {
	case stop != nil:
		return w.settle(soft, hard, r, *stop)
	case cl.Kind == OK:
	case answerLost(cl) && w.invitedSince(soft, hard, r, before):
		// The answer was lost but the user changed: the invitation went.
		// Sending another would leave the user two.
		w.log.Warn("re-invitation's answer lost; the user changed since, so it went", "pool", r.job.UserPoolID,
			"user", w.user(r.job.Username), "error", sqsText(cl.Message))
	case cl.Code == "UnsupportedUserStateException":
		// The user left FORCE_CHANGE_PASSWORD since it was read: perhaps the
		// attacker answered the invitation's challenge with a password of
		// their own. Sent back (its password killed now) to be reset.
		r.user = nil
		return w.settle(soft, hard, r, w.decide(r, Class{Kind: Transient, Code: cl.Code,
			Message: "the user left FORCE_CHANGE_PASSWORD before the invitation: to be reset instead (" + cl.Message + ")"}))
	default:
		return w.settle(soft, hard, r, w.decide(r, cl))
	}
	w.stepDone(hard, r, job.StepReinvited)
	w.reinvited.add(key, job.StepReinvited, w.cfg.Clock.Now())
	return w.settle(soft, hard, r, outcome{Action: Delete, Label: "reinvited", Attempts: r.attempts})
}

// answerLost reports a failure after which the call may have been done
// all the same: a timeout or a network error.
func answerLost(c Class) bool { return c.Code == "timeout" || c.Code == "network" }

// invitedSince reads the user again and reports whether Cognito changed
// it after before and it still waits for its first sign-in
// (AdminCreateUser RESEND sets a new temporary password; a user who left
// FORCE_CHANGE_PASSWORD was changed by someone else).
func (w *Worker) invitedSince(soft, hard context.Context, r *run, before time.Time) bool {
	if before.IsZero() {
		return false
	}
	u := w.readUser(soft, hard, r)
	return u != nil && u.Status == "FORCE_CHANGE_PASSWORD" && u.LastModified.After(before)
}

// disabledByCampaign reports whether r's user, refused as disabled, was
// disabled by this campaign: by this process, or as a signed copy says,
// or, on a message SQS delivered again, a disabled user with no verified
// contact, whom the earlier delivery disabled and did not live to record.
// The last is an inference (a user disabled by hand before the campaign
// and redelivered looks the same): the record's resetq.error says so.
func (w *Worker) disabledByCampaign(soft, hard context.Context, r *run) (bool, string) {
	known := w.known(r)
	if slices.Contains(known, job.StepDisabled) {
		return true, ""
	}
	if r.m.ReceiveCount < 2 || slices.Contains(known, "found_disabled") {
		w.done.add(w.memoKey(r, r.job.Username), "found_disabled", w.cfg.Clock.Now())
		return false, ""
	}
	u := w.readUser(soft, hard, r)
	if u != nil && !u.Enabled && !u.Reachable {
		return true, "found disabled with no verified contact on a redelivery: presumably disabled by this job's earlier delivery, which did not live to record it; check before re-enabling"
	}
	return false, ""
}

// userExists reports whether o leaves a user to sign out.
func userExists(o outcome) bool {
	return o.Reason != "UserNotFoundException" && o.Reason != "ResourceNotFoundException"
}

// step makes o's call; ok says it succeeded (and the step is recorded),
// else the outcome ends the job.
func (w *Worker) step(soft, hard context.Context, r *run, o op, name string) (outcome, bool) {
	cl, stop := w.callOp(soft, hard, r, o)
	switch {
	case stop != nil:
		return r.finish(*stop), false
	case cl.Kind != OK:
		return r.finish(w.decideFor(r, cl, o)), false
	}
	w.stepDone(hard, r, name)
	return outcome{}, true
}

// stepDone records a step done for r's job: in its outcome, in this
// process's memory of the campaign, in the ledger, and in
// resetq_steps_total.
func (w *Worker) stepDone(hard context.Context, r *run, step string) {
	r.done = append(r.done, step)
	w.record(hard, w.ledgerUser(r), step, "")
	w.done.add(w.memoKey(r, r.job.Username), step, w.cfg.Clock.Now())
	w.m.Steps.WithLabelValues(step).Inc()
}

// decide turns the failed result of the reset into the job's outcome.
func (w *Worker) decide(r *run, cl Class) outcome { return w.decideFor(r, cl, w.resetOp()) }

// decideFor turns the failed result of o's call into the job's outcome: a
// deferral waits for o's own circuits.
func (w *Worker) decideFor(r *run, cl Class, o op) outcome {
	if cl.Kind == Transient || cl.Kind == Limit || cl.Kind == Permanent {
		r.attempts++
	}
	d := Decide(cl, r.attempts, w.cfg.Policy, w.cfg.Rand())
	switch d.Action {
	case Delete:
		return outcome{Action: Delete, Label: "reset", Attempts: r.attempts}
	case Retry:
		return outcome{Action: Retry, Label: "retried", Delay: d.Delay, Attempts: r.attempts, Detail: cl.Code + ": " + cl.Message, Delayed: true}
	case Defer:
		keys := w.keys(r.job, o)
		ref, refused := w.breaker.peek(w.cfg.Clock.Now(), keys...)
		if !refused { // closed again meanwhile by another call's success
			ref = refusal{wait: time.Second}
		}
		ref.reason, ref.detail, ref.forever = cl.Code, cl.Message, cl.Scope == ScopeEmail
		return deferral(ref, r.since, w.cfg.Clock.Now(), r.attempts, w.cfg.Breaker.MaxDeferral)
	case DeadLetter:
		o := deadLetter(d.Reason, cl.Message, r.attempts)
		if d.Reason == job.ReasonAttemptsExhausted {
			o.Detail, o.Delayed = cl.Code+": "+cl.Message, true
		}
		return o
	default:
		return released()
	}
}

// readUser reads r's user (AdminGetUser) into r.user and returns it. Any
// doubt (the read fails or times out) gives nil: for the status check, a
// second code is better than a user not reset.
func (w *Worker) readUser(soft, hard context.Context, r *run) *User {
	if w.cfg.Statuses == nil {
		return nil
	}
	scope := w.scope(r.job)
	if err := w.cfg.StatusPacer.Wait(soft, scope); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(job.WithCampaign(hard, r.m.Campaign()), w.cfg.CallTimeout)
	u, err := w.cfg.Statuses.ReadUser(ctx, r.job)
	cancel()
	if cl := Classify(err); cl.Kind != Canceled && cl.Scope != ScopeRole && cl.Code != "credentials" {
		w.countCall(scope, userpool.CategoryRead, cl)
	}
	result := "not_reset"
	switch {
	case err != nil:
		result = "error"
		if Classify(err).Kind == Throttle {
			w.cfg.StatusPacer.Throttled(scope)
		}
		w.log.Debug("reading the user failed; going on as if not reset", "error", err)
	case u.Status == "RESET_REQUIRED":
		result = "already_reset"
		w.cfg.StatusPacer.Succeeded(scope)
	default:
		w.cfg.StatusPacer.Succeeded(scope)
	}
	w.m.RedeliveryChecks.WithLabelValues(result).Inc()
	if err != nil {
		r.user = nil
		return nil
	}
	if u.Username == "" {
		u.Username = r.job.Username
	}
	r.user = &u
	return r.user
}

// userDisabled reports a reset refused because the user is disabled.
func userDisabled(c Class) bool {
	return c.Code == "NotAuthorizedException" && strings.Contains(strings.ToLower(c.Message), "user is disabled")
}
