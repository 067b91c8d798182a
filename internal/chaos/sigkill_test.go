package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/testenv"
)

// killRate paces the SIGKILL campaign (resets per second) so that the kills
// land in the middle of it, not after the last job.
const killRate = 15

// sigkillLoop: one campaign, and the worker is killed with SIGKILL at
// random moments (seeded: at a random number of resets done, plus a random
// few hundred milliseconds), several times, and restarted each time. A kill
// leaves jobs received and not finished, and resets whose delete is still
// waiting in the delete batch: SQS delivers them again after the
// visibility timeout, and the redelivery check must keep those users from
// a second code. The ledger must show zero lost and, with the check on,
// zero duplicates.
func sigkillLoop(t *testing.T) {
	start := time.Now()
	seed := seedFor(t, 1)
	rng := rand.New(rand.NewPCG(seed, seed^0x5a))
	rep := &scenarioReport{Seed: seed, Faults: map[string]int{}, Notes: map[string]any{}}
	defer record(t, "sigkill", rep, start)

	e := testenv.New(t, "sigkill")
	rc := watchResets(e.Proxy)
	pool, users, bodies := e.ConfirmedUsers(e.East, "k", prof.KillJobs)
	e.Send("chaos-sigkill", bodies...)

	points := killPoints(rng, prof.KillJobs, prof.Kills, prof.KillUpTo)
	t.Logf("kills after %v resets", points)
	var at []string
	for i, point := range points {
		p := e.Start("--rate", strconv.Itoa(killRate), "--exit-when-idle", "3s")
		rep.Workers++
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
		if done >= prof.KillJobs {
			t.Fatalf("kill %d came after the whole campaign was reset: it tested nothing", i+1)
		}
	}
	rep.Notes["killed_at"] = at

	last := e.Start("--rate", strconv.Itoa(killRate), "--exit-when-idle", "3s")
	rep.Workers++
	if code := last.Wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("the last worker exited %d", code)
	}
	l := checkLedger(t, e, jobsOf(e.East, pool, users, "reset"), rc)
	rep.fill(l)
	if l.DuplicateDeadLetters != 0 {
		t.Errorf("%d jobs dead-lettered twice after a kill", l.DuplicateDeadLetters)
	}
	if l.Duplicates != 0 {
		t.Errorf("%d users got a second code after a kill, with --redelivery-check on: %v", l.Duplicates, l.DuplicateUsers)
	}
	if l.Checks == 0 {
		t.Error("no redelivery check reached Cognito: no kill left a job to be delivered again, so the scenario tested less than it claims")
	}
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
