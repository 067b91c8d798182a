package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

// killRate paces the SIGKILL campaign (resets per second) so that the kills
// land in the middle of it, not after the last job.
const killRate = 15

// sigkillLoop: one campaign, and the worker is killed with SIGKILL at
// random moments (seeded: at a random number of resets done, plus a random
// few hundred milliseconds), several times, and restarted each time. Every
// other kill lands instead right after a dead letter: the SQS proxy kills
// the worker as soon as the DLQ has taken a record, before the worker hears
// so, so the job is delivered again and dead-lettered again. A kill leaves
// jobs received and not finished, and resets whose delete is still waiting
// in the delete batch: SQS delivers them again after the visibility
// timeout, and the status check must keep those users from a second code.
// The ledger must show zero lost, zero duplicate resets and one dead letter
// per job (records of one job share its resetq.job-id).
func sigkillLoop(t *testing.T) {
	start := time.Now()
	seed := seedFor(t, 1)
	rng := rand.New(rand.NewPCG(seed, seed^0x5a))
	rep := &scenarioReport{Seed: seed, Faults: map[string]int{}, Notes: map[string]any{}}
	defer record(t, "sigkill", rep, start)

	e := testenv.New(t, "sigkill")
	rc := watchResets(e.Proxy)
	rc.wantSignOut = true
	// One user in five cannot be reset: no verified contact, or never
	// signed in. Their jobs are dead-lettered throughout the campaign.
	states := map[string]moto.UserState{}
	var users []string
	var ledgerJobs []job
	for i := range prof.KillJobs {
		u, st, want := fmt.Sprintf("k%03d", i), moto.Confirmed, "reset"
		switch i % 10 {
		case 3:
			u, st, want = fmt.Sprintf("n%03d", i), moto.ConfirmedNoContact, "InvalidParameterException"
		case 8:
			u, st, want = fmt.Sprintf("u%03d", i), moto.Unconfirmed, "NotAuthorizedException"
		}
		states[u] = st
		users = append(users, u)
		ledgerJobs = append(ledgerJobs, job{cfg: e.East, user: u, want: want})
	}
	pool := e.Pool(e.East, states)
	var bodies []string
	for i, u := range users {
		bodies = append(bodies, testenv.Job(pool, u))
		ledgerJobs[i].pool = pool
	}
	e.Send("chaos-sigkill", bodies...)

	// killAfterDLQ, when set, is called once as soon as the DLQ has taken
	// a record, before the worker has the answer.
	var killAfterDLQ atomic.Pointer[func()]
	dlqName := []byte("/" + path.Base(e.DLQURL) + `"`)
	e.ProxySQS().SetObserver(func(c awsproxy.Call) {
		if c.Status == 200 && (c.Operation == "SendMessage" || c.Operation == "SendMessageBatch") && bytes.Contains(c.Body, dlqName) {
			if f := killAfterDLQ.Swap(nil); f != nil {
				(*f)()
			}
		}
	})

	points := killPoints(rng, prof.KillJobs*4/5, prof.Kills, prof.KillUpTo)
	t.Logf("kills after %v resets, every other one right after a dead letter instead", points)
	var at []string
	for i, point := range points {
		p := e.Start("--rate", strconv.Itoa(killRate), "--exit-when-idle", "3s", "--global-sign-out")
		rep.Workers++
		if i%2 == 1 {
			kill := func() { _ = p.Cmd.Process.Signal(syscall.SIGKILL) }
			killAfterDLQ.Store(&kill)
			testenv.Eventually(t, 3*time.Minute, fmt.Sprintf("kill %d after a dead letter", i+1), func() bool { return !p.Running() })
			if killAfterDLQ.Load() != nil {
				t.Fatalf("the worker exited (code %d) before a dead letter: the campaign is too short for the kills", p.Wait(t, time.Second))
			}
			p.Wait(t, time.Minute) // killed by the observer
			rep.Kills++
			at = append(at, "right after a dead letter")
			t.Logf("kill %d: SIGKILL right after a dead letter, %d resets", i+1, rc.OK())
			continue
		}
		testenv.Eventually(t, 3*time.Minute, fmt.Sprintf("%d resets before kill %d", point, i+1), func() bool {
			return rc.OK() >= point || !p.Running()
		})
		if !p.Running() {
			t.Fatalf("the worker exited (code %d) before kill %d: the campaign is too short for the kills", p.Wait(t, time.Second), i+1)
		}
		// The random moment itself, not a wait for the system: somewhere
		// between resets, deletes and receives.
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		done := rc.OK()
		_, inflight, _ := e.Depth()
		p.Kill(t)
		rep.Kills++
		at = append(at, fmt.Sprintf("%d resets, %d in flight", done, inflight))
		t.Logf("kill %d: SIGKILL after %d resets, %d messages in flight", i+1, done, inflight)
		if done >= prof.KillJobs*4/5 {
			t.Fatalf("kill %d came after the whole campaign was reset: it tested nothing", i+1)
		}
	}
	rep.Notes["killed_at"] = at

	last := e.Start("--rate", strconv.Itoa(killRate), "--exit-when-idle", "3s", "--global-sign-out")
	rep.Workers++
	if code := last.Wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("the last worker exited %d", code)
	}
	l := checkLedger(t, e, ledgerJobs, rc)
	rep.fill(l)
	rep.Notes["dlq_records_of_one_job"] = l.DuplicateRecords
	if l.DuplicateDeadLetters != 0 {
		t.Errorf("%d jobs dead-lettered twice after a kill (two job IDs for one job)", l.DuplicateDeadLetters)
	}
	if l.Duplicates != 0 {
		t.Errorf("%d users got a second code after a kill, with the status check on: %v", l.Duplicates, l.DuplicateUsers)
	}
	if l.Checks == 0 {
		t.Error("no status check reached Cognito: the scenario tested less than it claims")
	}
	redriveOnePerJob(t, e, l.DeadLettered)
}

