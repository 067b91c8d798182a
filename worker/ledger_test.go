package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resetq/resetq/clock/clocktest"
	"github.com/resetq/resetq/job"
)

// fakeLedger is a campaign ledger in memory: claims with a lease, steps,
// and the outcome that makes a user done, compared case-insensitively.
type fakeLedger struct {
	mu    sync.Mutex
	rows  map[string]*fakeRow
	fail  error // every call fails with it, if not nil
	lease time.Duration

	claims atomic.Int64 // Claim calls answered
}

type fakeRow struct {
	holder  string
	until   time.Time
	outcome string
	steps   []string
	reasons []string
}

func newFakeLedger() *fakeLedger { return &fakeLedger{rows: map[string]*fakeRow{}, lease: time.Minute} }

func (l *fakeLedger) row(u LedgerUser) *fakeRow {
	k := u.Campaign + "/" + u.Pool + "/" + strings.ToLower(u.Username)
	if l.rows[k] == nil {
		l.rows[k] = &fakeRow{}
	}
	return l.rows[k]
}

func (l *fakeLedger) Claim(_ context.Context, u LedgerUser, holder, from string, now time.Time) (Claim, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.claims.Add(1)
	if l.fail != nil {
		return Claim{}, l.fail
	}
	r := l.row(u)
	switch {
	case r.outcome == job.StepReset || r.outcome == job.StepReinvited:
		return Claim{Done: true, Outcome: r.outcome}, nil
	case r.holder != "" && r.holder != holder && r.holder != from && now.Before(r.until):
		return Claim{Holder: r.holder, Until: r.until}, nil
	}
	r.holder, r.until = holder, now.Add(l.lease)
	return Claim{Held: true, Holder: holder, Until: r.until}, nil
}

func (l *fakeLedger) Release(_ context.Context, u LedgerUser, holder string, _ time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.row(u); r.holder == holder {
		r.holder = ""
	}
	return nil
}

func (l *fakeLedger) Record(_ context.Context, u LedgerUser, step, detail string, _ time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	r := l.row(u)
	r.steps = append(r.steps, step)
	done := r.outcome == job.StepReset || r.outcome == job.StepReinvited
	switch step {
	case job.StepReset, job.StepReinvited, job.StepDisabled:
		if !done {
			r.outcome = step
		}
	case StepDeadLettered:
		r.reasons = append(r.reasons, detail)
		if r.outcome == "" {
			r.outcome = step
		}
	}
	return nil
}

func (l *fakeLedger) get(u LedgerUser) fakeRow {
	l.mu.Lock()
	defer l.mu.Unlock()
	return *l.row(u)
}

// TestLedgerOneCodeAcrossReplicas: two workers (two replicas, each with
// its own copy of the same user's job, no status check) share one ledger:
// the user's code goes once, and the other job ends without a call.
func TestLedgerOneCodeAcrossReplicas(t *testing.T) {
	t.Parallel()
	led := newFakeLedger()
	var resets atomic.Int64
	start := make(chan struct{})
	reset := func(context.Context, job.Job) error {
		<-start // both replicas are past their claims, or one waits on the other's
		resets.Add(1)
		return nil
	}
	a, b := newBundle(reset), newBundle(reset)
	b.q.seq = 100 // SQS message IDs are unique across queues
	for _, x := range []*bundle{a, b} {
		x.cfg.Ledger = led
		x.q.push(jobBody(pool, "Alice"), campaignAttrs("c1"))
	}
	var wg sync.WaitGroup
	for _, x := range []*bundle{a, b} {
		wg.Go(func() { x.run(t) })
	}
	close(start)
	wg.Wait()
	if n := resets.Load(); n != 1 {
		t.Fatalf("%d resets for one user across two replicas, want 1", n)
	}
	row := led.get(LedgerUser{Campaign: "c1", Pool: pool, Username: "alice"})
	if row.outcome != job.StepReset || !slices.Equal(row.steps, []string{job.StepReset}) {
		t.Fatalf("ledger row %+v, want the reset recorded once", row)
	}
	if got := a.jobs("reset") + b.jobs("reset"); got != 2 {
		t.Fatalf("%v jobs counted reset, want both (one reset, one found done)", got)
	}
}

