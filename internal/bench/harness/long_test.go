package main

import (
	"bufio"
	"math"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/cognitostub"
	"github.com/resetq/resetq/internal/redisserver/redistest"
	rw "github.com/resetq/resetq/internal/world"
)

// These tests check scenario 8's plumbing, not its figures: the harness's
// scenarios run only from `make bench` and `make bench-quick`.

// TestLongCases: the rows issue 25 asks for, each once, and sliding ×
// even (the holdout's even real users, where resetq hears no throttle).
func TestLongCases(t *testing.T) {
	t.Parallel()
	var got []string
	restarts, fleets := 0, 0
	for _, c := range longCases() {
		switch {
		case c.restart:
			restarts++
		case c.fleet > 0:
			fleets++
			if c.fleet != 3 {
				t.Errorf("fleet of %d, want 3", c.fleet)
			}
		default:
			got = append(got, c.model+"×"+c.pattern)
		}
	}
	want := []string{"sliding×poisson", "second×poisson", "bucket×step", "sliding×confirm", "second×confirm", "bucket×confirm", "sliding×even"}
	if !slices.Equal(got, want) || restarts != 1 || fleets != 1 {
		t.Errorf("rows %v, %d restarted, %d fleets; want %v, one restarted, one fleet", got, restarts, fleets, want)
	}
}

// TestSelectLong: -long-rows keeps the named rows in scenario 8's order,
// every row has a name of its own, and a name no row has is refused.
func TestSelectLong(t *testing.T) {
	t.Parallel()
	all := longCases()
	names := map[string]bool{}
	for _, c := range all {
		if names[c.name()] {
			t.Errorf("two rows named %s", c.name())
		}
		names[c.name()] = true
	}
	if got, err := selectLong(all, nil); err != nil || len(got) != len(all) {
		t.Errorf("no names: %d rows (%v), want all %d", len(got), err, len(all))
	}
	got, err := selectLong(all, []string{"sliding/poisson/restart", " second/poisson"})
	if err != nil || len(got) != 2 || got[0].name() != "second/poisson" || !got[1].restart {
		t.Errorf("two names: %+v (%v), want second/poisson then the restart row", got, err)
	}
	if got, err := selectLong(all, []string{"bucket/step", ""}); err != nil || len(got) != 1 {
		t.Errorf("a trailing comma: %d rows (%v), want bucket/step alone", len(got), err)
	}
	if _, err := selectLong(all, []string{" "}); err == nil {
		t.Error("no name at all: accepted, want refused")
	}
	if _, err := selectLong(all, []string{"second/poisson", "second/step"}); err == nil || !strings.Contains(err.Error(), "second/step") {
		t.Errorf("an unknown name: %v, want it refused by name", err)
	}
}

// TestLongPlan: a campaign of d ends with a SIGTERM at d to every process;
// the restart row's first process gets its SIGTERM at d/2 and the second
// starts after it; a fleet's replicas run at once.
func TestLongPlan(t *testing.T) {
	t.Parallel()
	d := 10 * time.Minute
	if p := (longCase{}).plan(d); !slices.Equal(p, []replica{{stop: d}}) {
		t.Errorf("one process: %v", p)
	}
	p := longCase{restart: true}.plan(d)
	if len(p) != 2 || p[0].start != 0 || p[0].stop != d/2 || p[1].start <= d/2 || p[1].stop != d {
		t.Errorf("restart: %v, want one stopped at %v and one started after it, stopped at %v", p, d/2, d)
	}
	if p[0].kill || p[1].kill {
		t.Errorf("restart: %v, want SIGTERM", p)
	}
	if p := (longCase{restart: true, kill: true}).plan(d); len(p) != 2 || !p[0].kill || p[1].kill {
		t.Errorf("restart with -long-restart-kill: %v, want the first process killed, the second stopped", p)
	}
	if p := (longCase{fleet: 3}).plan(d); !slices.Equal(p, []replica{{stop: d}, {stop: d}, {stop: d}}) {
		t.Errorf("fleet: %v", p)
	}
}

