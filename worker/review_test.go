package worker

import (
	"context"
	"errors"
	"github.com/resetq/resetq/clock"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/metrics"
)

// callLogBundle is a bundle whose resets log "call" among the queue's
// events.
func callLogBundle() *bundle {
	b := newBundle(nil)
	b.cfg.Cognito = resetterFunc(func(context.Context, job.Job) error {
		b.q.mu.Lock()
		b.q.log("call")
		b.q.mu.Unlock()
		return nil
	})
	return b
}

// TestExtendedWhileDeletePending: a reset job's message stays extended
// while its delete is still under way (failed tries, retried), so SQS does
// not deliver it again meanwhile.
func TestExtendedWhileDeletePending(t *testing.T) {
	t.Parallel()
	b := callLogBundle()
	b.cfg.Clock = clock.Real{}
	// Long enough that a loaded machine does not let it lapse (its ticks
	// every 100 ms), short enough to be extended while the delete retries.
	b.cfg.Visibility, b.cfg.CallTimeout = 600*time.Millisecond, 5*time.Millisecond
	b.q.deleteFail = func(_ string, try int) error {
		if try < 3 {
			return errors.New("InternalError")
		}
		return nil
	}
	b.q.push(jobBody(pool, "alice"), nil)
	b.run(t)
	_, _, events, _ := b.q.snapshot()
	call, del := slices.Index(events, "call"), slices.Index(events, "delete:m1")
	if call < 0 || del < 0 {
		t.Fatalf("events %v: want a call and a delete", events)
	}
	if !slices.ContainsFunc(events[call:del], func(e string) bool { return strings.HasPrefix(e, "hide:m1:") }) {
		t.Fatalf("events %v: the message was not extended while its delete was pending", events)
	}
}

// TestLapsedVisibilityMakesNoCall: a job whose message could not be
// extended past its visibility timeout (SQS may have handed it to another
// worker) makes no call; it is left to its next delivery.
func TestLapsedVisibilityMakesNoCall(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	b := newBundle(func(context.Context, job.Job) error { calls.Add(1); return nil })
	b.cfg.Clock = clock.Real{}
	b.cfg.Visibility, b.cfg.CallTimeout = 60*time.Millisecond, 5*time.Millisecond
	b.cfg.ExitWhenIdle = 0
	b.q.changeFail = func(string) error { return errors.New("ReceiptHandleIsInvalid") }
	var w atomic.Pointer[Worker]
	lapsed := func() bool {
		wk := w.Load()
		if wk == nil { // the job came before the test had the worker
			return false
		}
		h := &wk.held
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.m {
			if e.lost {
				return true
			}
		}
		return false
	}
	b.pacer.wait = func(ctx context.Context, _ string) error { // holds the job until its visibility lapsed
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for !lapsed() {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	b.q.push(jobBody(pool, "alice"), nil)
	wk, cancel, done := b.start(t)
	w.Store(wk)
	eventually(t, "the job given up", func() bool { return b.jobs("expired") == 1 })
	cancel()
	<-done
	if calls.Load() != 0 {
		t.Fatalf("%d calls for a message whose visibility lapsed", calls.Load())
	}
}

// TestCallKeepsItsMessage: a call that must not run beside another
// delivery's (here a reset) starts only if its message stays invisible
// through it and its record (callNeeds: 22 s with a 10 s call timeout; a
// kill's need is TestAKillNeedsLessThanACode's).
// When the extension loop has not extended it that far (SQS failed, or the
// loop is late), the job extends it first and calls only if SQS extends
// it; a visibility that has ended makes no call, whatever SQS says (it may
// have handed the message on, and a second call beside this one would send
// a second code). A sign-out may run twice: it is not held back. The
// extension loop never ticks here (the test's clock jumps; the loop's
// ticker runs on the wall clock's 10 s), so only the check before the call
// extends.
func TestCallKeepsItsMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		waited  time.Duration // in the pacer, of the 60 s visibility
		refused bool          // SQS refuses extensions
		signOut bool          // the wait is the sign-out's, after the reset
		slow    time.Duration // SQS's answer to an extension comes this late
		want    string        // the job's outcome
		extends bool          // an extension before the call
	}{
		{name: "time left for the call", waited: 37 * time.Second, want: "reset"},
		{name: "just too little time left: extended", waited: 38 * time.Second, want: "reset", extends: true},
		{name: "SQS answers before the visibility ends", waited: 55 * time.Second, slow: 4 * time.Second, want: "reset", extends: true},
		{name: "SQS answers after the visibility ended", waited: 55 * time.Second, slow: 6 * time.Second, want: "expired"},
		{name: "the visibility ends during the call: extended", waited: 50 * time.Second, want: "reset", extends: true},
		{name: "the visibility ends during the call: SQS refuses", waited: 50 * time.Second, refused: true, want: "expired"},
		{name: "the visibility ended", waited: 70 * time.Second, want: "expired"},
		{name: "the visibility ended: SQS refuses", waited: 70 * time.Second, refused: true, want: "expired"},
		{name: "a sign-out may run twice", waited: 50 * time.Second, refused: true, signOut: true, want: "reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := callLogBundle()
			b.cfg.Visibility, b.cfg.ExitWhenIdle = 60*time.Second, 0
			if tt.refused {
				b.q.changeFail = func(string) error { return errors.New("ReceiptHandleIsInvalid") }
			}
			if tt.slow > 0 {
				b.q.changeFail = func(string) error { b.clock.Advance(tt.slow); return nil }
			}
			var once sync.Once
			wait := func(ctx context.Context, _ string) error {
				once.Do(func() { b.clock.Advance(tt.waited) })
				return ctx.Err()
			}
			if tt.signOut {
				b.cfg.GlobalSignOut = true
				b.cfg.SignOutPacer.(*fakePacer).wait = wait
			} else {
				b.pacer.wait = wait
			}
			b.q.push(jobBody(pool, "alice"), nil)
			_, cancel, done := b.start(t)
			eventually(t, "the job's end", func() bool { return b.jobs("reset")+b.jobs("expired") > 0 })
			cancel()
			<-done
			_, _, events, _ := b.q.snapshot()
			if b.jobs(tt.want) != 1 {
				t.Fatalf("events %v: reset %v, expired %v; want %s", events, b.jobs("reset"), b.jobs("expired"), tt.want)
			}
			if tt.waited > b.cfg.Visibility && slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, "hide") }) {
				t.Fatalf("events %v: an extension tried after the visibility ended", events)
			}
			call := slices.Index(events, "call")
			if (call >= 0) != (tt.want == "reset") {
				t.Fatalf("events %v: a call %v, want %s", events, call >= 0, tt.want)
			}
			if call < 0 || tt.signOut {
				return
			}
			extended := slices.ContainsFunc(events[:call], func(e string) bool { return strings.HasPrefix(e, "hide:m1:1m0s") })
			if extended != tt.extends {
				t.Fatalf("events %v: extended before the call %v, want %v", events, extended, tt.extends)
			}
		})
	}
}

