package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/testenv"
	qjob "github.com/resetq/resetq/job"
	ddbledger "github.com/resetq/resetq/ledger"
)

// ledgerKill: a campaign with --ledger-table, and workers killed with
// SIGKILL after their claims, in two places each round: while their resets
// are held by the Cognito proxy (claimed, no code gone), and right after
// Cognito answered a reset, before the worker heard (the code gone, not
// recorded), once a second job (another message, another job ID, sent for
// each user the first kill left claimed) has met a dead claim. The claim's
// holder names the job, its message and the delivery; a message SQS
// delivers again (a higher receive count) takes its dead delivery's claim
// over at once, without waiting for the dead holder's lease
// (ledger.DefaultLease, 5 min); it resets a user whose
// code was held, and records the reset of one whose code went (its status
// check finds the user RESET_REQUIRED). The second jobs meet the dead
// holders' claims and are sent back until the redelivery ends the user. A
// second job whose user no redelivery ever ends would wait out the lease:
// the ledger's own tests take a claim over at its lease's end (TestClaim),
// with no 5-minute wait. Every user must be reset exactly once (resets
// answered 200 per user), every reset must follow a claim granted to its
// user, nothing lost, each dead claim taken over by its own message's
// redelivery and never by another job, and every reset recorded.
func ledgerKill(t *testing.T) {
	start := time.Now()
	seed := seedFor(t, 5)
	rep := &scenarioReport{Seed: seed, Faults: map[string]int{}, Notes: map[string]any{}}
	defer record(t, "ledger_kill", rep, start)

	e := testenv.New(t, "ledgerkill")
	tl := &timeline{}
	lp := startLedgerProxy(t, e, tl)
	le := lp.env(e)
	var killOnReset atomic.Pointer[killer]
	rc := watchResets(e.Proxy, tl.cognito, func(c awsproxy.Call) {
		if c.Operation != "AdminResetUserPassword" || c.Status != http.StatusOK {
			return
		}
		if k := killOnReset.Load(); k != nil && k.ready() && killOnReset.CompareAndSwap(k, nil) {
			k.kill(c)
		}
	})
	pool, users, bodies := e.ConfirmedUsers(e.East, "lk", prof.LedgerKillJobs)
	campaign, table := "chaos-ledger-kill", tableFor("ledger-kill")
	args := []string{"--ledger-table", table, "--exit-when-idle", "3s", "--rate", "20", "--concurrency", "8"}
	// The jobs go in parts, one per round and the rest at the end, so that
	// a round's second jobs come right after its kill, not behind the
	// whole campaign, and meet the dead claims before the redeliveries.
	part := prof.LedgerKillHeld + 12
	if prof.LedgerKillRounds*part >= len(bodies) {
		t.Fatalf("%d users are too few for %d rounds of %d", len(bodies), prof.LedgerKillRounds, part)
	}
	rest := bodies

	dead := map[string]grant{} // user -> the claim a killed worker left, and when
	leave := func(at time.Time) (left []string) {
		for u, h := range tl.heldNow() {
			if dead[u].holder != h { // a claim left by an earlier kill keeps its time
				dead[u] = grant{holder: h, at: at}
				left = append(left, u)
			}
		}
		return left
	}
	var secondJobs int
	var (
		mu              sync.Mutex
		codeNotRecorded []string // users whose reset a kill cut off before the worker heard
	)
	for round := range prof.LedgerKillRounds {
		e.Send(campaign, rest[:part]...)
		rest = rest[part:]
		// Claimed, the code held: every reset waits in the Cognito proxy.
		okBefore := rc.OK()
		hold := e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", Delay: time.Hour})
		p := le.Start(args...)
		rep.Workers++
		testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("round %d: %d resets held after their claims", round+1, prof.LedgerKillHeld), func() bool {
			return e.Proxy.Affected(hold) >= prof.LedgerKillHeld || !p.Running()
		})
		if !p.Running() {
			t.Fatalf("round %d: the worker exited (code %d) before its resets were held", round+1, p.Wait(t, time.Second))
		}
		p.Kill(t)
		left := leave(time.Now())
		e.Proxy.RemoveFault(hold)
		// A second job (another message, another job ID) of each user the
		// dead worker holds, first in line for the next worker. A killed
		// worker's long poll still takes what reaches moto until it ends
		// (--exit-when-idle caps it at 3 s): the jobs go after that.
		time.Sleep(deadPoll)
		var seconds []string
		deadHolders := map[string]bool{}
		for _, u := range left {
			_, user, _ := strings.Cut(u, "/")
			seconds = append(seconds, testenv.Job(pool, user))
			deadHolders[dead[u].holder] = true
		}
		e.Send(campaign, seconds...)
		secondJobs += len(seconds)
		rep.Kills++
		rep.Faults["cognito_reset_held"] += e.Proxy.Affected(hold)
		if rc.OK() != okBefore {
			t.Errorf("round %d: %d resets answered while every reset was held", round+1, rc.OK()-okBefore)
		}
		t.Logf("round %d: SIGKILL with %d resets held, %d users claimed by dead workers", round+1, e.Proxy.Affected(hold), len(dead))

		// The code gone, not recorded: killed as Cognito answers a reset,
		// once a second job has met a dead claim.
		p = le.Start(args...)
		rep.Workers++
		killOnReset.Store(&killer{
			ready: func() bool { return tl.refusedBy(deadHolders) > 0 },
			kill: func(c awsproxy.Call) {
				var req struct{ UserPoolId, Username string }
				_ = json.Unmarshal(c.Body, &req)
				mu.Lock()
				codeNotRecorded = append(codeNotRecorded, req.UserPoolId+"/"+req.Username)
				mu.Unlock()
				_ = p.Cmd.Process.Signal(syscall.SIGKILL)
			},
		})
		testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("round %d: the kill as a reset is answered", round+1), func() bool { return !p.Running() })
		if killOnReset.Load() != nil {
			t.Fatalf("round %d: the worker exited (code %d) before a reset", round+1, p.Wait(t, time.Second))
		}
		p.Wait(t, time.Minute)
		leave(time.Now())
		rep.Kills++
		time.Sleep(deadPoll)
		mu.Lock()
		t.Logf("round %d: SIGKILL as the reset of %s was answered", round+1, codeNotRecorded[len(codeNotRecorded)-1])
		mu.Unlock()
	}

	e.Send(campaign, rest...)
	last := le.Start(args...)
	rep.Workers++
	if code := last.Wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("the last worker exited %d", code)
	}
	l := checkLedger(t, e, jobsOf(e.East, pool, users, "reset"), rc)
	rep.fill(l)
	if l.Duplicates != 0 {
		t.Errorf("%d second codes after kills between claim and reset: %v", l.Duplicates, l.DuplicateUsers)
	}
	if l.DuplicateDeadLetters != 0 {
		t.Errorf("%d jobs dead-lettered twice", l.DuplicateDeadLetters)
	}
	a := tl.audit()
	if len(a.Unclaimed) > 0 {
		t.Errorf("%d resets went without a claim granted to their user: %v", len(a.Unclaimed), a.Unclaimed)
	}

	// Each dead claim: taken over by its own message's redelivery (a
	// holder of the same message, at once), or, when the user's code went before the kill (the
	// reset that triggered it, or another the dying worker had under way,
	// recorded or not), its user found reset by the status check; never
	// granted to another job within the lease.
	var takeover []float64
	byStatusCheck, waited := 0, 0
	evs := tl.events()
	for u, d := range dead {
		next, ok := firstGrantAfter(a.Grants[u], d.at)
		switch {
		case !ok && resetBefore(evs, u, d.at):
			byStatusCheck++
		case !ok:
			t.Errorf("%s: the claim of dead job %s was never taken over, and its code did not go before the kill", u, d.holder)
		case messageOf(next.holder) != messageOf(d.holder) && next.at.Sub(d.at) < ddbledger.DefaultLease:
			t.Errorf("%s: claimed by job %s %v after job %s died holding it, within the lease", u, next.holder, next.at.Sub(d.at), d.holder)
		default:
			takeover = append(takeover, next.at.Sub(d.at).Seconds())
		}
		waited += refusedBetween(evs, u, d.holder, d.at)
	}
	if waited == 0 {
		t.Error("no second job met a dead worker's claim: the scenario tested less than it claims")
	}
	rows := ledgerRows(t, e, table, campaign)
	var unrecorded []string
	for _, u := range users {
		if r := rows[pool+"/"+u]; r.Outcome != ddbledger.StepReset {
			unrecorded = append(unrecorded, fmt.Sprintf("%s (outcome %q, holder %q)", u, r.Outcome, r.Holder))
		}
	}
	if len(unrecorded) > 0 {
		t.Errorf("ledger: %d users reset in Cognito whose row records no reset (a redelivery that finds its user RESET_REQUIRED records it): %v", len(unrecorded), unrecorded)
	}
	rep.Notes["messages"] = len(bodies) + secondJobs
	rep.Notes["second_jobs"] = secondJobs
	rep.Notes["claims_left_by_kills"] = len(dead)
	rep.Notes["taken_over_by_redelivery"] = len(takeover)
	rep.Notes["takeover_seconds_max"] = round1(slices.Max(append(takeover, 0)))
	rep.Notes["lease_seconds"] = ddbledger.DefaultLease.Seconds()
	rep.Notes["ended_by_status_check"] = byStatusCheck
	rep.Notes["second_jobs_refused_by_dead_claims"] = waited
	rep.Notes["claims"] = map[string]int{"calls": a.Claims, "granted": a.Granted, "refused": a.Refused, "failed": a.Failed}
	rep.Notes["resets_without_claim"] = len(a.Unclaimed)
	rep.Notes["rows_without_reset"] = len(unrecorded)
	t.Logf("claims: %+v; %d dead claims: %d taken over by their redelivery (at most %.1f s after the kill, lease %v), %d users found reset by the status check; %d refusals of second jobs meanwhile",
		rep.Notes["claims"], len(dead), len(takeover), rep.Notes["takeover_seconds_max"], ddbledger.DefaultLease, byStatusCheck, waited)
}