// TestLongArgs: resetq as it ships but for --rate and the usage metrics,
// read often; a fleet shares Redis.
func TestLongArgs(t *testing.T) {
	t.Parallel()
	one := strings.Join(longCase{}.args(""), " ")
	if one != "--rate 30 --usage-metrics=true --usage-interval 5s" {
		t.Errorf("one process: %q", one)
	}
	fleet := longCase{fleet: 3}.args("redis://127.0.0.1:1")
	if lastFlag(fleet, "--fleet-size") != "3" || lastFlag(fleet, "--redis-url") != "redis://127.0.0.1:1" ||
		lastFlag(fleet, "--usage-metrics") != "true" {
		t.Errorf("fleet: %q", fleet)
	}
}

// TestLongFigures: the start, the rest and each minute from the timeline;
// the whole campaign's real users are the start's and the rest's.
func TestLongFigures(t *testing.T) {
	t.Parallel()
	r := &row{}
	for k := 1; k <= 150; k++ {
		s := second{T: k, Resets: 20, BackgroundCalls: 10}
		if k <= 30 {
			s.BackgroundThrottles, s.Throttles = 1, 1
		}
		r.Timeline = append(r.Timeline, s)
	}
	r.longFigures(60)
	if r.Start.UsersCalls != 600 || r.Start.UsersThrottled != 30 || r.Start.Harm() != 0.05 || r.Start.Rate() != 20 {
		t.Errorf("start %+v", r.Start)
	}
	if r.Rest.From != 60 || r.Rest.To != 150 || r.Rest.UsersCalls != 900 || r.Rest.UsersThrottled != 0 || r.Rest.Throttles != 0 {
		t.Errorf("rest %+v", r.Rest)
	}
	if r.BackgroundCalls != 1500 || r.BackgroundThrottled != 0.02 || r.usersSpan != 150 {
		t.Errorf("whole: %d calls, %v throttled over %v s; want 1500, 0.02, 150", r.BackgroundCalls, r.BackgroundThrottled, r.usersSpan)
	}
	if len(r.Minutes) != 3 || r.Minutes[2].From != 120 || r.Minutes[2].To != 150 || r.Minutes[2].Rate() != 20 || r.Minutes[0].UsersThrottled != 30 {
		t.Errorf("minutes %+v", r.Minutes)
	}
	short := &row{Timeline: r.Timeline[:40]}
	short.longFigures(60)
	if short.Start.To != 40 || short.Rest.UsersCalls != 0 || short.BackgroundCalls != 400 {
		t.Errorf("a campaign shorter than its start: start %+v, rest %+v", short.Start, short.Rest)
	}
}

func TestSpanLabel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		from, to int
		want     string
	}{{0, 300, "0–5 min"}, {300, -1, "5 min–end"}, {0, 10, "0–10 s"}, {10, -1, "10 s–end"}, {60, 90, "1 min–90 s"}} {
		if got := spanLabel(c.from, c.to); got != c.want {
			t.Errorf("spanLabel(%d, %d) = %q, want %q", c.from, c.to, got, c.want)
		}
	}
}

// TestProfilesRunLong: each profile that runs scenario 8 gives a campaign
// twice its start at least; the full one's last 10 minutes at least.
func TestProfilesRunLong(t *testing.T) {
	t.Parallel()
	for name, p := range profiles {
		if !slices.Contains(p.scenarios, "8") {
			continue
		}
		if p.longSplit <= 0 || p.longFor < 2*p.longSplit {
			t.Errorf("profile %s: campaigns of %v, start %v", name, p.longFor, p.longSplit)
		}
		if name == "full" && p.longFor < 10*time.Minute {
			t.Errorf("profile full: campaigns of %v, want 10 minutes at least", p.longFor)
		}
	}
}

// TestWorldSeed: each model × pattern has its own seed, in scenario 5's
// order from 1, so scenarios 5 and 8 meet the same real users and frontier.
func TestWorldSeed(t *testing.T) {
	t.Parallel()
	seen := map[uint64]bool{}
	for _, m := range rw.Models() {
		for _, p := range rw.Patterns() {
			seen[worldSeed(m, p)] = true
		}
	}
	n := len(rw.Models()) * len(rw.Patterns())
	if len(seen) != n || !seen[1] || !seen[uint64(n)] {
		t.Errorf("seeds %v, want 1 to %d", seen, n)
	}
	if worldSeed(rw.Sliding, rw.Poisson) != 2 {
		t.Errorf("sliding × poisson: seed %d, want 2 (scenario 5's)", worldSeed(rw.Sliding, rw.Poisson))
	}
}

