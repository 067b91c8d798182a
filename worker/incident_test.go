package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/resetq/resetq/job"
)

var signOutAttr = map[string]job.Attribute{job.AttrGlobalSignOut: {DataType: "String", StringValue: "true"}}

// TestGlobalSignOut: a job that asks for it (or every job, with
// GlobalSignOut) has its user signed out after the reset, once the old
// password is dead (before it, the attacker could sign in again at once);
// others not.
func TestGlobalSignOut(t *testing.T) {
	t.Parallel()
	var order []string
	b := newBundle(func(_ context.Context, j job.Job) error { order = append(order, "reset:"+j.Username); return nil })
	b.rem.signOut = func(j job.Job) error { order = append(order, "signout:"+j.Username); return nil }
	b.cfg.Concurrency = 1
	b.q.push(jobBody(pool, "alice"), signOutAttr)
	b.q.push(jobBody(pool, "bob"), nil)
	b.run(t)
	if want := []string{"reset:alice", "signout:alice", "reset:bob"}; !slices.Equal(order, want) {
		t.Fatalf("calls %v, want %v", order, want)
	}
	if got := testutil.ToFloat64(b.m.Steps.WithLabelValues("signed_out")); got != 1 {
		t.Fatalf("signed_out steps = %v, want 1", got)
	}

	order = nil
	b = newBundle(func(_ context.Context, j job.Job) error { order = append(order, "reset:"+j.Username); return nil })
	b.rem.signOut = func(j job.Job) error { order = append(order, "signout:"+j.Username); return nil }
	b.cfg.GlobalSignOut = true
	b.q.push(jobBody(pool, "bob"), nil)
	b.run(t)
	if want := []string{"reset:bob", "signout:bob"}; !slices.Equal(order, want) {
		t.Fatalf("with GlobalSignOut: calls %v, want %v", order, want)
	}
	// Each call counts in its own quota category (no Accounts: account "").
	for category, want := range map[string]float64{"UserAccountRecovery": 1, "UserUpdate": 1} {
		if got := testutil.ToFloat64(b.m.CategoryCalls.WithLabelValues("", "us-east-1", category)); got != want {
			t.Errorf("resetq_category_calls_total{category=%q} = %v, want %v", category, got, want)
		}
	}
}

// TestSignOutFailures: a sign-out that fails after the reset sends the
// job back, and its copy, seeing the user RESET_REQUIRED, signs out
// without a second reset; a job whose user could not be reset is signed
// out at its end and says so in its DLQ record.
func TestSignOutFailures(t *testing.T) {
	t.Parallel()
	p := newFakePool(confirmed("alice"), &poolUser{name: "nocontact", status: "CONFIRMED", enabled: true})
	p.fail = func(op string, u *poolUser, n int) error {
		return when(op == "signout" && u.name == "alice" && n == 1, internal)
	}
	b := poolBundle(p)
	b.cfg.CheckEveryJob = false
	b.q.push(jobBody(pool, "alice"), signOutAttr)
	b.q.push(jobBody(pool, "nocontact"), signOutAttr)
	b.run(t)
	_, _, _, sent := b.q.snapshot()
	if len(sent) != 1 || sent[0].Attributes[job.AttrGlobalSignOut].StringValue != "true" || sent[0].Attributes[job.AttrSteps].StringValue != "reset" {
		t.Fatalf("sent back %v: want alice's copy, still asking for the sign-out, steps=reset", sent)
	}
	if p.calls["reset:alice"] != 1 || p.calls["signout:alice"] != 2 || b.jobs("reset") != 1 || !p.users["alice"].closed() {
		t.Fatalf("calls %v, %v reset jobs: want alice reset once, signed out after it on the copy", p.order, b.jobs("reset"))
	}
	dl := b.dlq.all()
	if len(dl) != 1 || dl[0].Attributes[job.AttrSteps].StringValue != "signed_out" || dl[0].Attributes[job.AttrRemediation].StringValue != "" {
		t.Fatalf("dead letters %v: want nocontact's, with %s=signed_out", dl, job.AttrSteps)
	}
}

