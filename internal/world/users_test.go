package world

import (
	"math"
	"slices"
	"testing"
	"time"
)

// take pops the calls of u before end.
func take(t *testing.T, u Users, end time.Time) []time.Time {
	t.Helper()
	var out []time.Time
	for {
		next, ok := u.Peek()
		if !ok || !next.Before(end) {
			return out
		}
		got, ok := u.Pop()
		if !ok || !got.Equal(next) {
			t.Fatalf("Pop = %v, %v after Peek = %v", got, ok, next)
		}
		if len(out) > 0 && got.Before(out[len(out)-1]) {
			t.Fatalf("call %d at %v before the one before, %v", len(out), got, out[len(out)-1])
		}
		out = append(out, got)
	}
}

// perWindow counts calls in consecutive windows of w from t0.
func perWindow(calls []time.Time, w time.Duration, n int) []int {
	out := make([]int, n)
	for _, c := range calls {
		if i := int(c.Sub(t0) / w); i >= 0 && i < n {
			out[i]++
		}
	}
	return out
}

func mustUsers(t *testing.T, pattern string, rate float64, seed uint64) Users {
	t.Helper()
	u, err := NewUsers(pattern, rate, t0, seed)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestEvenUsers(t *testing.T) {
	t.Parallel()
	calls := take(t, mustUsers(t, Even, 10, 1), at(10_000))
	if len(calls) != 100 {
		t.Fatalf("%d calls in 10 s at 10/s, want 100", len(calls))
	}
	for i, c := range calls {
		if late := c.Sub(at(float64(i) * 100)); late < 0 || late > Jitter {
			t.Errorf("call %d at %v: %v from its slot, want within [0, %v]", i, c.Sub(t0), late, Jitter)
		}
	}
}

func TestPoissonUsers(t *testing.T) {
	t.Parallel()
	calls := take(t, mustUsers(t, Poisson, 10, 1), at(1_000_000))
	if n := len(calls); math.Abs(float64(n)-10_000) > 300 { // 3 standard deviations
		t.Errorf("%d calls in 1,000 s at 10/s, want about 10,000", n)
	}
	// Bursty: some seconds have twice the mean, some none.
	counts := perWindow(calls, time.Second, 1000)
	if slices.Max(counts) < 20 || slices.Min(counts) > 2 {
		t.Errorf("calls per second from %d to %d: not Poisson", slices.Min(counts), slices.Max(counts))
	}
	again := take(t, mustUsers(t, Poisson, 10, 1), at(1_000_000))
	other := take(t, mustUsers(t, Poisson, 10, 2), at(1_000_000))
	if !slices.EqualFunc(calls, again, time.Time.Equal) {
		t.Error("the same seed gave other calls")
	}
	if slices.EqualFunc(calls[:100], other[:100], time.Time.Equal) {
		t.Error("another seed gave the same calls")
	}
}

func TestStepUsers(t *testing.T) {
	t.Parallel()
	calls := take(t, mustUsers(t, Step, 10, 1), at(120_000))
	got := perWindow(calls, StepPhase, 6)
	low, high := int(5*StepPhase.Seconds()), int(20*StepPhase.Seconds())
	want := []int{low, high, low, low, high, low} // 5/s, 20/s, 5/s, twice
	for i := range want {
		if d := got[i] - want[i]; d < -1 || d > 1 {
			t.Errorf("calls per %v phase: %v, want %v (±1 at the edges)", StepPhase, got, want)
			break
		}
	}
	if len(calls) != 1200 {
		t.Errorf("%d calls in 120 s, whole cycles, want a mean of 10/s: 1,200", len(calls))
	}
}

func TestConfirmUsers(t *testing.T) {
	t.Parallel()
	u := mustUsers(t, Confirm, 0, 1)
	if _, ok := u.Peek(); ok {
		t.Fatal("a call before any reset")
	}
	const resets = 20_000
	for i := range resets {
		u.OnReset(at(float64(i))) // one a millisecond, over 20 s
	}
	calls := take(t, u, at(1e9))
	if share := float64(len(calls)) / resets; math.Abs(share-ConfirmShare) > 0.02 {
		t.Errorf("%d calls after %d resets: a share of %.3f, want %.2f", len(calls), resets, share, ConfirmShare)
	}
	if _, ok := u.Pop(); ok {
		t.Error("Pop gave a call after the last")
	}
	// Resets came over 20 s, so delays are within 20 s of call - t0.
	var delays []float64
	for _, c := range calls {
		delays = append(delays, c.Sub(t0).Seconds()-10) // the mean reset came at 10 s
	}
	slices.Sort(delays)
	if median := delays[len(delays)/2]; math.Abs(median-ConfirmMedian.Seconds()) > 2 {
		t.Errorf("median delay about %.1f s, want about %v", median, ConfirmMedian)
	}
	if tail := delays[len(delays)*99/100]; tail < 100 {
		t.Errorf("99th percentile delay about %.0f s, want a long tail (over 100 s)", tail)
	}
	if calls[0].Before(t0) {
		t.Errorf("a confirmation at %v, before its reset", calls[0])
	}
}

func TestMergeAndDue(t *testing.T) {
	t.Parallel()
	u, err := NewUsers("even+confirm", 10, t0, 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		u.OnReset(t0)
	}
	calls := take(t, u, at(300_000)) // take checks the order
	if n := len(calls) - 3000; n < 35 || n > 65 {
		t.Errorf("%d confirmations after 100 resets, want about 50", n)
	}
	v := mustUsers(t, Even, 10, 1)
	if n := Due(v, at(1000)); n != 10 {
		t.Errorf("Due at 1 s: %d calls, want 10 (0 to 900 ms)", n)
	}
	if n := Due(v, at(1000)); n != 0 {
		t.Errorf("Due again: %d calls, want 0", n)
	}
}

func TestNewUsersErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pattern string
		rate    float64
	}{{"bursty", 10}, {Even, 0}, {Poisson, -1}, {Step, math.Inf(1)}, {"even+nope", 10}} {
		if _, err := NewUsers(tt.pattern, tt.rate, t0, 1); err == nil {
			t.Errorf("NewUsers(%q, %v): no error", tt.pattern, tt.rate)
		}
	}
}
