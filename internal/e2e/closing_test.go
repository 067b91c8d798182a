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

// emailLimitFault is what Cognito answers once its default email sender
// has sent the day's 50 emails.
var emailLimitFault = awsproxy.Fault{Operation: "AdminResetUserPassword", ErrorCode: "LimitExceededException",
	Message: "Exceeded daily email limit for the operation or the account. If a higher limit is required, please configure your user pool to use your own Amazon SES configuration for sending email."}

// TestIncidentHoldsTheAttackerOut is the security team's scenario: 20
// users whose passwords leaked, Cognito's default email whose daily limit
// (played by the proxy) hits after 5 codes. The attacker signed in with
// every leaked password before the campaign, and tries again 20 s into the
// wait. With `resetq work --incident`, no leaked password signs in during
// the wait, every user ends RESET_REQUIRED once the limit lifts, and no
// refresh token the attacker ever took still refreshes. The same run with
// the old incident flags and no kill (sign-out once, the password alive
// until the code goes) lets the attacker in: the check can fail.
func TestIncidentHoldsTheAttackerOut(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"incident", "sign-out without kill"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := testenv.New(t, "closing")
			pool, users, jobs := e.ConfirmedUsers(e.East, "v", 20)
			client, err := moto.CreateAppClient(ctx, e.East, pool)
			if err != nil {
				t.Fatal(err)
			}
			stolen := map[string][]string{} // refresh tokens the attacker holds, per user
			attack := func() (signedIn []string) {
				for _, u := range users {
					tok, _, err := moto.SignIn(ctx, e.East, pool, client, u, moto.Password)
					if err == nil && tok != "" {
						stolen[u] = append(stolen[u], tok)
						signedIn = append(signedIn, u)
					}
				}
				return signedIn
			}
			if got := attack(); len(got) != len(users) {
				t.Fatalf("before the campaign the attacker signed in as %d of %d", len(got), len(users))
			}
			e.Send("closing", jobs...)
			e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", Count: 5, Delay: time.Millisecond})
			limit := e.Proxy.AddFault(emailLimitFault)
			args := []string{"--email-limit-probe", "30s", "--exit-when-idle", "5s", "--concurrency", "4"}
			if mode == "incident" {
				args = append(args, "--incident")
			} else {
				args = append(args, "--global-sign-out", "--reinvite", "--unreachable", "disable")
			}
			p := e.Start(args...)
			testenv.Eventually(t, time.Minute, "the email limit reached", func() bool {
				return p.Metric(t, `resetq_email_limit_reached{account="`+moto.Account+`",region="us-east-1"}`) == 1
			})
			time.Sleep(20 * time.Second) // the attacker's moment: 20 s into the wait
			in := attack()
			if mode == "incident" && len(in) > 0 {
				t.Errorf("20 s into the wait the leaked password still signs in as %d users: %v", len(in), in)
			}
			if mode != "incident" && len(in) < len(users)-5-4 { // the codes sent, and the calls in flight when the limit hit
				t.Fatalf("without the kill the attacker signed in as only %d users during the wait: the check cannot tell", len(in))
			}
			if mode == "incident" {
				if got := p.Metric(t, `resetq_steps_total{step="password_killed"}`); got < 1 {
					t.Errorf("resetq_steps_total{step=password_killed} = %v", got)
				}
			}
			e.Proxy.RemoveFault(limit)
			if code := p.Wait(t, 3*time.Minute); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users...)
			var refreshed []string
			for u, toks := range stolen {
				for i, tok := range toks {
					if err := moto.Refresh(ctx, e.East, pool, client, tok); err == nil {
						refreshed = append(refreshed, fmt.Sprintf("%s#%d", u, i))
					}
				}
			}
			if len(refreshed) > 0 {
				t.Errorf("after the campaign %d tokens the attacker took still refresh: %v", len(refreshed), refreshed)
			}
			if dl := e.DrainDLQ(); len(dl) != 0 {
				t.Fatalf("%d dead letters, want none", len(dl))
			}
			if mode == "incident" {
				logs := p.Logs()
				if !strings.Contains(logs, "expands_to=") || !strings.Contains(logs, "INCIDENT MODE WITHOUT SIGNED JOBS") {
					t.Errorf("the log does not say what --incident expands to, or does not warn about unsigned jobs")
				}
			}
		})
	}
}

