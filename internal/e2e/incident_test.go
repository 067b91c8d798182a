package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

// incidentPool is a pool with users of every kind an incident meets, each
// signed in before the campaign: confirmed users with a refresh token,
// invited users who never signed in (a known temporary password), and
// confirmed users with no verified contact (a refresh token too).
type incidentPool struct {
	pool, client                  string
	confirmed, invited, noContact []string
	refresh                       map[string]string
	tempPassword                  string
}

func newIncidentPool(t *testing.T, e *testenv.Env, n int) *incidentPool {
	t.Helper()
	ctx := context.Background()
	p := &incidentPool{refresh: map[string]string{}, tempPassword: "Temp-Passw0rd!"}
	states := map[string]moto.UserState{}
	for i := range n {
		c, nc := fmt.Sprintf("c%02d", i), fmt.Sprintf("n%02d", i)
		states[c], states[nc] = moto.Confirmed, moto.ConfirmedNoContact
		p.confirmed, p.noContact = append(p.confirmed, c), append(p.noContact, nc)
	}
	p.pool = e.Pool(e.East, states)
	var err error
	if p.client, err = moto.CreateAppClient(ctx, e.East, p.pool); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		u := fmt.Sprintf("i%02d", i)
		if err := moto.CreateInvited(ctx, e.East, p.pool, u, p.tempPassword); err != nil {
			t.Fatal(err)
		}
		p.invited = append(p.invited, u)
	}
	for _, u := range append(append([]string{}, p.confirmed...), p.noContact...) {
		tok, _, err := moto.SignIn(ctx, e.East, p.pool, p.client, u, moto.Password)
		if err != nil || tok == "" {
			t.Fatalf("sign in %s before the campaign: %q %v", u, tok, err)
		}
		p.refresh[u] = tok
	}
	for _, u := range p.invited {
		if _, ch, err := moto.SignIn(ctx, e.East, p.pool, p.client, u, p.tempPassword); err != nil || ch != "NEW_PASSWORD_REQUIRED" {
			t.Fatalf("invited %s: challenge %q %v, want NEW_PASSWORD_REQUIRED with the temporary password", u, ch, err)
		}
	}
	return p
}

func (p *incidentPool) jobs() []string {
	var out []string
	for _, u := range append(append(append([]string{}, p.confirmed...), p.invited...), p.noContact...) {
		out = append(out, testenv.Job(p.pool, u))
	}
	return out
}

// TestIncidentMode: with --global-sign-out --reinvite --unreachable
// disable, refresh tokens taken before the campaign are refused after it
// for every user reset, invited users' old temporary passwords stop
// working, and users with no verified contact are disabled and
// dead-lettered with the remediation. Without the flags none of it
// happens.
func TestIncidentMode(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("flags=%v", on), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := testenv.New(t, "incident")
			p := newIncidentPool(t, e, 4)
			e.Send("incident", p.jobs()...)
			args := []string{"--exit-when-idle", "3s"}
			if on {
				args = append(args, "--global-sign-out", "--reinvite", "--unreachable", "disable")
			}
			proc := e.Start(args...)
			if code := proc.Wait(t, 2*time.Minute); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			e.ExpectStatus(e.East, p.pool, "RESET_REQUIRED", p.confirmed...)
			for _, u := range append(append([]string{}, p.confirmed...), p.noContact...) {
				err := moto.Refresh(ctx, e.East, p.pool, p.client, p.refresh[u])
				if on && (err == nil || !strings.Contains(err.Error(), "NotAuthorized")) {
					t.Errorf("%s's refresh token from before the campaign: %v, want NotAuthorizedException", u, err)
				}
				if !on && err != nil {
					t.Errorf("%s's refresh token refused without --global-sign-out: %v", u, err)
				}
			}
			for _, u := range p.invited {
				_, ch, err := moto.SignIn(ctx, e.East, p.pool, p.client, u, p.tempPassword)
				if on && err == nil {
					t.Errorf("invited %s still signs in with the old temporary password (challenge %q)", u, ch)
				}
				if !on && (err != nil || ch != "NEW_PASSWORD_REQUIRED") {
					t.Errorf("invited %s: %q %v without --reinvite, want the old temporary password to work", u, ch, err)
				}
			}
			for _, u := range p.noContact {
				enabled, err := moto.Enabled(ctx, e.East, p.pool, u)
				if err != nil || enabled == on {
					t.Errorf("no-contact %s enabled=%v (%v), want %v", u, enabled, err, !on)
				}
			}
			if on {
				out, errOut, code := opsRun(t, e, "dlq", "list", "--queue-url", e.QueueURL)
				if code != 0 || strings.Count(out, "disabled") < len(p.noContact) || !strings.Contains(out, "REMEDIATION") {
					t.Errorf("dlq list (exit %d, %s) does not show the remediation:\n%s", code, errOut, out)
				}
			}
			dl := e.DrainDLQ()
			wantDL := len(p.noContact)
			if !on {
				wantDL += len(p.invited)
			}
			if len(dl) != wantDL {
				t.Fatalf("%d dead letters, want %d", len(dl), wantDL)
			}
			for _, d := range dl {
				if !strings.Contains(d.Body, `"n0`) {
					continue
				}
				rem, steps := d.Attrs["resetq.remediation"], d.Attrs["resetq.steps"]
				if on && (rem != "disabled" || steps != "disabled,signed_out") {
					t.Errorf("record %v: want resetq.remediation=disabled and resetq.steps=disabled,signed_out (the sign-out after the password died)", d.Attrs)
				}
				if !on && (rem != "" || steps != "") {
					t.Errorf("record %v: remediation or steps without the flags", d.Attrs)
				}
			}
			if on {
				if got := strings.Count(proc.Logs(), "outcome=reinvited"); got != len(p.invited) {
					t.Errorf("%d jobs logged reinvited, want %d", got, len(p.invited))
				}
			}
		})
	}
}

