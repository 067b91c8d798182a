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
	b := newBreaker(BreakerConfig{Threshold: 3, Cooldown: 10 * time.Second, MaxCooldown: 25 * time.Second},
		func(_ string, open bool, _ string) { changes = append(changes, open) })
	systemic := Class{Kind: Systemic, Code: "InvalidEmailRoleAccessPolicyException"}
	transient := Class{Kind: Transient, Code: "InternalErrorException"}
	east := []string{"us-east-1", "pool:us-east-1_A"}

	var last permit
	mustAllow := func(keys []string, want bool) time.Duration {
		t.Helper()
		p, r := b.admit(clock.Now(), keys...)
		if (r == nil) != want {
			t.Fatalf("admit(%v) = %v, want %v", keys, r == nil, want)
		}
		last = p
		if r != nil {
			return r.wait
		}
		return 0
	}
	record := func(cl Class) { b.record(clock.Now(), last, cl, east, "us-east-1") }

	mustAllow(east, true)
	record(systemic) // one systemic error opens at once
	if w := mustAllow(east, false); w <= 9*time.Second || w > 10*time.Second {
		t.Fatalf("wait = %v, want about the 10s cooldown", w)
	}
	if r, refused := b.peek(clock.Now(), east...); !refused || r.reason != systemic.Code {
		t.Fatalf("peek = %+v, %v; want refused with the code that opened it", r, refused)
	}
	mustAllow([]string{"eu-west-1"}, true) // other Regions are not affected
	record(systemic)
	if w := mustAllow(east, false); w <= 9*time.Second {
		t.Fatalf("a late failure extended or shortened the cooldown: wait %v", w)
	}

	clock.Advance(10 * time.Second)
	if _, refused := b.peek(clock.Now(), east...); refused {
		t.Fatal("peek refused after the cooldown")
	}
	if _, refused := b.peek(clock.Now(), east...); refused {
		t.Fatal("peek changed the state: a second peek is refused")
	}
	mustAllow(east, true) // the probe
	if last.probe != "us-east-1" {
		t.Fatalf("probe = %q, want the Region", last.probe)
	}
	probe := last
	mustAllow(east, false) // only one probe at a time
	last = probe
	record(systemic)
	if w := mustAllow(east, false); w <= 19*time.Second || w > 20*time.Second {
		t.Fatalf("after a failed probe wait = %v, want the doubled 20s", w)
	}
	clock.Advance(20 * time.Second)
	mustAllow(east, true)
	record(systemic)
	if w := mustAllow(east, false); w > 25*time.Second || w < 24*time.Second {
		t.Fatalf("cooldown %v, want capped at 25s", w)
	}

	clock.Advance(25 * time.Second)
	mustAllow(east, true)
	record(Class{Kind: Canceled}) // the probe gave up: another may try
	mustAllow(east, true)
	probe = last
	// A probe that never reports is given up after a cooldown.
	mustAllow(east, false)
	clock.Advance(10 * time.Second)
	mustAllow(east, true)
	record(Class{Kind: Permanent, Code: "UserNotFoundException"}) // Cognito answered about a user: it works
	_ = probe
	mustAllow(east, true)
	mustAllow(east, true)
	if len(b.OpenKeys(clock.Now())) != 0 {
		t.Fatalf("open circuits %v after a good probe", b.OpenKeys(clock.Now()))
	}

	// Transient failures open it only when Threshold come in a row.
	record(transient)
	record(transient)
	record(Class{Kind: OK})
	record(transient)
	record(transient)
	mustAllow(east, true)
	record(transient)
	mustAllow(east, false)
	if w := mustAllow(east, false); w > 10*time.Second {
		t.Fatalf("after closing, the cooldown should restart at 10s, got %v", w)
	}

	want := []bool{true, false, true} // open (failed probes keep it open: no change), closed, open
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("changes %v, want %v", changes, want)
		}
	}
}

// TestPoolCircuit: a pool-level failure opens that pool's circuit only:
// the Region and the other pools go on.
func TestPoolCircuit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := newBreaker(BreakerConfig{Cooldown: time.Minute}, nil)
	bad := []string{"us-east-1", "pool:us-east-1_Bad"}
	good := []string{"us-east-1", "pool:us-east-1_Good"}
	p, _ := b.admit(clock.Now(), bad...)
	b.record(clock.Now(), p, Class{Kind: Systemic, Scope: ScopePool, Code: "InvalidSmsRoleAccessPolicyException"}, bad, bad[1])
	if _, r := b.admit(clock.Now(), bad...); r == nil || r.reason != "InvalidSmsRoleAccessPolicyException" {
		t.Fatalf("the bad pool was admitted: %+v", r)
	}
	p, r := b.admit(clock.Now(), good...)
	if r != nil {
		t.Fatalf("the good pool was refused: %+v", r)
	}
	// A good pool's success must not close the bad pool's circuit.
	b.record(clock.Now(), p, Class{Kind: OK}, good, "")
	if _, r := b.admit(clock.Now(), bad...); r == nil {
		t.Fatal("a good pool's success closed the bad pool's circuit")
	}
}

// TestEmailCircuitClosesOnlyOnACode: an answer about a user (not found,
// throttled) does not say the daily email limit lifted; a code sent does.
func TestEmailCircuitClosesOnlyOnACode(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := newBreaker(BreakerConfig{EmailProbe: time.Minute}, nil)
	keys := []string{"us-east-1", "pool:us-east-1_P", "email:us-east-1"}
	p, _ := b.admit(clock.Now(), keys...)
	b.record(clock.Now(), p, Class{Kind: Systemic, Scope: ScopeEmail, Code: CodeEmailLimit}, keys, "email:us-east-1")
	clock.Advance(2 * time.Minute)
	p, r := b.admit(clock.Now(), keys...)
	if r != nil || p.probe != "email:us-east-1" {
		t.Fatalf("after the probe period: %+v %+v, want a probe", p, r)
	}
	b.record(clock.Now(), p, Class{Kind: Permanent, Code: "UserNotFoundException"}, keys, "")
	if _, ok := b.circuits["email:us-east-1"]; !ok {
		t.Fatal("a user not found closed the email limit's circuit")
	}
	p, _ = b.admit(clock.Now(), keys...)
	b.record(clock.Now(), p, Class{Kind: OK}, keys, "")
	if _, ok := b.circuits["email:us-east-1"]; ok {
		t.Fatal("a code sent did not close the email limit's circuit")
	}
}

// TestOpenKeysOnlyWhileRefusing: a circuit whose cooldown is over, with no
// job left to probe it, does not keep the worker unready.
func TestOpenKeysOnlyWhileRefusing(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := newBreaker(BreakerConfig{Cooldown: time.Minute}, nil)
	p, _ := b.admit(clock.Now(), "us-east-1")
	b.record(clock.Now(), p, Class{Kind: Systemic, Code: "UnrecognizedClientException"}, []string{"us-east-1"}, "us-east-1")
	if len(b.OpenKeys(clock.Now())) != 1 {
		t.Fatal("an open circuit is not listed")
	}
	clock.Advance(2 * time.Minute)
	if k := b.OpenKeys(clock.Now()); len(k) != 0 {
		t.Fatalf("circuits %v listed after their cooldown with nothing to probe them", k)
	}
}
