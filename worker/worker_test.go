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

const pool = "us-east-1_Pool1"

// TestOutcomes runs a mixed queue to the end: every job ends reset (deleted)
// or in the DLQ with the right reason, and nothing is left in the queue.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	errs := map[string]error{
		"missing":   codeErr("UserNotFoundException", "User does not exist."),
		"nocontact": codeErr("InvalidParameterException", "Cannot reset password for the user as there is no registered/verified email or phone_number"),
		"unconf":    codeErr("NotAuthorizedException", "User password cannot be reset in the current state."),
		"disabled":  codeErr("NotAuthorizedException", "User is disabled."),
		"lambda":    codeErr("UserLambdaValidationException", "PreX failed"),
	}
	var calls atomic.Int64
	b := newBundle(func(_ context.Context, j job.Job) error {
		calls.Add(1)
		return errs[j.Username]
	})
	b.q.push(jobBody(pool, "alice"), nil)
	b.q.push(jobBody(pool, "bob"), nil)
	for u := range errs {
		b.q.push(jobBody(pool, u), nil)
	}
	b.q.push(`{"UserPoolId":"us-east-1_Pool1","Username":"x","Extra":1}`, nil)
	b.q.push(jobBody("nowhere_X", "carol"), nil)
	b.q.push(`{"UserPoolId":"us-east-1_Pool1"`, nil)
	b.run(t)

	visible, held, _, sent := b.q.snapshot()
	if len(visible) != 0 || held != 0 || len(sent) != 0 {
		t.Fatalf("queue not drained: %d visible, %d held, %d requeued", len(visible), held, len(sent))
	}
	reasons := map[string]int{}
	for _, m := range b.dlq.all() {
		reasons[m.Attributes[job.AttrReason].StringValue]++
	}
	want := map[string]int{"UserNotFoundException": 1, "InvalidParameterException": 1, "NotAuthorizedException": 2,
		"UserLambdaValidationException": 1, job.ReasonInvalidJob: 3}
	if len(reasons) != len(want) {
		t.Fatalf("DLQ reasons %v, want %v", reasons, want)
	}
	for r, n := range want {
		if reasons[r] != n {
			t.Fatalf("DLQ reasons %v, want %v", reasons, want)
		}
	}
	if got := b.jobs("reset"); got != 2 {
		t.Fatalf("reset = %v, want 2", got)
	}
	if calls.Load() != 7 {
		t.Fatalf("Cognito calls = %d, want 7 (invalid jobs must not reach Cognito)", calls.Load())
	}
}

// TestDeadLetterRecord checks the DLQ message: body unchanged, attributes
// kept, failure attributes added, and the DLQ send before the delete.
func TestDeadLetterRecord(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return codeErr("UserNotFoundException", "User does not exist.") })
	body := ` {"Username":"ghost","UserPoolId":"us-east-1_Pool1"} `
	b.q.push(body, map[string]job.Attribute{
		job.AttrCampaign: {DataType: "String", StringValue: "incident-42"},
		"origin":         {DataType: "Number", StringValue: "7"},
	})
	b.run(t)

	dl := b.dlq.all()
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	m := dl[0]
	if m.Body != body {
		t.Errorf("body changed: %q", m.Body)
	}
	a := m.Attributes
	if a[job.AttrCampaign].StringValue != "incident-42" || a["origin"].DataType != "Number" || a["origin"].StringValue != "7" {
		t.Errorf("original attributes not kept: %+v", a)
	}
	if a[job.AttrReason].StringValue != "UserNotFoundException" || a[job.AttrError].StringValue != "User does not exist." || a[job.AttrAttempts].StringValue != "1" {
		t.Errorf("failure attributes: %+v", a)
	}
	for _, k := range []string{job.AttrReason, job.AttrError, job.AttrAttempts, job.AttrFailedAt} {
		if a[k].DataType != "String" {
			t.Errorf("%s has type %q, want String", k, a[k].DataType)
		}
	}
	if _, err := time.Parse(time.RFC3339, a[job.AttrFailedAt].StringValue); err != nil {
		t.Errorf("failed_at %q: %v", a[job.AttrFailedAt].StringValue, err)
	}
	_, _, events, _ := b.q.snapshot()
	if !slices.Equal(events, []string{"dlq:UserNotFoundException", "delete:m1"}) {
		t.Errorf("events %v, want the DLQ send before the delete", events)
	}
}

