package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/resetq/resetq/internal/cognitostub"
	rw "github.com/resetq/resetq/internal/world" // the real world; world is the harness's
)

// Scenario 5's world: Cognito's real quota, real users at 10/s on average.
const (
	worldQuota = 30
	worldBurst = 30 // the token bucket's
	worldUsers = 10
	worldRate  = worldQuota // resetq's --rate: the quota, as a new user would set it
)

// Scenario 5's usage metrics: resetq reads them as it can on AWS.
const (
	// usageHistory is the simulated real users' use the stand-in's usage
	// metrics hold before each run (see startWorld).
	usageHistory = 5 * time.Minute
	// usageInterval is resetq's --usage-interval: a minute that ends is
	// seen within seconds, not a minute.
	usageInterval = 5 * time.Second
)

// usageNote is the report's word on the usage metrics resetq reads.
var usageNote = fmt.Sprintf("Scenario 5: resetq runs with --usage-metrics (--usage-interval %v) and reads the stand-in's "+
	"CloudWatch AWS/Usage CallCount and ThrottleCount of UserAccountRecovery per minute, as on AWS, except that each "+
	"minute is published as soon as it ends (CloudWatch is a few minutes late). Before each run, the record holds "+
	"%v of the real users alone, simulated with the row's quota model, pattern, rate and seed: on AWS a campaign "+
	"starts into hours of real users' history, which the bench cannot wait for; from the run's start, the calls the "+
	"stand-in serves are counted. The confirm pattern has no history (no campaign, no confirmations).",
	usageInterval, usageHistory)

// pacing is scenario 5: for each quota model × real users' pattern, the
// real users alone, the baselines, resetq (reading the usage metrics), and
// a constant rate at the simulated frontier.
func (h *harness) pacing(ctx context.Context) {
	defer h.w.stub.SetQuota(0)
	defer h.w.stub.SetUsers(nil)
	h.note(usageNote)
	for _, model := range rw.Models() {
		for _, pattern := range rw.Patterns() {
			if ctx.Err() != nil {
				return
			}
			if (h.p.models == nil || slices.Contains(h.p.models, model)) && (h.p.patterns == nil || slices.Contains(h.p.patterns, pattern)) {
				h.pacingRow(ctx, model, pattern, worldSeed(model, pattern))
			}
		}
	}
}

// worldSeed is the seed of a quota model × real users' pattern: its place
// in rw.Models × rw.Patterns, from 1, so that each pair keeps its real
// users and its frontier whatever else runs, in scenarios 5 and 8.
func worldSeed(model, pattern string) uint64 {
	m, p := slices.Index(rw.Models(), model), slices.Index(rw.Patterns(), pattern)
	if m < 0 || p < 0 {
		panic("unknown model or pattern: " + model + " × " + pattern) // the names are world's own
	}
	return uint64(m*len(rw.Patterns()) + p + 1)
}

func (h *harness) pacingRow(ctx context.Context, model, pattern string, seed uint64) {
	scenario := "5 " + model + " × " + pattern
	aloneFor, constantFor := h.p.worldAlone, h.p.constantFor
	if pattern == rw.Step && h.p.stepCycle {
		// Whole cycles: a run within the first phase would see only 5/s.
		aloneFor, constantFor = max(aloneFor, 3*rw.StepPhase), max(constantFor, 3*rw.StepPhase)
	}
	front, frontHarm := rw.Frontier(model, worldQuota, worldBurst, pattern, worldUsers, h.p.harmBudget, h.p.frontierSim, seed)
	users := usersRate(pattern)
	base := func(contender string) *row {
		return &row{Scenario: scenario, Model: model, Pattern: pattern, Contender: contender, Quota: worldQuota,
			Background: users, Available: worldQuota - users, HarmBudget: h.p.harmBudget,
			FrontierRate: front, FrontierHarm: frontHarm}
	}

	alone := base("real users alone")
	alone.SimHarm = simulatedHarm(model, pattern, 0, aloneFor, seed)
	if pattern == rw.Confirm {
		alone.Target = "n/a (no campaign, no confirmations)"
	} else {
		h.startWorld(ctx, model, pattern, seed, false)
		h.w.stub.Reset()
		began := time.Now()
		sleep(ctx, aloneFor)
		bg := h.w.stub.Stats().Background
		alone.BackgroundCalls, alone.BackgroundThrottled = bg.Calls, bg.ThrottledShare()
		alone.UsersRate = float64(bg.Calls) / time.Since(began).Seconds()
		alone.Target = "n/a (harm baseline)"
	}
	h.add(alone)

	for _, cont := range h.p.contendersToRun() {
		r := base(cont)
		h.startWorld(ctx, model, pattern, seed, true)
		if cont == contResetq {
			r.Jobs = h.p.worldJobs
			h.runResetq(ctx, r, 1, "--rate", strconv.Itoa(worldRate),
				"--usage-metrics=true", "--usage-interval", usageInterval.String())
		} else {
			r.Jobs = h.p.worldBaseJobs
			h.runBaseline(ctx, r, cont)
		}
		r.BackgroundAlone = alone.BackgroundThrottled
		h.judgePacing(r)
		h.add(r)
	}

	c := base("constant " + strconv.FormatFloat(front, 'f', 1, 64) + "/s (frontier)")
	if front <= 0 {
		c.NotRun, c.Target = "no rate meets the budget in the simulation", "not run"
		h.add(c)
		return
	}
	c.Jobs = int(front * constantFor.Seconds())
	c.lossy = true
	c.SimHarm = simulatedHarm(model, pattern, front, constantFor, seed)
	h.startWorld(ctx, model, pattern, seed, true)
	h.measure(ctx, c, func() (time.Time, error) {
		start := time.Now()
		return start, h.w.constant(ctx, front, c.Jobs)
	})
	c.BackgroundAlone = alone.BackgroundThrottled
	h.judgePacing(c)
	h.add(c)
}

