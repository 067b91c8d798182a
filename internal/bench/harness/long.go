package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

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

// contender names the row's resetq processes.
func (c longCase) contender() string {
	switch {
	case c.restart:
		return "resetq, SIGTERM at half, a new process " + longRestartGap.String() + " later"
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
		return []replica{{stop: d / 2}, {start: d/2 + longRestartGap, stop: d}}
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

// long is scenario 8: the rows of longCases at once, each in its own world.
func (h *harness) long(ctx context.Context) {
	d := h.p.longFor
	h.note(fmt.Sprintf("Scenario 8: %d campaigns at once, each in a world of its own (a Cognito stand-in, a queue of Q × %v "+
		"jobs on the shared fauxqs), each stopped (SIGTERM) %v after its start and judged over the whole of it, the start "+
		"included. Q=%d, real users at %d/s (confirm: the campaign's own users, whose calls follow its resets); resetq "+
		"--rate %d --usage-metrics=true --usage-interval %v, the rest as it ships; the stand-ins publish each usage "+
		"minute %v after it ends, with %v of the real users alone before the start (none for confirm). The SQS "+
		"requests per reset are left out: the rows share one proxy.",
		len(longCases()), d, d, worldQuota, worldUsers, worldRate, usageInterval, longUsageDelay, usageHistory))
	use := beginMachineUse()
	cases := longCases()
	rows := make([]*row, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() { rows[i] = h.longRow(ctx, c) })
	}
	wg.Wait()
	var resetqCPU float64
	for _, r := range rows {
		resetqCPU += r.CPUSeconds
		h.add(r)
	}
	h.say(minutesTable(rows))
	h.note("Scenario 8's machine: " + use.end(resetqCPU))
}

// longRow runs one campaign of scenario 8 in a world of its own.
func (h *harness) longRow(ctx context.Context, c longCase) *row {
	d := h.p.longFor
	seed := worldSeed(c.model, c.pattern)
	front, frontHarm := rw.Frontier(c.model, worldQuota, worldBurst, c.pattern, worldUsers, h.p.harmBudget, h.p.frontierSim, seed)
	users := usersRate(c.pattern)
	plan := c.plan(d)
	r := &row{Scenario: "8 long", Model: c.model, Pattern: c.pattern, Contender: c.contender(), Quota: worldQuota,
		Background: users, Available: worldQuota - users, HarmBudget: h.p.harmBudget, FrontierRate: front,
		FrontierHarm: frontHarm, Jobs: int(worldQuota * d.Seconds()), Processes: len(plan), CampaignFor: d.Seconds(),
		long: true, unfinished: true}
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
	sub.startWorld(ctx, c.model, c.pattern, seed, true)
	sub.runReplicas(ctx, r, plan, c.args(redisURL)...)
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
		c := []string{r.Model + " × " + r.Pattern + ", " + r.Contender}
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
