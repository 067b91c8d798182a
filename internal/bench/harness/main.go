// Command harness benchmarks resetq against the baselines
// people write instead (naive goroutines, the SDK's adaptive retry mode, a
// per-second counter), on fauxqs and a Cognito stand-in with a sliding
// one-second quota. Scenario 5 (in the full profile; in the quick one
// when asked for) puts resetq and the baselines in each quota model ×
// real users' pattern of internal/world, beside the real users alone and
// the constant rate the simulation finds best for -harm-budget; resetq
// reads the stand-in's usage metrics there, as it reads CloudWatch's on
// AWS. Scenario 6 runs one campaign at Q=30/s without and with
// --ledger-table, the ledger in internal/bench/dynamostub answering at
// DynamoDB's latency, and compares the rates. Scenario 7 runs one process
// over pools in many account-Regions (--pool-roles, the stand-in's STS),
// each with a quota of its own: 4 as resetq ships, then, with --incident
// and the ledger, more and more until the rate falls short. Scenario 8
// runs long campaigns (11 minutes in full), each in a world of its own and
// all at once, including one restarted halfway and a fleet of 3, judged
// over the whole campaign; -long-runs N runs them N times one after
// another and prints each row's spread over the runs. It prints Markdown
// tables, one row per scenario × contender, and writes every figure to a
// JSON file.
//
//	go run ./internal/bench/harness -profile quick -json bench-quick.json
//
// It exits 1 when a contender failed (an error, a timeout, or a user not
// reset), not when a target is missed: the table says which are.
//
// It lives beside the enqueue benchmark under internal/ (like
// internal/demo) because it is a development tool, not something resetq
// ships: a main package whose tests check only the plumbing of its
// scenarios (ledger_test.go), so `go test ./...` never runs a scenario.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/resetq/resetq/internal/fauxqs"
	rw "github.com/resetq/resetq/internal/world" // world is the harness's own type
)