func TestInvalidJobReason(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { t.Error("an invalid job reached Cognito"); return nil })
	b.q.push("{\"UserPoolId\":\"us-east-1_Pool1\",\"Username\":\"a\x01b\"}", nil)
	b.run(t)
	dl := b.dlq.all()
	if len(dl) != 1 || dl[0].Attributes[job.AttrReason].StringValue != job.ReasonInvalidJob ||
		!strings.Contains(dl[0].Attributes[job.AttrError].StringValue, "Username") || dl[0].Attributes[job.AttrAttempts].StringValue != "0" {
		t.Fatalf("dead letters %+v", dl)
	}
}

// TestThrottleRetriesInProcess: a throttled job is retried in the process
// (no requeue, no attempt used, no receive), the Region's pacer is told, and
// the job ends reset.
func TestThrottleRetriesInProcess(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	b := newBundle(func(context.Context, job.Job) error {
		if calls.Add(1) <= 25 { // far more than MaxAttempts
			return codeErr("TooManyRequestsException", "Rate exceeded")
		}
		return nil
	})
	b.cfg.Concurrency = 1
	b.q.push(jobBody(pool, "alice"), nil)
	b.run(t)
	if n := len(b.dlq.all()); n != 0 {
		t.Fatalf("%d dead letters: throttling must never dead-letter", n)
	}
	_, _, events, sent := b.q.snapshot()
	if len(sent) != 0 || !slices.Equal(events, []string{"delete:m1"}) {
		t.Fatalf("events %v, requeued %d: want one delete and nothing else", events, len(sent))
	}
	if th, ok := b.pacer.counts("us-east-1"); th != 25 || ok != 1 {
		t.Fatalf("pacer throttled=%d succeeded=%d, want 25 and 1", th, ok)
	}
}

// TestTransientRetriesThenExhausts: transient failures go back to the queue
// with a delay and the attempt count, then end as attempts_exhausted.
func TestTransientRetriesThenExhausts(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return codeErr("InternalErrorException", "try later") })
	b.q.push(jobBody(pool, "alice"), map[string]job.Attribute{job.AttrCampaign: {DataType: "String", StringValue: "c1"}})
	b.run(t)

	_, _, _, sent := b.q.snapshot()
	if len(sent) != 2 {
		t.Fatalf("%d requeues, want 2 (MaxAttempts 3)", len(sent))
	}
	for i, m := range sent {
		if got := m.Attributes[job.AttrAttempts].StringValue; got != []string{"1", "2"}[i] {
			t.Errorf("requeue %d carries attempts %q", i, got)
		}
		if m.Attributes[job.AttrCampaign].StringValue != "c1" {
			t.Errorf("requeue %d lost the campaign", i)
		}
		if want := []time.Duration{2 * time.Second, 3 * time.Second}[i]; m.Delay != want {
			t.Errorf("requeue %d delay %v, want %v", i, m.Delay, want)
		}
	}
	dl := b.dlq.all()
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	a := dl[0].Attributes
	if a[job.AttrReason].StringValue != job.ReasonAttemptsExhausted || a[job.AttrAttempts].StringValue != "3" ||
		!strings.Contains(a[job.AttrError].StringValue, "InternalErrorException: try later") {
		t.Fatalf("dead letter attributes %+v", a)
	}
	if b.jobs("retried") != 2 || b.jobs("dead_lettered") != 1 {
		t.Fatalf("jobs retried=%v dead_lettered=%v", b.jobs("retried"), b.jobs("dead_lettered"))
	}
}