// TestLedgerOneMessageTwiceAtOnce: SQS hands one message to two replicas
// at once (the same message ID and receive count, two receipt handles:
// it delivers at least once). Both deliveries pass their status checks
// before either resets; the ledger's claim lets one send the code.
func TestLedgerOneMessageTwiceAtOnce(t *testing.T) {
	t.Parallel()
	led := newFakeLedger()
	var resets atomic.Int64
	reset := func(context.Context, job.Job) error {
		// Both deliveries have asked for the claim before a code goes.
		for deadline := time.Now().Add(30 * time.Second); led.claims.Load() < 2 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		resets.Add(1)
		return nil
	}
	a, b := newBundle(reset), newBundle(reset)
	for _, x := range []*bundle{a, b} {
		x.cfg.Ledger, x.cfg.Visibility = led, DefaultVisibility
		x.q.push(jobBody(pool, "Alice"), campaignAttrs("c1")) // m1 in both
	}
	b.q.seq = 100 // another receipt handle for the same message
	// The hidden copy stays in its queue (here each replica has its own),
	// so the workers do not go idle: stopped once both jobs ended.
	_, cancelA, doneA := a.start(t)
	_, cancelB, doneB := b.start(t)
	ended := func() float64 {
		return a.jobs("reset") + b.jobs("reset") + a.jobs("delivered_twice") + b.jobs("delivered_twice")
	}
	for deadline := time.Now().Add(30 * time.Second); ended() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v jobs ended, want 2", ended())
		}
	}
	cancelA()
	cancelB()
	<-doneA
	<-doneB
	if n := led.claims.Load(); n < 2 {
		t.Fatalf("%d claims asked: the deliveries did not meet", n)
	}
	if n := resets.Load(); n != 1 {
		t.Fatalf("%d resets for one message delivered to two replicas at once, want 1", n)
	}
	if got, twice := a.jobs("reset")+b.jobs("reset"), a.jobs("delivered_twice")+b.jobs("delivered_twice"); got != 1 || twice != 1 {
		t.Fatalf("%v jobs counted reset and %v delivered_twice, want 1 and 1", got, twice)
	}
	// The delivery refused hid its copy until the claim's lease ends, and
	// neither sent it back nor deleted it (that would pull the message
	// from under the holder).
	for _, x := range []*bundle{a, b} {
		if x.jobs("delivered_twice") != 1 {
			continue
		}
		ev := strings.Join(x.q.events, " ")
		if !strings.Contains(ev, "hide:m1:1m") || strings.Contains(ev, "delete:m1") || len(x.q.sent) != 0 {
			t.Fatalf("the refused delivery's queue: events %s, sent %d; want m1 hidden for the lease (1m), not deleted, nothing sent", ev, len(x.q.sent))
		}
	}
}

// TestLedgerRedeliveryTakesOverAtOnce: a worker died holding a user's
// claim; SQS delivers its message again (a higher receive count), and that
// delivery takes the claim over at once and resets, instead of waiting out
// the dead claim's lease. A copy of another message of the same job, or a
// delivery of the same message with the same receive count, is refused.
func TestLedgerRedeliveryTakesOverAtOnce(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		deadHolder string
		wantResets int64
		want       string // the outcome counted
	}{
		{"earlier delivery of the message", holderName("m1", "m1", 1, "m1#dead"), 1, "reset"},
		{"an older resetq's holder of the message", "m1/m1", 1, "reset"},
		{"same receive count, another receipt", holderName("m1", "m1", 2, "m1#dead"), 0, "delivered_twice"},
		{"a later delivery of the message", holderName("m1", "m1", 3, "m1#later"), 0, "delivered_twice"},
		{"another message of the job", holderName("m1", "m9", 1, "m9#dead"), 0, "claimed_elsewhere"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			led := newFakeLedger()
			u := LedgerUser{Campaign: "c1", Pool: pool, Username: "erin"}
			if c, _ := led.Claim(context.Background(), u, tc.deadHolder, "", time.Now().Add(time.Hour)); !c.Held {
				t.Fatal("setup: claim refused")
			}
			var calls atomic.Int64
			b := newBundle(func(context.Context, job.Job) error { calls.Add(1); return nil })
			b.cfg.Ledger = led
			b.q.park = func(job.Outgoing) bool { return true }
			b.cfg.ExitWhenIdle = 0
			b.q.push(jobBody(pool, "erin"), campaignAttrs("c1"))
			b.q.mu.Lock()
			b.q.visible[0].ReceiveCount = 1 // its first delivery was the dead worker's
			b.q.mu.Unlock()
			_, cancel, done := b.start(t)
			for deadline := time.Now().Add(30 * time.Second); b.jobs(tc.want) != 1; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("outcome %s never counted (dead claim held by %q)", tc.want, tc.deadHolder)
				}
			}
			cancel()
			<-done
			if n := calls.Load(); n != tc.wantResets {
				t.Fatalf("%d resets, want %d (dead claim held by %q)", n, tc.wantResets, tc.deadHolder)
			}
			if row := led.get(u); tc.wantResets == 1 && row.outcome != job.StepReset {
				t.Fatalf("ledger row %+v, want the reset recorded", row)
			}
		})
	}
}