// TestAKillNeedsLessThanACode: with 15 s of visibility left and SQS
// refusing to extend it, a password kill still goes (its call is over in
// 10 s, before any redelivery; held back, the old password would work
// until one), while a reset, whose ledger record follows its call, does
// not.
func TestAKillNeedsLessThanACode(t *testing.T) {
	t.Parallel()
	b := newBundle(nil)
	b.cfg.Visibility = DefaultVisibility
	b.q.changeFail = func(string) error { return errors.New("ReceiptHandleIsInvalid") }
	w, err := New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	keeps := func(o op) bool {
		w.held.add("r1", b.clock.Now().Add(15*time.Second))
		defer w.held.remove("r1")
		return w.keepsThrough(t.Context(), &run{m: job.Message{ReceiptHandle: "r1"}}, w.needs(o))
	}
	if !keeps(w.killOp(false)) {
		t.Error("a kill with 15 s left was held back")
	}
	if keeps(w.resetOp()) {
		t.Error("a reset with 15 s left went, its extension refused")
	}
}

// TestLoopKeepsCallsFree: while the extension loop works, a message never
// comes within callNeeds of its visibility's end, so a call never waits on
// an extension of its own, at any visibility New takes; New refuses one
// that cannot leave a call what it needs.
func TestLoopKeepsCallsFree(t *testing.T) {
	for _, v := range []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute, 12 * time.Hour} {
		cfg := newBundle(nil).cfg
		cfg.Visibility = v
		w, err := New(cfg)
		if err != nil {
			t.Fatalf("visibility %v: %v", v, err)
		}
		tick, until := v/6, v // the message just received
		for now := tick; now <= 3*v; now += tick {
			if left := until - now; left <= w.cfg.callNeeds() {
				t.Fatalf("visibility %v: %v left at a tick, a call needs over %v", v, left, w.cfg.callNeeds())
			}
			if until-now < w.extendAhead() {
				until = now + v
			}
			// Just before the next tick, the least left.
			if left := until - (now + tick - time.Millisecond); left <= w.cfg.callNeeds() {
				t.Fatalf("visibility %v: %v left before a tick, a call needs over %v", v, left, w.cfg.callNeeds())
			}
		}
	}
	cfg := newBundle(nil).cfg
	cfg.Visibility = 25 * time.Second
	if _, err := New(cfg); err == nil {
		t.Fatal("New took a visibility of 25 s with calls of up to 10 s: no code call could ever go")
	}
}

