package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resetq/resetq/internal/bench/dynamostub"
	"github.com/resetq/resetq/internal/cognitostub"
	"github.com/resetq/resetq/internal/redisserver"
	rw "github.com/resetq/resetq/internal/world" // the real world; world is the harness's
)

// Scenario 8: long campaigns. Each row is one campaign in a world of its
// own (a Cognito stand-in with the row's quota model and real users, a
// queue on the shared fauxqs), all rows at once, so that campaigns of ten
// minutes and more fit in `make bench`. Each runs for the profile's
// longFor with more jobs than it can finish (Q × longFor) and is then
// stopped (SIGTERM), and is judged over the whole of it, its start
// included: real users' throttled share within the harm budget, resetq at
// longShare of the frontier at least.
const (
	// longUsageDelay is how late the stand-ins publish a usage minute
	// after it ends: the quota proxy of issue 25's holdout served
	// Cognito's AWS/Usage minutes 90 s late.
	longUsageDelay = 90 * time.Second
	// longRestartGap is how long after the restart row's SIGTERM its
	// second process starts, on the same queue.
	longRestartGap = 2 * time.Second
	longFleet      = 3
	longShare      = 0.9 // of the frontier
)

// longCase is one row of scenario 8.
type longCase struct {
	model, pattern string
	restart        bool // SIGTERM at half the campaign, then a new process on the same queue
	kill           bool // the restart's first process gets SIGKILL instead: a crash
	elsewhere      bool // the restart's processes have no --state-dir, but a ledger (another machine)
	fleet          int  // replicas sharing one limit in Redis (0: one process)
}

// longCases are scenario 8's rows: sliding × Poisson, second × Poisson,
// bucket × step, every model × the campaign's own confirmations,
// sliding × Poisson restarted halfway and as a fleet of 3, and sliding ×
// even (even real users lose the races at a full window while resetq is
// not throttled: only the room's margin and the usage minutes hold it).
func longCases() []longCase {
	return []longCase{
		{model: rw.Sliding, pattern: rw.Poisson},
		{model: rw.Second, pattern: rw.Poisson},
		{model: rw.Bucket, pattern: rw.Step},
		{model: rw.Sliding, pattern: rw.Confirm},
		{model: rw.Second, pattern: rw.Confirm},
		{model: rw.Bucket, pattern: rw.Confirm},
		{model: rw.Sliding, pattern: rw.Poisson, restart: true},
		{model: rw.Sliding, pattern: rw.Poisson, fleet: longFleet},
		{model: rw.Sliding, pattern: rw.Even},
	}
}

// name is the row's name for -long-rows: model/pattern, with /restart or
// /fleet.
func (c longCase) name() string {
	n := c.model + "/" + c.pattern
	switch {
	case c.restart:
		n += "/restart"
	case c.fleet > 0:
		n += "/fleet"
	}
	return n
}

// selectLong is the cases named in names, in cases' order (names nil: all).
func selectLong(cases []longCase, names []string) ([]longCase, error) {
	if names == nil {
		return cases, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" { // "a,b," names two
			want[n] = true
		}
	}
	if len(want) == 0 {
		return nil, errors.New("no row named")
	}
	var out []longCase
	for _, c := range cases {
		if want[c.name()] {
			out = append(out, c)
			delete(want, c.name())
		}
	}
	if len(want) > 0 {
		var all, unknown []string
		for _, c := range cases {
			all = append(all, c.name())
		}
		for n := range want {
			unknown = append(unknown, n)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("no row named %s (the rows: %s)", strings.Join(unknown, ", "), strings.Join(all, ", "))
	}
	return out, nil
}

// contender names the row's resetq processes.
func (c longCase) contender() string {
	switch {
	case c.restart:
		sig, where := "SIGTERM", ""
		if c.kill {
			sig = "SIGKILL"
		}
		if c.elsewhere {
			where = " elsewhere (no --state-dir, --ledger-table)"
		}
		return "resetq, " + sig + " at half, a new process " + longRestartGap.String() + " later" + where
	case c.fleet > 0:
		return fmt.Sprintf("resetq ×%d, Redis", c.fleet)
	}
	return contResetq
}

// plan is when each of the row's processes starts and is sent SIGTERM,
// from the campaign's start, for a campaign of d.
func (c longCase) plan(d time.Duration) []replica {
	switch {
	case c.restart:
		return []replica{{stop: d / 2, kill: c.kill}, {start: d/2 + longRestartGap, stop: d}}
	case c.fleet > 0:
		p := make([]replica, c.fleet)
		for i := range p {
			p[i].stop = d
		}
		return p
	}
	return []replica{{stop: d}}
}