func TestLimitExceededWaitsLong(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	b := newBundle(func(context.Context, job.Job) error {
		if calls.Add(1) == 1 {
			return codeErr("LimitExceededException", "Attempt limit exceeded, please try after some time.")
		}
		return nil
	})
	b.q.push(jobBody(pool, "alice"), nil)
	b.run(t)
	_, _, _, sent := b.q.snapshot()
	if len(sent) != 1 || sent[0].Delay < 30*time.Second {
		t.Fatalf("requeues %+v, want one with a long delay", sent)
	}
	if b.jobs("reset") != 1 || len(b.dlq.all()) != 0 {
		t.Fatal("job did not end reset")
	}
}

// TestSystemicOpensCircuit: a pool misconfiguration in one Region stops
// calls there after a bounded number, dead-letters nothing, lets other
// Regions flow, and everything completes once the fault clears.
func TestSystemicOpensCircuit(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	broken.Store(true)
	var eastCalls atomic.Int64
	b := newBundle(func(_ context.Context, j job.Job) error {
		if j.Region() == "us-east-1" {
			eastCalls.Add(1)
			if broken.Load() {
				return codeErr("UnrecognizedClientException", "The security token included in the request is invalid.")
			}
		}
		return nil
	})
	b.cfg.Concurrency = 4
	b.cfg.Breaker = BreakerConfig{Cooldown: time.Minute}
	b.cfg.ExitWhenIdle = 0 // runs until the test stops it
	for i := range 20 {
		b.q.push(jobBody(pool, "east"+string(rune('a'+i))), nil)
		b.q.push(jobBody("eu-west-1_Pool2", "west"+string(rune('a'+i))), nil)
	}
	w, cancel, done := b.start(t)
	b.q.waitFor(t, "east jobs deferred and west jobs reset", func() bool {
		return b.jobs("deferred") >= 40 && b.jobs("reset") >= 20
	})
	if n := eastCalls.Load(); n > int64(b.cfg.Concurrency) {
		t.Fatalf("%d calls reached the broken Region; the circuit should stop them after at most Concurrency", n)
	}
	if err := w.Ready(); err == nil {
		t.Fatal("Ready with an open circuit")
	}
	if len(b.dlq.all()) != 0 {
		t.Fatal("a systemic error dead-lettered jobs")
	}

	broken.Store(false)
	b.clock.Advance(time.Hour) // past the cooldown: the next job probes
	b.q.waitFor(t, "every job reset after the fault cleared", func() bool { return b.jobs("reset") >= 40 })
	if err := w.Ready(); err != nil {
		t.Fatalf("not ready after recovery: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	visible, held, _, _ := b.q.snapshot()
	if len(visible) != 0 || held != 0 || len(b.dlq.all()) != 0 {
		t.Fatalf("left: %d visible, %d held, %d dead letters", len(visible), held, len(b.dlq.all()))
	}
}

// TestShutdown: on cancel, jobs waiting for the limiter are released at
// once, the call under way finishes and its message is deleted, and Run
// returns without waiting for the slow Region.
func TestShutdown(t *testing.T) {
	t.Parallel()
	inCall := make(chan struct{})
	finishCall := make(chan struct{})
	waiting := make(chan struct{}, 10)
	b := newBundle(func(_ context.Context, j job.Job) error {
		close(inCall)
		<-finishCall
		return nil
	})
	b.cfg.ExitWhenIdle = 0
	b.cfg.Concurrency = 3
	var first atomic.Bool
	b.pacer.wait = func(ctx context.Context, _ string) error {
		if first.CompareAndSwap(false, true) {
			return nil // the first job goes straight to its call
		}
		waiting <- struct{}{}
		<-ctx.Done() // the others wait for a token that never comes
		return ctx.Err()
	}
	for _, u := range []string{"a", "b", "c", "d", "e"} {
		b.q.push(jobBody(pool, u), nil)
	}
	_, cancel, done := b.start(t)
	<-inCall
	<-waiting
	<-waiting
	cancel()
	close(finishCall)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	visible, held, events, _ := b.q.snapshot()
	deletes := 0
	for _, e := range events {
		if strings.HasPrefix(e, "delete:") {
			deletes++
		}
	}
	if deletes != 1 || len(visible) != 4 || held != 0 {
		t.Fatalf("after shutdown: %d deleted, %d visible, %d held; want 1, 4, 0 (events %v)", deletes, len(visible), held, events)
	}
}

// TestShutdownTimeoutReleasesUnfinishedCall: a call still running when the
// shutdown timeout ends is canceled and its message released, not deleted.
func TestShutdownTimeoutReleasesUnfinishedCall(t *testing.T) {
	t.Parallel()
	inCall := make(chan struct{})
	b := newBundle(func(ctx context.Context, j job.Job) error {
		close(inCall)
		<-ctx.Done()
		return ctx.Err()
	})
	b.cfg.ExitWhenIdle = 0
	b.cfg.ShutdownTimeout = 100 * time.Millisecond
	b.cfg.CallTimeout = time.Hour
	b.q.push(jobBody(pool, "stuck"), nil)
	_, cancel, done := b.start(t)
	<-inCall
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not honour the shutdown timeout")
	}
	visible, _, events, _ := b.q.snapshot()
	if len(visible) != 1 || slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, "delete:") }) {
		t.Fatalf("events %v: the unfinished job must be released, not deleted", events)
	}
	if b.jobs("released") != 1 {
		t.Fatalf("released = %v", b.jobs("released"))
	}
}

