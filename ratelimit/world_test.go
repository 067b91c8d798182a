package ratelimit

import (
	"cmp"
	"fmt"
	"github.com/resetq/resetq/clock/clocktest"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/world"
)

// worldRun is what simulateWorld measured over a span of the campaign.
type worldRun struct {
	rate            float64 // worker calls admitted per second
	workerThrottled float64 // share of the worker's calls throttled
	harm            float64 // share of the real users' calls throttled
}

// worldCounts are the calls of one minute of a simulated campaign.
type worldCounts struct{ wOK, wThr, uOK, uThr int }

// span is what the minutes from..to-1 of a campaign measured.
func span(minutes []worldCounts, from, to int) worldRun {
	var c worldCounts
	for _, m := range minutes[from:to] {
		c.wOK, c.wThr, c.uOK, c.uThr = c.wOK+m.wOK, c.wThr+m.wThr, c.uOK+m.uOK, c.uThr+m.uThr
	}
	frac := func(a, b int) float64 {
		if a+b == 0 {
			return 0
		}
		return float64(b) / float64(a+b)
	}
	return worldRun{rate: float64(c.wOK) / float64(60*(to-from)), workerThrottled: frac(c.wOK, c.wThr), harm: frac(c.uOK, c.uThr)}
}

// worldSim is one simulated campaign in a world.
type worldSim struct {
	model, pattern  string
	quota, users    float64       // calls per second
	latency, jitter time.Duration // of the worker's calls
	history         time.Duration // real users alone before the campaign
	length          time.Duration // of the campaign, whole minutes
	usageDelay      time.Duration // usage minutes reach the limiter this long after they end (<0: never)
	seed            uint64
	flood           int  // calls someone else sends at once (within floodSpread) at second 30 of every minute: not real users'
	noWorker        bool // the limiter makes no call: what real users lose to the others alone
}

// floodSpread is how long a flood's calls (worldSim.flood) take to arrive.
const floodSpread = 20 * time.Millisecond

// simulateWorld runs the real Limiter on a simulated clock (100 µs steps)
// against a world quota model and real users of a world pattern. A worker
// call reaches the quota a seeded delay of up to jitter after the limiter
// let it go, and its answer reaches the limiter latency later. The worker
// always has work; each of its admitted calls is a reset (the campaign's
// own users confirm from it). Someone else's flood, if any, counts in the
// usage minutes but not in the minutes returned. Every minute from the
// campaign's start, as resetq work's usage watcher does, the limiter is
// given the category's usage minutes (its calls and real users' together)
// that have ended usageDelay before.
// It returns the calls of each minute of the campaign.
func simulateWorld(cfg Config, w worldSim) []worldCounts {
	rng := rand.New(rand.NewPCG(2, w.seed))
	start := time.Unix(1_000_000, 0)
	now := start
	cfg.Clock = clocktest.Func(func() time.Time { return now })
	l, err := New(cfg)
	if err != nil {
		panic(err)
	}
	q, err := world.NewQuota(w.model, w.quota, 0)
	if err != nil {
		panic(err)
	}
	users, err := world.NewUsers(w.pattern, w.users, start.Add(-time.Second), w.seed)
	if err != nil {
		panic(err)
	}
	type answer struct {
		at        time.Time
		throttled bool
	}
	var answers []answer
	var arriving []time.Time
	counts := make([]worldCounts, int(w.length/time.Minute))
	usage := map[int64]*Usage{} // by Unix minute
	count := func(at time.Time, ok bool) {
		m := at.Unix() / 60
		if usage[m] == nil {
			usage[m] = &Usage{Minute: time.Unix(m*60, 0)}
		}
		usage[m].Calls++
		if !ok {
			usage[m].Throttles++
		}
	}
	campaign := start.Add(w.history)
	nextRead := campaign
	floodAt, flooded := start.Add(30*time.Second), 0 // the next flood, and how many of its calls were sent
	end := campaign.Add(w.length)
	for ; now.Before(end); now = now.Add(100 * time.Microsecond) {
		working := !now.Before(campaign)
		var c *worldCounts // this minute's, in the campaign
		if working {
			c = &counts[int(now.Sub(campaign)/time.Minute)]
		}
		if working && w.usageDelay >= 0 && !now.Before(nextRead) {
			var minutes []Usage
			for m := now.Add(-15*time.Minute).Unix() / 60; m <= now.Unix()/60; m++ {
				if u := usage[m]; u != nil && !u.Minute.Add(time.Minute+w.usageDelay).After(now) {
					minutes = append(minutes, *u)
				}
			}
			l.Observe(minutes)
			nextRead = nextRead.Add(time.Minute)
		}
		for len(answers) > 0 && !answers[0].at.After(now) {
			if answers[0].throttled {
				l.Throttled()
			} else {
				l.Succeeded()
			}
			answers = answers[1:]
		}
		for w.flood > 0 && !now.Before(floodAt.Add(time.Duration(flooded)*floodSpread/time.Duration(w.flood))) {
			count(now, q.Admit(now))
			if flooded++; flooded == w.flood {
				floodAt, flooded = floodAt.Add(time.Minute), 0
			}
		}
		if working && !w.noWorker && l.Allow(now) {
			at := now.Add(time.Duration(rng.Int64N(int64(w.jitter) + 1)))
			i := len(arriving)
			arriving = append(arriving, at)
			for ; i > 0 && arriving[i].Before(arriving[i-1]); i-- {
				arriving[i], arriving[i-1] = arriving[i-1], arriving[i]
			}
		}
		for len(arriving) > 0 && !arriving[0].After(now) {
			ok := q.Admit(arriving[0])
			count(arriving[0], ok)
			if ok {
				users.OnReset(arriving[0])
			}
			arriving = arriving[1:]
			answers = append(answers, answer{at: now.Add(w.latency), throttled: !ok})
			if c != nil && ok {
				c.wOK++
			} else if c != nil {
				c.wThr++
			}
		}
		for t, ok := users.Peek(); ok && !t.After(now); t, ok = users.Peek() {
			users.Pop()
			admitted := q.Admit(t)
			count(t, admitted)
			if c != nil && admitted {
				c.uOK++
			} else if c != nil {
				c.uThr++
			}
		}
	}
	return counts
}