// TestDailyEmailLimit: once Cognito answers "Exceeded daily email limit",
// the worker makes at most a handful of reset calls in the next minute,
// dead-letters nothing, and finishes the campaign once the limit lifts.
func TestDailyEmailLimit(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "emaillimit")
	pool, users, jobs := e.ConfirmedUsers(e.East, "m", 30)
	e.Send("emaillimit", jobs...)
	limited := awsproxy.Fault{Operation: "AdminResetUserPassword", ErrorCode: "LimitExceededException",
		Message: "Exceeded daily email limit for the operation or the account. If a higher limit is required, please configure your user pool to use your own Amazon SES configuration for sending email."}
	// The first few resets go through; then the day's emails are used up.
	e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", Count: 5, Delay: time.Millisecond})
	id := e.Proxy.AddFault(limited)

	p := e.Start("--email-limit-probe", "20s", "--concurrency", "4", "--exit-when-idle", "3s")
	testenv.Eventually(t, time.Minute, "the email limit reached", func() bool {
		return p.Metric(t, `resetq_email_limit_reached{account="`+moto.Account+`",region="us-east-1"}`) == 1
	})
	before := e.Proxy.Stats().Faulted["AdminResetUserPassword"]
	time.Sleep(time.Minute) // the minute the issue bounds: calls made in it are counted, not awaited
	during := e.Proxy.Stats().Faulted["AdminResetUserPassword"] - before
	if during > 4+3+1 { // the calls in flight when it was reached, then a probe every 20 s
		t.Errorf("%d reset calls in the minute after the daily email limit, want a handful (the probes)", during)
	}
	if p.Metric(t, `resetq_dead_letters_total{reason="LimitExceededException"}`) != 0 {
		t.Error("jobs dead-lettered for the email limit")
	}
	e.Proxy.RemoveFault(id)
	if code := p.Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users...)
	if dl := e.DrainDLQ(); len(dl) != 0 {
		t.Fatalf("%d dead letters, want none", len(dl))
	}
}

// TestEnqueueGlobalSignOut: `resetq enqueue --global-sign-out` asks for the
// sign-out per job, and a worker run without --global-sign-out honours it:
// refresh tokens are refused after the campaign; jobs enqueued without it
// sign nobody out.
func TestEnqueueGlobalSignOut(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqsignout")
	p := newIncidentPool(t, e, 3)
	asked, notAsked, _ := p.enqueueAsking(t, e, "--global-sign-out")
	proc := e.Start("--exit-when-idle", "3s")
	if code := proc.Wait(t, time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	e.ExpectStatus(e.East, p.pool, "RESET_REQUIRED", p.confirmed...)
	p.expectSignedOut(t, e, asked, notAsked)
}

// enqueueAsking enqueues the first two confirmed users' jobs with flag
// (asking for a sign-out or incident mode) and the others' without, and
// returns them, with the first run's stderr.
func (p *incidentPool) enqueueAsking(t *testing.T, e *testenv.Env, flag string) (asked, notAsked []string, stderr string) {
	t.Helper()
	asked, notAsked = p.confirmed[:2], p.confirmed[2:]
	for _, c := range []struct {
		users []string
		flags []string
	}{{asked, []string{flag}}, {notAsked, nil}} {
		args := append([]string{"--queue-url", e.QueueURL, "--pool", p.pool, "--from", "-"}, c.flags...)
		r := runEnqueue(t, e, nil, strings.Join(c.users, "\n")+"\n", args...)
		if r.code != 0 {
			t.Fatalf("enqueue %v: exit %d: %s", c.flags, r.code, r.stderr)
		}
		if len(c.flags) > 0 {
			stderr = r.stderr
		}
	}
	return asked, notAsked, stderr
}

// expectSignedOut checks that the refresh tokens taken before the campaign
// are refused for the users who asked for a sign-out and work for the rest.
func (p *incidentPool) expectSignedOut(t *testing.T, e *testenv.Env, asked, notAsked []string) {
	t.Helper()
	ctx := context.Background()
	for _, u := range asked {
		if err := moto.Refresh(ctx, e.East, p.pool, p.client, p.refresh[u]); err == nil {
			t.Errorf("%s asked for a sign-out and its refresh token still works", u)
		}
	}
	for _, u := range notAsked {
		if err := moto.Refresh(ctx, e.East, p.pool, p.client, p.refresh[u]); err != nil {
			t.Errorf("%s did not ask for a sign-out and its refresh token is refused: %v", u, err)
		}
	}
}