// TestDeadLetterSendFailureKeepsMessage: when the DLQ cannot be written
// the source message is not deleted.
func TestDeadLetterSendFailureKeepsMessage(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return codeErr("UserNotFoundException", "x") })
	b.dlq.fail = errors.New("dlq down")
	b.cfg.ExitWhenIdle = 0
	b.q.push(jobBody(pool, "ghost"), nil)
	_, cancel, done := b.start(t)
	b.q.waitFor(t, "the message hidden after the DLQ failed", func() bool {
		_, _, events, _ := b.q.snapshot()
		return slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, "hide:m1:") })
	})
	cancel()
	<-done
	_, held, events, _ := b.q.snapshot()
	if held != 1 || slices.Contains(events, "delete:m1") {
		t.Fatalf("events %v held %d: the message must stay in the queue", events, held)
	}
}

// TestDeleteEntryFailuresAreRetried: a batch entry that fails is retried.
func TestDeleteEntryFailuresAreRetried(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return nil })
	b.q.deleteFail = func(_ string, try int) error {
		if try < 3 {
			return errors.New("InternalError")
		}
		return nil
	}
	for _, u := range []string{"a", "b", "c"} {
		b.q.push(jobBody(pool, u), nil)
	}
	b.run(t)
	_, held, _, _ := b.q.snapshot()
	if held != 0 {
		t.Fatalf("%d messages left undeleted", held)
	}
}

