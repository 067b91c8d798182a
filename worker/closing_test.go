package worker

import (
	"context"
	"fmt"
	"github.com/resetq/resetq/clock/clocktest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/job"
)

// fakePool is a user pool that keeps what an attacker holding each user's
// leaked password can do: sign in while that password works, and keep a
// session until a sign-out after the sign-in. Every call takes one tick,
// so "after" means a later call.
type fakePool struct {
	mu    sync.Mutex
	tick  int
	users map[string]*poolUser
	// fail, when set, answers a call before it acts: op is reset, kill,
	// signout, reinvite, disable or read; n counts that op's calls for
	// the user, from 1. lose answers after it acted (a lost answer).
	fail, lose func(op string, u *poolUser, n int) error
	calls      map[string]int // op + ":" + user
	order      []string       // op:user, in order
}

type poolUser struct {
	name                string
	status              string // CONFIRMED, FORCE_CHANGE_PASSWORD, RESET_REQUIRED
	enabled, reachable  bool
	leakedDiedAt        int // tick when the leaked password stopped working; 0: it works
	lastSignOut         int
	modified            int  // tick of the last change Cognito dates (UserLastModifiedDate)
	deadAfterFirstVisit bool // the leaked password was dead when the job's first delivery ended
}

func newFakePool(users ...*poolUser) *fakePool {
	p := &fakePool{users: map[string]*poolUser{}, calls: map[string]int{}}
	for _, u := range users {
		p.users[u.name] = u
	}
	return p
}

func confirmed(name string) *poolUser {
	return &poolUser{name: name, status: "CONFIRMED", enabled: true, reachable: true}
}

// call runs op for j's user: it fails as fail says, else act changes the user.
func (p *fakePool) call(op string, j job.Job, act func(u *poolUser) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tick++
	u := p.users[j.Username]
	if u == nil {
		return codeErr("UserNotFoundException", "User does not exist.")
	}
	key := op + ":" + j.Username
	p.calls[key]++
	p.order = append(p.order, key)
	if p.fail != nil {
		if err := p.fail(op, u, p.calls[key]); err != nil {
			return err
		}
	}
	if err := act(u); err != nil {
		return err
	}
	if p.lose != nil {
		return p.lose(op, u, p.calls[key])
	}
	return nil
}

func (u *poolUser) kill(tick int) {
	if u.leakedDiedAt == 0 {
		u.leakedDiedAt = tick
	}
}

// closed reports whether the attacker is out: the leaked password is dead
// and every session was ended after it died.
func (u *poolUser) closed() bool { return u.leakedDiedAt > 0 && u.lastSignOut > u.leakedDiedAt }

func (p *fakePool) ResetUserPassword(_ context.Context, j job.Job) error {
	return p.call("reset", j, func(u *poolUser) error {
		switch {
		case !u.enabled:
			return codeErr("NotAuthorizedException", "User is disabled.")
		case u.status == "FORCE_CHANGE_PASSWORD":
			return codeErr("NotAuthorizedException", "User password cannot be reset in the current state.")
		case !u.reachable:
			return codeErr("InvalidParameterException", "Cannot reset password for the user as there is no registered/verified email or phone_number")
		}
		u.status = "RESET_REQUIRED"
		u.kill(p.tick)
		return nil
	})
}

func (p *fakePool) ReadUser(_ context.Context, j job.Job) (User, error) {
	var out User
	err := p.call("read", j, func(u *poolUser) error {
		out = User{Username: u.name, Status: u.status, Enabled: u.enabled, Reachable: u.reachable,
			LastModified: time.Unix(int64(u.modified), 0)}
		return nil
	})
	return out, err
}

func (p *fakePool) GlobalSignOut(_ context.Context, j job.Job) error {
	return p.call("signout", j, func(u *poolUser) error { u.lastSignOut = p.tick; return nil })
}

func (p *fakePool) Reinvite(_ context.Context, j job.Job) error {
	return p.call("reinvite", j, func(u *poolUser) error {
		if u.status != "FORCE_CHANGE_PASSWORD" {
			return codeErr("UnsupportedUserStateException", "not FORCE_CHANGE_PASSWORD")
		}
		u.kill(p.tick)
		u.modified = p.tick
		return nil
	})
}

func (p *fakePool) DisableUser(_ context.Context, j job.Job) error {
	return p.call("disable", j, func(u *poolUser) error { u.enabled = false; u.kill(p.tick); return nil })
}