// args are the row's resetq flags beyond runOne's: the defaults but for
// --rate, the usage metrics read every usageInterval, and for a fleet
// its size and Redis.
func (c longCase) args(redisURL string) []string {
	a := []string{"--rate", strconv.Itoa(worldRate), "--usage-metrics=true", "--usage-interval", usageInterval.String()}
	if c.fleet > 0 {
		a = append(a, "--fleet-size", strconv.Itoa(c.fleet), "--redis-url", redisURL)
	}
	return a
}

// redis starts a fleet's redis-server and returns its URL and how to stop
// it; a single process needs none ("").
func (c longCase) redis(ctx context.Context) (string, func(), error) {
	if c.fleet == 0 {
		return "", func() {}, nil
	}
	srv, err := redisserver.Start(ctx)
	if err != nil {
		return "", nil, err
	}
	return srv.URL, func() { srv.Close() }, nil
}

// harmSpan is what happened in a span of a campaign, from the stand-in's
// counts: resetq's resets and throttles, real users' calls and throttles.
type harmSpan struct {
	From           int `json:"from_s"` // seconds from the campaign's start
	To             int `json:"to_s"`
	Resets         int `json:"resets"`
	Throttles      int `json:"throttles"`
	UsersCalls     int `json:"users_calls"`
	UsersThrottled int `json:"users_throttled"`
}

// Harm is real users' throttled share in the span.
func (s harmSpan) Harm() float64 { return shareOf(s.UsersThrottled, s.UsersCalls) }

// Rate is resetq's resets per second in the span.
func (s harmSpan) Rate() float64 {
	if s.To <= s.From {
		return 0
	}
	return float64(s.Resets) / float64(s.To-s.From)
}

func shareOf(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// spanOf adds up the timeline's seconds in (from, to].
func spanOf(tl []second, from, to int) harmSpan {
	s := harmSpan{From: from, To: min(to, len(tl))}
	for _, sec := range tl {
		if sec.T > from && sec.T <= to {
			s.Resets += sec.Resets
			s.Throttles += sec.Throttles
			s.UsersCalls += sec.BackgroundCalls
			s.UsersThrottled += sec.BackgroundThrottles
		}
	}
	return s
}

// longFigures fills r's spans from its timeline: the start (up to split
// seconds), the rest, and each minute; and takes real users' calls and
// throttles over the whole campaign from the same seconds, so that the
// start and the rest add up to it.
func (r *row) longFigures(split int) {
	tl := r.Timeline
	n := len(tl)
	if n == 0 {
		return
	}
	r.SplitSeconds = split
	r.Start, r.Rest = spanOf(tl, 0, min(split, n)), spanOf(tl, min(split, n), n)
	r.Minutes = nil
	for from := 0; from < n; from += 60 {
		r.Minutes = append(r.Minutes, spanOf(tl, from, from+60))
	}
	whole := spanOf(tl, 0, n)
	r.BackgroundCalls, r.BackgroundThrottled = whole.UsersCalls, whole.Harm()
	r.usersSpan = float64(n)
}

// long is scenario 8: the rows of longCases at once, each in its own world,
// the profile's longRuns times one after another, with each row's spread
// over the runs after the last.
func (h *harness) long(ctx context.Context) {
	d, runs := h.p.longFor, max(h.p.longRuns, 1)
	intro := fmt.Sprintf("Scenario 8: %d campaigns at once, each in a world of its own (a Cognito stand-in, a queue of Q × %v "+
		"jobs on the shared fauxqs), each stopped (SIGTERM) %v after its start and judged over the whole of it, the start "+
		"included. Q=%d, real users at %d/s (confirm: the campaign's own users, whose calls follow its resets); resetq "+
		"--rate %d --usage-metrics=true --usage-interval %v, the rest as it ships; the stand-ins publish each usage "+
		"minute %v after it ends, with %v of the real users alone before the start (none for confirm). The SQS "+
		"requests per reset are left out: the rows share one proxy.",
		len(h.longCases()), d, d, worldQuota, worldUsers, worldRate, usageInterval, longUsageDelay, usageHistory)
	if runs > 1 {
		intro += fmt.Sprintf(" %d runs of them one after another, the same seeds in each; each row says its run.", runs)
	}
	h.note(intro)
	var all []*row
	for run := 1; run <= runs && ctx.Err() == nil; run++ {
		all = append(all, h.longRun(ctx, run, runs)...)
	}
	if runs > 1 {
		h.say(spreadTable(all))
	}
}

// longCases are the rows of scenario 8 this run runs (-long-rows).
func (h *harness) longCases() []longCase {
	cases, _ := selectLong(longCases(), h.p.longRows) // checked with the flags
	return cases
}

// longRun is one run of scenario 8, run of runs: every row at once.
func (h *harness) longRun(ctx context.Context, run, runs int) []*row {
	of := ""
	if runs > 1 {
		of = fmt.Sprintf(", run %d of %d", run, runs)
		h.say("Scenario 8" + of)
	}
	use := beginMachineUse()
	cases := h.longCases()
	for i := range cases {
		cases[i].kill = cases[i].restart && h.p.longKill
		cases[i].elsewhere = cases[i].restart && h.p.longElsewhere
	}
	rows := make([]*row, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() { rows[i] = h.longRow(ctx, c, run) })
	}
	wg.Wait()
	var resetqCPU float64
	for _, r := range rows {
		resetqCPU += r.CPUSeconds
		h.add(r)
	}
	h.say(minutesTable(rows))
	h.note("Scenario 8's machine" + of + ": " + use.end(resetqCPU))
	return rows
}

