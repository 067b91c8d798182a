package main

import (
	"context"
	"fmt"
	"github.com/resetq/resetq/clock"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resetq/resetq/internal/cognitostub"
	"github.com/resetq/resetq/internal/redisserver"
)

// Contenders.
const (
	contNaive     = "naive"
	contAdaptive  = "sdk-adaptive"
	contPerSecond = "per-second"
	contResetq    = "resetq"
)

var baselines = []string{contNaive, contAdaptive, contPerSecond}

// profile sizes the scenarios.
type profile struct {
	name            string
	scenarios       []string      // run by default (-scenarios)
	aloneJobs       int           // scenario 1
	sharedJobs      int           // scenario 2
	harmBaseline    time.Duration // scenario 2: the background measured alone
	fleetJobs       int           // scenario 3
	effJobs         int           // scenario 4
	rssSmall        int           // scenario 4: queued jobs for the RSS comparison
	rssLarge        int
	idle            time.Duration // --exit-when-idle
	unlimitedRate   float64       // --rate when the quota is unlimited
	contenders      []string      // scenarios 1, 2 and 5 run only these (nil: all)
	resetqArgs      []string      // more flags for every resetq run (-resetq-args)
	settle          bool          // wait one quota window before each contender
	worldJobs       int           // scenario 5: resetq's jobs in each row
	worldBaseJobs   int           // scenario 5: each baseline's jobs in each row
	worldAlone      time.Duration // scenario 5: the real users alone
	constantFor     time.Duration // scenario 5: the constant rate at the frontier
	frontierSim     time.Duration // scenario 5: the simulated run that finds the frontier
	harmBudget      float64       // scenario 5: real users' throttled share allowed (-harm-budget)
	stepCycle       bool          // scenario 5: the step pattern's alone and constant runs last a whole cycle at least
	models          []string      // scenario 5 runs only these quota models (nil: all)
	patterns        []string      // scenario 5 runs only these real users' patterns (nil: all)
	ledgerJobs      int           // scenario 6: jobs in each run
	ledgerRuns      []ledgerRun   // scenario 6: each with the ledger, after one without at its concurrency
	accountsShipped int           // scenario 7a: account-Regions, resetq as it ships
	accountsJobs    int           // scenario 7: jobs per account-Region in each run
	accountsSteps   []int         // scenario 7b: account-Regions of each step, with --incident and the ledger (nil: none)
	longFor         time.Duration // scenario 8: each campaign, from its start to its SIGTERM
	longSplit       time.Duration // scenario 8: the campaign's start, judged apart from the rest as well
	longRuns        int           // scenario 8: runs of every campaign, one after another (-long-runs; 0: one)
	longKill        bool          // scenario 8: the restart row's first process gets SIGKILL, not SIGTERM (-long-restart-kill)
	longElsewhere   bool          // scenario 8: the restart row's processes as on two machines: no --state-dir, a ledger (-long-restart-elsewhere)
	longRows        []string      // scenario 8: the names (longCase.name) of the rows to run (-long-rows; nil: all)
}

// contendersToRun returns the contenders of scenarios 1, 2 and 5 to run.
func (p profile) contendersToRun() []string {
	all := append(slices.Clone(baselines), contResetq)
	if p.contenders == nil {
		return all
	}
	return slices.DeleteFunc(all, func(c string) bool { return !slices.Contains(p.contenders, c) })
}