func (p *fakePool) KillPassword(_ context.Context, j job.Job, permanent bool) error {
	return p.call("kill", j, func(u *poolUser) error {
		if permanent {
			u.status = "CONFIRMED"
		} else if u.status != "FORCE_CHANGE_PASSWORD" {
			return fmt.Errorf("a temporary kill of a %s user would stop its reset", u.status)
		}
		u.kill(p.tick)
		return nil
	})
}

var (
	emailLimit   = codeErr("LimitExceededException", "Exceeded daily email limit for the operation or the account. If a higher limit is required, please configure your user pool to use your own Amazon SES configuration for sending email.")
	attemptLimit = codeErr("LimitExceededException", "Attempt limit exceeded, please try after some time.")
	brokenPool   = codeErr("InvalidEmailRoleAccessPolicyException", "Cognito is not allowed to use your email identity.")
	internal     = codeErr("InternalErrorException", "try again")
)

// incidentAttr asks for everything an incident needs, per job.
var incidentAttr = map[string]job.Attribute{job.AttrIncident: {DataType: "String", StringValue: "true"}}

// TestIncidentClosesEveryWayIn: in incident mode, whatever delays a job's
// code (the daily email limit, a broken pool, the per-user attempt limit,
// failures of the reset or of the sign-out), the leaked password is dead
// when the job's first delivery ends, and when the job ends (reset,
// re-invited, disabled, or dead-lettered) a sign-out came after the
// password died, so no session the attacker made at any time survives.
func TestIncidentClosesEveryWayIn(t *testing.T) {
	t.Parallel()
	invited := func(name string) *poolUser {
		return &poolUser{name: name, status: "FORCE_CHANGE_PASSWORD", enabled: true, reachable: true}
	}
	tests := []struct {
		name     string
		user     *poolUser
		fail     func(op string, u *poolUser, n int) error
		viaAttr  bool   // incident asked by the job's attribute, not the worker's settings
		wantEnd  string // reset, reinvited, dead_lettered
		wantDead string // the DLQ reason, if dead-lettered
	}{
		{name: "no delay", user: confirmed("u"), wantEnd: "reset"},
		{name: "no delay, asked per job", user: confirmed("u"), viaAttr: true, wantEnd: "reset"},
		{name: "daily email limit for 3 calls", user: confirmed("u"), wantEnd: "reset",
			fail: func(op string, _ *poolUser, n int) error { return when(op == "reset" && n <= 3, emailLimit) }},
		{name: "broken pool for 2 calls", user: confirmed("u"), wantEnd: "reset",
			fail: func(op string, _ *poolUser, n int) error { return when(op == "reset" && n <= 2, brokenPool) }},
		{name: "per-user attempt limit for ever", user: confirmed("u"), wantEnd: "dead_lettered", wantDead: job.ReasonAttemptsExhausted,
			fail: func(op string, _ *poolUser, _ int) error { return when(op == "reset", attemptLimit) }},
		{name: "reset fails twice", user: confirmed("u"), wantEnd: "reset",
			fail: func(op string, _ *poolUser, n int) error { return when(op == "reset" && n <= 2, internal) }},
		{name: "sign-out after the reset fails once", user: confirmed("u"), wantEnd: "reset",
			fail: func(op string, _ *poolUser, n int) error { return when(op == "signout" && n == 1, internal) }},
		{name: "sign-out after the kill fails once", user: confirmed("u"), wantEnd: "reset",
			fail: func(op string, _ *poolUser, n int) error {
				if op == "signout" && n == 1 {
					return internal
				}
				return when(op == "reset" && n <= 2, emailLimit)
			}},
		{name: "status read fails once", user: confirmed("u"), wantEnd: "reset",
			fail: func(op string, _ *poolUser, n int) error { return when(op == "read" && n == 1, internal) }},
		{name: "invited, email limit for 2 invitations", user: invited("u"), wantEnd: "reinvited",
			fail: func(op string, _ *poolUser, n int) error { return when(op == "reinvite" && n <= 2, emailLimit) }},
		{name: "no verified contact", user: &poolUser{name: "u", status: "CONFIRMED", enabled: true}, wantEnd: "dead_lettered",
			wantDead: "InvalidParameterException"},
		{name: "a trigger refuses the reset for ever", user: confirmed("u"), wantEnd: "dead_lettered", wantDead: "UserLambdaValidationException",
			fail: func(op string, _ *poolUser, _ int) error {
				return when(op == "reset", codeErr("UserLambdaValidationException", "PreTokenGeneration failed"))
			}},
		{name: "the attacker answers the invitation first", user: invited("u"), wantEnd: "reset",
			fail: func(op string, u *poolUser, n int) error {
				if op == "reinvite" && n == 1 { // the leaked temporary password becomes the attacker's own
					u.status, u.leakedDiedAt = "CONFIRMED", 0
					return codeErr("UnsupportedUserStateException", "User is not in FORCE_CHANGE_PASSWORD state")
				}
				return nil
			}},
		{name: "status read throttled, then the email limit", user: confirmed("u"), wantEnd: "reset",
			fail: func(op string, _ *poolUser, n int) error {
				if op == "read" && n <= 2 {
					return codeErr("TooManyRequestsException", "Rate exceeded")
				}
				return when(op == "reset" && n == 1, emailLimit)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newFakePool(tt.user)
			p.fail = tt.fail
			b := poolBundle(p)
			attrs := incidentAttr
			if !tt.viaAttr {
				b.cfg.GlobalSignOut, b.cfg.KillPassword, b.cfg.Reinvite, b.cfg.DisableUnreachable = true, true, true, true
				attrs = nil
			}
			b.q.push(jobBody(pool, "u"), attrs)
			sentBack := &firstSend{Sender: b.q, first: func() {
				p.mu.Lock()
				defer p.mu.Unlock()
				tt.user.deadAfterFirstVisit = tt.user.leakedDiedAt > 0
			}}
			b.cfg.Requeue = sentBack
			b.run(t)
			p.mu.Lock()
			defer p.mu.Unlock()
			if !sentBack.sent { // the job ended at its first delivery
				tt.user.deadAfterFirstVisit = tt.user.leakedDiedAt > 0
			}
			if !tt.user.deadAfterFirstVisit {
				t.Errorf("the leaked password still worked after the job's first delivery; calls %v", p.order)
			}
			if !tt.user.closed() {
				t.Errorf("not closed: password died at %d, last sign-out at %d; calls %v", tt.user.leakedDiedAt, tt.user.lastSignOut, p.order)
			}
			if got := b.jobs(tt.wantEnd); got != 1 {
				t.Errorf("%v jobs %s, want 1; calls %v", got, tt.wantEnd, p.order)
			}
			if tt.wantDead != "" {
				dl := b.dlq.all()
				if len(dl) != 1 || dl[0].Attributes[job.AttrReason].StringValue != tt.wantDead {
					t.Errorf("dead letters %v, want one %s", dl, tt.wantDead)
				}
			}
			if n := p.calls["kill:u"]; n > 1 && p.calls["signout:u"] < 3 {
				t.Errorf("%d kills: a held job kills its password once, again only after a failed sign-out; calls %v", n, p.order)
			}
		})
	}
}