// TestVisibilityExtended: a job held longer than half its visibility
// timeout gets it extended.
func TestVisibilityExtended(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	b := newBundle(func(context.Context, job.Job) error { return nil })
	b.q.extended = make(chan string, 1)
	b.cfg.Visibility, b.cfg.CallTimeout = 600*time.Millisecond, 5*time.Millisecond // a loaded machine does not let it lapse
	b.cfg.Clock = clock.Real{}                                                     // the extension schedule runs on real time
	b.pacer.wait = func(ctx context.Context, _ string) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.q.push(jobBody(pool, "slow"), nil)
	w, _ := New(b.cfg)
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	select {
	case r := <-b.q.extended:
		if !strings.HasPrefix(r, "m1#") {
			t.Fatalf("extended %q", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("visibility of a held message was never extended")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// flakySource fails the first receives, then works.
type flakySource struct {
	*fakeQueue
	fails atomic.Int64
	ready chan error
	once  sync.Once
	w     *Worker
}

func (s *flakySource) Receive(ctx context.Context, max int, wait, vis time.Duration) ([]job.Message, error) {
	if s.fails.Add(-1) >= 0 {
		return nil, errors.New("connection refused")
	}
	s.once.Do(func() { s.ready <- s.w.Ready() }) // readiness as it was after the failures

	return s.fakeQueue.Receive(ctx, max, wait, vis)
}

func TestReceiveFailuresMakeNotReadyThenRecover(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return nil })
	src := &flakySource{fakeQueue: b.q, ready: make(chan error, 1)}
	src.fails.Store(1)
	b.cfg.Source = src
	b.q.push(jobBody(pool, "a"), nil)
	w, _ := New(b.cfg)
	src.w = w
	b.run2(t, w)
	if err := <-src.ready; err == nil {
		t.Fatal("ready while the queue was failing")
	}
	if err := w.Ready(); err != nil {
		t.Fatalf("not ready after recovery: %v", err)
	}
	if b.jobs("reset") != 1 {
		t.Fatal("job not done after recovery")
	}
}

func (b *bundle) run2(t *testing.T, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Run(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("Run: %v (ctx %v)", err, ctx.Err())
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with no dependencies succeeded")
	}
	b := newBundle(nil)
	b.cfg.Depth = nil
	if _, err := New(b.cfg); err == nil {
		t.Fatal("ExitWhenIdle without Depth accepted")
	}
	d := Config{}.WithDefaults()
	if d.Concurrency != 16 || d.Policy.MaxAttempts != 8 || d.Breaker.Threshold != 8 || d.Clock == nil || d.Rand == nil || d.Logger == nil {
		t.Fatalf("WithDefaults left zero fields: %+v", d)
	}
	if d := (Config{Concurrency: 3}).WithDefaults(); d.Concurrency != 3 {
		t.Fatalf("WithDefaults replaced Concurrency 3 with %d", d.Concurrency)
	}
}

// pollingSource makes an empty receive take its whole long-poll wait on the
// fake clock, and counts empty receives.
type pollingSource struct {
	*fakeQueue
	clock   *fakeClock
	empties atomic.Int64
	long    atomic.Int64 // empty receives that waited 2s or more
}

func (s *pollingSource) Receive(ctx context.Context, max int, wait, vis time.Duration) ([]job.Message, error) {
	msgs, err := s.fakeQueue.Receive(ctx, max, wait, vis)
	if len(msgs) == 0 {
		s.clock.Advance(wait)
		s.empties.Add(1)
		if wait >= 2*time.Second {
			s.long.Add(1)
		}
	}
	return msgs, err
}

// TestExitWhenIdleCountsFromTheEmptyPoll: on an empty queue the worker
// exits after one long poll of ExitWhenIdle, not two, and one short poll
// that confirms the drained count (a delayed message may turn visible
// between the empty poll and the count).
func TestExitWhenIdleCountsFromTheEmptyPoll(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return nil })
	src := &pollingSource{fakeQueue: b.q, clock: b.clock}
	b.cfg.Source = src
	b.cfg.ExitWhenIdle = 3 * time.Second
	b.cfg.WaitTime = 20 * time.Second // capped to ExitWhenIdle
	w, _ := New(b.cfg)
	b.run2(t, w)
	if n, all := src.long.Load(), src.empties.Load(); n != 1 || all != 2 {
		t.Fatalf("%d long and %d empty polls in all before exit, want 1 and 2 (one to confirm)", n, all)
	}
}

// statusFunc is a StatusReader from a function.
type statusFunc func(ctx context.Context, job job.Job) (string, error)

func (f statusFunc) ReadUser(ctx context.Context, j job.Job) (User, error) {
	s, err := f(ctx, j)
	return User{Username: j.Username, Status: s, Enabled: true, Reachable: true}, err
}

