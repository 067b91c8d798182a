package worker

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand. Each Now moves it 1ms on, so
// that durations measured between two calls are never zero.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestBreaker(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	var changes []bool
	b := newBreaker(BreakerConfig{Threshold: 3, Cooldown: 10 * time.Second, MaxCooldown: 25 * time.Second}, clock.Now,
		func(_ string, open bool, _ string) { changes = append(changes, open) })
	systemic := Class{Kind: Systemic, Code: "InvalidEmailRoleAccessPolicyException"}
	transient := Class{Kind: Transient, Code: "InternalErrorException"}

	mustAllow := func(region string, want bool) time.Duration {
		t.Helper()
		ok, wait := b.Allow(region)
		if ok != want {
			t.Fatalf("Allow(%s) = %v, want %v", region, ok, want)
		}
		return wait
	}

	mustAllow("us-east-1", true)
	b.Record("us-east-1", systemic) // one systemic error opens at once
	if w := mustAllow("us-east-1", false); w <= 9*time.Second || w > 10*time.Second {
		t.Fatalf("wait = %v, want about the 10s cooldown", w)
	}
	mustAllow("eu-west-1", true) // other Regions are not affected
	b.Record("us-east-1", systemic)
	if w := mustAllow("us-east-1", false); w <= 9*time.Second {
		t.Fatalf("a late failure extended or shortened the cooldown: wait %v", w)
	}

	clock.Advance(10 * time.Second)
	mustAllow("us-east-1", true)  // the probe
	mustAllow("us-east-1", false) // only one probe at a time
	b.Record("us-east-1", systemic)
	if w := mustAllow("us-east-1", false); w <= 19*time.Second || w > 20*time.Second {
		t.Fatalf("after a failed probe wait = %v, want the doubled 20s", w)
	}
	clock.Advance(20 * time.Second)
	mustAllow("us-east-1", true)
	b.Record("us-east-1", systemic)
	if w := mustAllow("us-east-1", false); w > 25*time.Second || w < 24*time.Second {
		t.Fatalf("cooldown %v, want capped at 25s", w)
	}

	clock.Advance(25 * time.Second)
	mustAllow("us-east-1", true)
	b.Record("us-east-1", Class{Kind: Canceled}) // the probe gave up: another may try
	mustAllow("us-east-1", true)
	b.Record("us-east-1", Class{Kind: Permanent, Code: "UserNotFoundException"}) // Cognito answered about a user: it works
	mustAllow("us-east-1", true)
	mustAllow("us-east-1", true)
	if len(b.OpenRegions()) != 0 {
		t.Fatalf("open regions %v after a good probe", b.OpenRegions())
	}

	// Transient failures open it only when Threshold come in a row.
	b.Record("us-east-1", transient)
	b.Record("us-east-1", transient)
	b.Record("us-east-1", Class{Kind: OK})
	b.Record("us-east-1", transient)
	b.Record("us-east-1", transient)
	mustAllow("us-east-1", true)
	b.Record("us-east-1", transient)
	mustAllow("us-east-1", false)
	if w := mustAllow("us-east-1", false); w > 10*time.Second {
		t.Fatalf("after closing, the cooldown should restart at 10s, got %v", w)
	}

	want := []bool{true, true, true, false, true} // open, failed probe, failed probe, closed, open
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("changes %v, want %v", changes, want)
		}
	}
}
