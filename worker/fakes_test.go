package worker

import (
	"context"
	"errors"
	"fmt"
	"github.com/resetq/resetq/clock/clocktest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/metrics"
)

// fakeQueue is an in-memory SQS queue. Requeued messages are visible at
// once (their delay is recorded, not applied) so tests need no clock.
type fakeQueue struct {
	mu       sync.Mutex
	seq      int
	visible  []job.Message
	held     map[string]job.Message // by receipt handle
	events   []string               // shared ordered log, see fakeDLQ
	sent     []job.Outgoing         // requeued copies
	extended chan string            // receipt handles whose visibility was extended (if not nil)
	changed  chan struct{}          // poked (without blocking) after every event

	// Hooks; nil means succeed.
	deleteFail func(receipt string, try int) error
	changeFail func(receipt string) error // fails ChangeVisibility entries (extensions and hides)
	park       func(job.Outgoing) bool    // a requeued copy it says true to waits in parked until unpark
	parked     []job.Message
	deleteTry  map[string]int
}

func newFakeQueue() *fakeQueue {
	return &fakeQueue{held: map[string]job.Message{}, deleteTry: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (q *fakeQueue) push(body string, attrs map[string]job.Attribute) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	id := fmt.Sprintf("m%d", q.seq)
	q.visible = append(q.visible, job.Message{ID: id, Body: body, Attributes: attrs})
	return id
}

// log records an event and wakes whoever waits in waitFor.
func (q *fakeQueue) log(format string, a ...any) {
	q.events = append(q.events, fmt.Sprintf(format, a...))
	select {
	case q.changed <- struct{}{}:
	default:
	}
}

// waitFor blocks until cond holds, re-checking it after every queue event,
// and fails the test if that takes longer than a generous deadline (which
// only a hung worker reaches).
func (q *fakeQueue) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for !cond() {
		select {
		case <-q.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (q *fakeQueue) Receive(ctx context.Context, max int, _, _ time.Duration) ([]job.Message, error) {
	q.mu.Lock()
	n := min(max, len(q.visible))
	out := make([]job.Message, n)
	for i := range n {
		m := q.visible[i]
		m.ReceiveCount++
		q.seq++
		m.ReceiptHandle = fmt.Sprintf("%s#%d", m.ID, q.seq)
		q.held[m.ReceiptHandle] = m
		out[i] = m
	}
	q.visible = q.visible[n:]
	q.mu.Unlock()
	if n == 0 {
		runtime.Gosched() // an empty long poll returns at once here
	}
	return out, ctx.Err()
}

func (q *fakeQueue) Delete(_ context.Context, receipts []string) (map[string]error, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	failed := map[string]error{}
	for _, r := range receipts {
		m, ok := q.held[r]
		if !ok {
			failed[r] = errors.New("ReceiptHandleIsInvalid")
			continue
		}
		if q.deleteFail != nil {
			q.deleteTry[r]++
			if err := q.deleteFail(r, q.deleteTry[r]); err != nil {
				failed[r] = err
				q.log("delete-failed:%s", m.ID)
				continue
			}
		}
		delete(q.held, r)
		q.log("delete:%s", m.ID)
	}
	return failed, nil
}

func (q *fakeQueue) ChangeVisibility(_ context.Context, receipts []string, timeout time.Duration) (map[string]error, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	failed := map[string]error{}
	for _, r := range receipts {
		m, ok := q.held[r]
		if !ok {
			failed[r] = errors.New("ReceiptHandleIsInvalid")
			continue
		}
		if timeout == 0 {
			delete(q.held, r)
			q.visible = append(q.visible, m)
			q.log("release:%s", m.ID)
			continue
		}
		if q.changeFail != nil {
			if err := q.changeFail(r); err != nil {
				failed[r] = err
				q.log("hide-failed:%s", m.ID)
				continue
			}
		}
		q.log("hide:%s:%v", m.ID, timeout)
		if q.extended != nil {
			select {
			case q.extended <- r:
			default:
			}
		}
	}
	return failed, nil
}

// Send is the requeue path: the copy is a new message, visible at once.
func (q *fakeQueue) Send(_ context.Context, m job.Outgoing) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	id := fmt.Sprintf("m%d", q.seq)
	q.sent = append(q.sent, m)
	msg := job.Message{ID: id, Body: m.Body, Attributes: m.Attributes}
	if q.park != nil && q.park(m) {
		q.parked = append(q.parked, msg)
	} else {
		q.visible = append(q.visible, msg)
	}
	q.log("requeue:%s", id)
	return nil
}

// unparkOne makes the oldest parked copy visible, and parking goes on.
func (q *fakeQueue) unparkOne() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.parked) > 0 {
		q.visible = append(q.visible, q.parked[0])
		q.parked = q.parked[1:]
	}
	q.log("unpark")
}

// unpark makes the parked copies visible and stops parking.
func (q *fakeQueue) unpark() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.park = nil
	q.visible = append(q.visible, q.parked...)
	q.parked = nil
	q.log("unpark")
}

func (q *fakeQueue) Depth(context.Context) (metrics.Depth, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return metrics.Depth{Visible: int64(len(q.visible)), InFlight: int64(len(q.held))}, nil
}

func (q *fakeQueue) snapshot() (visible []job.Message, held int, events []string, sent []job.Outgoing) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]job.Message(nil), q.visible...), len(q.held), append([]string(nil), q.events...), append([]job.Outgoing(nil), q.sent...)
}