// deadPoll is how long a killed worker's last long poll may still take
// messages: --exit-when-idle 3s caps the poll's wait at 3 s.
const deadPoll = 4 * time.Second

// killer kills a worker as Cognito answers a reset, once ready.
type killer struct {
	ready func() bool
	kill  func(awsproxy.Call)
}

// resetBefore reports whether a reset of u reached Cognito before at
// (answered or not: it may have taken effect).
func resetBefore(evs []event, u string, at time.Time) bool {
	for _, ev := range evs {
		if ev.call == "reset" && ev.user == u && ev.at.Before(at) && (ev.status == http.StatusOK || ev.status == 0) {
			return true
		}
	}
	return false
}

// firstGrantAfter is the first of gs (in order) after at.
func firstGrantAfter(gs []grant, at time.Time) (grant, bool) {
	for _, g := range gs {
		if g.at.After(at) {
			return g, true
		}
	}
	return grant{}, false
}

// refusedBetween counts the claims of u by other messages than holder's
// that were refused after at, until a delivery of holder's message claimed
// u again.
func refusedBetween(evs []event, u, holder string, at time.Time) int {
	n := 0
	for _, ev := range evs {
		if ev.user != u || ev.call != "claim" || !ev.at.After(at) {
			continue
		}
		if messageOf(ev.holder) == messageOf(holder) {
			return n
		}
		if ev.code == "ConditionalCheckFailedException" {
			n++
		}
	}
	return n
}