var profiles = map[string]profile{
	"full": {name: "full", scenarios: []string{"1", "2", "3", "4", "5", "6", "7", "8"},
		aloneJobs: 3000, sharedJobs: 2000, harmBaseline: 10 * time.Second, fleetJobs: 3000,
		effJobs: 50_000, rssSmall: 1000, rssLarge: 100_000, idle: 2 * time.Second, unlimitedRate: 100_000, settle: true,
		worldJobs: 1000, worldBaseJobs: 200, worldAlone: 10 * time.Second, constantFor: 20 * time.Second, frontierSim: 600 * time.Second,
		stepCycle: true, ledgerJobs: 3000,
		ledgerRuns:      []ledgerRun{{16, ledgerLatency, false}, {1, ledgerLatency, false}, {1, ledgerSlow, true}},
		accountsShipped: 4, accountsJobs: 1800, accountsSteps: []int{4, 8, 16, 30},
		longFor: 11 * time.Minute, longSplit: 5 * time.Minute},
	// quick is a smoke test for CI: scenarios 1 to 4 and 6 to 8 (5 when
	// asked for) with every contender, but so few jobs (8: so short a
	// campaign) that start-up and ramp-up weigh on the figures; and no
	// wait between contenders, to stay near a minute and a half.
	"quick": {name: "quick", scenarios: []string{"1", "2", "3", "4", "6", "7", "8"},
		aloneJobs: 80, sharedJobs: 50, harmBaseline: time.Second, fleetJobs: 75,
		effJobs: 1000, rssSmall: 1000, rssLarge: 5000, idle: time.Second, unlimitedRate: 100_000,
		worldJobs: 200, worldBaseJobs: 60, worldAlone: 2 * time.Second, constantFor: 3 * time.Second, frontierSim: 120 * time.Second,
		ledgerJobs: 60, ledgerRuns: []ledgerRun{{16, ledgerLatency, false}},
		accountsShipped: 4, accountsJobs: 60, accountsSteps: []int{4},
		longFor: 20 * time.Second, longSplit: 10 * time.Second},
}

// The scenarios' quotas and loads.
const (
	window           = time.Second // Cognito's quota window
	aloneQuota       = 50
	sharedQuota      = 50
	sharedBackground = 20
	fleetQuota       = 60
	fleetSize        = 3
)

type harness struct {
	w     *world
	p     profile
	rows  []*row
	out   func(*row)   // called with each finished row
	say   func(string) // prints a note between tables
	notes []string     // what say printed, for the report
	last  time.Time    // when the last row was added
	// around, when set, is called as a run's resetq processes start, and
	// what it returns as the last of them exits: scenario 7 measures the
	// machine in between.
	around func() func()
}

// note prints s between tables and keeps it for the report.
func (h *harness) note(s string) {
	h.notes = append(h.notes, s)
	h.say(s)
}

func (h *harness) add(r *row) {
	fmt.Fprintf(os.Stderr, "%s  %s / %s: %.1f s\n", time.Now().UTC().Format("15:04:05"), r.Scenario, r.Contender, time.Since(h.last).Seconds())
	h.last = time.Now()
	h.rows = append(h.rows, r)
	h.out(r)
}

// timeout bounds one contender: four times the ideal time plus 30 s.
func timeout(jobs int, perSecond float64) time.Duration {
	return 30*time.Second + time.Duration(4*float64(jobs)/perSecond*float64(time.Second))
}

// settle waits one quota window (with the profile's settle), so that what
// runs next starts with only the real users in it: the calls of the
// contender before (per-second ends on a burst) would throttle its first
// second.
func (h *harness) settle(ctx context.Context) {
	if h.p.settle {
		sleep(ctx, window)
	}
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) { _ = clock.Sleep(ctx, clock.Real{}, d) }

// measure resets the stand-in's counters, runs body (which returns when
// its contender started), and fills r from the stand-in's counts.
func (h *harness) measure(ctx context.Context, r *row, body func() (time.Time, error)) {
	h.settle(ctx)
	h.w.stub.Reset()
	reset := time.Now()
	var samples []sample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				samples = append(samples, sample{time.Now(), h.w.stub.Stats()})
			}
		}
	}()
	start, err := body()
	close(stop)
	wg.Wait()
	st := h.w.stub.Stats()
	r.fill(st, start)
	// The real users' throttled share while the contender was at work: up
	// to the first sample that saw its last reset.
	bg, until := st.Background, time.Now()
	for _, s := range samples {
		if s.st.Resets == st.Resets {
			bg, until = s.st.Background, s.at
			break
		}
	}
	r.BackgroundCalls, r.BackgroundThrottled = bg.Calls, bg.ThrottledShare()
	r.usersSpan = until.Sub(reset).Seconds()
	r.Timeline = timeline(start, samples)
	if err != nil {
		r.Error = err.Error()
	} else if r.Users != r.Jobs && !r.lossy && !r.unfinished {
		r.Error = fmt.Sprintf("%d of %d users reset", r.Users, r.Jobs)
	}
}