// TestOldOrderLeavesTheAttackerIn: the order resetq had (sign out once,
// before the reset) fails the check above: the model is not one any order
// passes.
func TestOldOrderLeavesTheAttackerIn(t *testing.T) {
	t.Parallel()
	u := confirmed("u")
	p := newFakePool(u)
	p.fail = func(op string, _ *poolUser, n int) error { return when(op == "reset" && n <= 2, emailLimit) }
	ctx := context.Background()
	j := job.Job{UserPoolID: pool, Username: "u"}
	_ = p.GlobalSignOut(ctx, j)
	for p.ResetUserPassword(ctx, j) != nil {
	}
	if u.closed() {
		t.Fatal("sign-out before the reset counted as closed: the test model cannot tell the orders apart")
	}
}

// when is err if cond, else nil.
func when(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

// poolBundle is a worker on the fake pool, with circuits whose cooldowns
// pass in a few calls (each reading of the clock moves it a second).
func poolBundle(p *fakePool) *bundle {
	b := newBundle(p.ResetUserPassword)
	b.cfg.Remedies = p
	b.cfg.Statuses, b.cfg.StatusPacer, b.cfg.CheckEveryJob = p, newFakePacer(), true
	b.cfg.Concurrency = 1
	b.cfg.Policy.MaxAttempts = 4
	b.cfg.Breaker = BreakerConfig{Cooldown: 3 * time.Second, MaxCooldown: 3 * time.Second, EmailProbe: 3 * time.Second}
	b.cfg.Clock = clocktest.Func(func() time.Time { b.clock.Advance(time.Second); return b.clock.Now() })
	return b
}

// firstSend calls first before the first copy is sent back: when the
// job's first delivery ends without ending the job.
type firstSend struct {
	Sender
	mu    sync.Mutex
	sent  bool
	first func()
}

func (f *firstSend) Send(ctx context.Context, m job.Outgoing) error {
	f.mu.Lock()
	if !f.sent {
		f.sent = true
		f.first()
	}
	f.mu.Unlock()
	return f.Sender.Send(ctx, m)
}

// TestReinviteOncePerStoredName: re-invitations are remembered by the name
// the pool stores: in a case-sensitive pool Bob and bob are two users and
// each is re-invited (Bob's leaked temporary password dies too); in a
// case-insensitive one they are one user, invited once.
func TestReinviteOncePerStoredName(t *testing.T) {
	t.Parallel()
	for _, caseSensitive := range []bool{true, false} {
		invited := map[string]bool{}
		b := newBundle(func(context.Context, job.Job) error { return nil })
		b.cfg.Statuses = readerFunc(func(_ context.Context, j job.Job) (User, error) {
			name := j.Username
			if !caseSensitive {
				name = strings.ToLower(name)
			}
			return User{Username: name, Status: "FORCE_CHANGE_PASSWORD", Enabled: true, Reachable: true}, nil
		})
		b.cfg.StatusPacer, b.cfg.CheckEveryJob, b.cfg.Reinvite, b.cfg.Concurrency = newFakePacer(), true, true, 1
		b.rem.reinvite = func(j job.Job) error { invited[j.Username] = true; return nil }
		b.q.push(jobBody(pool, "bob"), nil)
		b.q.push(jobBody(pool, "Bob"), nil)
		b.run(t)
		if want := map[bool]int{true: 2, false: 1}[caseSensitive]; len(invited) != want || b.jobs("reinvited") != 2 {
			t.Errorf("case-sensitive %v: invited %v (%v jobs reinvited), want %d invitations", caseSensitive, invited, b.jobs("reinvited"), want)
		}
	}
}

// TestReinviteAnswerLost: when AdminCreateUser's answer is lost (a timeout
// after Cognito sent the invitation), the job reads the user, sees the
// change, and ends re-invited: no second invitation.
func TestReinviteAnswerLost(t *testing.T) {
	t.Parallel()
	u := &poolUser{name: "u", status: "FORCE_CHANGE_PASSWORD", enabled: true, reachable: true, modified: 1}
	p := newFakePool(u)
	p.lose = func(op string, _ *poolUser, n int) error {
		return when(op == "reinvite" && n == 1, context.DeadlineExceeded)
	}
	b := poolBundle(p)
	b.cfg.GlobalSignOut, b.cfg.Reinvite, b.cfg.KillPassword = true, true, true
	b.q.push(jobBody(pool, "u"), nil)
	b.run(t)
	if p.calls["reinvite:u"] != 1 || b.jobs("reinvited") != 1 || !u.closed() {
		t.Fatalf("calls %v, %v jobs reinvited: want one invitation, then the sign-out", p.order, b.jobs("reinvited"))
	}
}

// TestReinviteStatusReadFails: a reset refused for the user's state, whose
// state cannot be read (a throttle), is tried again, not dead-lettered:
// the user may be one who never signed in, who needs a new invitation.
func TestReinviteStatusReadFails(t *testing.T) {
	t.Parallel()
	u := &poolUser{name: "u", status: "FORCE_CHANGE_PASSWORD", enabled: true, reachable: true}
	p := newFakePool(u)
	p.fail = func(op string, _ *poolUser, n int) error {
		return when(op == "read" && n == 1, codeErr("TooManyRequestsException", "Rate exceeded"))
	}
	b := poolBundle(p)
	b.cfg.CheckEveryJob, b.cfg.Reinvite = false, true
	b.q.push(jobBody(pool, "u"), nil)
	b.run(t)
	if len(b.dlq.all()) != 0 || p.calls["reinvite:u"] != 1 || b.jobs("reinvited") != 1 {
		t.Fatalf("calls %v, dead letters %v: want the job tried again and the user re-invited", p.order, b.dlq.all())
	}
}

// TestDisabledMarkSurvives: a user the campaign disabled keeps
// resetq.remediation=disabled on its record when the first DLQ send fails
// (the same process remembers) and when the worker died before it (a new
// process sees a redelivered job whose user is disabled and unreachable).
func TestDisabledMarkSurvives(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		enabled      bool // before the job: false, disabled by hand or by a worker that died
		receivedOnce bool // delivered once before, to a worker that died
		dlqFails     bool // the record and its cut-down retry fail: the message comes back
		want         string
	}{
		{name: "dlq send fails", enabled: true, dlqFails: true, want: "disabled"},
		{name: "worker died", receivedOnce: true, want: "disabled"},
		{name: "disabled before the campaign, the DLQ send fails", dlqFails: true, want: ""},
		{name: "disabled before the campaign", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := poolBundle(newFakePool(&poolUser{name: "u", status: "CONFIRMED", enabled: tt.enabled}))
			b.cfg.DisableUnreachable = true
			if tt.dlqFails {
				fails := 2
				b.dlq.failIf = func(job.Outgoing) error {
					if fails > 0 {
						fails--
						return fmt.Errorf("SQS refused")
					}
					return nil
				}
				b.cfg.Source = &redeliverHidden{fakeQueue: b.q} // the hidden message comes back at once
			}
			b.q.push(jobBody(pool, "u"), nil)
			if tt.receivedOnce {
				b.q.visible[0].ReceiveCount = 1
			}
			b.run(t)
			dl := b.dlq.all()
			if len(dl) != 1 || dl[0].Attributes[job.AttrRemediation].StringValue != tt.want {
				t.Fatalf("records %v: want one, with remediation %q", dl, tt.want)
			}
		})
	}
}

