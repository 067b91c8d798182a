package ledger_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/moto/mototest"
	"github.com/resetq/resetq/ledger"
)

const lease = time.Minute

func key(campaign, user string) ledger.Key {
	return ledger.Key{Campaign: campaign, Pool: "us-east-1_Claims", User: user, Fold: true}
}

func claim(t *testing.T, l *ledger.Ledger, k ledger.Key, holder string, now time.Time) ledger.Claim {
	t.Helper()
	c, err := l.Claim(t.Context(), k, holder, lease, now)
	if err != nil {
		t.Fatalf("Claim(%s, %s, %s): %v", k.User, holder, now.Sub(t0), err)
	}
	return c
}

func wantClaim(t *testing.T, step string, got, want ledger.Claim) {
	t.Helper()
	if got.Held != want.Held || got.Holder != want.Holder || !got.Until.Equal(want.Until) || got.Done != want.Done || got.Outcome != want.Outcome {
		t.Fatalf("%s: claim %+v, want %+v", step, got, want)
	}
}

// TestClaimLifecycle follows one user's claim through a fleet: the first
// holder wins and renews, another waits for the lease, takes over a
// dead holder's claim after it, and nobody claims a done user.
func TestClaimLifecycle(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	k := key("c1", "Alice")

	wantClaim(t, "first claim", claim(t, b.l, k, "w1", at(0)), ledger.Claim{Held: true, Holder: "w1", Until: at(lease)})
	wantClaim(t, "another holder, in the lease", claim(t, b.l, k, "w2", at(30*time.Second)), ledger.Claim{Holder: "w1", Until: at(lease)})
	wantClaim(t, "the same holder renews", claim(t, b.l, k, "w1", at(40*time.Second)), ledger.Claim{Held: true, Holder: "w1", Until: at(40*time.Second + lease)})
	wantClaim(t, "the folded name is the same user", claim(t, b.l, key("c1", "ALICE"), "w2", at(90*time.Second)), ledger.Claim{Holder: "w1", Until: at(40*time.Second + lease)})
	// w1 died: at the end of its lease w2 takes over.
	wantClaim(t, "takeover at the lease's end", claim(t, b.l, k, "w2", at(40*time.Second+lease)), ledger.Claim{Held: true, Holder: "w2", Until: at(40*time.Second + 2*lease)})
	wantClaim(t, "the old holder comes back", claim(t, b.l, k, "w1", at(2*lease)), ledger.Claim{Holder: "w2", Until: at(40*time.Second + 2*lease)})

	if err := b.l.Record(t.Context(), k, ledger.StepReset, at(2*lease), ""); err != nil {
		t.Fatal(err)
	}
	wantClaim(t, "a done user", claim(t, b.l, k, "w3", at(3*lease)), ledger.Claim{Done: true, Outcome: ledger.StepReset})
	wantClaim(t, "a done user, its last holder", claim(t, b.l, k, "w2", at(3*lease)), ledger.Claim{Done: true, Outcome: ledger.StepReset})
}

// TestClaimTakeOver: a takeover is granted in the lease only from the
// holder named (a compare-and-set), never for a done user; the holder
// taken over from is then refused.
func TestClaimTakeOver(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	k := key("c1", "carol")
	takeOver := func(from, holder string, now time.Time) ledger.Claim {
		t.Helper()
		c, err := b.l.TakeOver(t.Context(), k, from, holder, lease, now)
		if err != nil {
			t.Fatalf("TakeOver(%s, %s): %v", from, holder, err)
		}
		return c
	}
	claim(t, b.l, k, "w1", at(0))
	wantClaim(t, "from a holder that does not hold it", takeOver("w9", "w2", at(time.Second)), ledger.Claim{Holder: "w1", Until: at(lease)})
	wantClaim(t, "from the holder", takeOver("w1", "w2", at(2*time.Second)), ledger.Claim{Held: true, Holder: "w2", Until: at(2*time.Second + lease)})
	wantClaim(t, "the holder taken over from", claim(t, b.l, k, "w1", at(3*time.Second)), ledger.Claim{Holder: "w2", Until: at(2*time.Second + lease)})
	wantClaim(t, "from it again, once taken", takeOver("w1", "w3", at(4*time.Second)), ledger.Claim{Holder: "w2", Until: at(2*time.Second + lease)})
	if _, err := b.l.TakeOver(t.Context(), k, "", "w3", lease, at(5*time.Second)); err == nil {
		t.Error("a takeover from nobody: no error")
	}
	if err := b.l.Record(t.Context(), k, ledger.StepReset, at(6*time.Second), ""); err != nil {
		t.Fatal(err)
	}
	wantClaim(t, "a done user", takeOver("w2", "w4", at(7*time.Second)), ledger.Claim{Done: true, Outcome: ledger.StepReset})
}

