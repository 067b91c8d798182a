package world

import (
	"testing"
	"time"
)

const simDur = 120 * time.Second

func TestConstant(t *testing.T) {
	t.Parallel()
	// Alone at the quota, evenly spaced: a call now and then comes a
	// millisecond early for its slot and is throttled.
	r, err := Constant(Sliding, 30, 0, Confirm, 0, 30, simDur, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.WorkerCalls < 3599 || r.WorkerCalls > 3601 || r.WorkerThrottledShare() > 0.5 {
		t.Errorf("worker alone at the quota: %d calls, %.2f%% throttled", r.WorkerCalls, 100*r.WorkerThrottledShare())
	}
	// The campaign's own users come only from its resets.
	if r.UserRate() < 0.4*15 || r.UserRate() > 15 {
		t.Errorf("confirmations at %.1f/s after resets at %.1f/s, want a little under half", r.UserRate(), r.WorkerRate())
	}
	again, _ := Constant(Sliding, 30, 0, Confirm, 0, 30, simDur, 1)
	if again != r {
		t.Errorf("the same seed: %+v, then %+v", r, again)
	}
	if _, err := Constant("leaky", 30, 0, Even, 10, 5, simDur, 1); err == nil {
		t.Error("an unknown model: no error")
	}
	if _, err := Constant(Sliding, 30, 0, Even, 10, -1, simDur, 1); err == nil {
		t.Error("a negative rate: no error")
	}
}

func TestAlone(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		model, pattern string
		rate           float64
		min, max       float64
	}{
		{Sliding, Even, 10, 0, 0},
		{Sliding, Poisson, 10, 0, 0},
		{Sliding, Step, 10, 0, 0},
		{Sliding, Confirm, 10, 0, 0},       // nobody without the campaign
		{Sliding, Poisson, 26, 0.01, 0.15}, // their own bursts, near the quota
		{Second, Poisson, 26, 0.01, 0.15},
	} {
		if h := Alone(tt.model, 30, 0, tt.pattern, tt.rate, simDur, 1); h < tt.min || h > tt.max {
			t.Errorf("%s, %s at %v/s alone: %.3f%% throttled, want %.3f%% to %.3f%%", tt.model, tt.pattern, tt.rate, 100*h, 100*tt.min, 100*tt.max)
		}
	}
}