// TestRedeliveryCheck: a job delivered again whose user is already
// RESET_REQUIRED is counted done without a second reset; a first delivery
// is never checked; a failed check resets anyway.
func TestRedeliveryCheck(t *testing.T) {
	t.Parallel()
	var resets, checks atomic.Int64
	b := newBundle(func(context.Context, job.Job) error { resets.Add(1); return nil })
	statuses := map[string]string{"done": "RESET_REQUIRED", "fresh": "CONFIRMED"}
	b.cfg.Statuses = statusFunc(func(_ context.Context, j job.Job) (string, error) {
		checks.Add(1)
		if j.Username == "broken" {
			return "", codeErr("InternalErrorException", "x")
		}
		return statuses[j.Username], nil
	})
	b.cfg.StatusPacer = newFakePacer()
	// Each message has been received once before this run (a crash).
	for _, u := range []string{"done", "fresh", "broken"} {
		b.q.push(jobBody(pool, u), nil)
		b.q.mu.Lock()
		b.q.visible[len(b.q.visible)-1].ReceiveCount = 1
		b.q.mu.Unlock()
	}
	b.q.push(jobBody(pool, "first"), nil) // first delivery: not checked
	b.run(t)
	if checks.Load() != 3 {
		t.Fatalf("%d status checks, want 3 (redeliveries only)", checks.Load())
	}
	if resets.Load() != 3 {
		t.Fatalf("%d resets, want 3 (not the already reset user)", resets.Load())
	}
	if b.jobs("reset") != 4 || len(b.dlq.all()) != 0 {
		t.Fatalf("reset=%v dead letters=%d, want every job done", b.jobs("reset"), len(b.dlq.all()))
	}
	for result, want := range map[string]float64{"already_reset": 1, "not_reset": 1, "error": 1} {
		if got := testutil.ToFloat64(b.m.RedeliveryChecks.WithLabelValues(result)); got != want {
			t.Errorf("redelivery checks %s = %v, want %v", result, got, want)
		}
	}
}

// slowPollSource answers its second poll only when told to, like SQS
// answering a long poll that was under way when the worker was stopped.
type slowPollSource struct {
	*fakeQueue
	polls   atomic.Int64
	polling chan struct{}
	answer  chan struct{}
}

func (s *slowPollSource) Receive(ctx context.Context, max int, wait, vis time.Duration) ([]job.Message, error) {
	if s.polls.Add(1) == 2 {
		close(s.polling)
		<-s.answer
	}
	return s.fakeQueue.Receive(ctx, max, wait, vis)
}

// TestShutdownReleasesWhatAPollBrings: messages handed out by a poll that
// was under way at shutdown are made visible again at once, not left
// hidden until their visibility timeout.
func TestShutdownReleasesWhatAPollBrings(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return nil })
	src := &slowPollSource{fakeQueue: b.q, polling: make(chan struct{}), answer: make(chan struct{})}
	b.cfg.Source = src
	b.cfg.ExitWhenIdle = 0
	_, cancel, done := b.start(t)
	<-src.polling
	for _, u := range []string{"a", "b", "c"} {
		b.q.push(jobBody(pool, u), nil)
	}
	cancel()
	close(src.answer)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	visible, held, events, _ := b.q.snapshot()
	if len(visible) != 3 || held != 0 {
		t.Fatalf("%d visible, %d held after shutdown (events %v); want all 3 released", len(visible), held, events)
	}
}

// hangingPollSource's second poll answers only when its context ends, like
// a long poll on an empty queue.
type hangingPollSource struct {
	*fakeQueue
	polls   atomic.Int64
	polling chan struct{}
}

func (s *hangingPollSource) Receive(ctx context.Context, max int, wait, vis time.Duration) ([]job.Message, error) {
	if s.polls.Add(1) == 2 {
		close(s.polling)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.fakeQueue.Receive(ctx, max, wait, vis)
}

// TestShutdownCancelsAnEmptyPoll: a poll still waiting after pollGrace has
// found nothing; it is cancelled rather than held to the shutdown timeout.
func TestShutdownCancelsAnEmptyPoll(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return nil })
	src := &hangingPollSource{fakeQueue: b.q, polling: make(chan struct{})}
	b.cfg.Source = src
	b.cfg.ExitWhenIdle = 0
	b.cfg.ShutdownTimeout = time.Hour
	_, cancel, done := b.start(t)
	<-src.polling
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // pollGrace is 1s; only a hang gets here
		t.Fatal("shutdown waited for an empty long poll")
	}
}