// TestUsersRate: the campaign's own users have no rate of their own.
func TestUsersRate(t *testing.T) {
	t.Parallel()
	if usersRate(rw.Confirm) != 0 || usersRate(rw.Poisson) != worldUsers {
		t.Errorf("confirm %v, poisson %v", usersRate(rw.Confirm), usersRate(rw.Poisson))
	}
}

// TestWithStub: a row's world sends resetq's Cognito and CloudWatch calls
// to the row's stand-in, and numbers its queues and logs with the
// harness's one sequence, so rows at once never share a name.
func TestWithStub(t *testing.T) {
	t.Parallel()
	w := &world{dir: t.TempDir(), bin: "resetq", proxy: &awsproxy.Server{URL: "http://sqs"},
		stub: &cognitostub.Server{URL: "http://stub"}, seq: new(atomic.Int64)}
	rowStub := &cognitostub.Server{URL: "http://row"}
	rowWorld := w.withStub(rowStub)
	env := rowWorld.processEnv()
	for _, want := range []string{"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=http://row", "AWS_ENDPOINT_URL_CLOUDWATCH=http://row",
		"AWS_ENDPOINT_URL_SQS=http://sqs"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %v: want %s", env, want)
		}
	}
	if rowWorld.seq.Add(1) != 1 || w.seq.Add(1) != 2 || rowWorld.dir != w.dir || rowWorld.bin != w.bin {
		t.Errorf("the row's world does not share the harness's sequence, folder and binary")
	}
}

// TestLongRedis: a fleet's row starts its own redis-server; a single
// process starts none.
func TestLongRedis(t *testing.T) {
	t.Parallel()
	url, stop, err := longCase{}.redis(t.Context())
	if url != "" || err != nil {
		t.Fatalf("one process: %q, %v", url, err)
	}
	stop()
	redistest.Need(t)
	url, stop, err = longCase{fleet: 3}.redis(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "redis://"), 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Errorf("PING: %q, %v", line, err)
	}
}

// TestSummarizeLong: each row's median share of the frontier (of an even
// number of runs, the mean of the two middle ones), its lowest and
// highest, the highest harm and the runs met, over the runs measured; and
// the rows met in each run.
func TestSummarizeLong(t *testing.T) {
	t.Parallel()
	type run struct {
		share, harm float64
		target      string // "error" and "not run": the row's Error or NotRun set
	}
	met := func(share, harm float64) run { return run{share, harm, "met"} }
	missed := func(share, harm float64) run { return run{share, harm, "missed: rate"} }
	for _, c := range []struct {
		name                          string
		runs                          []run // of the sliding × poisson row, run 1 first
		median, lowest, highest, harm float64
		measured, met                 int
	}{
		{name: "one run", runs: []run{met(0.93, 0.003)},
			median: 0.93, lowest: 0.93, highest: 0.93, harm: 0.003, measured: 1, met: 1},
		{name: "odd: the middle one", runs: []run{met(0.95, 0.002), missed(0.88, 0.001), met(0.92, 0.004)},
			median: 0.92, lowest: 0.88, highest: 0.95, harm: 0.004, measured: 3, met: 2},
		{name: "even: the mean of the two middle ones", runs: []run{met(0.90, 0.003), met(0.96, 0.001), missed(0.86, 0.002), met(0.94, 0.0045)},
			median: 0.92, lowest: 0.86, highest: 0.96, harm: 0.0045, measured: 4, met: 3},
		{name: "two runs", runs: []run{missed(0.85, 0.007), met(0.95, 0.002)},
			median: 0.90, lowest: 0.85, highest: 0.95, harm: 0.007, measured: 2, met: 1},
		{name: "an error and a row not run are left out", runs: []run{met(0.91, 0.002), {0.99, 0.05, "error"}, {0, 0, "not run"}, missed(0.97, 0.006)},
			median: 0.94, lowest: 0.91, highest: 0.97, harm: 0.006, measured: 2, met: 1},
		{name: "none measured", runs: []run{{0.99, 0.05, "error"}, {0, 0, "not run"}}},
	} {
		var rows []*row
		wantMet := make([]int, len(c.runs))
		for k, r := range c.runs {
			sliding := &row{Run: k + 1, Model: rw.Sliding, Pattern: rw.Poisson, Contender: contResetq, FrontierRate: 20,
				OfFrontier: r.share, BackgroundThrottled: r.harm, Target: r.target}
			switch r.target {
			case "error":
				sliding.Error = "exit status 1"
			case "not run":
				sliding.NotRun = "no redis-server"
			case "met":
				wantMet[k]++
			}
			// A second row, met in odd runs only, so the rows met differ run by run.
			second := &row{Run: k + 1, Model: rw.Second, Pattern: rw.Poisson, Contender: contResetq, FrontierRate: 20,
				OfFrontier: 0.9, Target: "missed: rate"}
			if k%2 == 0 {
				second.Target = "met"
				wantMet[k]++
			}
			rows = append(rows, sliding, second)
		}
		s := summarizeLong(rows)
		if s.runsTotal != len(c.runs) || len(s.rows) != 2 || s.rows[0].name != "sliding × poisson, resetq" {
			t.Fatalf("%s: %d runs, rows %+v", c.name, s.runsTotal, s.rows)
		}
		sp := s.rows[0]
		near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
		if !near(sp.median, c.median) || !near(sp.lowest, c.lowest) || !near(sp.highest, c.highest) || !near(sp.harm, c.harm) ||
			sp.measured != c.measured || sp.met != c.met {
			t.Errorf("%s: median %v, %v–%v, harm %v, %d measured, %d met; want %v, %v–%v, %v, %d, %d", c.name, sp.median,
				sp.lowest, sp.highest, sp.harm, sp.measured, sp.met, c.median, c.lowest, c.highest, c.harm, c.measured, c.met)
		}
		if !slices.Equal(s.met, wantMet) || slices.ContainsFunc(s.of, func(n int) bool { return n != 2 }) {
			t.Errorf("%s: met %v of %v by run, want %v of 2 each", c.name, s.met, s.of, wantMet)
		}
	}
}