// TestReinvite: with Reinvite, a user who never signed in
// (FORCE_CHANGE_PASSWORD) is re-invited, with no reset call when the
// status check already said so; other users that cannot be reset are
// dead-lettered as before; without Reinvite nobody is re-invited.
func TestReinvite(t *testing.T) {
	t.Parallel()
	statuses := map[string]string{"invited": "FORCE_CHANGE_PASSWORD", "unconfirmed": "UNCONFIRMED", "alice": "CONFIRMED"}
	for _, mode := range []string{"all", "redelivered", "off"} {
		var resets atomic.Int64
		b := newBundle(func(_ context.Context, j job.Job) error {
			resets.Add(1)
			if j.Username != "alice" {
				return codeErr("NotAuthorizedException", "User password cannot be reset in the current state.")
			}
			return nil
		})
		// A case-insensitive pool: AdminGetUser names the user as stored.
		b.cfg.Statuses = readerFunc(func(_ context.Context, j job.Job) (User, error) {
			return User{Username: strings.ToLower(j.Username), Status: statuses[j.Username], Enabled: true, Reachable: true}, nil
		})
		b.cfg.StatusPacer = newFakePacer()
		b.cfg.CheckEveryJob = mode == "all"
		b.cfg.Concurrency = 1 // invited before Invited
		b.cfg.Reinvite = mode != "off"
		for _, u := range []string{"invited", "unconfirmed", "alice"} {
			b.q.push(jobBody(pool, u), nil)
		}
		if mode != "off" {
			b.q.push(jobBody(pool, "Invited"), nil) // the same user in a case-insensitive pool: one invitation
			statuses["Invited"] = "FORCE_CHANGE_PASSWORD"
		}
		b.run(t)
		calls := b.rem.all()
		if mode == "off" {
			if len(calls) != 0 || len(b.dlq.all()) != 2 {
				t.Fatalf("without Reinvite: calls %v, %d dead letters; want none and 2", calls, len(b.dlq.all()))
			}
			continue
		}
		if !slices.Equal(calls, []string{"reinvite:invited"}) || b.jobs("reinvited") != 2 || len(b.dlq.all()) != 1 {
			t.Fatalf("%s: calls %v, reinvited %v, %d dead letters: want the invited user re-invited, the unconfirmed dead-lettered",
				mode, calls, b.jobs("reinvited"), len(b.dlq.all()))
		}
		if want := map[string]int64{"all": 2, "redelivered": 4}[mode]; resets.Load() != want {
			t.Fatalf("%s: %d resets, want %d", mode, resets.Load(), want)
		}
	}
}

// TestDisableUnreachable: with DisableUnreachable, a user with no verified
// contact is disabled and the job still dead-lettered, with the
// remediation in its record.
func TestDisableUnreachable(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		b := newBundle(func(context.Context, job.Job) error {
			return codeErr("InvalidParameterException", "Cannot reset password for the user as there is no registered/verified email or phone_number")
		})
		b.cfg.DisableUnreachable = on
		b.q.push(jobBody(pool, "nocontact"), nil)
		b.run(t)
		dl := b.dlq.all()
		if len(dl) != 1 || dl[0].Attributes[job.AttrReason].StringValue != "InvalidParameterException" {
			t.Fatalf("dead letters %v: want one, InvalidParameterException", dl)
		}
		rem := dl[0].Attributes[job.AttrRemediation].StringValue
		if on && (rem != "disabled" || !slices.Equal(b.rem.all(), []string{"disable:nocontact"})) {
			t.Fatalf("remediation %q, calls %v: want the user disabled", rem, b.rem.all())
		}
		if !on && (rem != "" || len(b.rem.all()) != 0) {
			t.Fatalf("without the option: remediation %q, calls %v", rem, b.rem.all())
		}
	}
}