// longRow runs one campaign of scenario 8 in a world of its own, in run
// run (from 1).
func (h *harness) longRow(ctx context.Context, c longCase, run int) *row {
	d := h.p.longFor
	seed := worldSeed(c.model, c.pattern)
	front, frontHarm := rw.Frontier(c.model, worldQuota, worldBurst, c.pattern, worldUsers, h.p.harmBudget, h.p.frontierSim, seed)
	users := usersRate(c.pattern)
	plan := c.plan(d)
	r := &row{Scenario: "8 long", Model: c.model, Pattern: c.pattern, Contender: c.contender(), Quota: worldQuota,
		Background: users, Available: worldQuota - users, HarmBudget: h.p.harmBudget, FrontierRate: front,
		FrontierHarm: frontHarm, Jobs: int(worldQuota * d.Seconds()), Processes: len(plan), CampaignFor: d.Seconds(),
		Run: run, long: true, unfinished: true}
	if c.fleet > 0 && h.w.redisMissing != "" {
		r.NotRun, r.Target = h.w.redisMissing, "not run"
		return r
	}
	redisURL, stopRedis, err := c.redis(ctx)
	if err != nil {
		r.Error, r.Target = err.Error(), "error"
		return r
	}
	defer stopRedis()
	stub, err := cognitostub.Start(cognitostub.Config{Latency: h.w.latency, UsageDelay: longUsageDelay})
	if err != nil {
		r.Error, r.Target = err.Error(), "error"
		return r
	}
	defer stub.Close()
	sub := &harness{w: h.w.withStub(stub), p: h.p}
	sub.w.gauges = true
	args := c.args(redisURL)
	if c.elsewhere {
		// Each process as on a machine of its own: no folder for its record
		// of calls, the ledger's table (in dynamostub) for it instead; the
		// front answers the ledger's DescribeUserPool.
		dyn, err := dynamostub.Start(ledgerLatency)
		if err != nil {
			r.Error, r.Target = err.Error(), "error"
			return r
		}
		defer dyn.Close()
		front, err := startPoolFront(stub.URL)
		if err != nil {
			r.Error, r.Target = err.Error(), "error"
			return r
		}
		defer front.Close()
		sub.w.env = []string{"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + front.url, "AWS_ENDPOINT_URL_DYNAMODB=" + dyn.URL}
		args = append(args, "--state-dir=", "--ledger-table", "resetq-long-restart")
	}
	sub.startWorld(ctx, c.model, c.pattern, seed, true)
	sub.runReplicas(ctx, r, plan, args...)
	r.SQSRequests, r.SQSPerReset = 0, 0 // the proxy counts every row's
	r.longFigures(int(h.p.longSplit.Seconds()))
	h.judgePacing(r)
	return r
}

// minutesTable is a Markdown table of each row's minutes: resetq's rate
// and real users' lost calls of theirs.
func minutesTable(rows []*row) string {
	n := 0
	for _, r := range rows {
		n = max(n, len(r.Minutes))
	}
	var b strings.Builder
	b.WriteString("Scenario 8 by minute: resetq's resets/s, real users' throttled calls of their calls\n\n| row |")
	for m := range n {
		fmt.Fprintf(&b, " %d |", m+1)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", n) + "\n")
	for _, r := range rows {
		c := []string{r.longName()}
		for m := range n {
			if m >= len(r.Minutes) {
				c = append(c, "–")
				continue
			}
			s := r.Minutes[m]
			c = append(c, fmt.Sprintf("%.1f/s, %d of %d", s.Rate(), s.UsersThrottled, s.UsersCalls))
		}
		b.WriteString(markdownRow(c))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// longName names one of scenario 8's rows: model × pattern, contender.
func (r *row) longName() string { return r.Model + " × " + r.Pattern + ", " + r.Contender }

// rowSpread is one of scenario 8's rows (model × pattern, contender) over
// the runs. Over the runs measured (no error, run, with a frontier): the
// median share of the frontier (of an even number of runs, the mean of
// the two middle ones), the lowest and highest, and real users' highest
// throttled share; over every run, how many met the row's target.
type rowSpread struct {
	name                    string
	runs                    []*row // by run from 1, nil where the run has no such row
	median, lowest, highest float64
	harm                    float64
	measured, met           int
}

// longSummary is scenario 8 over its runs: each row's spread, and each
// run's rows met of its rows.
type longSummary struct {
	rows      []rowSpread
	met, of   []int // by run from 1
	runsTotal int
}

// summarizeLong groups scenario 8's rows by row, in their first run's
// order, over runs 1 to the highest run (a row of run 0 is run 1's).
func summarizeLong(rows []*row) longSummary {
	var s longSummary
	for _, r := range rows {
		s.runsTotal = max(s.runsTotal, r.Run, 1)
	}
	s.met, s.of = make([]int, s.runsTotal), make([]int, s.runsTotal)
	at := map[string]int{}
	for _, r := range rows {
		run := max(r.Run, 1) - 1
		name := r.longName()
		i, ok := at[name]
		if !ok {
			i, at[name] = len(s.rows), len(s.rows)
			s.rows = append(s.rows, rowSpread{name: name, runs: make([]*row, s.runsTotal)})
		}
		s.rows[i].runs[run] = r
		s.of[run]++
		if r.Target == "met" {
			s.met[run]++
			s.rows[i].met++
		}
	}
	for i := range s.rows {
		s.rows[i].spread()
	}
	return s
}

// spread fills the median, lowest and highest share of the frontier and
// the highest harm from the runs measured.
func (sp *rowSpread) spread() {
	var shares []float64
	for _, r := range sp.runs {
		if inSpread(r) {
			shares = append(shares, r.OfFrontier)
			sp.harm = max(sp.harm, r.BackgroundThrottled)
		}
	}
	sp.measured = len(shares)
	if len(shares) == 0 {
		return
	}
	slices.Sort(shares)
	sp.lowest, sp.highest = shares[0], shares[len(shares)-1]
	sp.median = median(shares)
}

// inSpread says whether r ran and has figures to compare (nil: no such row).
func inSpread(r *row) bool {
	return r != nil && r.Error == "" && r.NotRun == "" && r.FrontierRate > 0
}

// median is the middle of sorted, or the mean of its two middle values
// when their number is even (0 when empty).
func median(sorted []float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// spreadTable is a Markdown table of scenario 8's rows over the runs, and
// a line of the rows met in each run.
func spreadTable(rows []*row) string {
	s := summarizeLong(rows)
	var b strings.Builder
	fmt.Fprintf(&b, "Scenario 8 over %d runs: each run's share of the frontier / real users' throttled share; over the runs "+
		"measured, the median share (of an even number of runs, the mean of the two middle ones), its lowest–highest and "+
		"the highest harm; and the runs that met the row (harm within the budget, 0.9 of the frontier at least)\n\n| row |",
		s.runsTotal)
	for k := range s.runsTotal {
		fmt.Fprintf(&b, " run %d |", k+1)
	}
	b.WriteString(" median | min–max | highest harm | met |\n|---|" + strings.Repeat("---|", s.runsTotal+4) + "\n")
	for _, sp := range s.rows {
		c := []string{sp.name}
		for _, r := range sp.runs {
			c = append(c, runCell(r))
		}
		if sp.measured > 0 {
			c = append(c, fmt.Sprintf("%.3f", sp.median), fmt.Sprintf("%.3f–%.3f", sp.lowest, sp.highest), pct(sp.harm))
		} else {
			c = append(c, "–", "–", "–")
		}
		c = append(c, fmt.Sprintf("%d of %d", sp.met, s.runsTotal))
		b.WriteString(markdownRow(c))
	}
	met := make([]string, s.runsTotal)
	for k := range met {
		met[k] = fmt.Sprintf("%d of %d", s.met[k], s.of[k])
	}
	b.WriteString("\nRows met, run by run: " + strings.Join(met, ", "))
	return b.String()
}

// runCell is one run of a row in spreadTable.
func runCell(r *row) string {
	switch {
	case r == nil:
		return "–"
	case r.NotRun != "":
		return "not run"
	case r.Error != "":
		return "error"
	case r.FrontierRate <= 0:
		return "no frontier"
	}
	return fmt.Sprintf("%.3f / %s", r.OfFrontier, pct(r.BackgroundThrottled))
}

// spanLabel names the span of a campaign from from to to seconds (to < 0:
// its end), in minutes when whole.
func spanLabel(from, to int) string {
	unit := func(s int) string {
		if s%60 == 0 && s > 0 {
			return strconv.Itoa(s/60) + " min"
		}
		return strconv.Itoa(s) + " s"
	}
	switch {
	case to < 0:
		return unit(from) + "–end"
	case from == 0:
		return "0–" + unit(to)
	}
	return unit(from) + "–" + unit(to)
}

// longHeader is scenario 8's table header, its start split at split
// seconds.
func longHeader(split int) string {
	return "| scenario | model × real users | contender | campaign | resets (dup) | rate/s | frontier | of frontier | resetq throttled | real users/s | real users throttled | " +
		spanLabel(0, split) + " | " + spanLabel(split, -1) + " | usage reads | verdict |\n" +
		"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
}

// longMarkdown is one row of scenario 8's table.
func (r *row) longMarkdown() string {
	dash := "–"
	cell := func(ok bool, s string) string {
		if !ok {
			return dash
		}
		return s
	}
	span := func(s harmSpan) string {
		return fmt.Sprintf("%s (%d of %d), %.1f/s", pct(s.Harm()), s.UsersThrottled, s.UsersCalls, s.Rate())
	}
	worked := r.Resets > 0
	return markdownRow([]string{
		r.Scenario,
		r.Model + " × " + r.Pattern,
		r.Contender,
		cell(worked, fmt.Sprintf("%.1f min", r.WallSeconds/60)),
		cell(worked, fmt.Sprintf("%s (%d)", thousands(r.Resets), r.Duplicates)),
		cell(r.Rate > 0, strconv.FormatFloat(r.Rate, 'f', 1, 64)),
		cell(r.FrontierRate > 0, fmt.Sprintf("%.1f/s", r.FrontierRate)),
		cell(r.OfFrontier > 0, strconv.FormatFloat(r.OfFrontier, 'f', 3, 64)),
		cell(r.Calls > 0, fmt.Sprintf("%s (%d of %d)", pct(r.Throttled), r.Throttles, r.Calls)),
		cell(r.UsersRate > 0, strconv.FormatFloat(r.UsersRate, 'f', 1, 64)),
		cell(r.BackgroundCalls > 0, fmt.Sprintf("%s (%d of %d)", pct(r.BackgroundThrottled),
			r.Start.UsersThrottled+r.Rest.UsersThrottled, r.BackgroundCalls)),
		cell(r.Start.UsersCalls > 0, span(r.Start)),
		cell(r.Rest.UsersCalls > 0, span(r.Rest)),
		cell(r.UsageReads > 0, fmt.Sprintf("%d (%d points)", r.UsageReads, r.UsagePoints)),
		verdict(r),
	})
}

// scenarioUse is what the machine did over a scenario: the harness's own
// CPU (the stand-ins and the SQS proxy run in it), fauxqs's, and all
// CPUs' busy share.
type scenarioUse struct {
	at        time.Time
	self      time.Duration
	fauxqs    time.Duration
	fauxqsPID int
	fauxqsOK  bool
	stat      cpuStat
}

func beginMachineUse() scenarioUse {
	u := scenarioUse{at: time.Now(), self: selfCPU(), stat: readCPUStat(), fauxqsPID: childPID("node")}
	u.fauxqs, u.fauxqsOK = procCPU(u.fauxqsPID)
	return u
}

// end says, in CPUs (CPU seconds per second), what each took since begin,
// resetq's processes having taken resetqCPU seconds.
func (u scenarioUse) end(resetqCPU float64) string {
	wall := time.Since(u.at).Seconds()
	if wall <= 0 {
		return "not measured"
	}
	self := (selfCPU() - u.self).Seconds() / wall
	busy := readCPUStat().busySince(u.stat)
	s := fmt.Sprintf("%.0f s; resetq's processes %.2f CPUs, the harness (stand-ins, SQS proxy) %.2f", wall, resetqCPU/wall, self)
	if f, ok := procCPU(u.fauxqsPID); ok && u.fauxqsOK {
		s += fmt.Sprintf(", fauxqs %.2f", (f-u.fauxqs).Seconds()/wall)
	}
	return s + fmt.Sprintf("; the machine %.0f%% busy (of %d CPUs, other processes included)", 100*busy, runtime.NumCPU())
}