// usersRate is the real users' rate a row of pattern sets: worldUsers,
// or 0 for the campaign's own users, whose calls follow its resets (the
// row's UsersRate and BackgroundCalls measure them, as for every pattern).
func usersRate(pattern string) float64 {
	if pattern == rw.Confirm {
		return 0
	}
	return worldUsers
}

// simulatedHarm is the real users' throttled share in rw.Seeds simulated
// runs like the stand-in's: a constant rate (0: none) for d.
func simulatedHarm(model, pattern string, rate float64, d time.Duration, seed uint64) float64 {
	var calls, throttled int
	for i := range uint64(rw.Seeds) {
		r, err := rw.Constant(model, worldQuota, worldBurst, pattern, worldUsers, rate, d, seed+i)
		if err != nil {
			panic(err) // the models and patterns are world's own
		}
		calls, throttled = calls+r.UserCalls, throttled+r.UserThrottled
	}
	if calls == 0 {
		return 0
	}
	return float64(throttled) / float64(calls)
}

// startWorld gives the stand-in a fresh quota of model and fresh real
// users of pattern, and lets their calls fill a window before what runs
// next, unless measure will (settles: it does in the full profile).
//
// The stand-in's usage metrics (CloudWatch AWS/Usage, which resetq reads)
// start over with a history: the usageHistory before now, to the whole
// minute, of the same real users alone (same model, pattern, rate and
// seed), simulated, not served. On AWS a campaign starts into hours of
// real users' use, and resetq reads the minutes before its first call;
// the bench cannot wait minutes per row. From now on, the calls the
// stand-in serves are counted on top.
func (h *harness) startWorld(ctx context.Context, model, pattern string, seed uint64, measured bool) {
	prepareStub(h.w.stub, model, pattern, seed)
	if !measured || !h.p.settle {
		sleep(ctx, window)
	}
}

// prepareStub gives stub a fresh quota of model, a usage record holding
// the usageHistory before now of real users of pattern alone, and those
// real users from now on (startWorld).
func prepareStub(stub *cognitostub.Server, model, pattern string, seed uint64) {
	stub.SetUsers(nil)
	if err := stub.SetQuotaModel(model, worldQuota, worldBurst); err != nil {
		panic(err) // the models are world's own
	}
	now := time.Now()
	past, err := rw.NewQuota(model, worldQuota, worldBurst)
	if err != nil {
		panic(err)
	}
	pastUsers, err := rw.NewUsers(pattern, worldUsers, now.Truncate(time.Minute).Add(-usageHistory), seed)
	if err != nil {
		panic(err) // the patterns are world's own
	}
	stub.SeedUsage(past, pastUsers, now)
	u, err := rw.NewUsers(pattern, worldUsers, now, seed)
	if err != nil {
		panic(err)
	}
	stub.SetUsers(u)
}

// judgePacing fills the shares of the leftover and of the frontier, and
// the verdict: harm within budget, rate at least 0.9 of the frontier.
func (h *harness) judgePacing(r *row) {
	if span := r.usersSpan; span > 0 {
		r.UsersRate = float64(r.BackgroundCalls) / span
	}
	if left := float64(r.Quota) - r.UsersRate; left > 0 {
		r.LeftoverShare = r.Rate / left
	}
	if r.FrontierRate > 0 {
		r.OfFrontier = r.Rate / r.FrontierRate
	}
	r.judge(func(r *row) []string {
		misses := atMost("real users throttled", r.BackgroundThrottled, r.HarmBudget)
		if r.FrontierRate > 0 {
			misses = append(misses, atLeast("rate", r.OfFrontier, 0.9, "of the frontier")...)
		}
		return misses
	})
}

// constant resets n users at rate per second, evenly spaced, one call
// each with no retry (a throttled user is simply not reset): the
// frontier's worker, for the stand-in.
func (w *world) constant(ctx context.Context, rate float64, n int) error {
	client := cip.NewFromConfig(w.cfg, func(o *cip.Options) {
		o.BaseEndpoint = aws.String(w.stub.URL)
		o.Retryer = aws.NopRetryer{}
	})
	id := w.seq.Add(1)
	start := time.Now()
	done := make(chan struct{}, n)
	for k := range n {
		sleep(ctx, time.Until(start.Add(time.Duration(float64(k)/rate*float64(time.Second)))))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		go func() {
			defer func() { done <- struct{}{} }()
			_, _ = client.AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{
				UserPoolId: aws.String(pool), Username: aws.String(fmt.Sprintf("const%d-%06d", id, k))})
		}()
	}
	for range n {
		<-done
	}
	return nil
}