// TestLedgerLeavingFreesAnUnusedClaim: a job shut down while it waits in
// the pacer, after its claim and before its call, frees its claim (its
// next delivery or another job of the user need not wait for the lease);
// a job whose call was cut off keeps it (the code may have gone).
func TestLedgerLeavingFreesAnUnusedClaim(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		inCall   bool // shut down during the call, not in the pacer
		wantHeld bool
	}{
		{"in the pacer", false, false},
		{"during the call", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			led := newFakeLedger()
			waiting := make(chan struct{}, 1)
			block := func(ctx context.Context) error {
				select {
				case waiting <- struct{}{}:
				default:
				}
				<-ctx.Done()
				return ctx.Err()
			}
			b := newBundle(func(ctx context.Context, _ job.Job) error {
				if tc.inCall {
					return block(ctx)
				}
				return nil
			})
			if !tc.inCall {
				b.pacer.wait = func(ctx context.Context, _ string) error { return block(ctx) }
			}
			b.cfg.Ledger, b.cfg.ExitWhenIdle, b.cfg.ShutdownTimeout = led, 0, 10*time.Millisecond
			b.q.push(jobBody(pool, "frank"), campaignAttrs("c1"))
			_, cancel, done := b.start(t)
			u := LedgerUser{Campaign: "c1", Pool: pool, Username: "frank"}
			select {
			case <-waiting:
			case <-time.After(30 * time.Second):
				t.Fatal("the job never reached the pacer or its call")
			}
			if led.get(u).holder == "" {
				t.Fatal("setup: no claim before the wait")
			}
			cancel()
			<-done
			if b.jobs("released") != 1 {
				t.Fatalf("released %v, want 1", b.jobs("released"))
			}
			if held := led.get(u).holder != ""; held != tc.wantHeld {
				t.Fatalf("claim held after the shutdown: %v, want %v (row %+v)", held, tc.wantHeld, led.get(u))
			}
		})
	}
}

// TestTakesOver: only a later delivery of the same message takes a claim
// over.
func TestTakesOver(t *testing.T) {
	t.Parallel()
	mine := holderName("job/with/slashes", "msg-1", 3, "r3")
	for _, tc := range []struct {
		held string
		want bool
	}{
		{holderName("job/with/slashes", "msg-1", 2, "r2"), true},
		{holderName("job/with/slashes", "msg-1", 1, "r1"), true},
		{holderName("job/with/slashes", "msg-1", 3, "r3b"), false}, // the same count: a duplicate at once
		{holderName("job/with/slashes", "msg-1", 4, "r4"), false},  // a later delivery holds it
		{holderName("job/with/slashes", "msg-2", 1, "r1"), false},  // another message of the job
		{holderName("other", "msg-1", 1, "r1"), false},
		{"job/with/slashes/msg-1", true}, // an older resetq's JOBID/MESSAGEID of the message
		{"job/with/slashes/msg-2", false},
		{"job/with/slashes/msg-1/x/abc", false},
		{"", false},
		{"/1/abc", false},
	} {
		if got := takesOver(tc.held, mine); got != tc.want {
			t.Errorf("takesOver(%q, %q) = %v, want %v", tc.held, mine, got, tc.want)
		}
	}
	if takesOver(mine, mine) {
		t.Error("a holder takes over from itself")
	}
	if holderName("j", "m", 1, "a") == holderName("j", "m", 1, "b") {
		t.Error("two receipt handles, one holder")
	}
}

