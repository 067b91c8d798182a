package world

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Result is what a run of a constant-rate worker beside real users
// measured, over the run (not the real users' second before it).
type Result struct {
	Seconds         float64
	WorkerCalls     int // throttled ones included
	WorkerThrottled int
	UserCalls       int // throttled ones included
	UserThrottled   int
}

// Harm is the real users' throttled share (0 without calls).
func (r Result) Harm() float64 { return share(r.UserThrottled, r.UserCalls) }

// WorkerThrottledShare is the worker's throttled share (0 without calls).
func (r Result) WorkerThrottledShare() float64 { return share(r.WorkerThrottled, r.WorkerCalls) }

// WorkerRate is the worker's admitted calls per second.
func (r Result) WorkerRate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.WorkerCalls-r.WorkerThrottled) / r.Seconds
}

// UserRate is the real users' calls per second, throttled ones included.
func (r Result) UserRate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.UserCalls) / r.Seconds
}

func share(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// simStart is the virtual clock's start, on a whole second.
var simStart = time.Unix(1_800_000_000, 0)

// Constant simulates, in virtual time, a worker calling at workerRate per
// second, evenly spaced (each call up to Jitter late, seeded), for dur,
// beside real users of pattern at userRate, under a quota of model. The
// real users start one to two seconds before the worker (a seeded phase:
// the worker's calls fall anywhere among theirs), so its first second
// meets a quota that holds theirs. A throttled call is lost, the worker's as well
// as a real user's; each call the quota admits from the worker is a reset
// (Users.OnReset). workerRate 0 is real users alone.
func Constant(model string, perSecond float64, burst int, pattern string, userRate, workerRate float64, dur time.Duration, seed uint64) (Result, error) {
	q, err := NewQuota(model, perSecond, burst)
	if err != nil {
		return Result{}, err
	}
	if workerRate < 0 || math.IsNaN(workerRate) || math.IsInf(workerRate, 0) {
		return Result{}, fmt.Errorf("worker rate %v", workerRate)
	}
	rng := rand.New(rand.NewPCG(seed, 0x3017e7))
	phase := time.Duration(rng.Int64N(int64(time.Second)))
	users, err := NewUsers(pattern, userRate, simStart.Add(-time.Second-phase), seed)
	if err != nil {
		return Result{}, err
	}
	end := simStart.Add(dur)
	var k int64
	workerAt := func() (time.Time, bool) {
		if workerRate == 0 {
			return time.Time{}, false
		}
		t := simStart.Add(time.Duration(float64(k) / workerRate * float64(time.Second)))
		return t, t.Before(end)
	}
	jitter := func(t time.Time) time.Time { return t.Add(time.Duration(rng.Int64N(int64(Jitter) + 1))) }
	r := Result{Seconds: dur.Seconds()}
	wt, wok := workerAt()
	if wok {
		wt = jitter(wt)
	}
	for {
		ut, uok := users.Peek()
		uok = uok && ut.Before(end)
		switch {
		case uok && (!wok || !ut.After(wt)): // a tie goes to the real user
			users.Pop()
			ok := q.Admit(ut)
			if !ut.Before(simStart) {
				r.UserCalls++
				if !ok {
					r.UserThrottled++
				}
			}
		case wok:
			r.WorkerCalls++
			if q.Admit(wt) {
				users.OnReset(wt)
			} else {
				r.WorkerThrottled++
			}
			k++
			if wt, wok = workerAt(); wok {
				wt = jitter(wt)
			}
		default:
			return r, nil
		}
	}
}

// Seeds is how many runs, each with its own seed (seed, seed+1, ...),
// Alone and Frontier pool: one run's real users come at one phase of the
// calendar second and of the worker's calls, which can make a rate look
// harmless or harmful by luck; four phases do not.
const Seeds = 4

// pooled is Constant over Seeds seeds, the counts added up. It panics on
// an unknown model or pattern.
func pooled(model string, perSecond float64, burst int, pattern string, userRate, workerRate float64, dur time.Duration, seed uint64) Result {
	var sum Result
	for i := range uint64(Seeds) {
		r, err := Constant(model, perSecond, burst, pattern, userRate, workerRate, dur, seed+i)
		if err != nil {
			panic("world: " + err.Error())
		}
		sum.Seconds += r.Seconds
		sum.WorkerCalls += r.WorkerCalls
		sum.WorkerThrottled += r.WorkerThrottled
		sum.UserCalls += r.UserCalls
		sum.UserThrottled += r.UserThrottled
	}
	return sum
}

// Alone is the real users' throttled share with no worker, simulated as
// in Constant over Seeds runs. It panics on an unknown model or pattern.
func Alone(model string, perSecond float64, burst int, pattern string, userRate float64, dur time.Duration, seed uint64) float64 {
	return pooled(model, perSecond, burst, pattern, userRate, 0, dur, seed).Harm()
}

// FrontierStep is the resolution of Frontier's search.
const FrontierStep = 0.1

// Frontier returns the best constant worker rate (as in Constant) that
// keeps the real users' throttled share at or under budget over Seeds
// runs of dur, and that share. It tries rates FrontierStep apart from
// FrontierStep up to perSecond and returns the last before the first over
// budget: harm is not quite monotone in the rate, and a lucky rate above
// an unlucky one is no rate a worker could aim for. It returns 0 and the
// real users' own share when even the slowest worker is over budget. It
// panics on an unknown model or pattern.
func Frontier(model string, perSecond float64, burst int, pattern string, userRate float64, budget float64, dur time.Duration, seed uint64) (rate float64, harm float64) {
	harm = Alone(model, perSecond, burst, pattern, userRate, dur, seed)
	for i := 1; float64(i)*FrontierStep <= perSecond+1e-9; i++ {
		x := math.Round(float64(i)*FrontierStep*1e6) / 1e6
		h := pooled(model, perSecond, burst, pattern, userRate, x, dur, seed).Harm()
		if h > budget {
			break
		}
		rate, harm = x, h
	}
	return rate, harm
}