// TestDailyEmailLimit: "Exceeded daily email limit" is not the per-user
// limit: the pool's jobs wait on the queue without using attempts, never
// dead-lettered however long, with one probe per EmailProbe; other pools
// go on; when the limit lifts, the campaign finishes.
func TestDailyEmailLimit(t *testing.T) {
	t.Parallel()
	const limited, ses = "us-east-1_Default", "us-east-1_Ses"
	var lifted atomic.Bool
	var limitedCalls atomic.Int64
	b := newBundle(func(_ context.Context, j job.Job) error {
		if j.UserPoolID == limited {
			limitedCalls.Add(1)
			if !lifted.Load() {
				return codeErr("LimitExceededException", "Exceeded daily email limit for the operation or the account. If a higher limit is required, please configure your user pool to use your own Amazon SES configuration for sending email.")
			}
		}
		return nil
	})
	b.cfg.Breaker = BreakerConfig{EmailProbe: 10 * time.Minute, MaxDeferral: time.Hour}
	b.cfg.ExitWhenIdle = 0
	b.cfg.Statuses, b.cfg.StatusPacer = statusFunc(func(context.Context, job.Job) (string, error) { return "CONFIRMED", nil }), newFakePacer()
	for i := range 10 {
		b.q.push(jobBody(limited, "l"+string(rune('a'+i))), incidentAttr)
		b.q.push(jobBody(ses, "s"+string(rune('a'+i))), nil)
	}
	w, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()
	b.q.waitFor(t, "the SES pool's jobs reset", func() bool { return b.jobs("reset") >= 10 })
	// Killing the password and the sign-out send no email: the limit
	// holds neither, and the old passwords die while the codes wait.
	eventually(t, "every limited job's password killed, then its user signed out", func() bool {
		calls := b.rem.all()
		for i := range 10 {
			u := string(rune('a' + i))
			k, so := slices.Index(calls, "kill:l"+u), slices.Index(calls, "signout:l"+u)
			if k < 0 || so < k {
				return false
			}
		}
		return true
	})
	if n := limitedCalls.Load(); n > int64(b.cfg.Concurrency) {
		t.Fatalf("%d calls for the limited pool, want at most the ones in flight (%d)", n, b.cfg.Concurrency)
	}
	if got := testutil.ToFloat64(b.m.EmailLimit.WithLabelValues("", "us-east-1")); got != 1 {
		t.Fatalf("resetq_email_limit_reached = %v, want 1", got)
	}
	if err := w.Ready(); err != nil {
		t.Fatalf("the email limit made the worker not ready: %v", err)
	}
	before := limitedCalls.Load()
	b.clock.Advance(3 * time.Hour) // past MaxDeferral, and many probe periods
	b.q.waitFor(t, "a probe", func() bool { return limitedCalls.Load() > before })
	if len(b.dlq.all()) != 0 {
		t.Fatalf("%d jobs dead-lettered for the email limit", len(b.dlq.all()))
	}
	_, _, _, sent := b.q.snapshot()
	for _, s := range sent {
		if s.Attributes[job.AttrAttempts].StringValue != "0" {
			t.Fatalf("a deferred job used an attempt: %v", s.Attributes)
		}
		if s.Attributes[job.AttrDeferredSince].StringValue != "" {
			t.Fatalf("waiting on the email limit started the deferral clock: %v", s.Attributes)
		}
	}
	perUser := map[string]int{}
	for _, c := range b.rem.all() {
		perUser[c]++
	}
	for c, n := range perUser {
		if n != 1 {
			t.Fatalf("%s %d times while the job waited: copies must not repeat it", c, n)
		}
	}
	lifted.Store(true)
	b.clock.Advance(11 * time.Minute)
	b.q.waitFor(t, "every job reset once the limit lifted", func() bool { return b.jobs("reset") >= 20 })
	if got := testutil.ToFloat64(b.m.EmailLimit.WithLabelValues("", "us-east-1")); got != 0 {
		t.Fatalf("resetq_email_limit_reached = %v after the limit lifted", got)
	}
}