// TestFrontier bounds the frontier under a 30/s quota with real users at
// 10/s, budget 0.5%, and checks that it moves the right way.
func TestFrontier(t *testing.T) {
	t.Parallel()
	const budget = 0.005
	type key struct{ model, pattern string }
	got := map[key]float64{}
	for _, tt := range []struct {
		model, pattern string
		min, max       float64
	}{
		// Evenly spaced users leave 20/s; the millisecond of jitter puts
		// 21 + 11 calls in a window now and then once the rate is a whole
		// number, so the frontier is just under 19.
		{Sliding, Even, 18.5, 20},
		{Sliding, Poisson, 9, 14},  // their bursts take the rest
		{Sliding, Step, 8, 10},     // 20/s for a third of the time
		{Sliding, Confirm, 12, 18}, // half of the resets, at random
		{Second, Poisson, 10, 17},
		{Bucket, Poisson, 18, 21}, // a burst of 30 absorbs theirs
	} {
		rate, harm := Frontier(tt.model, 30, 30, tt.pattern, 10, budget, simDur, 1)
		got[key{tt.model, tt.pattern}] = rate
		t.Logf("%s, %s: frontier %.1f/s, harm %.2f%%", tt.model, tt.pattern, rate, 100*harm)
		if rate < tt.min || rate > tt.max || harm > budget {
			t.Errorf("%s, %s: frontier %.1f/s at %.2f%% harm, want %.1f to %.1f/s at most %.2f%%", tt.model, tt.pattern, rate, 100*harm, tt.min, tt.max, 100*budget)
		}
		if h := pooled(tt.model, 30, 30, tt.pattern, 10, rate, simDur, 1).Harm(); h != harm {
			t.Errorf("%s, %s: Constant at the frontier gives %.4f, Frontier said %.4f", tt.model, tt.pattern, h, harm)
		}
	}
	if got[key{Sliding, Poisson}] >= got[key{Sliding, Even}] {
		t.Error("Poisson users leave as much as evenly spaced ones")
	}
	if got[key{Bucket, Poisson}] <= got[key{Sliding, Poisson}] {
		t.Error("a bucket with a burst leaves no more than a sliding window")
	}
	// More budget, more quota or fewer users: never a slower frontier.
	base, _ := Frontier(Sliding, 30, 0, Poisson, 10, budget, simDur, 1)
	for name, r := range map[string]float64{
		"budget 2%":  first(Frontier(Sliding, 30, 0, Poisson, 10, 0.02, simDur, 1)),
		"quota 40/s": first(Frontier(Sliding, 40, 0, Poisson, 10, budget, simDur, 1)),
		"users 5/s":  first(Frontier(Sliding, 30, 0, Poisson, 5, budget, simDur, 1)),
	} {
		if r < base {
			t.Errorf("%s: frontier %.1f/s, under the %.1f/s of the base case", name, r, base)
		}
	}
	// Users over budget on their own: no rate.
	if rate, harm := Frontier(Sliding, 30, 0, Poisson, 29, budget, simDur, 1); rate != 0 || harm <= budget {
		t.Errorf("Poisson users at 29 of 30/s: frontier %.1f/s at %.2f%%, want 0 and their own loss over budget", rate, 100*harm)
	}
}

func first(a, _ float64) float64 { return a }

// TestOneRunAtTheFrontier measures what one campaign can show: the
// frontier is the highest rate whose real users' loss, pooled over Seeds
// runs of 300 s, is within the budget, and one 12-minute campaign's loss
// spreads around its average (losses come in bursts: a busy second loses
// several calls at once). A worker that knew
// the frontier and held it exactly, evenly spaced, would lose real users
// more than the budget in a good share of single runs; at 0.9 of it,
// almost never. So a limiter judged run by run (the holdout, one
// make bench) must aim under the frontier, and a miss in one run is not
// proof of a fault (docs/benchmarks.md, "One run at the frontier").
func TestOneRunAtTheFrontier(t *testing.T) {
	t.Parallel()
	const budget, runs = 0.005, 100
	for _, tt := range []struct {
		model       string
		atFrontier  int // runs of 100 over the budget at the frontier, at least
		atNinetieth int // at 0.9 of it, at most
	}{
		{Sliding, 10, 2},
		{Second, 5, 2},
	} {
		f, _ := Frontier(tt.model, 30, 0, Poisson, 10, budget, 300*time.Second, 1)
		over := func(share float64) (n int, mean float64) {
			for seed := uint64(100); seed < 100+runs; seed++ {
				r, err := Constant(tt.model, 30, 0, Poisson, 10, share*f, 12*time.Minute, seed)
				if err != nil {
					t.Fatal(err)
				}
				if r.Harm() > budget {
					n++
				}
				mean += r.Harm() / runs
			}
			return n, mean
		}
		at, atMean := over(1)
		under, underMean := over(0.9)
		t.Logf("%s, Poisson users: frontier %.1f/s; 12-minute runs over the budget: %d of %d at it (%.3f%% on average), %d at 0.9 of it (%.3f%%)",
			tt.model, f, at, runs, 100*atMean, under, 100*underMean)
		if at < tt.atFrontier || under > tt.atNinetieth {
			t.Errorf("%s: %d of %d runs at the frontier over the budget (want %d or more), %d at 0.9 of it (want %d or fewer)",
				tt.model, at, runs, tt.atFrontier, under, tt.atNinetieth)
		}
	}
}