// redeliverHidden makes a message hidden after a failed forward visible
// again at once; an extension (the visibility) stays one.
type redeliverHidden struct{ *fakeQueue }

func (r *redeliverHidden) ChangeVisibility(ctx context.Context, receipts []string, timeout time.Duration) (map[string]error, error) {
	if timeout > 0 && timeout < time.Hour { // not newBundle's visibility
		timeout = 0 // back at once
	}
	return r.fakeQueue.ChangeVisibility(ctx, receipts, timeout)
}

// TestProgressNeedsTheWorkersSignature: with signing keys, a copy's
// progress is taken only under a worker's state signature. A queue writer
// who copies a signed job and adds resetq.steps=password_killed,signed_out
// (or a large resetq.attempts) gets no skipped kill and no early dead
// letter; a copy the worker signed is honoured by another process (no
// second kill).
func TestProgressNeedsTheWorkersSignature(t *testing.T) {
	t.Parallel()
	key := []byte(strings.Repeat("k", 64))
	body := jobBody(pool, "u")
	signedJob := map[string]job.Attribute{job.AttrIncident: incidentAttr[job.AttrIncident]}
	signedJob[job.AttrSignature] = job.Attribute{DataType: "String", StringValue: job.SignMessage(key, signedJob, body)}
	with := func(extra map[string]string) map[string]job.Attribute {
		out := map[string]job.Attribute{}
		for k, v := range signedJob {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = job.Attribute{DataType: "String", StringValue: v}
		}
		return out
	}
	state := job.State{JobID: "first", Attempts: 1, Steps: []string{"password_killed", "signed_out"}}
	genuine := job.State.Attributes(state, key, job.Message{Body: body, Attributes: signedJob})
	tests := []struct {
		name      string
		attrs     map[string]job.Attribute
		wantKills int
	}{
		{"forged steps", with(map[string]string{job.AttrSteps: "password_killed,signed_out", job.AttrAttempts: "99"}), 1},
		{"forged state signature", with(map[string]string{job.AttrSteps: "password_killed,signed_out", job.AttrStateSignature: strings.Repeat("ab", 32)}), 1},
		{"a worker's signed copy", with(genuine), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newFakePool(confirmed("u"))
			p.fail = func(op string, _ *poolUser, n int) error { return when(op == "reset" && n == 1, emailLimit) }
			b := poolBundle(p)
			b.cfg.SigningKeys = [][]byte{key}
			b.cfg.Policy.MaxAttempts = 2
			b.q.push(body, tt.attrs)
			b.run(t)
			if p.calls["kill:u"] != tt.wantKills || b.jobs("reset") != 1 || len(b.dlq.all()) != 0 {
				t.Fatalf("calls %v, dead letters %v: want %d kills and the user reset", p.order, b.dlq.all(), tt.wantKills)
			}
		})
	}
}

