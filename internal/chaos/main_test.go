package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/testenv"
)

// profile sizes the scenarios. quick runs in `make test`; full in `make chaos`.
type profile struct {
	Name       string `json:"name"`
	KillJobs   int    `json:"kill_jobs"`   // jobs of the SIGKILL campaign
	Kills      int    `json:"kills"`       // SIGKILLs during it
	KillUpTo   int    `json:"kill_up_to"`  // the last kill comes before this % of the jobs are reset
	FaultJobs  int    `json:"fault_jobs"`  // jobs of the faults campaign (plus a few for unknown users)
	OutageJobs int    `json:"outage_jobs"` // jobs of the SQS outage campaign
	// The campaign ledger (DynamoDB) scenarios.
	LedgerKillJobs      int `json:"ledger_kill_jobs"`      // users of the kill campaign (a quarter of them with a second job)
	LedgerKillRounds    int `json:"ledger_kill_rounds"`    // rounds of two kills: resets held after their claims; a reset answered, not recorded
	LedgerKillHeld      int `json:"ledger_kill_held"`      // resets held (claimed, no code gone) before the first kill of a round
	LedgerOutageJobs    int `json:"ledger_outage_jobs"`    // jobs of each ledger outage campaign
	LedgerOutageSeconds int `json:"ledger_outage_seconds"` // how long the ledger cannot be reached
	// LedgerClaimAnswersLost: claims that take effect, their answers lost,
	// as the 5xx ledger outage begins (each job's copy waits for the lease).
	LedgerClaimAnswersLost int `json:"ledger_claim_answers_lost"`
}

var (
	quick = profile{Name: "quick", KillJobs: 60, Kills: 2, KillUpTo: 50, FaultJobs: 60, OutageJobs: 40,
		LedgerKillJobs: 24, LedgerKillRounds: 1, LedgerKillHeld: 4, LedgerOutageJobs: 30, LedgerOutageSeconds: 10, LedgerClaimAnswersLost: 0}
	full = profile{Name: "full", KillJobs: 400, Kills: 8, KillUpTo: 85, FaultJobs: 250, OutageJobs: 200,
		LedgerKillJobs: 120, LedgerKillRounds: 3, LedgerKillHeld: 8, LedgerOutageJobs: 150, LedgerOutageSeconds: 30, LedgerClaimAnswersLost: 2}
)

// prof is the profile of this run, from RESETQ_CHAOS ("full" or quick).
var prof = func() profile {
	if os.Getenv("RESETQ_CHAOS") == "full" {
		return full
	}
	return quick
}()