// TestSummarizeLongOneRun: rows of a single run without a run number are
// run 1's.
func TestSummarizeLongOneRun(t *testing.T) {
	t.Parallel()
	s := summarizeLong([]*row{{Model: rw.Bucket, Pattern: rw.Step, Contender: contResetq, FrontierRate: 20, OfFrontier: 0.91, Target: "met"}})
	if s.runsTotal != 1 || len(s.rows) != 1 || s.rows[0].median != 0.91 || s.rows[0].met != 1 || !slices.Equal(s.met, []int{1}) {
		t.Errorf("%+v", s)
	}
}

// TestSpreadTable: a line per row with each run's share and harm, then
// the median, min–max, highest harm and runs met; and the rows met by run.
func TestSpreadTable(t *testing.T) {
	t.Parallel()
	fleet := longCase{model: rw.Sliding, pattern: rw.Poisson, fleet: longFleet}.contender()
	rows := []*row{
		{Run: 1, Model: rw.Sliding, Pattern: rw.Poisson, Contender: contResetq, FrontierRate: 20, OfFrontier: 0.9, BackgroundThrottled: 0.0029, Target: "met"},
		{Run: 1, Model: rw.Sliding, Pattern: rw.Poisson, Contender: fleet, NotRun: "no redis-server", Target: "not run"},
		{Run: 2, Model: rw.Sliding, Pattern: rw.Poisson, Contender: contResetq, FrontierRate: 20, OfFrontier: 0.94, BackgroundThrottled: 0.0061, Target: "missed: real users throttled"},
		{Run: 2, Model: rw.Sliding, Pattern: rw.Poisson, Contender: fleet, FrontierRate: 20, OfFrontier: 0.88, BackgroundThrottled: 0.001, Target: "missed: rate"},
	}
	got := spreadTable(rows)
	for _, want := range []string{
		"| row | run 1 | run 2 | median | min–max | highest harm | met |\n|---|---|---|---|---|---|---|\n",
		"| sliding × poisson, resetq | 0.900 / 0.29% | 0.940 / 0.61% | 0.920 | 0.900–0.940 | 0.61% | 1 of 2 |\n",
		"| sliding × poisson, resetq ×3, Redis | not run | 0.880 / 0.10% | 0.880 | 0.880–0.880 | 0.10% | 0 of 2 |\n",
		"\nRows met, run by run: 1 of 2, 0 of 2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("spreadTable lacks %q:\n%s", want, got)
		}
	}
}