// The simulated campaigns: twenty minutes after three of real users alone,
// with usage metrics two minutes late. TestWorld measures the first ten
// minutes from the first call (the start, and the minutes before the
// usage metrics tell anything) and minutes 5 to 20 (a long campaign).
const (
	worldLength     = 20 * time.Minute
	worldUsageDelay = 2 * time.Minute
)

// worldBounds are one window's bounds in a TestWorld row.
type worldBounds struct {
	maxHarm  float64 // real users' throttled share
	minShare float64 // of the frontier's rate
}

// TestWorld holds the limiter, as resetq work sets it (--harm-budget 0.5%,
// usage metrics read), to the constant-rate frontier in every quota model
// and real-user pattern at Cognito's 30/s with real users at 10/s: real
// users' throttled share at most the budget and a rate of at least 0.9 of
// the frontier's, except where a row says by how much it misses
// (docs/pacing.md says why). The bounds sit a little beyond where the
// limiter is today.
func TestWorld(t *testing.T) {
	skipUnderRace(t)
	const quota, users, budget = 30.0, 10.0, 0.005
	met := worldBounds{budget, 0.9}
	tests := []struct {
		model, pattern string
		first, long    worldBounds // minutes 0-10 and 5-20; the first minutes miss where real users burst: the usage metrics have not come yet
	}{
		{world.Sliding, world.Even, worldBounds{0.009, 0.9}, worldBounds{0.0085, 0.9}},      // misses: even users lose at the edge, which resetq does not see
		{world.Sliding, world.Poisson, worldBounds{0.01, 0.9}, worldBounds{budget, 0.82}},   // minutes 5 to 20 pay back the start's 0.6% (lossScale): 0.83 to 0.84 of the frontier
		{world.Sliding, world.Step, worldBounds{0.025, 0.9}, worldBounds{0.0075, 0.9}},      // steps of 20/s for 10 s inside minutes that average 10/s: the minutes cannot show them
		{world.Sliding, world.Confirm, worldBounds{0.009, 0.9}, worldBounds{0.006, 0.88}},   // as sliding x Poisson: 0.90 at 0.19%
		{world.Second, world.Even, worldBounds{budget, 0.9}, worldBounds{budget, 0.87}},     // the room real users leave, less its margin (1.5/s), from the first reading: 18.5 of a frontier of 20.1 (0.86 while a late first minute's noise read as returns: wholeMinute)
		{world.Second, world.Poisson, worldBounds{budget, 0.87}, worldBounds{budget, 0.81}}, // the probes' gain climbs back only with spare minutes
		{world.Second, world.Step, met, met},
		{world.Second, world.Confirm, worldBounds{0.007, 0.9}, met},
		{world.Bucket, world.Even, worldBounds{0.007, 0.9}, worldBounds{budget, 0.87}},     // the room less its margin, as in the calendar second
		{world.Bucket, world.Poisson, worldBounds{budget, 0.9}, worldBounds{budget, 0.88}}, // the room less its margin
		{world.Bucket, world.Step, worldBounds{0.01, 0.9}, met},
		{world.Bucket, world.Confirm, worldBounds{0.009, 0.9}, met},
	}
	const seeds = 2 // one run's figures move with the seed
	jitter := simJitter(t)
	for _, tt := range tests {
		f, _ := world.Frontier(tt.model, quota, 0, tt.pattern, users, budget, 300*time.Second, 1)
		var first, long worldRun
		for seed := uint64(1); seed <= seeds; seed++ {
			m := simulateWorld(workConfig(quota), worldSim{model: tt.model, pattern: tt.pattern, quota: quota, users: users,
				latency: 20 * time.Millisecond, jitter: jitter, history: 3 * time.Minute,
				length: worldLength, usageDelay: worldUsageDelay, seed: seed})
			first, long = first.add(span(m, 0, 10), seeds), long.add(span(m, 5, 20), seeds)
		}
		for _, w := range []struct {
			name string
			r    worldRun
			b    worldBounds
		}{{"minutes 0-10", first, tt.first}, {"minutes 5-20", long, tt.long}} {
			t.Logf("%-8s %-8s %s: frontier %5.1f/s; limiter %5.1f/s (%.2f of it), own throttled %.2f%%, real users throttled %.2f%%",
				tt.model, tt.pattern, w.name, f, w.r.rate, w.r.rate/f, 100*w.r.workerThrottled, 100*w.r.harm)
			if w.r.harm > w.b.maxHarm || w.r.rate/f < w.b.minShare {
				t.Errorf("%s, %s, %s: %.2f%% of real users' calls throttled, %.2f of the frontier; want at most %.2f%% and at least %.2f",
					tt.model, tt.pattern, w.name, 100*w.r.harm, w.r.rate/f, 100*w.b.maxHarm, w.b.minShare)
			}
		}
	}
}