// baseSeed seeds every random choice of the run: RESETQ_CHAOS_SEED, or the
// clock. Each scenario logs the seed it derives, so a failure can be replayed.
var baseSeed = func() uint64 {
	if s := os.Getenv("RESETQ_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			panic("RESETQ_CHAOS_SEED: " + err.Error())
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}()

// seedFor derives a scenario's seed and logs how to replay it.
func seedFor(t *testing.T, scenario uint64) uint64 {
	seed := baseSeed + scenario
	t.Logf("profile %s, seed %d (replay with RESETQ_CHAOS_SEED=%d)", prof.Name, seed, baseSeed)
	return seed
}

// scenarioReport is the figures of one scenario.
type scenarioReport struct {
	Passed               bool           `json:"passed"`
	Seed                 uint64         `json:"seed"`
	Seconds              float64        `json:"seconds"`
	Jobs                 int            `json:"jobs"`
	Reset                int            `json:"reset"`
	DeadLettered         int            `json:"dead_lettered"`
	Lost                 int            `json:"lost"`
	Duplicates           int            `json:"duplicates"`             // resets answered OK beyond the first, per user
	DuplicateDeadLetters int            `json:"duplicate_dead_letters"` // DLQ messages beyond the first, per job
	Ambiguous            int            `json:"ambiguous_calls"`        // resets cut off before Cognito answered
	Checks               int            `json:"redelivery_checks"`      // AdminGetUser calls that reached Cognito
	Kills                int            `json:"kills,omitempty"`        // SIGKILLs survived
	Workers              int            `json:"worker_processes"`       // resetq processes run
	Faults               map[string]int `json:"faults_injected"`        // calls affected, by kind
	Notes                map[string]any `json:"notes,omitempty"`        // scenario-specific figures
}

// report is the whole run's figures, for docs/reliability.json.
type report struct {
	Profile     profile                    `json:"profile"`
	Seed        uint64                     `json:"seed"`
	GeneratedAt string                     `json:"generated_at"`
	GoVersion   string                     `json:"go_version"`
	CPUs        int                        `json:"cpus"`
	Scenarios   map[string]*scenarioReport `json:"scenarios"`
	Totals      totals                     `json:"totals"`
}

type totals struct {
	KillsSurvived int            `json:"kills_survived"`
	Jobs          int            `json:"jobs"`
	Reset         int            `json:"reset"`
	DeadLettered  int            `json:"dead_lettered"`
	Lost          int            `json:"lost"`
	Duplicates    int            `json:"duplicates"`
	DupDLQ        int            `json:"duplicate_dead_letters"`
	Faults        map[string]int `json:"faults_injected"`
}

var results = struct {
	sync.Mutex
	m map[string]*scenarioReport
}{m: map[string]*scenarioReport{}}

// record keeps a scenario's figures for the report; call it deferred, once
// the figures are filled in.
func record(t *testing.T, name string, r *scenarioReport, start time.Time) {
	r.Passed = !t.Failed()
	r.Seconds = time.Since(start).Round(100 * time.Millisecond).Seconds()
	results.Lock()
	defer results.Unlock()
	results.m[name] = r
	t.Logf("figures: %+v", *r)
}

func TestMain(m *testing.M) {
	testenv.MainThen(m, func(code int) int {
		path := os.Getenv("RESETQ_CHAOS_REPORT")
		if path == "" {
			return code
		}
		rep := buildReport()
		fmt.Print(markdown(rep))
		if code != 0 {
			fmt.Fprintf(os.Stderr, "chaos: tests failed; %s not written\n", path)
			return code
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
		fmt.Printf("\nwrote %s\n", path)
		return code
	})
}

func buildReport() report {
	results.Lock()
	defer results.Unlock()
	rep := report{Profile: prof, Seed: baseSeed, GeneratedAt: time.Now().UTC().Format(time.RFC3339),
		GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Scenarios: results.m, Totals: totals{Faults: map[string]int{}}}
	for _, s := range results.m {
		rep.Totals.KillsSurvived += s.Kills
		rep.Totals.Jobs += s.Jobs
		rep.Totals.Reset += s.Reset
		rep.Totals.DeadLettered += s.DeadLettered
		rep.Totals.Lost += s.Lost
		rep.Totals.Duplicates += s.Duplicates
		rep.Totals.DupDLQ += s.DuplicateDeadLetters
		for k, v := range s.Faults {
			rep.Totals.Faults[k] += v
		}
	}
	return rep
}

// markdown renders the report as the README's reliability figures.
func markdown(rep report) string {
	out := fmt.Sprintf("\n## chaos figures (profile %s, seed %d, %s)\n\n", rep.Profile.Name, rep.Seed, rep.GeneratedAt)
	out += "| scenario | passed | jobs | reset | dead-lettered | lost | duplicate resets | duplicate dead letters | kills | seconds |\n|---|---|---|---|---|---|---|---|---|---|\n"
	names := make([]string, 0, len(rep.Scenarios))
	for n := range rep.Scenarios {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s := rep.Scenarios[n]
		out += fmt.Sprintf("| %s | %v | %d | %d | %d | %d | %d | %d | %d | %.0f |\n", n, s.Passed, s.Jobs, s.Reset, s.DeadLettered, s.Lost, s.Duplicates, s.DuplicateDeadLetters, s.Kills, s.Seconds)
	}
	t := rep.Totals
	out += fmt.Sprintf("| **total** | | %d | %d | %d | %d | %d | %d | %d | |\n\n", t.Jobs, t.Reset, t.DeadLettered, t.Lost, t.Duplicates, t.DupDLQ, t.KillsSurvived)
	kinds := make([]string, 0, len(t.Faults))
	for k := range t.Faults {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	out += "| fault injected | calls |\n|---|---|\n"
	for _, k := range kinds {
		out += fmt.Sprintf("| %s | %d |\n", k, t.Faults[k])
	}
	return out
}
