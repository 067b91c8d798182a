package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

// job is one job a scenario sent, and what must become of it: "reset", or
// the resetq.reason of its dead letter; also, the other ends allowed where
// timing decides (a job deferred past --max-deferral).
type job struct {
	cfg        aws.Config // the pool's Region
	pool, user string
	want       string
	also       []string
}

func (j job) key() string { return j.pool + "/" + j.user }

// allows reports whether end ("reset" or a DLQ reason) is what j may become.
func (j job) allows(end string) bool { return end == j.want || slices.Contains(j.also, end) }

// jobsOf makes the ledger entries of users of one pool.
func jobsOf(cfg aws.Config, pool string, users []string, want string) []job {
	out := make([]job, len(users))
	for i, u := range users {
		out[i] = job{cfg: cfg, pool: pool, user: u, want: want}
	}
	return out
}

// resetCalls counts, per user, the AdminResetUserPassword calls that
// reached Cognito (moto, through the proxy) and the AdminGetUser calls of
// the redelivery check. moto does not say whether a user was reset twice
// (an already RESET_REQUIRED user is reset again without a trace), so this
// is how the suite counts duplicates: a user whose reset was answered 200
// twice got two codes.
type resetCalls struct {
	mu        sync.Mutex
	ok        map[string]int // pool/user -> resets answered 200
	ambiguous int            // resets forwarded but not answered (the caller went away first)
	checks    int            // AdminGetUser calls forwarded
	signedOut map[string]int // pool/user -> AdminUserGlobalSignOut answered 200
	// wantSignOut makes the ledger require a sign-out of every user reset.
	wantSignOut bool
}

// watchResets observes the Cognito proxy, and passes each call on to also
// (the proxy takes one observer).
func watchResets(p *awsproxy.Server, also ...func(awsproxy.Call)) *resetCalls {
	rc := &resetCalls{ok: map[string]int{}, signedOut: map[string]int{}}
	p.SetObserver(func(c awsproxy.Call) {
		rc.observe(c)
		for _, f := range also {
			f(c)
		}
	})
	return rc
}

func (rc *resetCalls) observe(c awsproxy.Call) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch c.Operation {
	case "AdminGetUser":
		rc.checks++
	case "AdminUserGlobalSignOut":
		var req struct{ UserPoolId, Username string }
		if json.Unmarshal(c.Body, &req) == nil && c.Status == 200 {
			rc.signedOut[req.UserPoolId+"/"+req.Username]++
		}
	case "AdminResetUserPassword":
		var req struct{ UserPoolId, Username string }
		if err := json.Unmarshal(c.Body, &req); err != nil {
			panic(fmt.Sprintf("chaos: AdminResetUserPassword body %q: %v", c.Body, err))
		}
		switch {
		case c.Status == 200:
			rc.ok[req.UserPoolId+"/"+req.Username]++
		case c.Status == 0:
			rc.ambiguous++
		}
	}
}

// OK is the number of resets answered 200 so far.
func (rc *resetCalls) OK() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, v := range rc.ok {
		n += v
	}
	return n
}

// ledger is the outcome of a campaign.
type ledger struct {
	Jobs, Reset, DeadLettered, Lost, Ambiguous, Checks int
	Duplicates                                         int      // resets answered OK beyond the first, per user
	DuplicateDeadLetters                               int      // dead-lettered jobs beyond the first, per user (distinct resetq.job-id)
	DuplicateRecords                                   int      // DLQ records beyond the first of one job (same resetq.job-id), which the dlq commands count once
	DuplicateUsers                                     []string // who, for the log

}