// add is r plus o's share of n runs.
func (r worldRun) add(o worldRun, n int) worldRun {
	return worldRun{r.rate + o.rate/float64(n), r.workerThrottled + o.workerThrottled/float64(n), r.harm + o.harm/float64(n)}
}

// TestWorldWholeCampaign holds the limiter over whole campaigns, their
// start included, as the holdout runs them: 12 minutes after 3 of
// real users alone, the usage minutes 90 s late, in every quota model,
// with real users at 10/s even or Poisson, the campaign's own
// confirmations alone, and both together. Real users' throttled share
// stays within the budget and the rate at 0.88 of the frontier or more
// (0.9 is the aim; the figures of 4 seeds move by 0.02 and more), except where a
// row says by how much it misses. The rows run at once.
func TestWorldWholeCampaign(t *testing.T) {
	skipUnderRace(t)
	const quota, users, budget = 30.0, 10.0, 0.005
	met := worldBounds{budget, 0.88}
	offFloor := worldBounds{budget, 0.8} // owed no speed: only off the floor
	tests := []struct {
		model, pattern string
		b              worldBounds
		quota, users   float64 // 0: the reset's 30, 10/s of real users
		ceiling        float64 // 0: the quota
		cautious       bool    // Config.Cautious
	}{
		{world.Sliding, world.Even, met, 0, 0, 0, false},
		{world.Sliding, world.Poisson, met, 0, 0, 0, false},
		{world.Sliding, world.Confirm, met, 0, 0, 0, false},
		{world.Sliding, world.Poisson + "+" + world.Confirm, worldBounds{0.0065, 0.88}, 0, 0, 0, false}, // misses in its first 3 minutes (1.3%): Poisson users and the returns together leave a frontier of 6.8/s
		{world.Second, world.Even, met, 0, 0, 0, false},
		{world.Second, world.Poisson, met, 0, 0, 0, false},
		{world.Second, world.Confirm, met, 0, 0, 0, false},
		{world.Second, world.Poisson + "+" + world.Confirm, met, 0, 0, 0, false},
		{world.Bucket, world.Even, met, 0, 0, 0, false},
		{world.Bucket, world.Poisson, met, 0, 0, 0, false},
		{world.Bucket, world.Confirm, met, 0, 0, 0, false},
		{world.Bucket, world.Poisson + "+" + world.Confirm, met, 0, 0, 0, false},
		{world.Bucket, world.Step, met, 0, 0, 0, false}, // the bench's long row: steps of 20/s for 10 s the minutes cannot show
		// The other categories the campaign calls, paced by the same code
		// (resetq work's categoryPace) but owed no speed (Cautious): the
		// sign-outs' UserUpdate (25/s, --sign-out-rate 20, the apps'
		// profile updates at 5/s) and the status checks' UserRead (120/s,
		// --status-check-rate 50, the pool's readers at 60/s). Paced as
		// the reset is, the first lost 0.56% (docs/benchmarks.md); their
		// share bound only keeps them off the floor.
		{world.Sliding, world.Poisson, offFloor, 25, 5, 20, true},
		{world.Bucket, world.Even, offFloor, 25, 5, 20, true},
		{world.Sliding, world.Poisson, offFloor, 120, 60, 50, true},
		{world.Second, world.Even, offFloor, 120, 60, 50, true},
	}
	seeds := simSeeds(t, 4)
	rows := simRows(t)
	jitter := simJitter(t)
	name := func(model, pattern string, q float64) (string, string) { // the reset's rows answer to both
		at := fmt.Sprintf("%s/%s@%.0f", model, pattern, q)
		if q != quota {
			return at, at
		}
		return model + "/" + pattern, at
	}
	if rows != nil {
		known := map[string]bool{}
		for _, tt := range tests {
			a, b := name(tt.model, tt.pattern, cmp.Or(tt.quota, quota))
			known[a], known[b] = true, true
		}
		for r := range rows {
			if !known[r] {
				t.Fatalf("RESETQ_SIM_ROWS names %q, which is no row (model/pattern, or model/pattern@quota)", r)
			}
		}
	}
	type result struct {
		frontier float64
		r        worldRun
		ran      bool
	}
	results := make([]result, len(tests))
	var wg sync.WaitGroup
	for i, tt := range tests {
		q, u, ceiling := cmp.Or(tt.quota, quota), cmp.Or(tt.users, users), cmp.Or(tt.ceiling, quota)
		if a, b := name(tt.model, tt.pattern, q); rows != nil && !rows[a] && !rows[b] {
			continue
		}
		wg.Go(func() {
			f, _ := world.Frontier(tt.model, q, 0, tt.pattern, u, budget, 300*time.Second, 1)
			f = min(f, ceiling) // a rate under the quota: the frontier resetq may reach
			cfg := workConfig(ceiling)
			cfg.Quota, cfg.Cautious = q, tt.cautious
			var whole worldRun
			for seed := uint64(1); seed <= seeds; seed++ {
				m := simulateWorld(cfg, worldSim{model: tt.model, pattern: tt.pattern, quota: q, users: u,
					latency: 20 * time.Millisecond, jitter: jitter, history: 3 * time.Minute,
					length: 12 * time.Minute, usageDelay: 90 * time.Second, seed: seed})
				whole = whole.add(span(m, 0, len(m)), int(seeds))
			}
			results[i] = result{f, whole, true}
		})
	}
	wg.Wait()
	for i, tt := range tests {
		if !results[i].ran {
			continue
		}
		f, r := results[i].frontier, results[i].r
		t.Logf("%-8s %-15s Q=%3.0f users %2.0f/s whole campaign: frontier %5.1f/s; limiter %5.1f/s (%.3f of it), own throttled %.2f%%, real users throttled %.3f%%",
			tt.model, tt.pattern, cmp.Or(tt.quota, quota), cmp.Or(tt.users, users), f, r.rate, r.rate/f, 100*r.workerThrottled, 100*r.harm)
		if r.harm > tt.b.maxHarm || r.rate/f < tt.b.minShare {
			t.Errorf("%s, %s, Q=%.0f, whole campaign: %.2f%% of real users' calls throttled, %.2f of the frontier; want at most %.2f%% and at least %.2f",
				tt.model, tt.pattern, cmp.Or(tt.quota, quota), 100*r.harm, r.rate/f, 100*tt.b.maxHarm, tt.b.minShare)
		}
	}
}