func main() {
	prof := flag.String("profile", "quick", "quick (under a minute, for CI) or full (the issue's numbers, for docs/benchmarks.md)")
	jsonPath := flag.String("json", "", "write every figure to this JSON file")
	only := flag.String("scenarios", "", "comma-separated scenarios to run (default: the profile's, 1-8 in full, 1-4 and 6-8 in quick; 5, pacing in the world, is 12 rows of quota model × real users, about 30 min in full; 6, the ledger at the quota, about 7 min in full; 7, many accounts, about 10 min in full; 8, long campaigns at once, about 12 min in full)")
	latency := flag.Duration("latency", 0, "the stand-in's answer latency")
	contenders := flag.String("contenders", "", "in scenarios 1, 2 and 5, run only these comma-separated contenders (naive, sdk-adaptive, per-second, resetq; default all)")
	resetqArgs := flag.String("resetq-args", "", "more space-separated flags for every resetq work run, e.g. '--status-check=redelivered' for an A/B")
	models := flag.String("models", "", "in scenario 5, run only these comma-separated quota models ("+strings.Join(rw.Models(), ", ")+"; default all)")
	patterns := flag.String("patterns", "", "in scenario 5, run only these comma-separated real users' patterns ("+strings.Join(rw.Patterns(), ", ")+"; default all)")
	worldJobs := flag.Int("world-jobs", 0, "in scenario 5, resetq's jobs in each row (default: the profile's, 1,000 in full, 200 in quick: it reads usage every 5 s)")
	worldBaseJobs := flag.Int("world-baseline-jobs", 0, "in scenario 5, each baseline's jobs in each row (default: the profile's, 200 in full, 60 in quick)")
	ledgerConc := flag.String("ledger-concurrency", "", "in scenario 6, the comma-separated --concurrency values, a pair of runs (without and with --ledger-table, DynamoDB at 5 ms, 10 ms a transaction) each (default: the profile's: in full 16 and 1, and 1 at twice the latency; 16 in quick)")
	ledgerJobs := flag.Int("ledger-jobs", 0, "in scenario 6, the jobs of each run (default: the profile's, 3,000 in full, 60 in quick)")
	accountsSteps := flag.String("accounts-steps", "", "in scenario 7b, the comma-separated account-Regions of each step with --incident and the ledger, until one falls under 0.95 of the quotas (default: the profile's, 4,8,16,30 in full, 4 in quick; 0: none)")
	accountsJobs := flag.Int("accounts-jobs", 0, "in scenario 7, the jobs per account-Region of each run (default: the profile's, 1,800 in full (60 s at 30/s), 60 in quick)")
	accountsShipped := flag.Int("accounts-shipped", -1, "in scenario 7a, the account-Regions of the run as resetq ships (default: the profile's, 4; 0: skip 7a)")
	keepLogs := flag.String("keep-logs", "", "keep every resetq process's log in this folder (default: only a failed run's tail, in its row)")
	harmBudget := flag.Float64("harm-budget", 0.005, "in scenarios 5 and 8, the share of real users' calls resetq may cost (the verdict and the frontier)")
	longFor := flag.Duration("long-for", 0, "in scenario 8, each campaign's length, from its start to its SIGTERM (default: the profile's, 11m in full, 20s in quick)")
	longKill := flag.Bool("long-restart-kill", false, "in scenario 8, stop the restart row's first process with SIGKILL (a crash, no exit) instead of SIGTERM")
	longElsewhere := flag.Bool("long-restart-elsewhere", false, "in scenario 8, run the restart row's processes as on two machines: without --state-dir, with --ledger-table (in dynamostub), where the second finds the first's record of calls")
	longRows := flag.String("long-rows", "", "in scenario 8, only these rows, comma-separated, named model/pattern with /restart or /fleet for those two (e.g. second/poisson,sliding/poisson/restart): fewer campaigns at once share the machine's CPUs with fewer others (default: all)")
	longRuns := flag.Int("long-runs", 1, "in scenario 8, run its campaigns this many times one after another (the same seeds), keep every run's rows and print each row's spread over the runs: about 12 min a run in full, half a minute in quick")
	flag.Parse()
	p, ok := profiles[*prof]
	if !ok {
		fmt.Fprintf(os.Stderr, "-profile %q: want quick or full\n", *prof)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *contenders != "" {
		for _, c := range strings.Split(*contenders, ",") {
			c = strings.TrimSpace(c)
			if !slices.Contains(append(slices.Clone(baselines), contResetq), c) {
				fmt.Fprintf(os.Stderr, "-contenders: unknown contender %q (want %s or %s)\n", c, strings.Join(baselines, ", "), contResetq)
				os.Exit(2)
			}
			p.contenders = append(p.contenders, c)
		}
	}
	p.resetqArgs = strings.Fields(*resetqArgs)
	if *harmBudget < 0 || *harmBudget >= 1 {
		fmt.Fprintf(os.Stderr, "-harm-budget %v: want a share in [0, 1)\n", *harmBudget)
		os.Exit(2)
	}
	p.harmBudget = *harmBudget
	if *worldJobs > 0 {
		p.worldJobs = *worldJobs
	}
	if *worldBaseJobs > 0 {
		p.worldBaseJobs = *worldBaseJobs
	}
	if *longFor > 0 {
		if *longFor < 2*p.longSplit {
			fmt.Fprintf(os.Stderr, "-long-for %v: want at least %v, twice the start judged apart\n", *longFor, 2*p.longSplit)
			os.Exit(2)
		}
		p.longFor = *longFor
	}
	if *longRuns < 1 {
		fmt.Fprintf(os.Stderr, "-long-runs %d: want 1 or more\n", *longRuns)
		os.Exit(2)
	}
	p.longRuns = *longRuns
	if *longRows != "" {
		p.longRows = strings.Split(*longRows, ",")
		if _, err := selectLong(longCases(), p.longRows); err != nil {
			fmt.Fprintf(os.Stderr, "-long-rows: %v\n", err)
			os.Exit(2)
		}
	}
	p.longKill = *longKill
	p.longElsewhere = *longElsewhere
	if *ledgerJobs > 0 {
		p.ledgerJobs = *ledgerJobs
	}
	if *ledgerConc != "" {
		p.ledgerRuns = nil
		for _, s := range strings.Split(*ledgerConc, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || c < 1 {
				fmt.Fprintf(os.Stderr, "-ledger-concurrency: %q is not a concurrency of 1 or more\n", s)
				os.Exit(2)
			}
			p.ledgerRuns = append(p.ledgerRuns, ledgerRun{concurrency: c, latency: ledgerLatency})
		}
	}
	if *accountsShipped >= 0 {
		p.accountsShipped = *accountsShipped
	}
	if *accountsJobs > 0 {
		p.accountsJobs = *accountsJobs
	}
	if *accountsSteps != "" {
		p.accountsSteps = nil
		for _, s := range strings.Split(*accountsSteps, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 0 {
				fmt.Fprintf(os.Stderr, "-accounts-steps: %q is not a number of account-Regions\n", s)
				os.Exit(2)
			}
			if n > 0 {
				p.accountsSteps = append(p.accountsSteps, n)
			}
		}
	}
	scenarios := p.scenarios
	if *only != "" {
		scenarios = strings.Split(*only, ",")
	}
	var err error
	if p.models, err = names("-models", *models, rw.Models()); err == nil {
		p.patterns, err = names("-patterns", *patterns, rw.Patterns())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *keepLogs != "" {
		if err := os.MkdirAll(*keepLogs, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "-keep-logs:", err)
			os.Exit(2)
		}
	}
	if err := run(ctx, p, *jsonPath, scenarios, *latency, *keepLogs); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

// names splits a comma-separated list of known names ("": nil, all).
func names(flagName, list string, known []string) ([]string, error) {
	if list == "" {
		return nil, nil
	}
	var out []string
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("%s: unknown name %q (want %s)", flagName, n, strings.Join(known, ", "))
		}
		out = append(out, n)
	}
	return out, nil
}