// checkLedger ends every scenario, once the workers are done: each job is
// either its user RESET_REQUIRED or exactly one DLQ message with a reason
// (the one it wants), the source queue holds nothing visible, in flight or
// delayed, and the DLQ holds nothing else. A job lost, in the wrong place
// or in two places fails the test. Duplicates (a user reset twice, a job
// dead-lettered twice) are counted, not failed on: the caller decides. It
// leaves the DLQ as it found it.
func checkLedger(t *testing.T, e *testenv.Env, jobs []job, rc *resetCalls) ledger {
	t.Helper()
	l := ledger{Jobs: len(jobs)}
	if v, f, d := e.Depth(); v+f+d != 0 {
		t.Errorf("ledger: the source queue still holds %d visible, %d in flight, %d delayed", v, f, d)
	}
	byKey := map[string]job{}
	for _, j := range jobs {
		if _, dup := byKey[j.key()]; dup {
			t.Fatalf("ledger: job %s listed twice", j.key())
		}
		byKey[j.key()] = j
	}
	dead := map[string][]string{}          // key -> reasons, one per job ID
	jobIDs := map[string]map[string]bool{} // key -> job IDs seen
	for _, d := range e.PeekDLQ() {
		var body struct{ UserPoolId, Username string }
		_ = json.Unmarshal([]byte(d.Body), &body)
		k := body.UserPoolId + "/" + body.Username
		if _, ok := byKey[k]; !ok {
			t.Errorf("ledger: DLQ message %q is no job of this campaign (attributes %v)", d.Body, d.Attrs)
			continue
		}
		if d.Attrs["resetq.reason"] == "" {
			t.Errorf("ledger: DLQ message %q has no resetq.reason (SQS's own redrive after maxReceiveCount?): %v", d.Body, d.Attrs)
		}
		id := d.Attrs["resetq.job-id"]
		if id == "" {
			t.Errorf("ledger: DLQ message %q has no resetq.job-id: %v", d.Body, d.Attrs)
		}
		if jobIDs[k] == nil {
			jobIDs[k] = map[string]bool{}
		}
		if id != "" && jobIDs[k][id] {
			l.DuplicateRecords++ // the same job dead-lettered again after a kill: one job
			continue
		}
		jobIDs[k][id] = true
		dead[k] = append(dead[k], d.Attrs["resetq.reason"])
	}
	ctx := context.Background()
	for _, j := range jobs {
		status, err := moto.UserStatus(ctx, j.cfg, j.pool, j.user)
		reset := err == nil && status == "RESET_REQUIRED"
		reasons := dead[j.key()]
		switch {
		case reset && len(reasons) == 0:
			l.Reset++
			if !j.allows("reset") {
				t.Errorf("ledger: %s was reset, want dead-lettered as %s", j.key(), j.want)
			}
		case !reset && len(reasons) == 1:
			l.DeadLettered++
			if !j.allows(reasons[0]) {
				t.Errorf("ledger: %s dead-lettered as %q, want %s", j.key(), reasons[0], j.want)
			}
		case !reset && len(reasons) == 0:
			l.Lost++
			t.Errorf("ledger: LOST %s: user is %q (%v) and no DLQ message", j.key(), status, err)
		case !reset && len(reasons) > 1:
			// The job was forked (sent back as a copy while the delete
			// of the original failed) and both copies dead-lettered:
			// counted like a duplicate reset, for the caller to judge.
			l.DeadLettered++
			l.DuplicateDeadLetters += len(reasons) - 1
			l.DuplicateUsers = append(l.DuplicateUsers, fmt.Sprintf("%s dead-lettered x%d %v", j.key(), len(reasons), reasons))
			for _, r := range reasons {
				if !j.allows(r) {
					t.Errorf("ledger: %s dead-lettered as %q, want %s", j.key(), r, j.want)
				}
			}
		default:
			t.Errorf("ledger: %s ended in more than one place: reset=%v, DLQ reasons %v", j.key(), reset, reasons)
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.wantSignOut {
		for _, j := range jobs {
			if j.want == "reset" && rc.signedOut[j.key()] == 0 {
				t.Errorf("ledger: %s was reset without its sign-out reaching Cognito", j.key())
			}
		}
	}
	for k, n := range rc.ok {
		if n > 1 {
			l.Duplicates += n - 1
			l.DuplicateUsers = append(l.DuplicateUsers, fmt.Sprintf("%s x%d", k, n))
		}
	}
	l.Ambiguous, l.Checks = rc.ambiguous, rc.checks
	t.Logf("ledger: %d jobs: %d reset, %d dead-lettered, %d lost; %d duplicate resets and %d duplicate dead letters %v; %d DLQ records of a job already there; %d resets cut off unanswered; %d status checks",
		l.Jobs, l.Reset, l.DeadLettered, l.Lost, l.Duplicates, l.DuplicateDeadLetters, l.DuplicateUsers, l.DuplicateRecords, l.Ambiguous, l.Checks)
	return l
}

// fill copies a ledger into a scenario report.
func (r *scenarioReport) fill(l ledger) {
	r.Jobs, r.Reset, r.DeadLettered, r.Lost = l.Jobs, l.Reset, l.DeadLettered, l.Lost
	r.Duplicates, r.DuplicateDeadLetters, r.Ambiguous, r.Checks = l.Duplicates, l.DuplicateDeadLetters, l.Ambiguous, l.Checks
}