// simJitter is how late, at most, a worker's call reaches the quota in
// the simulation: 5 ms, or RESETQ_SIM_JITTER (a Go duration) to explore.
// With 400ms the shipped limiter's Poisson rows here come to the bench's
// figures (docs/benchmarks.md, "Tried on 2026-12-05 (fourth session)"):
// a calibration, not a measurement. It was fitted to per-second counts
// of the bench's calls read from a timeline sampled every 100 ms; the
// bench's real users were later measured on time (99% within 3 ms) on
// a machine far from busy (docs/benchmarks.md, twenty-third session), so
// what in the bench 400 ms stands for is not known. A value that is not
// a duration fails the test: silently read as 5 ms, it would pass for a
// jittered run.
func simJitter(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("RESETQ_SIM_JITTER")
	if v == "" {
		return 5 * time.Millisecond
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("RESETQ_SIM_JITTER=%q: want a duration of 0 or more, such as 400ms", v)
	}
	return d
}

// simSeeds is how many seeds each row of TestWorldWholeCampaign averages:
// n, or RESETQ_SIM_SEEDS to judge a change (for the same code the
// averages of seeds 1 to 8 and of 1 to 24 differed by 0.02 of the
// frontier; 24 rank changes of about 0.01). Anything but a whole number of 1 or more fails the test.
func simSeeds(t *testing.T, n int) uint64 {
	t.Helper()
	v := os.Getenv("RESETQ_SIM_SEEDS")
	if v == "" {
		return uint64(n)
	}
	s, err := strconv.ParseUint(v, 10, 32)
	if err != nil || s < 1 {
		t.Fatalf("RESETQ_SIM_SEEDS=%q: want a whole number of 1 or more, such as 24", v)
	}
	return s
}