// fakeDLQ records dead letters into the queue's event log, so the order of
// DLQ send and source delete can be checked.
type fakeDLQ struct {
	q      *fakeQueue
	mu     sync.Mutex
	msgs   []job.Outgoing
	fail   error
	failIf func(job.Outgoing) error // fails the sends it returns an error for
}

func (d *fakeDLQ) Send(_ context.Context, m job.Outgoing) error {
	if d.fail != nil {
		return d.fail
	}
	if d.failIf != nil {
		if err := d.failIf(m); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.msgs = append(d.msgs, m)
	d.mu.Unlock()
	d.q.mu.Lock()
	d.q.log("dlq:%s", m.Attributes[job.AttrReason].StringValue)
	d.q.mu.Unlock()
	return nil
}

func (d *fakeDLQ) all() []job.Outgoing {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]job.Outgoing(nil), d.msgs...)
}

// resetterFunc is a Resetter from a function.
type resetterFunc func(ctx context.Context, job job.Job) error

func (f resetterFunc) ResetUserPassword(ctx context.Context, job job.Job) error { return f(ctx, job) }

// fakeRemedies records the incident calls; each hook, when set, answers
// its call.
type fakeRemedies struct {
	mu                         sync.Mutex
	calls                      []string // op:user
	signOut, reinvite, disable func(job.Job) error
	kill                       func(j job.Job, permanent bool) error
}

func (f *fakeRemedies) record(op string, j job.Job, hook func(job.Job) error) error {
	f.mu.Lock()
	f.calls = append(f.calls, op+":"+j.Username)
	f.mu.Unlock()
	if hook != nil {
		return hook(j)
	}
	return nil
}

func (f *fakeRemedies) GlobalSignOut(_ context.Context, j job.Job) error {
	return f.record("signout", j, f.signOut)
}
func (f *fakeRemedies) Reinvite(_ context.Context, j job.Job) error {
	return f.record("reinvite", j, f.reinvite)
}
func (f *fakeRemedies) DisableUser(_ context.Context, j job.Job) error {
	return f.record("disable", j, f.disable)
}
func (f *fakeRemedies) KillPassword(_ context.Context, j job.Job, permanent bool) error {
	op := "kill"
	if !permanent {
		op = "killtemp"
	}
	return f.record(op, j, func(j job.Job) error {
		if f.kill != nil {
			return f.kill(j, permanent)
		}
		return nil
	})
}

func (f *fakeRemedies) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// fakePacer never waits unless wait is set, and counts feedback.
type fakePacer struct {
	mu                   sync.Mutex
	throttled, succeeded map[string]int
	wait                 func(ctx context.Context, region string) error
}

func newFakePacer() *fakePacer {
	return &fakePacer{throttled: map[string]int{}, succeeded: map[string]int{}}
}

func (p *fakePacer) Wait(ctx context.Context, region string) error {
	if p.wait != nil {
		return p.wait(ctx, region)
	}
	return ctx.Err()
}
func (p *fakePacer) Throttled(region string) { p.mu.Lock(); p.throttled[region]++; p.mu.Unlock() }
func (p *fakePacer) Succeeded(region string) { p.mu.Lock(); p.succeeded[region]++; p.mu.Unlock() }
func (p *fakePacer) counts(region string) (throttled, succeeded int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.throttled[region], p.succeeded[region]
}

// bundle is a worker wired to fakes.
type bundle struct {
	q     *fakeQueue
	dlq   *fakeDLQ
	pacer *fakePacer
	rem   *fakeRemedies
	m     *metrics.Metrics
	clock *fakeClock
	cfg   Config
}

func newBundle(reset func(ctx context.Context, job job.Job) error) *bundle {
	q := newFakeQueue()
	b := &bundle{q: q, dlq: &fakeDLQ{q: q}, pacer: newFakePacer(), rem: &fakeRemedies{}, m: metrics.New(prometheus.NewRegistry(), "test"), clock: newFakeClock()}
	b.cfg = Config{
		Source: q, Requeue: q, DeadLetters: b.dlq, Depth: q,
		Cognito: resetterFunc(reset), Pacer: b.pacer, Metrics: b.m,
		Remedies: b.rem, SignOutPacer: newFakePacer(), ReinvitePacer: newFakePacer(),
		Concurrency: 4, Policy: Policy{MaxAttempts: 3},
		ExitWhenIdle: time.Millisecond, ShutdownTimeout: 5 * time.Second,
		DeleteLinger: time.Millisecond, Clock: clocktest.Func(b.clock.Now), Rand: func() float64 { return 0.5 },
		// Longer than any test moves its clock (by hours, to pass circuits'
		// deferrals), as the fake queue never delivers a message again: a
		// test of the visibility sets its own.
		Visibility: 10_000 * time.Hour,
	}
	return b
}

// start runs a worker on b.cfg until cancel is called; done gets what Run
// returned.
func (b *bundle) start(t *testing.T) (w *Worker, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	w, err := New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- w.Run(ctx) }()
	return w, cancel, ch
}

// run runs the worker until it exits by itself (ExitWhenIdle) or the test's
// deadline, and fails the test on error.
func (b *bundle) run(t *testing.T) {
	t.Helper()
	w, err := New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("worker did not exit by itself: it hung")
	}
}

func (b *bundle) jobs(outcome string) float64 {
	return testutil.ToFloat64(b.m.Jobs.WithLabelValues(outcome))
}

func jobBody(pool, user string) string {
	return fmt.Sprintf(`{"UserPoolId":%q,"Username":%q}`, pool, user)
}

// codeErr is a Cognito error answer, as the cognito adapter hands it over.
func codeErr(code, msg string) error {
	return awserr.From(&smithy.GenericAPIError{Code: code, Message: msg})
}