// runBaseline measures one in-process baseline.
func (h *harness) runBaseline(ctx context.Context, r *row, kind string) {
	h.measure(ctx, r, func() (time.Time, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout(r.Jobs, r.Available))
		defer cancel()
		start := time.Now()
		return start, h.w.baseline(ctx, kind, r.Jobs, r.Quota)
	})
}

// runResetq measures n resetq processes over a queue of r.Jobs.
func (h *harness) runResetq(ctx context.Context, r *row, n int, args ...string) {
	h.runReplicas(ctx, r, make([]replica, n), args...)
}

// runReplicas measures resetq processes started and stopped by plan.
func (h *harness) runReplicas(ctx context.Context, r *row, plan []replica, args ...string) {
	q, err := h.w.newQueues(ctx, r.Jobs)
	defer h.w.deleteQueues(ctx, q)
	if err != nil {
		r.Error = err.Error()
		return
	}
	args = append(args, h.p.resetqArgs...)
	r.Args = strings.Join(args, " ")
	var procs []proc
	var sqsBefore int
	avail := r.Available
	if avail == 0 {
		avail = 200 // unlimited: bound the run as if at 200/s at least
	}
	h.measure(ctx, r, func() (time.Time, error) {
		sqsBefore = h.w.sqsCalls()
		var done func()
		if h.around != nil {
			done = h.around()
		}
		procs = h.w.runReplicas(ctx, q, plan, h.p.idle, timeout(r.Jobs, avail), args...)
		if done != nil {
			done()
		}
		start := procs[0].start
		var errs []string
		for _, p := range procs {
			if p.err != nil {
				errs = append(errs, p.err.Error())
			}
			if p.start.Before(start) {
				start = p.start
			}
		}
		for i, p := range procs {
			for _, g := range p.gauges {
				g.T, g.Process = g.at.Sub(start).Seconds(), i
				r.Gauges = append(r.Gauges, g)
			}
		}
		if len(errs) > 0 {
			return start, fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return start, nil
	})
	r.SQSRequests = h.w.sqsCalls() - sqsBefore
	if r.Resets > 0 {
		r.SQSPerReset = float64(r.SQSRequests) / float64(r.Resets)
	}
	var cpu time.Duration
	for _, p := range procs {
		cpu += p.cpu
		r.PeakRSSKiB = max(r.PeakRSSKiB, p.maxRSSKiB)
	}
	r.CPUSeconds = cpu.Seconds()
	if r.Resets > 0 {
		r.CPUPer10k = r.CPUSeconds / float64(r.Resets) * 10_000
	}
	left, err := h.w.depth(ctx, q.url)
	dead, err2 := h.w.depth(ctx, q.dlq)
	if err == nil && err2 == nil {
		r.LeftOnQueue, r.DeadLettered = left, dead
		if ((left > 0 && !r.unfinished) || dead > 0) && r.Error == "" {
			r.Error = fmt.Sprintf("%d jobs left on the queue, %d dead-lettered", left, dead)
		}
	}
}

// alone is scenario 1: Q=50/s, nobody else.
func (h *harness) alone(ctx context.Context) {
	h.w.stub.SetQuota(aloneQuota)
	defer h.w.stub.SetQuota(0)
	for _, c := range h.p.contendersToRun() {
		r := &row{Scenario: "1 alone", Contender: c, Jobs: h.p.aloneJobs, Quota: aloneQuota, Available: aloneQuota}
		if c == contResetq {
			h.runResetq(ctx, r, 1, "--rate", strconv.Itoa(aloneQuota))
		} else {
			h.runBaseline(ctx, r, c)
		}
		r.judge(func(r *row) []string {
			return append(atLeast("rate", r.RateShare, 0.97, "of Q"), atMost("throttled", r.Throttled, 0.005)...)
		})
		h.add(r)
	}
}

// shared is scenario 2: Q=50/s with real users at 20/s.
func (h *harness) shared(ctx context.Context) {
	h.w.stub.SetQuota(sharedQuota)
	defer h.w.stub.SetQuota(0)
	h.w.stub.SetBackground(sharedBackground)
	defer h.w.stub.SetBackground(0)

	alone := &row{Scenario: "2 shared", Contender: "real users alone", Quota: sharedQuota, Background: sharedBackground,
		Available: sharedQuota - sharedBackground}
	h.settle(ctx)
	h.w.stub.Reset()
	sleep(ctx, h.p.harmBaseline)
	bg := h.w.stub.Stats().Background
	alone.BackgroundCalls, alone.BackgroundThrottled = bg.Calls, bg.ThrottledShare()
	alone.Target = "n/a (harm baseline)"
	h.add(alone)

	for _, c := range h.p.contendersToRun() {
		r := &row{Scenario: "2 shared", Contender: c, Jobs: h.p.sharedJobs, Quota: sharedQuota, Background: sharedBackground,
			Available: sharedQuota - sharedBackground}
		if c == contResetq {
			h.runResetq(ctx, r, 1, "--rate", strconv.Itoa(sharedQuota))
		} else {
			h.runBaseline(ctx, r, c)
		}
		r.BackgroundAlone = alone.BackgroundThrottled
		r.HarmPP = 100 * (r.BackgroundThrottled - alone.BackgroundThrottled)
		r.judge(func(r *row) []string {
			return append(atLeast("rate", r.RateShare, 0.90, "of Q - background"), atMostPP("real users' throttled share raised", r.HarmPP, 1)...)
		})
		h.add(r)
	}
}

// fleet is scenario 3: three resetq processes, Q=60/s; with Redis also
// replicas added and removed mid-run.
func (h *harness) fleet(ctx context.Context) {
	h.w.stub.SetQuota(fleetQuota)
	defer h.w.stub.SetQuota(0)
	each := strconv.Itoa(fleetQuota)
	loose := func(r *row) []string {
		return append(atLeast("rate", r.RateShare, 0.95, "of Q"), atMost("throttled", r.Throttled, 0.01)...)
	}
	strict := func(r *row) []string {
		return append(atLeast("rate", r.RateShare, 0.97, "of Q"), atMost("throttled", r.Throttled, 0.005)...)
	}
	// churn: T is the ideal run; one replica joins at T/4, one leaves at
	// T/2, one joins at 0.6 T and leaves at 0.85 T (SIGTERM: it finishes
	// its calls and releases its messages).
	t := time.Duration(float64(h.p.fleetJobs) / fleetQuota * float64(time.Second))
	at := func(f float64) time.Duration { return time.Duration(f * float64(t)) }
	churn := []replica{{}, {stop: at(0.5)}, {}, {start: at(0.25)}, {start: at(0.6), stop: at(0.85)}}
	for _, c := range []struct {
		name  string
		redis bool
		plan  []replica
		args  []string
		judge func(*row) []string
	}{
		{"resetq ×3, no coordination", false, make([]replica, fleetSize), []string{"--rate", each}, loose},
		{"resetq ×3, per-replica ceiling", false, make([]replica, fleetSize), []string{"--rate", strconv.Itoa(fleetQuota / fleetSize)}, loose},
		{"resetq ×3, Redis", true, make([]replica, fleetSize), []string{"--rate", each, "--fleet-size", strconv.Itoa(fleetSize)}, strict},
		{"resetq 3→4→3→4→3, Redis", true, churn, []string{"--rate", each, "--fleet-size", strconv.Itoa(fleetSize)}, strict},
	} {
		r := &row{Scenario: "3 fleet", Contender: c.name, Jobs: h.p.fleetJobs, Quota: fleetQuota, Available: fleetQuota}
		if c.redis {
			if h.w.redisMissing != "" {
				r.NotRun = h.w.redisMissing
				r.Target = "not run"
				h.add(r)
				continue
			}
			srv, err := redisserver.Start(ctx)
			if err != nil {
				r.Error = err.Error()
				r.Target = "error"
				h.add(r)
				continue
			}
			defer srv.Close()
			c.args = append(c.args, "--redis-url", srv.URL)
		}
		h.runReplicas(ctx, r, c.plan, c.args...)
		r.judge(c.judge)
		h.add(r)
	}
}

// efficiency is scenario 4: no quota, resetq alone, what it costs.
func (h *harness) efficiency(ctx context.Context) {
	h.w.stub.SetQuota(0)
	rate := strconv.FormatFloat(h.p.unlimitedRate, 'f', -1, 64)
	r := &row{Scenario: "4 efficiency", Contender: contResetq, Jobs: h.p.effJobs}
	h.runResetq(ctx, r, 1, "--rate", rate, "--status-check-rate", rate)
	r.judge(func(r *row) []string {
		return append(atMostN("SQS requests per reset", r.SQSPerReset, 0.25), atLeastN("resets/s", r.Rate, 1000)...)
	})
	h.add(r)

	small := &row{Scenario: "4 efficiency", Contender: "resetq, RSS at " + thousands(h.p.rssSmall) + " queued", Jobs: h.p.rssSmall}
	h.runResetq(ctx, small, 1, "--rate", rate, "--status-check-rate", rate)
	small.Target = "n/a (compared below)"
	h.add(small)
	large := &row{Scenario: "4 efficiency", Contender: "resetq, RSS at " + thousands(h.p.rssLarge) + " queued", Jobs: h.p.rssLarge}
	h.runResetq(ctx, large, 1, "--rate", rate, "--status-check-rate", rate)
	if small.PeakRSSKiB > 0 && large.PeakRSSKiB > 0 {
		g := float64(large.PeakRSSKiB)/float64(small.PeakRSSKiB) - 1
		large.RSSGrowth = &g
	}
	large.judge(func(r *row) []string {
		if r.RSSGrowth == nil {
			return []string{"no RSS to compare"}
		}
		return atMostN("RSS growth from "+thousands(h.p.rssSmall), *r.RSSGrowth, 0.20)
	})
	if small.Error != "" && large.Error == "" {
		large.Target = "error (the small run failed)"
	}
	h.add(large)
}

// sample is the stand-in's counters at one time.
type sample struct {
	at time.Time
	st cognitostub.Stats
}

// second is what happened in one second of a run.
type second struct {
	T                   int `json:"t"` // seconds since the start, at its end
	Resets              int `json:"resets"`
	Throttles           int `json:"throttles"`
	BackgroundCalls     int `json:"background_calls,omitempty"`
	BackgroundThrottles int `json:"background_throttles,omitempty"`
}

// timeline turns samples into per-second counts from start, while the
// contender was resetting (it stops after the second of the last reset).
func timeline(start time.Time, samples []sample) []second {
	var out []second
	var prev cognitostub.Stats
	final := 0
	if len(samples) > 0 {
		final = samples[len(samples)-1].st.Resets
	}
	k := 1
	for _, s := range samples {
		if s.at.Before(start.Add(time.Duration(k) * time.Second)) {
			continue
		}
		out = append(out, second{T: k, Resets: s.st.Resets - prev.Resets, Throttles: s.st.Worker.Throttles - prev.Worker.Throttles,
			BackgroundCalls: s.st.Background.Calls - prev.Background.Calls, BackgroundThrottles: s.st.Background.Throttles - prev.Background.Throttles})
		prev = s.st
		k++
		if s.st.Resets == final {
			break
		}
	}
	return out
}