// ledgerOutage: mid-campaign the ledger cannot be reached, in one of two
// ways: "5xx" (every call has its connection reset or gets a 500) or
// "throttled" (every call gets ProvisionedThroughputExceededException, and
// the worker runs with a --max-deferral shorter than the outage). The
// ledger's circuit opens (resetq_ledger_circuit_open 1), jobs are sent
// back, no reset goes for a user whose claim failed (the proxies'
// timeline: each reset follows a claim granted to its user), and once the
// ledger answers the same process finishes: every job reset, or
// (throttled) dead-lettered with a reason; nothing lost, no user reset
// twice. The outage begins between two ledger calls, not between a claim
// the table granted and the read that confirms it (ledgerProxy.startOutage),
// except on purpose: in the full profile the 5xx outage begins with claims
// that take effect and whose answers are lost, so the job does not know it
// holds its user and its sent-back copy (another message, so another
// holder) waits for the claim's lease; the figures say how long. They also
// count the rows whose outcome the ledger missed (rows_behind): a reset or
// a dead letter whose record failed during the outage.
func ledgerOutage(t *testing.T, mode string, seed uint64) {
	start := time.Now()
	name := "ledger_outage_" + mode
	rep := &scenarioReport{Seed: seed, Faults: map[string]int{}, Notes: map[string]any{}}
	defer record(t, name, rep, start)

	e := testenv.New(t, "ledgerout")
	tl := &timeline{}
	lp := startLedgerProxy(t, e, tl, awsproxy.WithSeed(seed))
	le := lp.env(e)
	rc := watchResets(e.Proxy, tl.cognito)
	pool, users, bodies := e.ConfirmedUsers(e.East, "lo", prof.LedgerOutageJobs)
	campaign, table := "chaos-"+name, tableFor(name)
	e.Send(campaign, bodies...)
	jobs := jobsOf(e.East, pool, users, "reset")
	outage := time.Duration(prof.LedgerOutageSeconds) * time.Second
	// Paced so that jobs are still to be claimed when the outage begins.
	args := []string{"--ledger-table", table, "--rate", "5", "--concurrency", "8", "--exit-when-idle", "3s", "--circuit-cooldown", "2s"}
	type kind struct {
		name  string
		fault awsproxy.Fault
	}
	var kinds []kind
	switch mode {
	case "5xx":
		if n := prof.LedgerClaimAnswersLost; n > 0 {
			kinds = append(kinds, kind{"ledger_claim_answer_lost", awsproxy.Fault{Operation: "UpdateItem", BodyContains: "claimed_at", Count: n, DropResponse: true}})
		}
		kinds = append(kinds,
			kind{"ledger_connection_reset", awsproxy.Fault{Share: 0.5, ResetConnection: true}},
			kind{"ledger_5xx", awsproxy.Fault{ErrorCode: "InternalServerError", Status: http.StatusInternalServerError}})
	case "throttled":
		args = append(args, "--max-deferral", (outage / 2).String())
		for i := range jobs {
			// circuit_open: the ledger's circuit keeps no reason of its
			// own (the worker's breaker stores MetricCode's "other"), so
			// a job the open circuit refused, not one whose own claim
			// failed, is dead-lettered as circuit_open. Counted by reason
			// in the figures.
			jobs[i].also = []string{qjob.ReasonLedgerUnavailable, qjob.ReasonCircuitOpen}
		}
		kinds = []kind{{"ledger_throttled", awsproxy.Fault{ErrorCode: "ProvisionedThroughputExceededException", Status: http.StatusBadRequest,
			Message: "The level of configured provisioned throughput for the table was exceeded."}}}
	default:
		t.Fatalf("unknown mode %q", mode)
	}

	p := le.Start(args...)
	rep.Workers++
	testenv.Eventually(t, 2*time.Minute, "a few resets before the outage", func() bool { return rc.OK() >= 5 || !p.Running() })
	if v := p.Metric(t, "resetq_ledger_circuit_open"); v != 0 {
		t.Errorf("resetq_ledger_circuit_open = %v before the outage, want 0", v)
	}
	faults := make([]awsproxy.Fault, len(kinds))
	for i, k := range kinds {
		faults[i] = k.fault
	}
	ids := lp.startOutage(faults...)
	from := time.Now()
	deferred := `resetq_jobs_total{outcome="deferred"}`
	testenv.Eventually(t, 2*time.Minute, "resetq_ledger_circuit_open 1 while the ledger cannot be reached", func() bool {
		return p.Metric(t, "resetq_ledger_circuit_open") == 1 || !p.Running()
	})
	// The outage lasts from the circuit's opening: a throttled claim
	// keeps trying (the ledger's tries and the SDK's) for up to the call
	// timeout first.
	opened := time.Now()
	testenv.Eventually(t, 3*time.Minute, fmt.Sprintf("an outage of %v with jobs sent back", outage), func() bool {
		return time.Since(opened) >= outage && p.Metric(t, deferred) > 0 || !p.Running()
	})
	if !p.Running() {
		t.Fatalf("resetq exited (code %d) during the ledger outage; it must wait it out", p.Wait(t, time.Second))
	}
	if v := p.Metric(t, "resetq_ledger_circuit_open"); v != 1 {
		t.Errorf("resetq_ledger_circuit_open = %v at the end of the outage, want 1", v)
	}
	sentBack := p.Metric(t, deferred)
	if v := p.Metric(t, `resetq_ledger_calls_total{call="claim",result="error"}`); v <= 0 {
		t.Errorf("resetq_ledger_calls_total{call=\"claim\",result=\"error\"} = %v after the outage, want claims failed", v)
	}
	for _, id := range ids {
		lp.RemoveFault(id)
	}
	to := time.Now()
	for i, k := range kinds {
		rep.Faults[k.name] = lp.Affected(ids[i])
	}
	testenv.Eventually(t, 3*time.Minute, "resetq_ledger_circuit_open 0 once the ledger answers again", func() bool {
		return p.Metric(t, "resetq_ledger_circuit_open") == 0 || !p.Running()
	})
	if code := p.Wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("resetq exited %d after the ledger outage, want 0 once the campaign is done", code)
	}

	l := checkLedger(t, e, jobs, rc)
	rep.fill(l)
	if l.Duplicates != 0 {
		t.Errorf("%d users got a second code after the ledger outage: %v", l.Duplicates, l.DuplicateUsers)
	}
	if l.DuplicateDeadLetters != 0 {
		t.Errorf("%d jobs dead-lettered twice", l.DuplicateDeadLetters)
	}
	byReason := map[string]int{}
	for _, d := range e.PeekDLQ() {
		byReason[d.Attrs["resetq.reason"]]++
	}
	if mode == "throttled" && l.DeadLettered == 0 {
		t.Errorf("no job dead-lettered although the outage outlasted --max-deferral %v", outage/2)
	}
	if n := byReason[qjob.ReasonCircuitOpen]; n > 0 {
		t.Logf("%d jobs dead-lettered by the ledger's circuit as %s, not %s", n, qjob.ReasonCircuitOpen, qjob.ReasonLedgerUnavailable)
	}
	a := tl.audit()
	if len(a.Unclaimed) > 0 {
		t.Errorf("%d resets went without a claim granted to their user: %v", len(a.Unclaimed), a.Unclaimed)
	}
	if a.Failed == 0 {
		t.Error("no claim failed: the outage tested nothing")
	}
	var waits []float64
	for _, w := range a.OwnWaits {
		waits = append(waits, w.Seconds())
		if w > ddbledger.DefaultLease+time.Minute {
			t.Errorf("a job waited %v for its user, held by a claim of its own earlier message: longer than the lease", w)
		}
	}
	rows := ledgerRows(t, e, table, campaign)
	behind := 0
	for _, j := range jobs {
		r := rows[j.key()]
		want := ddbledger.StepReset
		if e.Status(e.East, pool, j.user) != "RESET_REQUIRED" {
			want = ddbledger.StepDeadLettered
		}
		if r.Outcome != want {
			behind++
			t.Logf("ledger: %s ended %s, its row records %q (holder %q)", j.key(), want, r.Outcome, r.Holder)
		}
	}
	calls := tl.ledgerCalls(from, to)
	rep.Notes["outage_seconds"] = round1(to.Sub(from).Seconds())
	rep.Notes["seconds_to_circuit_open"] = round1(opened.Sub(from).Seconds())
	rep.Notes["jobs_sent_back_during_outage"] = sentBack
	rep.Notes["ledger_calls_during_outage"] = calls
	rep.Notes["resets_during_outage"] = tl.resetsBetween(from, to)
	rep.Notes["claims"] = map[string]int{"calls": a.Claims, "granted": a.Granted, "refused": a.Refused, "failed": a.Failed}
	rep.Notes["resets_without_claim"] = len(a.Unclaimed)
	rep.Notes["copies_refused_by_own_claim"] = a.OwnRefusals
	rep.Notes["own_claim_wait_seconds_max"] = round1(slices.Max(append(waits, 0)))
	rep.Notes["rows_behind"] = behind
	if len(byReason) > 0 {
		rep.Notes["dead_letters_by_reason"] = byReason
	}
	t.Logf("%s outage of %v: %v jobs sent back, ledger calls %v, %d resets during it (each after a granted claim), claims %+v; %d rows whose outcome the ledger missed",
		mode, to.Sub(from).Round(time.Millisecond), sentBack, calls, rep.Notes["resets_during_outage"], rep.Notes["claims"], behind)
}

// ledgerRows reads a campaign's rows straight from moto, by pool/user.
func ledgerRows(t *testing.T, e *testenv.Env, table, campaign string) map[string]ddbledger.Row {
	t.Helper()
	l, err := ddbledger.New(dynamodb.NewFromConfig(e.East), ddbledger.Config{Table: table, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]ddbledger.Row{}
	if err := l.Rows(context.Background(), campaign, func(r ddbledger.Row) error {
		rows[r.Pool+"/"+r.User] = r // Rows calls one at a time
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

// tableFor is a ledger table of the scenario's own.
func tableFor(scenario string) string {
	return "chaos-" + scenario + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