// TestEmailWaitDoesNotCountTowardMaxDeferral: a job first deferred by a
// pool's circuit, then held by the daily email limit for longer than
// MaxDeferral, is not dead-lettered when the pool's circuit refuses it
// again: the email wait stopped its clock.
func TestEmailWaitDoesNotCountTowardMaxDeferral(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	pool := refusal{wait: time.Minute, reason: "InvalidEmailRoleAccessPolicyException"}
	email := refusal{wait: time.Minute, reason: CodeEmailLimit, forever: true}
	o := deferral(pool, time.Time{}, t0, 0, time.Hour)
	o = deferral(email, o.DeferredSince, t0.Add(30*time.Minute), 0, time.Hour)
	o = deferral(pool, o.DeferredSince, t0.Add(5*time.Hour), 0, time.Hour)
	if o.Action != Defer {
		t.Fatalf("outcome %v (%s): the email wait counted toward MaxDeferral", o.Action, o.Detail)
	}
	if o = deferral(pool, o.DeferredSince, t0.Add(6*time.Hour+time.Second), 0, time.Hour); o.Action != DeadLetter {
		t.Fatalf("outcome %v: a pool circuit for longer than MaxDeferral must still dead-letter", o.Action)
	}
}

// TestCircuitCheckedAfterTheWait: jobs already waiting on the rate limiter
// when the daily email limit is reached make no reset call when their turn
// comes: the email limit's circuit is checked after the wait.
func TestCircuitCheckedAfterTheWait(t *testing.T) {
	t.Parallel()
	const others = 8
	var mu sync.Mutex
	calls := 0
	var waiting sync.WaitGroup
	waiting.Add(others)
	b := newBundle(func(context.Context, job.Job) error {
		waiting.Wait() // the others are waiting on the limiter
		mu.Lock()
		defer mu.Unlock()
		calls++
		return emailLimit
	})
	gate := make(chan struct{})
	first := true
	var fm sync.Mutex
	b.pacer.wait = func(ctx context.Context, _ string) error {
		fm.Lock()
		isFirst := first
		first = false
		fm.Unlock()
		if isFirst {
			return nil
		}
		waiting.Done()
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return ctx.Err()
	}
	b.cfg.Concurrency = others + 1
	b.cfg.ExitWhenIdle = 0
	b.q.park = func(job.Outgoing) bool { return true } // copies wait: each job is seen once
	for i := range others + 1 {
		b.q.push(jobBody(pool, fmt.Sprintf("u%d", i)), nil)
	}
	_, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()
	eventually(t, "the first job deferred", func() bool { return b.jobs("deferred") >= 1 })
	close(gate)
	eventually(t, "every job deferred", func() bool { return b.jobs("deferred") >= others+1 })
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("%d reset calls, want 1: the jobs that waited must see the email limit's circuit", calls)
	}
}