// TestAllowedPools: a job for a pool not on the list is dead-lettered as
// pool_not_allowed and never reaches Cognito.
func TestAllowedPools(t *testing.T) {
	t.Parallel()
	var called []string
	var mu sync.Mutex
	b := newBundle(func(_ context.Context, j job.Job) error {
		mu.Lock()
		called = append(called, j.UserPoolID)
		mu.Unlock()
		return nil
	})
	b.cfg.AllowedPools = map[string]bool{pool: true}
	b.q.push(jobBody(pool, "ok"), nil)
	b.q.push(jobBody("us-east-1_Other", "victim"), nil)
	b.run(t)
	if len(called) != 1 || called[0] != pool {
		t.Fatalf("Cognito called for %v, want only %s", called, pool)
	}
	dl := b.dlq.all()
	if len(dl) != 1 || dl[0].Attributes[job.AttrReason].StringValue != job.ReasonPoolNotAllowed ||
		!strings.Contains(dl[0].Attributes[job.AttrError].StringValue, "us-east-1_Other") {
		t.Fatalf("dead letters %+v", dl)
	}
}

// hungSource never answers its first receives (a hung connection: only the
// context ends them), then works.
type hungSource struct {
	*fakeQueue
	hangs atomic.Int64
	ready chan error
	once  sync.Once
	w     *Worker
}

func (s *hungSource) Receive(ctx context.Context, max int, wait, vis time.Duration) ([]job.Message, error) {
	if s.hangs.Add(-1) >= 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s.once.Do(func() { s.ready <- s.w.Ready() }) // readiness as it was after the hung polls
	return s.fakeQueue.Receive(ctx, max, wait, vis)
}

// TestHungReceiveTimesOut: a receive that SQS never answers fails after its
// wait plus PollTimeout, so the worker turns not ready, backs off, polls
// again and, once SQS answers, does the job: it is not stuck ready forever.
func TestHungReceiveTimesOut(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return nil })
	src := &hungSource{fakeQueue: b.q, ready: make(chan error, 1)}
	src.hangs.Store(2)
	b.cfg.Source = src
	b.cfg.PollTimeout = 50 * time.Millisecond
	b.q.push(jobBody(pool, "a"), nil)
	w, _ := New(b.cfg)
	src.w = w
	b.run2(t, w)
	if err := <-src.ready; err == nil {
		t.Fatal("ready while every receive hung")
	}
	if err := w.Ready(); err != nil {
		t.Fatalf("not ready after recovery: %v", err)
	}
	if b.jobs("reset") != 1 {
		t.Fatal("job not done after the hung receives")
	}
}

// hungDepth never answers its first depth reads (a hung connection), then
// reads the queue.
type hungDepth struct {
	*fakeQueue
	hangs atomic.Int64
}

func (d *hungDepth) Depth(ctx context.Context) (metrics.Depth, error) {
	if d.hangs.Add(-1) >= 0 {
		<-ctx.Done()
		return metrics.Depth{}, ctx.Err()
	}
	return d.fakeQueue.Depth(ctx)
}

// TestHungDepthReadDoesNotHangExit: with ExitWhenIdle, a depth read that
// SQS never answers counts as "not drained" after CallTimeout; the worker
// asks again and exits once it is answered, instead of hanging.
func TestHungDepthReadDoesNotHangExit(t *testing.T) {
	t.Parallel()
	b := newBundle(func(context.Context, job.Job) error { return nil })
	d := &hungDepth{fakeQueue: b.q}
	d.hangs.Store(1)
	b.cfg.Depth = d
	b.cfg.CallTimeout = 50 * time.Millisecond
	b.q.push(jobBody(pool, "a"), nil)
	b.run(t)
	if b.jobs("reset") != 1 || d.hangs.Load() >= 0 {
		t.Fatalf("reset %v, hung reads left %d", b.jobs("reset"), d.hangs.Load()+1)
	}
}

// readerFunc is a StatusReader from a function.
type readerFunc func(ctx context.Context, job job.Job) (User, error)

func (f readerFunc) ReadUser(ctx context.Context, j job.Job) (User, error) { return f(ctx, j) }