// TestLedgerUnreachableNoCodeWithoutClaim: while the ledger cannot be
// reached, no code goes: the job waits behind the ledger's circuit, and is
// dead-lettered as ledger_unavailable after --max-deferral.
func TestLedgerUnreachableNoCodeWithoutClaim(t *testing.T) {
	t.Parallel()
	led := newFakeLedger()
	led.fail = fmt.Errorf("%w: dial tcp: connection refused", ErrLedgerUnavailable)
	var resets atomic.Int64
	b := newBundle(func(context.Context, job.Job) error { resets.Add(1); return nil })
	b.cfg.Ledger = led
	b.cfg.Breaker = BreakerConfig{Cooldown: 3 * time.Second, MaxCooldown: 3 * time.Second, MaxDeferral: time.Minute}
	b.cfg.Clock = clocktest.Func(func() time.Time { b.clock.Advance(time.Second); return b.clock.Now() })
	b.q.push(jobBody(pool, "bob"), campaignAttrs("c1"))
	b.run(t)
	if n := resets.Load(); n != 0 {
		t.Fatalf("%d resets without a claim", n)
	}
	dl := b.dlq.all()
	if len(dl) != 1 || dl[0].Attributes[job.AttrReason].StringValue != job.ReasonLedgerUnavailable {
		t.Fatalf("dead letters %v, want one ledger_unavailable", dl)
	}
	if b.jobs("deferred") == 0 {
		t.Fatal("the job never waited for the ledger")
	}
	if v := testutil.ToFloat64(b.m.LedgerCircuitOpen); v != 1 {
		t.Fatalf("resetq_ledger_circuit_open %v, want 1", v)
	}
}

// TestLedgerRecordsSteps: each step is recorded; a dead letter with its
// reason; a user another job holds waits without a call or a kill.
func TestLedgerRecordsSteps(t *testing.T) {
	t.Parallel()
	led := newFakeLedger()
	b := newBundle(func(_ context.Context, j job.Job) error {
		if j.Username == "ghost" {
			return codeErr("UserNotFoundException", "User does not exist.")
		}
		return nil
	})
	b.cfg.Ledger = led
	b.cfg.GlobalSignOut = true
	b.q.push(jobBody(pool, "carol"), campaignAttrs("c1"))
	b.q.push(jobBody(pool, "ghost"), campaignAttrs("c1"))
	b.run(t)
	carol := led.get(LedgerUser{Campaign: "c1", Pool: pool, Username: "carol"})
	if !slices.Equal(carol.steps, []string{job.StepReset, job.StepSignedOut}) {
		t.Errorf("carol's steps %v, want reset then signed_out", carol.steps)
	}
	ghost := led.get(LedgerUser{Campaign: "c1", Pool: pool, Username: "ghost"})
	if ghost.outcome != StepDeadLettered || !slices.Equal(ghost.reasons, []string{"UserNotFoundException"}) {
		t.Errorf("ghost's row %+v, want dead-lettered as UserNotFoundException", ghost)
	}
}