// TestHeldUserAlreadyResetIsSignedOut: a user already RESET_REQUIRED (by
// threat protection, or by a delivery that died before its sign-out)
// whose job is held by the daily email limit is signed out at once: the
// password is dead, but the attacker's sessions are not until then.
func TestHeldUserAlreadyResetIsSignedOut(t *testing.T) {
	t.Parallel()
	first := confirmed("a")
	flagged := &poolUser{name: "b", status: "RESET_REQUIRED", enabled: true, reachable: true, leakedDiedAt: -1}
	p := newFakePool(first, flagged)
	p.fail = func(op string, u *poolUser, n int) error { return when(op == "reset" && n <= 3, emailLimit) }
	b := poolBundle(p)
	b.cfg.GlobalSignOut, b.cfg.KillPassword = true, true
	b.cfg.Breaker.EmailProbe = time.Hour // held for the whole first delivery of b's job
	b.q.push(jobBody(pool, "a"), nil)
	b.q.push(jobBody(pool, "b"), nil)
	b.cfg.ExitWhenIdle = 0
	_, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()
	eventually(t, "both users' jobs deferred", func() bool { return b.jobs("deferred") >= 2 })
	p.mu.Lock()
	defer p.mu.Unlock()
	if flagged.lastSignOut == 0 || p.calls["kill:b"] != 0 || p.calls["reset:b"] != 0 {
		t.Fatalf("calls %v: want b signed out while held, with no kill and no reset call", p.order)
	}
	if !first.closed() {
		t.Fatalf("a not closed while held: calls %v", p.order)
	}
}