// TestDeadLetterSendFailureBacksOff: a DLQ that refuses every send neither
// loses the job nor loops: each failure hides the message for longer, and
// is counted.
func TestDeadLetterSendFailureBacksOff(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return codeErr("UserNotFoundException", "x") })
	b.dlq.fail = errors.New("KMS.AccessDeniedException")
	b.cfg.ExitWhenIdle = 0
	b.q.push(jobBody(pool, "ghost"), nil)
	_, cancel, done := b.start(t)
	hides := func() []string {
		_, _, events, _ := b.q.snapshot()
		var out []string
		for _, e := range events {
			if strings.HasPrefix(e, "hide:m1:") {
				out = append(out, strings.TrimPrefix(e, "hide:m1:"))
			}
		}
		return out
	}
	for i := 1; i <= 4; i++ {
		b.q.waitFor(t, "the message hidden after the DLQ failed", func() bool { return len(hides()) >= i })
		b.q.expire("m1") // its hide ends: SQS delivers it again
	}
	cancel()
	<-done
	var ds []time.Duration
	for _, h := range hides() {
		d, err := time.ParseDuration(h)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	for i := 1; i < len(ds); i++ {
		if ds[i] <= ds[i-1] {
			t.Fatalf("hides %v: each failure must hide the message for longer", ds)
		}
	}
	if got := testutil.ToFloat64(b.m.DeadLetterFailures); got < 4 {
		t.Fatalf("dead-letter failures = %v, want each counted", got)
	}
	if b.jobs("dead_lettered") != 0 {
		t.Fatal("a job counted dead-lettered that never reached the DLQ")
	}
}

// TestDeadLetterTooLargeIsCut: a record the DLQ refuses (a body near SQS's
// size limit leaves no room for a long error and the job's own attributes)
// is sent again cut to the essentials.
func TestDeadLetterTooLargeIsCut(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error {
		return codeErr("UserLambdaValidationException", strings.Repeat("x", 900))
	})
	b.dlq.failIf = func(m job.Outgoing) error {
		if len(m.Attributes) > 7 || len(m.Attributes[job.AttrError].StringValue) > 200 {
			return errors.New("InvalidParameterValue: message must be shorter than 1048576 bytes")
		}
		return nil
	}
	attrs := map[string]job.Attribute{job.AttrCampaign: {DataType: "String", StringValue: "c1"}}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		attrs["user."+k] = job.Attribute{DataType: "String", StringValue: strings.Repeat(k, 100)}
	}
	b.q.push(jobBody(pool, "alice"), attrs)
	b.run(t)
	dl := b.dlq.all()
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if dl[0].Attributes[job.AttrCampaign].StringValue != "c1" || dl[0].Attributes[job.AttrReason].StringValue != "UserLambdaValidationException" {
		t.Fatalf("record %v: want the campaign and the reason kept", dl[0].Attributes)
	}
}

// TestDeleteAfterSendIsImmediate: the delete of a dead-lettered or sent
// back job does not wait for a batch to fill, so a crash in that window
// (the job in the DLQ and still in the source) is as short as one call.
// Records and copies carry the job's first message ID.
func TestDeleteAfterSendIsImmediate(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	b := newBundle(func(context.Context, job.Job) error {
		if calls.Add(1) == 1 {
			return codeErr("InternalErrorException", "x")
		}
		return codeErr("UserNotFoundException", "x")
	})
	b.cfg.DeleteLinger = time.Hour
	b.cfg.ExitWhenIdle = 0
	id := b.q.push(jobBody(pool, "ghost"), nil)
	_, cancel, done := b.start(t)
	defer func() { cancel(); <-done }()
	b.q.waitFor(t, "the original and the copy deleted before the linger", func() bool {
		_, _, events, _ := b.q.snapshot()
		n := 0
		for _, e := range events {
			if strings.HasPrefix(e, "delete:") {
				n++
			}
		}
		return n == 2
	})
	dl := b.dlq.all()
	if len(dl) != 1 || dl[0].Attributes[job.AttrJobID].StringValue != id {
		t.Fatalf("dead letters %v: want one with %s=%s", dl, job.AttrJobID, id)
	}
}