// simRows are the rows of TestWorldWholeCampaign to run: RESETQ_SIM_ROWS,
// comma-separated model/pattern for the reset's rows
// (sliding/poisson+confirm), model/pattern@quota for the other
// categories' (sliding/poisson@25);
// nil (every row) if it is unset. TestWorldWholeCampaign fails on a name
// that is no row, so a typo cannot pass for a run.
func simRows(t *testing.T) map[string]bool {
	t.Helper()
	v := os.Getenv("RESETQ_SIM_ROWS")
	if v == "" {
		return nil
	}
	rows := map[string]bool{}
	for r := range strings.SplitSeq(v, ",") {
		rows[strings.TrimSpace(r)] = true
	}
	return rows
}

// TestWorldForeignThrottles measures the limiter against someone else's
// throttled calls: a flood of 40 calls at once every minute (0.7 a
// second; ForgotPassword needs no sign-in) makes real users, and the
// flood itself, lose calls whatever resetq does, and the usage minutes
// count all of them as real users' losses. Over a 30-minute campaign
// (minutes 5 to 30) real users lose at most the budget more than they
// lose to the flood alone, but the limiter keeps only a third or so of the
// rate it has without the flood: each judged minute over the budget cuts
// the cap, and before the minutes judge each flood takes the pace's
// headroom. The rows' bounds sit a little under where they are today
// (docs/pacing.md, "Someone else's throttles"; the aim is 0.9).
func TestWorldForeignThrottles(t *testing.T) {
	skipUnderRace(t)
	const quota, users, budget, flood = 30.0, 10.0, 0.005, 40
	const seeds = 2
	jitter := simJitter(t)
	tests := []struct {
		model    string
		minShare float64
	}{
		{world.Sliding, 0.3}, // 0.39 before minutes within the budget took the headroom away (judgedBy): 4.1/s with the flood then, 3.5 now
		{world.Second, 0.25},
		{world.Bucket, 0.3},
	}
	type result struct{ calm, flooded, alone worldRun }
	results := make([]result, len(tests))
	var wg sync.WaitGroup
	for i, tt := range tests {
		wg.Go(func() {
			run := func(flood int, noWorker bool) (r worldRun) {
				for seed := uint64(1); seed <= seeds; seed++ {
					m := simulateWorld(workConfig(quota), worldSim{model: tt.model, pattern: world.Poisson, quota: quota, users: users,
						latency: 20 * time.Millisecond, jitter: jitter, history: 3 * time.Minute,
						length: 30 * time.Minute, usageDelay: 90 * time.Second, seed: seed, flood: flood, noWorker: noWorker})
					r = r.add(span(m, 5, len(m)), seeds)
				}
				return r
			}
			results[i] = result{run(0, false), run(flood, false), run(flood, true)}
		})
	}
	wg.Wait()
	for i, tt := range tests {
		r := results[i]
		t.Logf("%-8s poisson, minutes 5-30: rate without the flood %5.1f/s; with it %5.1f/s (%.2f), own throttled %.2f%%, real users throttled %.2f%% (%.2f%% to the flood alone)",
			tt.model, r.calm.rate, r.flooded.rate, r.flooded.rate/r.calm.rate, 100*r.flooded.workerThrottled, 100*r.flooded.harm, 100*r.alone.harm)
		if r.flooded.rate < tt.minShare*r.calm.rate || r.flooded.harm-r.alone.harm > budget {
			t.Errorf("%s, a flood of %d calls a minute: %.1f/s, %.2f of the %.1f/s without it (want %.2f or more); real users lost %.2f%%, %.2f%% more than to the flood alone (want at most %.2f%%)",
				tt.model, flood, r.flooded.rate, r.flooded.rate/r.calm.rate, r.calm.rate, tt.minShare, 100*r.flooded.harm, 100*(r.flooded.harm-r.alone.harm), 100*budget)
		}
	}
}