// TestMemoIsPerCampaign: what a process remembers (a user killed and
// signed out, a user re-invited) holds within a campaign, not the next:
// a later campaign for the same users kills and re-invites again, since
// their new password may have leaked too.
func TestMemoIsPerCampaign(t *testing.T) {
	t.Parallel()
	campaign := func(name string) map[string]job.Attribute {
		return map[string]job.Attribute{job.AttrCampaign: {DataType: "String", StringValue: name}}
	}
	t.Run("kill", func(t *testing.T) {
		t.Parallel()
		u := confirmed("u")
		p := newFakePool(u)
		p.fail = func(op string, _ *poolUser, _ int) error { return when(op == "reset", emailLimit) }
		b := poolBundle(p)
		b.cfg.GlobalSignOut, b.cfg.KillPassword = true, true
		b.cfg.Breaker.EmailProbe = time.Hour
		b.cfg.ExitWhenIdle = 0
		b.q.park = func(job.Outgoing) bool { return true }
		b.q.push(jobBody(pool, "u"), campaign("c1"))
		_, cancel, done := b.start(t)
		defer func() { cancel(); <-done }()
		eventually(t, "campaign 1 held", func() bool { return b.jobs("deferred") >= 1 })
		b.q.push(jobBody(pool, "u"), campaign("c1")) // the same campaign: no call
		b.q.push(jobBody(pool, "u"), campaign("c2"))
		eventually(t, "both held", func() bool { return b.jobs("deferred") >= 3 })
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.calls["kill:u"] != 2 || p.calls["signout:u"] != 2 {
			t.Fatalf("calls %v: want u killed and signed out once per campaign", p.order)
		}
	})
	t.Run("reinvite", func(t *testing.T) {
		t.Parallel()
		v := &poolUser{name: "v", status: "FORCE_CHANGE_PASSWORD", enabled: true, reachable: true}
		b := poolBundle(newFakePool(v))
		b.cfg.Reinvite = true
		for _, c := range []string{"c1", "c1", "c2"} {
			b.q.push(jobBody(pool, "v"), campaign(c))
		}
		var invites int
		b.cfg.Remedies.(*fakePool).fail = func(op string, _ *poolUser, _ int) error {
			if op == "reinvite" {
				invites++
			}
			return nil
		}
		b.run(t)
		if invites != 2 || b.jobs("reinvited") != 3 {
			t.Fatalf("%d invitations, %v jobs reinvited: want one per campaign", invites, b.jobs("reinvited"))
		}
	})
}

// TestKillNotRepeatedWhileSignOutFails: a held job whose kill worked but
// whose sign-out keeps failing (denied) kills once; its later deliveries
// owe only the sign-out, so the quota the kill shares with real users is
// not burnt on every delivery.
func TestKillNotRepeatedWhileSignOutFails(t *testing.T) {
	t.Parallel()
	u := confirmed("u")
	p := newFakePool(u)
	p.fail = func(op string, _ *poolUser, _ int) error {
		switch op {
		case "reset":
			return emailLimit
		case "signout":
			return internal
		}
		return nil
	}
	b := poolBundle(p)
	b.cfg.GlobalSignOut, b.cfg.KillPassword = true, true
	b.cfg.Breaker = BreakerConfig{Cooldown: time.Second, MaxCooldown: time.Second, EmailProbe: time.Second, Threshold: 1000, MaxDeferral: time.Hour}
	b.cfg.ExitWhenIdle = 0
	b.q.push(jobBody(pool, "u"), nil)
	_, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()
	eventually(t, "the job held 10 times", func() bool { return b.jobs("deferred") >= 10 })
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.calls["kill:u"]; n != 1 {
		t.Fatalf("%d kills over %d deliveries, want 1: calls %v", n, int(b.jobs("deferred")), p.order)
	}
}

// TestDeadLetterKeepsSignedOptions: a dead letter keeps every signed
// option whatever the attributes it adds, so a redriven signed job is
// still accepted.
func TestDeadLetterKeepsSignedOptions(t *testing.T) {
	t.Parallel()
	orig := map[string]job.Attribute{}
	for _, k := range append([]string{job.AttrCampaign, job.AttrSignature}, job.SignedOptions...) {
		orig[k] = job.Attribute{DataType: "String", StringValue: "x"}
	}
	for i := range 6 {
		orig[fmt.Sprintf("producer.%d", i)] = job.Attribute{DataType: "String", StringValue: "y"}
	}
	add := map[string]string{job.AttrReason: "r", job.AttrError: "e", job.AttrAttempts: "1", job.AttrFailedAt: "t",
		job.AttrJobID: "id", job.AttrSteps: "disabled,signed_out", job.AttrRemediation: "disabled"}
	out := withAttributes(orig, add)
	for _, k := range job.SignedOptions {
		if _, ok := out[k]; !ok {
			t.Errorf("%s dropped from the record (%d attributes): a redrive would fail its signature", k, len(out))
		}
	}
	if len(out) > maxAttributes {
		t.Errorf("%d attributes, SQS allows %d", len(out), maxAttributes)
	}
}