// TestUnknownRegionRefused: a pool in a Region the SDK does not know is
// dead-lettered without a call, unless the pool is allowed by name.
func TestUnknownRegionRefused(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	b := newBundle(func(context.Context, job.Job) error { calls.Add(1); return nil })
	b.q.push(jobBody("zz-nowhere-9_Pool", "alice"), nil)
	b.q.push(jobBody("us-east-1_Pool", "bob"), nil)
	b.run(t)
	if calls.Load() != 1 || len(b.dlq.all()) != 1 || b.dlq.all()[0].Attributes[job.AttrReason].StringValue != job.ReasonInvalidJob {
		t.Fatalf("calls %d, dead letters %v: want the made-up Region refused", calls.Load(), b.dlq.all())
	}

	b = newBundle(func(context.Context, job.Job) error { calls.Add(1); return nil })
	b.cfg.AllowedPools = map[string]bool{"zz-nowhere-9_Pool": true}
	b.q.push(jobBody("zz-nowhere-9_Pool", "alice"), nil)
	b.run(t)
	if b.jobs("reset") != 1 {
		t.Fatal("a pool named in AllowedPools was refused for its Region")
	}
}

// TestOneCodePerUser: with CheckEveryJob, a user named in two jobs (in
// any case, enqueue run twice) is reset once, even when both jobs are in
// flight at once.
func TestOneCodePerUser(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	status := map[string]string{}
	resets := map[string]int{}
	var checks atomic.Int64
	var w atomic.Pointer[Worker]
	b := newBundle(func(_ context.Context, j job.Job) error {
		// Hold the first reset until the other job of the user has either
		// checked too (no lock: two codes) or waits for this one.
		eventually(t, "the other job checked or waiting", func() bool {
			wk := w.Load()
			return checks.Load() >= 2 || (wk != nil && wk.users.waiting.Load() >= 1)
		})
		mu.Lock()
		defer mu.Unlock()
		u := strings.ToLower(j.Username)
		resets[u]++
		status[u] = "RESET_REQUIRED"
		return nil
	})
	b.cfg.Statuses = statusFunc(func(_ context.Context, j job.Job) (string, error) {
		checks.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if s := status[strings.ToLower(j.Username)]; s != "" {
			return s, nil
		}
		return "CONFIRMED", nil
	})
	b.cfg.StatusPacer = newFakePacer()
	b.cfg.CheckEveryJob = true
	b.cfg.Concurrency = 2
	b.q.push(jobBody(pool, "Alice"), nil)
	b.q.push(jobBody(pool, "alice"), nil)
	wk, cancel, done := b.start(t)
	w.Store(wk)
	defer func() { cancel(); <-done }()
	b.q.waitFor(t, "both jobs done", func() bool { return b.jobs("reset") == 2 })
	mu.Lock()
	defer mu.Unlock()
	if resets["alice"] != 1 {
		t.Fatalf("resets %v, want one", resets)
	}
}

// eventually polls cond until it holds, for what no queue event signals.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Errorf("timed out waiting for %s", what)
			return
		}
	}
}

// lateDepth answers the first depth question "empty" while a delayed
// message turns visible, as SQS's approximate counts can.
type lateDepth struct {
	q     *fakeQueue
	calls atomic.Int64
}

func (d *lateDepth) Depth(ctx context.Context) (metrics.Depth, error) {
	if d.calls.Add(1) == 1 {
		d.q.push(jobBody(pool, "late"), nil)
		return metrics.Depth{}, nil
	}
	return d.q.Depth(ctx)
}

// TestExitWhenIdleConfirmsTheCount: a message that turns visible just as
// the count says "drained" is still handled before the worker exits.
func TestExitWhenIdleConfirmsTheCount(t *testing.T) {
	t.Parallel()
	var resets atomic.Int64
	b := newBundle(func(context.Context, job.Job) error { resets.Add(1); return nil })
	b.cfg.Depth = &lateDepth{q: b.q}
	b.run(t)
	if resets.Load() != 1 {
		t.Fatalf("%d resets: the worker exited with a message left", resets.Load())
	}
}
