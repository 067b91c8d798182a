package ledger_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/ledger"
)

// rows reads the campaign's rows by compared username.
func rows(t *testing.T, l *ledger.Ledger, campaign string) map[string]ledger.Row {
	t.Helper()
	out := map[string]ledger.Row{}
	err := l.Rows(t.Context(), campaign, func(r ledger.Row) error {
		if _, dup := out[r.Pool+"/"+r.User]; dup {
			return fmt.Errorf("row %s/%s read twice", r.Pool, r.User)
		}
		out[r.Pool+"/"+r.User] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func record(t *testing.T, l *ledger.Ledger, k ledger.Key, step ledger.Step, now time.Time, detail string) {
	t.Helper()
	if err := l.Record(t.Context(), k, step, now, detail); err != nil {
		t.Fatalf("Record(%s, %s): %v", k.User, step, err)
	}
}

func enqueued(t *testing.T, l *ledger.Ledger, now time.Time, keys ...ledger.Key) int {
	t.Helper()
	n, err := l.Enqueued(t.Context(), keys, now)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEnqueueAgainKeepsSteps: enqueue records its users; the worker's steps
// and outcome follow; enqueue run again changes none of it.
func TestEnqueueAgainKeepsSteps(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	const pool = "us-east-1_Steps"
	alice := ledger.Key{Campaign: "c1", Pool: pool, User: "Alice", Fold: true}
	bob := ledger.Key{Campaign: "c1", Pool: pool, User: "bob", Fold: true}
	if n := enqueued(t, b.l, at(0), alice, bob); n != 2 {
		t.Fatalf("Enqueued = %d, want 2", n)
	}
	claim(t, b.l, alice, "w1", at(time.Minute))
	record(t, b.l, alice, ledger.StepPasswordKilled, at(2*time.Minute), "")
	record(t, b.l, alice, ledger.StepSignedOut, at(3*time.Minute), "")
	record(t, b.l, alice, ledger.StepReset, at(4*time.Minute), "")
	record(t, b.l, alice, ledger.StepSignedOut, at(5*time.Minute), "") // again: the first time stays
	record(t, b.l, alice, ledger.StepReset, at(6*time.Minute), "")
	record(t, b.l, bob, ledger.StepDeadLettered, at(4*time.Minute), "UserNotFoundException")

	if n := enqueued(t, b.l, at(time.Hour), alice, bob, ledger.Key{Campaign: "c1", Pool: pool, User: "ALICE", Fold: true}); n != 0 {
		t.Fatalf("Enqueued again = %d, want 0", n)
	}

	got := rows(t, b.l, "c1")
	if len(got) != 2 {
		t.Fatalf("%d rows, want 2: %v", len(got), slices.Collect(maps.Keys(got)))
	}
	a := got[pool+"/alice"]
	want := map[ledger.Step]time.Time{ledger.StepPasswordKilled: at(2 * time.Minute), ledger.StepSignedOut: at(3 * time.Minute), ledger.StepReset: at(4 * time.Minute)}
	if !a.EnqueuedAt.Equal(at(0)) || a.Username != "Alice" || a.Campaign != "c1" || a.Pool != pool ||
		a.Outcome != ledger.StepReset || !a.OutcomeAt.Equal(at(4*time.Minute)) || a.Holder != "w1" ||
		!a.ClaimedAt.Equal(at(time.Minute)) || !maps.EqualFunc(a.Steps, want, time.Time.Equal) {
		t.Errorf("alice's row %+v; want enqueued at +0, steps %v, outcome reset at +4m, w1's claim left (a record ends no claim)", a, want)
	}
	if bb := got[pool+"/bob"]; bb.Outcome != ledger.StepDeadLettered || bb.Reason != "UserNotFoundException" || !bb.Steps[ledger.StepDeadLettered].Equal(at(4*time.Minute)) || bb.Done() {
		t.Errorf("bob's row %+v; want dead-lettered UserNotFoundException at +4m", bb)
	}

	p, err := b.l.Progress(t.Context(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	c := p[pool]
	if c.Enqueued != 2 || c.Reset != 1 || c.DeadLettered["UserNotFoundException"] != 1 || c.Done() != 1 || c.Left() != 0 || len(p) != 1 {
		t.Errorf("progress %+v, want 2 enqueued, 1 reset, 1 dead-lettered, 0 left", p)
	}
}

// TestFolding: a case-insensitive pool's "Alice" and "alice" are one row,
// a case-sensitive pool's two.
func TestFolding(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	for _, fold := range []bool{true, false} {
		pool := fmt.Sprintf("us-east-1_Fold%v", fold)
		keys := []ledger.Key{{Campaign: "c1", Pool: pool, User: "Alice", Fold: fold}, {Campaign: "c1", Pool: pool, User: "alice", Fold: fold}}
		want := 1
		if !fold {
			want = 2
		}
		if n := enqueued(t, b.l, at(0), keys...); n != want {
			t.Errorf("fold %v: Enqueued = %d, want %d", fold, n, want)
		}
		record(t, b.l, keys[1], ledger.StepReset, at(time.Minute), "")
		c, err := b.l.Claim(t.Context(), keys[0], "w1", lease, at(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if c.Done != fold {
			t.Errorf("fold %v: Alice's claim after alice's reset: %+v", fold, c)
		}
	}
	got := rows(t, b.l, "c1")
	if len(got) != 3 {
		t.Fatalf("rows %v, want one folded alice and two unfolded", slices.Sorted(maps.Keys(got)))
	}
	for _, id := range []string{"us-east-1_Foldtrue/alice", "us-east-1_Foldfalse/alice", "us-east-1_Foldfalse/Alice"} {
		if _, ok := got[id]; !ok {
			t.Errorf("no row %s", id)
		}
	}
	if u := got["us-east-1_Foldtrue/alice"].Username; u != "Alice" {
		t.Errorf("folded row's username %q, want the first written, Alice", u)
	}
}

// TestCampaignsApart: one campaign's rows and counts are not another's,
// even when one name is a prefix of the other's keys.
func TestCampaignsApart(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	pool := "us-east-1_Apart"
	enqueued(t, b.l, at(0), ledger.Key{Campaign: "a", Pool: pool, User: "u1"})
	enqueued(t, b.l, at(0), ledger.Key{Campaign: "a#r01", Pool: pool, User: "u2"}, ledger.Key{Campaign: "a#c01", Pool: pool, User: "u3"})
	for campaign, want := range map[string]string{"a": "u1", "a#r01": "u2", "a#c01": "u3"} {
		got := rows(t, b.l, campaign)
		if len(got) != 1 || got[pool+"/"+want].User != want {
			t.Errorf("campaign %q: rows %v, want only %s", campaign, slices.Collect(maps.Keys(got)), want)
		}
		p, err := b.l.Progress(t.Context(), campaign)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total().Enqueued != 1 {
			t.Errorf("campaign %q: %d enqueued, want 1", campaign, p.Total().Enqueued)
		}
	}
}

// TestManyRows: more users than one enqueue transaction and one Query
// page of a shard hold, read back whole.
func TestManyRows(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	const n = 120
	var keys []ledger.Key
	for i := range n {
		keys = append(keys, ledger.Key{Campaign: "big", Pool: fmt.Sprintf("us-east-1_P%d", i%3), User: fmt.Sprintf("user-%03d", i)})
	}
	if got := enqueued(t, b.l, at(0), keys...); got != n {
		t.Fatalf("Enqueued = %d, want %d", got, n)
	}
	got := rows(t, b.l, "big")
	if len(got) != n {
		t.Fatalf("%d rows, want %d", len(got), n)
	}
	p, err := b.l.Progress(t.Context(), "big")
	if err != nil {
		t.Fatal(err)
	}
	if p.Total().Enqueued != n || len(p) != 3 {
		t.Fatalf("progress %+v, want %d enqueued in 3 pools", p, n)
	}
}

// TestCountersMatchRows: many workers record outcomes at once, each user's
// several times (duplicate jobs, redriven dead letters); the counters then
// say what the rows say.
func TestCountersMatchRows(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	const users = 24
	type rec struct {
		k      ledger.Key
		step   ledger.Step
		detail string
	}
	var recs []rec
	var keys []ledger.Key
	for i := range users {
		k := ledger.Key{Campaign: "c1", Pool: fmt.Sprintf("us-east-1_Count%d", i%2), User: fmt.Sprintf("u%02d", i)}
		keys = append(keys, k)
		switch i % 4 {
		case 0: // duplicate jobs, both reset
			recs = append(recs, rec{k, ledger.StepReset, ""}, rec{k, ledger.StepReset, ""})
		case 1: // dead-lettered, redriven, reset; a duplicate dead letter too
			recs = append(recs, rec{k, ledger.StepDeadLettered, "attempts_exhausted"}, rec{k, ledger.StepDeadLettered, "attempts_exhausted"}, rec{k, ledger.StepReset, ""})
		case 2: // dead-lettered for two reasons
			recs = append(recs, rec{k, ledger.StepDeadLettered, "attempts_exhausted"}, rec{k, ledger.StepDeadLettered, "UserNotFoundException"})
		case 3: // re-invited or disabled, with a sign-out beside
			recs = append(recs, rec{k, ledger.StepReinvited, ""}, rec{k, ledger.StepDisabled, ""}, rec{k, ledger.StepSignedOut, ""})
		}
	}
	enqueued(t, b.l, at(0), keys...)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	var wg sync.WaitGroup
	errs := make(chan error, len(recs))
	for i, r := range recs {
		wg.Go(func() { errs <- b.l.Record(t.Context(), r.k, r.step, at(time.Duration(i)*time.Second), r.detail) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	want := ledger.Progress{}
	for _, r := range rows(t, b.l, "c1") {
		c := want[r.Pool]
		c.Enqueued++
		switch r.Outcome {
		case ledger.StepReset:
			c.Reset++
		case ledger.StepReinvited:
			c.Reinvited++
		case ledger.StepDisabled:
			c.Disabled++
		case ledger.StepDeadLettered:
			if c.DeadLettered == nil {
				c.DeadLettered = map[string]int64{}
			}
			c.DeadLettered[r.Reason]++
		default:
			t.Errorf("%s/%s: no outcome", r.Pool, r.User)
		}
		want[r.Pool] = c
		if i := int(r.User[1]-'0')*10 + int(r.User[2]-'0'); i%4 < 2 && r.Outcome != ledger.StepReset {
			t.Errorf("%s: outcome %s, want reset (a done outcome is final)", r.User, r.Outcome)
		}
	}
	got, err := b.l.Progress(t.Context(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counters %v\nrows say %v", got, want)
	}
	if tot := got.Total(); tot.Enqueued != users || tot.Done()+tot.DeadLetteredTotal() != users || tot.Left() != 0 {
		t.Errorf("total %+v: want %d enqueued and ended", tot, users)
	}
}