// redriveOnePerJob redrives the whole DLQ to the source queue with the
// resetq binary and checks that it made one job of each dead-lettered job,
// however many records a kill left of it.
func redriveOnePerJob(t *testing.T, e *testenv.Env, deadLettered int) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), "dlq", "redrive", "--queue-url", e.QueueURL, "--max-rate", "0")
	cmd.Env = e.ChildEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dlq redrive: %v\n%s", err, out)
	}
	perUser := map[string]int{}
	for {
		r, err := e.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &e.QueueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			break
		}
		for _, m := range r.Messages {
			perUser[aws.ToString(m.Body)]++
			if _, err := e.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &e.QueueURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(perUser) != deadLettered {
		t.Errorf("redrive gave jobs for %d users, want the %d dead-lettered ones\n%s", len(perUser), deadLettered, out)
	}
	for body, n := range perUser {
		if n != 1 {
			t.Errorf("redrive gave %d jobs for %s, want one", n, body)
		}
	}
	t.Logf("redrive: %d jobs back on the queue, one each: %s", len(perUser), strings.TrimSpace(string(out)))
}

// killPoints picks n reset counts between 5% and upTo% of jobs, at least
// 3 apart, in increasing order. The messages a kill leaves hidden come back
// only after the visibility timeout (at least 30 s: resetq receives with
// no less), so the quick profile kills in the first half of the campaign,
// while the next worker still has visible jobs to do meanwhile.
func killPoints(rng *rand.Rand, jobs, n, upTo int) []int {
	lo, hi := max(1, jobs/20), jobs*upTo/100
	for {
		var pts []int
		for range n {
			pts = append(pts, lo+rng.IntN(hi-lo+1))
		}
		slices.Sort(pts)
		ok := true
		for i := 1; i < len(pts); i++ {
			if pts[i]-pts[i-1] < 3 {
				ok = false
			}
		}
		if ok {
			return pts
		}
	}
}