// TestLedgerHeldElsewhereWaits: a user another job holds (a live claim)
// gets no call from this job, which looks again later: here the holder
// finishes meanwhile, and the job ends as done.
func TestLedgerHeldElsewhereWaits(t *testing.T) {
	t.Parallel()
	led := newFakeLedger()
	u := LedgerUser{Campaign: "c1", Pool: pool, Username: "dave"}
	if c, _ := led.Claim(context.Background(), u, "other-job", "", time.Now().Add(time.Hour)); !c.Held {
		t.Fatal("setup: claim refused")
	}
	var calls atomic.Int64
	b := newBundle(func(context.Context, job.Job) error { calls.Add(1); return nil })
	b.cfg.Ledger = led
	b.cfg.KillPassword, b.cfg.Statuses, b.cfg.StatusPacer = true, statusFunc(func(context.Context, job.Job) (string, error) { return "CONFIRMED", nil }), newFakePacer()
	b.q.park = func(job.Outgoing) bool { return true }
	b.cfg.ExitWhenIdle = 0 // the copy waits parked, out of the queue's depth
	b.q.push(jobBody(pool, "dave"), campaignAttrs("c1"))
	_, cancel, done := b.start(t)
	b.q.waitFor(t, "the job sent back", func() bool {
		b.q.mu.Lock()
		defer b.q.mu.Unlock()
		return len(b.q.parked) == 1
	})
	if calls.Load() != 0 || len(b.rem.all()) != 0 {
		t.Fatalf("%d resets and calls %v while another job held the user", calls.Load(), b.rem.all())
	}
	// The outcome is counted just after the copy is sent: wait for it.
	for deadline := time.Now().Add(30 * time.Second); b.jobs("claimed_elsewhere") != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("claimed_elsewhere %v, want 1", b.jobs("claimed_elsewhere"))
		}
	}
	if err := led.Record(context.Background(), u, job.StepReset, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	b.q.unpark()
	b.q.waitFor(t, "the copy done", func() bool { return b.jobs("reset") == 1 })
	cancel()
	<-done
	if calls.Load() != 0 {
		t.Fatalf("%d resets after the holder finished, want 0", calls.Load())
	}
}

func campaignAttrs(campaign string) map[string]job.Attribute {
	return map[string]job.Attribute{job.AttrCampaign: {DataType: "String", StringValue: campaign}}
}

// TestLedgerJobErrorStaysWithTheJob: a claim that fails for one job (its
// pool cannot be described) retries that job alone; the ledger's circuit
// stays closed and other pools' jobs go on. A job without a campaign does
// not use the ledger at all (a hand-sent job would share one campaign with
// every other for the rows' retention).
func TestLedgerJobErrorStaysWithTheJob(t *testing.T) {
	t.Parallel()
	led := &poolFailLedger{fakeLedger: newFakeLedger(), badPool: "us-east-1_Bogus"}
	var resets atomic.Int64
	b := newBundle(func(context.Context, job.Job) error { resets.Add(1); return nil })
	b.cfg.Ledger = led
	b.q.push(jobBody("us-east-1_Bogus", "x"), campaignAttrs("c1"))
	for i := range 5 {
		b.q.push(jobBody(pool, fmt.Sprintf("good%d", i)), campaignAttrs("c1"))
	}
	b.q.push(jobBody(pool, "handsent"), nil)
	b.run(t)
	if n := resets.Load(); n != 6 {
		t.Fatalf("%d resets, want the 5 good jobs' and the hand-sent one's", n)
	}
	if v := testutil.ToFloat64(b.m.LedgerCircuitOpen); v != 0 {
		t.Fatal("one job's failed claim opened the ledger's circuit")
	}
	dl := b.dlq.all()
	if len(dl) != 1 || dl[0].Attributes[job.AttrReason].StringValue != job.ReasonAttemptsExhausted {
		t.Fatalf("dead letters %v, want the bogus pool's job, attempts_exhausted", dl)
	}
	if r := led.get(LedgerUser{Pool: pool, Username: "handsent"}); len(r.steps) != 0 {
		t.Fatalf("a job without a campaign went to the ledger: %+v", r)
	}
}

// poolFailLedger fails every call for one pool, as ForWorker does when it
// cannot describe the pool.
type poolFailLedger struct {
	*fakeLedger
	badPool string
}

func (l *poolFailLedger) Claim(ctx context.Context, u LedgerUser, holder, from string, now time.Time) (Claim, error) {
	if u.Pool == l.badPool {
		return Claim{}, errors.New("DescribeUserPool: ResourceNotFoundException")
	}
	return l.fakeLedger.Claim(ctx, u, holder, from, now)
}

