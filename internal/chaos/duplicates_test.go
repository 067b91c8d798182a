package chaos

import (
	"testing"
	"time"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/testenv"
)

// lostAnswer: a reset reaches Cognito and takes effect, but its answer is
// lost (the connection reset after the request was sent, or a timeout).
// The worker cannot know; the user must still not get a second code. The
// suite found this one: the job was sent back as a fresh copy (receive
// count 1, so no redelivery check) and the user reset twice. Fixed in
// 8e769a9 (a sent-back copy is checked like a redelivery).
func lostAnswer(t *testing.T) {
	e := testenv.New(t, "ambiguous")
	rc := watchResets(e.Proxy)
	pool, users, bodies := e.ConfirmedUsers(e.East, "a", 1)
	e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", Count: 1, DropResponse: true})
	e.Send("chaos-ambiguous", bodies...)

	p := e.Start("--exit-when-idle", "3s")
	if code := p.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d", code)
	}
	l := checkLedger(t, e, jobsOf(e.East, pool, users, "reset"), rc)
	if l.Duplicates != 0 {
		t.Errorf("the user got %d codes: the reset whose answer was lost was sent again without checking the user's status", l.Duplicates+1)
	}
}

// failedDelete: a job fails transiently and is sent back as a copy, and
// every try to delete the original fails. The original comes back after
// its visibility timeout; the job must still end once: for a user that
// does not exist, one dead letter, not two (a redrive would run both). The
// suite found this one too; fixed in 8e769a9 (the worker remembers the
// jobs that ended with a failed delete and deletes them when they return).
func failedDelete(t *testing.T) {
	e := testenv.New(t, "fork")
	sqsProxy := e.ProxySQS()
	rc := watchResets(e.Proxy)
	pool := e.Pool(e.East, nil)
	e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", Count: 1, ErrorCode: "InternalErrorException", Status: 500})
	sqsProxy.AddFault(awsproxy.Fault{Operation: "DeleteMessageBatch", Count: 3, FailEntries: 10})
	e.Send("chaos-fork", testenv.Job(pool, "ghost"))

	p := e.Start("--exit-when-idle", "3s")
	if code := p.Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit %d", code)
	}
	l := checkLedger(t, e, []job{{cfg: e.East, pool: pool, user: "ghost", want: "UserNotFoundException"}}, rc)
	if l.DuplicateDeadLetters != 0 {
		t.Errorf("one job, %d dead letters", l.DuplicateDeadLetters+1)
	}
}

// hungSend: SQS holds the first sends (requeues and dead letters) without
// an answer, as a hung connection does. Each must give up after a while
// and its job come back later; the worker must finish the campaign. A
// handler stuck on a send would hold its job, and its slot, until
// shutdown: sends give up after the worker's call timeout.
func hungSend(t *testing.T) {
	e := testenv.New(t, "hungsend")
	sqsProxy := e.ProxySQS()
	rc := watchResets(e.Proxy)
	pool, users, bodies := e.ConfirmedUsers(e.East, "h", 4)
	jobs := jobsOf(e.East, pool, users, "reset")
	for _, u := range []string{"ghost0", "ghost1"} {
		bodies = append(bodies, testenv.Job(pool, u))
		jobs = append(jobs, job{cfg: e.East, pool: pool, user: u, want: "UserNotFoundException"})
	}
	e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", BodyContains: `"Username":"h0`, Count: 4,
		ErrorCode: "InternalErrorException", Status: 500})
	sqsProxy.AddFault(awsproxy.Fault{Operation: "SendMessage", Count: 3, Delay: time.Hour})
	e.Send("chaos-hungsend", bodies...)

	p := e.Start("--exit-when-idle", "3s")
	if code := p.Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit %d", code)
	}
	checkLedger(t, e, jobs, rc)
}