// TestIncidentProvesPermissionsFirst: `resetq work --incident` makes each
// incident call once in each allowed pool before the first job: with the
// sign-out denied it exits 1 naming the action, and no job was touched
// (no user reset, nothing dead-lettered); with every call permitted it
// runs the campaign.
func TestIncidentProvesPermissionsFirst(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "prove")
	pool, users, jobs := e.ConfirmedUsers(e.East, "w", 3)
	e.Send("prove", jobs...)
	deny := e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminUserGlobalSignOut", ErrorCode: "AccessDeniedException",
		Message: "User: arn:aws:sts::123456789012:assumed-role/resetq/w is not authorized to perform: cognito-idp:AdminUserGlobalSignOut"})
	p := e.Start("--incident", "--allow-any-pool=false", "--pool", pool, "--exit-when-idle", "3s")
	if code := p.Wait(t, time.Minute); code != 1 {
		t.Fatalf("exit code %d with the sign-out denied, want 1", code)
	}
	if logs := p.Logs(); !strings.Contains(logs, "AdminUserGlobalSignOut") || !strings.Contains(logs, "denied") {
		t.Errorf("the log does not name the denied call:\n%s", logs)
	}
	e.ExpectStatus(e.East, pool, "CONFIRMED", users...)
	if visible, _, _ := e.Depth(); visible != len(jobs) {
		t.Errorf("%d jobs visible after the refused start, want all %d untouched", visible, len(jobs))
	}
	e.Proxy.RemoveFault(deny)
	p = e.Start("--incident", "--allow-any-pool=false", "--pool", pool, "--exit-when-idle", "3s")
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("exit code %d with every call permitted", code)
	}
	e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users...)
}

// TestEnqueueIncident: `resetq enqueue --incident` asks each job for all
// of incident mode, and a worker started without it honours that: under
// the daily email limit the incident jobs' passwords die while their codes
// wait and their users' tokens are refused after; the job enqueued
// without it waits with its password alive and its token working.
func TestEnqueueIncident(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testenv.New(t, "enqincident")
	p := newIncidentPool(t, e, 3)
	asked, notAsked, stderr := p.enqueueAsking(t, e, "--incident")
	if !strings.Contains(stderr, "WARNING: --incident without --signing-key-file") {
		t.Errorf("enqueue --incident without a key does not warn:\n%s", stderr)
	}
	limit := e.Proxy.AddFault(emailLimitFault)
	proc := e.Start("--email-limit-probe", "10s", "--exit-when-idle", "3s")
	testenv.Eventually(t, time.Minute, "the incident jobs' passwords killed", func() bool {
		return proc.Metric(t, `resetq_steps_total{step="password_killed"}`) >= float64(len(asked))
	})
	for _, u := range asked {
		if tok, _, err := moto.SignIn(ctx, e.East, p.pool, p.client, u, moto.Password); err == nil || tok != "" {
			t.Errorf("%s asked for incident mode and its leaked password still signs in during the wait", u)
		}
	}
	for _, u := range notAsked {
		if _, _, err := moto.SignIn(ctx, e.East, p.pool, p.client, u, moto.Password); err != nil {
			t.Errorf("%s did not ask for incident mode, yet its password was changed during the wait: %v", u, err)
		}
	}
	e.Proxy.RemoveFault(limit)
	if code := proc.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	e.ExpectStatus(e.East, p.pool, "RESET_REQUIRED", p.confirmed...)
	p.expectSignedOut(t, e, asked, notAsked)
}