// TestOneCodeWhenTheSignOutFails: a job whose reset (or invitation) went
// and whose sign-out failed is sent back; its copy signs out and sends no
// second code, with the status check off, in the same process (it
// remembers) and in another (a signed copy says so).
func TestOneCodeWhenTheSignOutFails(t *testing.T) {
	t.Parallel()
	t.Run("same process, status check off", func(t *testing.T) {
		t.Parallel()
		u := confirmed("u")
		p := newFakePool(u)
		p.fail = func(op string, _ *poolUser, n int) error { return when(op == "signout" && n <= 3, internal) }
		b := poolBundle(p)
		b.cfg.CheckEveryJob, b.cfg.StatusesForReinviteOnly, b.cfg.GlobalSignOut = false, true, true
		b.q.push(jobBody(pool, "u"), nil)
		b.run(t)
		if p.calls["reset:u"] != 1 || !u.closed() || b.jobs("reset") != 1 {
			t.Fatalf("calls %v: want one reset, then the sign-out on a copy", p.order)
		}
	})
	for _, step := range []string{"reset", "reinvited"} {
		t.Run("another process, signed copy after "+step, func(t *testing.T) {
			t.Parallel()
			key := []byte(strings.Repeat("k", 64))
			body := jobBody(pool, "u")
			attrs := map[string]job.Attribute{job.AttrIncident: incidentAttr[job.AttrIncident]}
			attrs[job.AttrSignature] = job.Attribute{DataType: "String", StringValue: job.SignMessage(key, attrs, body)}
			for k, v := range (job.State{JobID: "first", Attempts: 1, Steps: []string{step}}).Attributes(key, job.Message{Body: body, Attributes: attrs}) {
				attrs[k] = job.Attribute{DataType: "String", StringValue: v}
			}
			u := &poolUser{name: "u", status: "FORCE_CHANGE_PASSWORD", enabled: true, reachable: true, leakedDiedAt: 5}
			p := newFakePool(u)
			p.tick = 10 // the earlier delivery's calls
			b := poolBundle(p)
			b.cfg.SigningKeys = [][]byte{key}
			b.q.push(body, attrs)
			b.run(t)
			if p.calls["reset:u"]+p.calls["reinvite:u"]+p.calls["kill:u"] != 0 || !u.closed() || b.jobs(step) != 1 {
				t.Fatalf("calls %v: want only the sign-out, the job ending %s", p.order, step)
			}
		})
	}
}

// TestStateChangedAfterTheRefusal: a reset refused for the user's state
// (FORCE_CHANGE_PASSWORD), whose state is CONFIRMED when read (someone
// answered the invitation's challenge meanwhile), is killed, signed out
// and sent back to be reset, not dead-lettered.
func TestStateChangedAfterTheRefusal(t *testing.T) {
	t.Parallel()
	u := &poolUser{name: "u", status: "FORCE_CHANGE_PASSWORD", enabled: true, reachable: true}
	p := newFakePool(u)
	p.fail = func(op string, u *poolUser, n int) error {
		if op == "read" && n == 1 { // the attacker's own password, set between the refusal and the read
			u.status, u.leakedDiedAt = "CONFIRMED", 0
		}
		return nil
	}
	b := poolBundle(p)
	b.cfg.CheckEveryJob, b.cfg.Reinvite, b.cfg.KillPassword = false, true, true
	b.q.push(jobBody(pool, "u"), nil)
	b.run(t)
	if len(b.dlq.all()) != 0 || b.jobs("reset") != 1 || !u.closed() || p.calls["kill:u"] != 1 {
		t.Fatalf("calls %v, dead letters %v: want the password killed, then the user reset and signed out", p.order, b.dlq.all())
	}
}

// TestKillOfAMissingUserEnds: a held job whose user does not exist ends
// dead-lettered at the kill, instead of trying a kill on every delivery
// while the code waits.
func TestKillOfAMissingUserEnds(t *testing.T) {
	t.Parallel()
	p := newFakePool(confirmed("a"))
	p.fail = func(op string, _ *poolUser, _ int) error { return when(op == "reset", emailLimit) }
	b := poolBundle(p)
	b.cfg.KillPassword = true
	b.cfg.Breaker.EmailProbe = time.Hour
	b.cfg.Concurrency = 1
	b.cfg.ExitWhenIdle = 0
	b.q.park = func(job.Outgoing) bool { return true }
	b.q.push(jobBody(pool, "a"), nil)
	b.q.push(jobBody(pool, "ghost"), nil)
	_, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()
	eventually(t, "the ghost's job dead-lettered", func() bool { return len(b.dlq.all()) == 1 })
	if r := b.dlq.all()[0].Attributes[job.AttrReason].StringValue; r != "UserNotFoundException" {
		t.Fatalf("reason %q, want UserNotFoundException", r)
	}
}