type report struct {
	Profile   string    `json:"profile"`
	Command   string    `json:"command"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Commit    string    `json:"commit"` // of resetq as built: HEAD, "+dirty" with uncommitted changes
	Machine   machine   `json:"machine"`
	LatencyMS float64   `json:"stand_in_latency_ms"`
	Notes     []string  `json:"notes,omitempty"`
	Rows      []*row    `json:"rows"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Go        string `json:"go"`
	Fauxqs    string `json:"fauxqs"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

func run(ctx context.Context, p profile, jsonPath string, only []string, latency time.Duration, keepLogs string) error {
	rep := report{Profile: p.name, Command: "go run ./internal/bench/harness " + strings.Join(os.Args[1:], " "),
		Started: time.Now().UTC(), LatencyMS: latency.Seconds() * 1000,
		Machine: machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), Go: runtime.Version(), Fauxqs: fauxqs.Package,
			LoadStart: loadavg()}}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	rep.Commit = commit(ctx, root)
	w, err := newWorld(ctx, root, latency, keepLogs)
	if err != nil {
		return err
	}
	defer w.close()
	fmt.Printf("profile %s, resetq at %s, on %d × %s, %s; the stand-in answers after %v\n\n", p.name, rep.Commit,
		rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.Go, latency)
	header := ""
	h := &harness{w: w, p: p, out: func(r *row) {
		if r.header() != header {
			if header != "" {
				fmt.Println()
			}
			header = r.header()
			fmt.Print(header)
		}
		fmt.Print(r.markdown())
	}, say: func(s string) {
		if header != "" {
			fmt.Println()
		}
		header = "" // the next row starts a table again
		fmt.Printf("%s\n\n", s)
	}, last: time.Now()}
	fmt.Fprintf(os.Stderr, "set up in %.1f s\n", time.Since(rep.Started).Seconds())
	for _, sc := range []struct {
		id  string
		run func(context.Context)
	}{{"1", h.alone}, {"2", h.shared}, {"3", h.fleet}, {"4", h.efficiency}, {"5", h.pacing}, {"6", h.ledger}, {"7", h.accounts},
		{"8", h.long}} {
		if slices.Contains(only, sc.id) && ctx.Err() == nil {
			sc.run(ctx)
		}
	}
	rep.Rows, rep.Notes = h.rows, h.notes
	rep.Seconds = time.Since(rep.Started).Seconds()
	rep.Machine.LoadEnd = loadavg()
	fmt.Printf("\n%d rows in %.0f s; load average %s at the start, %s at the end\n", len(h.rows), rep.Seconds,
		rep.Machine.LoadStart, rep.Machine.LoadEnd)
	if jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	failed := 0
	for _, r := range h.rows {
		if r.Error != "" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d rows failed (see their target column); missed targets alone do not fail the run", failed, len(h.rows))
	}
	return nil
}

// repoRoot is the module root: the folder above with go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working folder")
		}
		dir = parent
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// commit is the repository's HEAD, with "+dirty" when Go files outside
// the benchmark have uncommitted changes ("?" without git).
func commit(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	c := strings.TrimSpace(string(out))
	status, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--",
		"*.go", "go.mod", "go.sum", ":!internal/bench").Output()
	if err != nil || len(bytes.TrimSpace(status)) > 0 {
		c += "+dirty"
	}
	return c
}
