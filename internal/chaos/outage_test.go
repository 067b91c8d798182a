package chaos

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/testenv"
)

// outageFailures is how many receive failures in a row the outage lasts:
// enough for the backoff to show (at least 0.5+1 s of waiting between
// them, plus the SDK's own retries of each).
const outageFailures = 3

// sdkAttempts is the SQS client's attempts per call (the SDK's standard
// retryer, which resetq keeps for SQS).
const sdkAttempts = 3

// sqsOutage: mid-campaign SQS stops answering for several receive
// attempts, in one of two modes: every call of the worker's has its
// connection reset ("reset"), or every call is held without an answer
// ("hang", a black hole: the proxy stops forwarding). /readyz turns 503,
// the process stays up, its receive attempts are bounded by its backoff
// (no spin), and when SQS answers again /readyz turns 200 and the same
// process finishes the campaign: zero lost, zero duplicates.
func sqsOutage(t *testing.T, mode string, seed uint64) {
	start := time.Now()
	rep := &scenarioReport{Seed: seed, Notes: map[string]any{}}
	defer record(t, "sqs_outage_"+mode, rep, start)

	e := testenv.New(t, "outage")
	sqsProxy := e.ProxySQS(awsproxy.WithSeed(seed))
	rc := watchResets(e.Proxy)
	pool, users, bodies := e.ConfirmedUsers(e.East, "o", prof.OutageJobs)
	e.Send("chaos-outage", bodies...)

	p := e.Start("--rate", "8", "--exit-when-idle", "3s")
	rep.Workers++
	testenv.Eventually(t, 2*time.Minute, "a few resets before the outage", func() bool { return rc.OK() >= 5 || !p.Running() })
	if code := p.Ready(); code != http.StatusOK {
		t.Fatalf("/readyz = %d before the outage, want 200", code)
	}

	failuresWanted := outageFailures
	fault := awsproxy.Fault{ResetConnection: true}
	if mode == "hang" {
		// Each failure takes a whole poll timeout here: fewer of them.
		failuresWanted = 2
		fault = awsproxy.Fault{Delay: time.Hour}
	}
	before := sqsProxy.Stats().Forwarded["ReceiveMessage"]
	outageStart := time.Now()
	outage := sqsProxy.AddFault(fault)
	testenv.Eventually(t, 2*time.Minute, "/readyz to turn 503 while SQS is unreachable", func() bool {
		return p.Ready() == http.StatusServiceUnavailable || !p.Running()
	})
	testenv.Eventually(t, 3*time.Minute, fmt.Sprintf("%d receive failures in a row", failuresWanted), func() bool {
		return receiveFailures(p.Logs()) >= failuresWanted || !p.Running()
	})
	if !p.Running() {
		t.Fatalf("resetq exited (code %d) during the SQS outage; it must wait it out", p.Wait(t, time.Second))
	}
	if code := p.Ready(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d during the outage, want 503", code)
	}
	failures := receiveFailures(p.Logs())
	attempts := sqsProxy.Stats().Faulted["ReceiveMessage"]
	sqsProxy.RemoveFault(outage)
	outageFor := time.Since(outageStart)
	rep.Faults = map[string]int{"sqs_outage_" + mode: sqsProxy.Affected(outage)}

	// Bounded: each failed receive is at most sdkAttempts HTTP attempts,
	// and the backoff leaves room for only so many failures in the time
	// the outage lasted (a spinning loop would make hundreds).
	bound := sdkAttempts * (maxFailuresWithin(outageFor) + 1)
	t.Logf("%s outage of %v: %d receive failures logged, %d ReceiveMessage attempts reached the proxy (bound %d), %d calls of all kinds disturbed",
		mode, outageFor.Round(time.Millisecond), failures, attempts, bound, rep.Faults["sqs_outage_"+mode])
	if attempts > bound {
		t.Errorf("%d ReceiveMessage attempts in %v of outage, more than the backoff allows (%d): the receive loop spins", attempts, outageFor, bound)
	}
	if attempts > sdkAttempts*(failures+1) {
		t.Errorf("%d ReceiveMessage attempts for %d failures logged", attempts, failures)
	}
	rep.Notes["outage_seconds"] = outageFor.Round(100 * time.Millisecond).Seconds()
	rep.Notes["receive_failures_logged"] = failures
	rep.Notes["receive_attempts_during_outage"] = attempts

	testenv.Eventually(t, 3*time.Minute, "/readyz to turn 200 once SQS answers again", func() bool {
		return p.Ready() == http.StatusOK || !p.Running()
	})
	if sqsProxy.Stats().Forwarded["ReceiveMessage"] <= before {
		t.Error("no receive reached SQS after the outage")
	}
	if code := p.Wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("resetq exited %d after the outage, want 0 once the campaign is done", code)
	}
	if !strings.Contains(p.Logs(), "receive works again") {
		t.Error("the log does not say that receiving recovered")
	}
	l := checkLedger(t, e, jobsOf(e.East, pool, users, "reset"), rc)
	rep.fill(l)
	if l.DuplicateDeadLetters != 0 {
		t.Errorf("%d jobs dead-lettered twice after the outage", l.DuplicateDeadLetters)
	}
	if l.Duplicates != 0 {
		t.Errorf("%d users got a second code after the outage: %v", l.Duplicates, l.DuplicateUsers)
	}
}

var failuresRE = regexp.MustCompile(`receive failed; retrying.* failures=(\d+)`)

// receiveFailures is the longest run of receive failures in the log.
func receiveFailures(logs string) int {
	n := 0
	for _, m := range failuresRE.FindAllStringSubmatch(logs, -1) {
		v, _ := strconv.Atoi(m[1])
		n = max(n, v)
	}
	return n
}

// maxFailuresWithin is the most receive failures the worker's backoff
// (1 s doubling to 30 s, each wait at least half of that) allows in d.
func maxFailuresWithin(d time.Duration) int {
	n, waited := 1, time.Duration(0)
	for step := time.Second; ; step = min(2*step, 30*time.Second) {
		waited += step / 2
		if waited > d {
			return n
		}
		n++
	}
}