// TestLedgerClaimRenewedAfterALongWait: a job whose pacing wait outlasts
// half its lease renews its claim before the call; here a duplicate took
// the claim over meanwhile (the lease ended), so this job sends no code.
func TestLedgerClaimRenewedAfterALongWait(t *testing.T) {
	t.Parallel()
	led := newFakeLedger()
	u := LedgerUser{Campaign: "c1", Pool: pool, Username: "erin"}
	var resets atomic.Int64
	b := newBundle(func(context.Context, job.Job) error { resets.Add(1); return nil })
	b.cfg.Ledger = led
	b.cfg.ExitWhenIdle = 0
	var once sync.Once
	b.pacer.wait = func(ctx context.Context, _ string) error {
		once.Do(func() {
			b.clock.Advance(2 * led.lease) // a throttled Region: the wait outlasts the lease
			if c, _ := led.Claim(ctx, u, "duplicate", "", b.clock.Now()); !c.Held {
				t.Error("the duplicate could not take the expired claim")
			}
		})
		return ctx.Err()
	}
	b.q.park = func(job.Outgoing) bool { return true }
	b.q.push(jobBody(pool, "erin"), campaignAttrs("c1"))
	_, cancel, done := b.start(t)
	b.q.waitFor(t, "the job sent back", func() bool {
		b.q.mu.Lock()
		defer b.q.mu.Unlock()
		return len(b.q.parked) == 1
	})
	cancel()
	<-done
	if n := resets.Load(); n != 0 || b.jobs("claimed_elsewhere") != 1 {
		t.Fatalf("%d resets, %v claimed_elsewhere: the job called after its claim was taken over", n, b.jobs("claimed_elsewhere"))
	}
}

// TestLedgerRecordRetried: a record the ledger refuses (an outage) is made
// again in the background, with the time the step happened: the row gets
// its outcome once the ledger answers.
func TestLedgerRecordRetried(t *testing.T) {
	t.Parallel()
	led := &flakyRecordLedger{fakeLedger: newFakeLedger(), failures: 2, made: make(chan string, 10)}
	b := newBundle(func(context.Context, job.Job) error { return nil })
	b.cfg.Ledger = led
	b.cfg.ExitWhenIdle = 0
	b.q.push(jobBody(pool, "gina"), campaignAttrs("c1"))
	_, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()
	select {
	case step := <-led.made:
		if step != job.StepReset {
			t.Fatalf("recorded %s, want reset", step)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reset was never recorded")
	}
	if r := led.get(LedgerUser{Campaign: "c1", Pool: pool, Username: "gina"}); r.outcome != job.StepReset {
		t.Fatalf("row %+v, want the reset's outcome", r)
	}
}

// flakyRecordLedger refuses its first failures records; made hears each
// record made.
type flakyRecordLedger struct {
	*fakeLedger
	failures int
	made     chan string
}

func (l *flakyRecordLedger) Record(ctx context.Context, u LedgerUser, step, detail string, now time.Time) error {
	l.mu.Lock()
	fail := l.failures > 0
	l.failures--
	l.mu.Unlock()
	if fail {
		return fmt.Errorf("%w: throttled", ErrLedgerUnavailable)
	}
	err := l.fakeLedger.Record(ctx, u, step, detail, now)
	l.made <- step
	return err
}

// TestLedgerIdleExitWaitsForRecords: a worker that runs out of jobs
// (--exit-when-idle) waits for the ledger records still to make before it
// exits, so a reset's outcome is not lost with the process.
func TestLedgerIdleExitWaitsForRecords(t *testing.T) {
	t.Parallel()
	// One failure: the background retry goes at once. A second would wait
	// its backoff on the real timer while this bundle's clock runs ahead a
	// millisecond a reading, a race with the idle exit's 5 minutes.
	led := &flakyRecordLedger{fakeLedger: newFakeLedger(), failures: 1, made: make(chan string, 10)}
	b := newBundle(func(context.Context, job.Job) error { return nil })
	b.cfg.Ledger = led
	b.q.push(jobBody(pool, "hank"), campaignAttrs("c1"))
	b.run(t)
	if r := led.get(LedgerUser{Campaign: "c1", Pool: pool, Username: "hank"}); r.outcome != job.StepReset {
		t.Fatalf("the worker exited with the reset unrecorded: %+v", r)
	}
}