// TestSignOutIsSigned: the sign-out request is covered by the signature:
// stripped from a signed job, or added to one, the job is refused.
func TestSignOutIsSigned(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	body := jobBody(pool, "alice")
	signed := func(attrs map[string]job.Attribute) map[string]job.Attribute {
		out := map[string]job.Attribute{job.AttrSignature: {DataType: "String", StringValue: job.SignMessage(key, attrs, body)}}
		for k, v := range attrs {
			out[k] = v
		}
		return out
	}
	ok := signed(signOutAttr)
	stripped := signed(signOutAttr)
	delete(stripped, job.AttrGlobalSignOut)
	added := signed(nil)
	added[job.AttrGlobalSignOut] = signOutAttr[job.AttrGlobalSignOut]
	for name, c := range map[string]struct {
		attrs map[string]job.Attribute
		want  bool
	}{"signed with it": {ok, true}, "stripped": {stripped, false}, "added": {added, false}, "signed without": {signed(nil), true}} {
		err := job.VerifySignature([][]byte{key}, job.Message{Body: body, Attributes: c.attrs})
		if (err == nil) != c.want {
			t.Errorf("%s: verify = %v, want ok %v", name, err, c.want)
		}
	}
	// The request shifted into the campaign: the same signed bytes,
	// "resetq.global-sign-out=true\n" + "" + "\n" + body, read as campaign
	// "resetq.global-sign-out=true" and a body with a newline in front.
	shifted := map[string]job.Attribute{
		job.AttrCampaign:  {DataType: "String", StringValue: job.AttrGlobalSignOut + "=true"},
		job.AttrSignature: ok[job.AttrSignature],
	}
	if err := job.VerifySignature([][]byte{key}, job.Message{Body: "\n" + body, Attributes: shifted}); err == nil {
		t.Error("a signed sign-out request shifted into the campaign was accepted")
	}
	for name, c := range map[string]struct {
		attrs map[string]job.Attribute
		want  bool
	}{} {
		err := job.VerifySignature([][]byte{key}, job.Message{Body: body, Attributes: c.attrs})
		if (err == nil) != c.want {
			t.Errorf("%s: verify = %v, want ok %v", name, err, c.want)
		}
	}
}

// TestSignOutDoesNotRestartDeferral: in a pool whose reset keeps failing
// at the pool level, an incident job kills its user's password and signs
// out at its first delivery, and is still dead-lettered after MaxDeferral
// (neither success restarts its clock nor closes the reset's circuit),
// with one probe per cooldown; its copies repeat neither call (signed or
// not, this process remembers), and its end signs out once more.
func TestSignOutDoesNotRestartDeferral(t *testing.T) {
	t.Parallel()
	for _, signed := range []bool{false, true} {
		t.Run(fmt.Sprintf("signed=%v", signed), func(t *testing.T) { signOutDeferral(t, signed) })
	}
}

func signOutDeferral(t *testing.T, signed bool) {
	var resets atomic.Int64
	b := newBundle(func(context.Context, job.Job) error {
		resets.Add(1)
		return codeErr("InvalidSmsRoleAccessPolicyException", "role cannot be assumed")
	})
	b.cfg.Breaker = BreakerConfig{Cooldown: time.Minute, MaxCooldown: time.Minute, MaxDeferral: time.Hour}
	b.cfg.ExitWhenIdle = 0
	b.cfg.Concurrency = 1
	b.q.park = func(job.Outgoing) bool { return true }
	b.cfg.Statuses, b.cfg.StatusPacer = statusFunc(func(context.Context, job.Job) (string, error) { return "CONFIRMED", nil }), newFakePacer()
	attrs := map[string]job.Attribute{job.AttrIncident: incidentAttr[job.AttrIncident]}
	if signed {
		key := []byte(strings.Repeat("k", 64))
		b.cfg.SigningKeys = [][]byte{key}
		attrs[job.AttrSignature] = job.Attribute{DataType: "String", StringValue: job.SignMessage(key, attrs, jobBody(pool, "alice"))}
	}
	b.q.push(jobBody(pool, "alice"), attrs)
	_, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()
	for i := 1; i <= 4; i++ { // 4 x 15 min: MaxDeferral is over at the 5th try
		b.q.waitFor(t, "the job deferred", func() bool { return b.jobs("deferred") >= float64(i) })
		b.clock.Advance(15 * time.Minute) // past the cooldown: one probe, then deferred again
		b.q.unparkOne()
	}
	b.q.waitFor(t, "the job dead-lettered after MaxDeferral", func() bool { return len(b.dlq.all()) == 1 })
	if n := resets.Load(); n > 5 {
		t.Fatalf("%d reset calls over 4 cooldowns, want one probe each", n)
	}
	signOuts := 0
	for _, c := range b.rem.all() {
		if c == "signout:alice" {
			signOuts++
		}
	}
	if signOuts != 2 || !slices.Contains(b.rem.all(), "kill:alice") || len(b.rem.all()) != 3 {
		t.Fatalf("calls %v: want one kill and a sign-out after it, and one sign-out at the end", b.rem.all())
	}
	if dl := b.dlq.all()[0]; dl.Attributes[job.AttrSteps].StringValue != "password_killed,signed_out,signed_out" || dl.Attributes[job.AttrReason].StringValue != "InvalidSmsRoleAccessPolicyException" {
		t.Fatalf("record %v", dl.Attributes)
	}
}