func TestClaimRelease(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	k := key("c1", "bob")
	claim(t, b.l, k, "w1", at(0))
	if err := b.l.Release(t.Context(), k, "w2", at(time.Second)); err != nil {
		t.Fatalf("release by another holder: %v", err)
	}
	wantClaim(t, "not released by another", claim(t, b.l, k, "w2", at(2*time.Second)), ledger.Claim{Holder: "w1", Until: at(lease)})
	if err := b.l.Release(t.Context(), k, "w1", at(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	wantClaim(t, "after the release", claim(t, b.l, k, "w2", at(4*time.Second)), ledger.Claim{Held: true, Holder: "w2", Until: at(4*time.Second + lease)})
	if err := b.l.Release(t.Context(), key("c1", "nobody"), "w1", at(0)); err != nil {
		t.Fatalf("release of a user never claimed: %v", err)
	}
}

// TestClaimAfterDeadLetter: a dead letter ends the job, but not the user:
// a redriven job claims again once the holder released its claim (or its
// lease ended); a record never ends another holder's claim. A disabled
// user is claimable too (enabled again, the user needs the code).
func TestClaimAfterDeadLetter(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	k := key("c1", "carol")
	claim(t, b.l, k, "w1", at(0))
	if err := b.l.Record(t.Context(), k, ledger.StepDeadLettered, at(time.Second), "attempts_exhausted"); err != nil {
		t.Fatal(err)
	}
	wantClaim(t, "w1's claim outlives another job's dead letter", claim(t, b.l, k, "w2", at(2*time.Second)), ledger.Claim{Holder: "w1", Until: at(lease)})
	if err := b.l.Release(t.Context(), k, "w1", at(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	wantClaim(t, "a dead-lettered user, redriven", claim(t, b.l, k, "w2", at(4*time.Second)), ledger.Claim{Held: true, Holder: "w2", Until: at(4*time.Second + lease)})

	d := key("c1", "dan")
	if err := b.l.Record(t.Context(), d, ledger.StepDisabled, at(0), ""); err != nil {
		t.Fatal(err)
	}
	wantClaim(t, "a disabled user", claim(t, b.l, d, "w3", at(time.Second)), ledger.Claim{Held: true, Holder: "w3", Until: at(time.Second + lease)})
	if err := b.l.Record(t.Context(), d, ledger.StepReset, at(2*time.Second), ""); err != nil {
		t.Fatal(err)
	}
	wantClaim(t, "reset after the disable", claim(t, b.l, d, "w4", at(3*time.Second)), ledger.Claim{Done: true, Outcome: ledger.StepReset})
}

// TestClaimRace: of 20 workers claiming one user at once, one wins and
// the others are told who.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	winner, claims := race(t, b.l, key("c1", "dave"), 20)
	if winner == "" {
		t.Fatal("no claimer won")
	}
	for i, c := range claims {
		if !c.Held && (c.Holder != winner || !c.Until.Equal(at(lease))) {
			t.Errorf("claimer %d was told %+v, want holder %s until %s", i, c, winner, at(lease))
		}
	}
}

// TestClaimRaceUnserialized: moto's conditional writes are not atomic
// under concurrent requests (two claimers can both pass the check), as a
// fleet of replicas against moto meets them; the read that confirms a
// claim still lets one claimer alone go on.
func TestClaimRaceUnserialized(t *testing.T) {
	t.Parallel()
	api := client(t, mototest.Shared(t).URL, 0)
	l, err := ledger.New(api, ledger.Config{Table: tableName(t), Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		if winner, _ := race(t, l, key("c1", fmt.Sprintf("erin%d", round)), 20); winner == "" {
			t.Fatalf("round %d: no claimer won", round)
		}
	}
}

// race has n claimers claim k at once and returns the one winner (failing
// the test if two won) and what each was told.
func race(t *testing.T, l *ledger.Ledger, k ledger.Key, n int) (string, []ledger.Claim) {
	t.Helper()
	claims := make([]ledger.Claim, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			claims[i], errs[i] = l.Claim(t.Context(), k, fmt.Sprintf("w%d", i), lease, at(0))
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, c := range claims {
		if errs[i] != nil {
			t.Fatalf("claimer %d: %v", i, errs[i])
		}
		if c.Held {
			if winner != "" {
				t.Fatalf("%s: %s and %s both hold the claim", k.User, winner, c.Holder)
			}
			winner = c.Holder
		}
	}
	return winner, claims
}
