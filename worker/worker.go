// Package worker consumes password-reset jobs from a queue and resets each
// user with Cognito's AdminResetUserPassword, paced per Region. Every job ends
// in exactly one place: the user is reset and the message deleted, or the
// message is in the dead-letter queue with a reason. Retries go back to the
// queue as fresh messages, so neither retries nor throttling use up the
// queue's maxReceiveCount.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resetq/resetq/metrics"
)

// Source is the queue jobs come from.
type Source interface {
	// Receive long-polls for up to max messages, hiding them for visibility.
	Receive(ctx context.Context, max int, wait, visibility time.Duration) ([]Message, error)
	// Delete deletes messages by receipt handle; failed entries come back
	// keyed by receipt handle.
	Delete(ctx context.Context, receipts []string) (map[string]error, error)
	// ChangeVisibility sets the visibility timeout of messages.
	ChangeVisibility(ctx context.Context, receipts []string, timeout time.Duration) (map[string]error, error)
}

// Sender sends one message to a queue.
type Sender interface {
	Send(ctx context.Context, m Outgoing) error
}

// Resetter calls AdminResetUserPassword in the job's Region.
type Resetter interface {
	ResetUserPassword(ctx context.Context, job Job) error
}

// StatusReader reads a user's status (AdminGetUser), to tell whether a
// redelivered job's user was already reset.
type StatusReader interface {
	UserStatus(ctx context.Context, job Job) (string, error)
}

// Pacer paces calls per Region and adapts to throttling.
type Pacer interface {
	Wait(ctx context.Context, region string) error
	Throttled(region string)
	Succeeded(region string)
}

// Config holds what a Worker needs. Fields marked required have no default.
type Config struct {
	Source      Source              // required
	Requeue     Sender              // required: the source queue, for retries
	DeadLetters Sender              // required: the DLQ
	Depth       metrics.DepthReader // the source queue's depth; required with ExitWhenIdle
	Cognito     Resetter            // required
	Pacer       Pacer               // required
	// Statuses and StatusPacer, when set, turn on the redelivery check: a
	// job delivered again (receive count > 1) whose user is already
	// RESET_REQUIRED is counted done without a second reset, so the user
	// does not get a second code after a crash between reset and delete.
	Statuses    StatusReader
	StatusPacer Pacer
	Metrics     *metrics.Metrics // required
	Logger      *slog.Logger     // default: discard

	// AllowedPools, when not nil, lists the only user pools this worker
	// may reset: a job for any other pool is dead-lettered as
	// pool_not_allowed and never reaches Cognito. Being able to write to
	// the queue must not be enough to reset users of any pool.
	AllowedPools map[string]bool
	// SigningKeys, when not nil, makes the worker accept only jobs signed
	// with one of these keys (see AttrSignature): an unsigned or forged
	// job is dead-lettered as bad_signature before it is even decoded.
	SigningKeys [][]byte

	Concurrency int           // jobs in flight; default 16
	Policy      Policy        // MaxAttempts default 8; backoff defaults 2s..5m (transient), 1m..15m (limit)
	Breaker     BreakerConfig // see BreakerConfig

	// ExitWhenIdle, when positive, makes Run return once the queue has been
	// empty (nothing visible, in flight or delayed) with no job in this
	// process for that long.
	ExitWhenIdle time.Duration
	// ShutdownTimeout bounds the time from the end of Run's context to its
	// return. Default 30s.
	ShutdownTimeout time.Duration
	WaitTime        time.Duration // long-poll wait; default 20s
	PollTimeout     time.Duration // a receive unanswered this long after its wait fails (a hung connection); default 10s
	Visibility      time.Duration // visibility timeout of received messages, extended while held; default 60s
	CallTimeout     time.Duration // per AdminResetUserPassword call; default 10s
	DeleteLinger    time.Duration // how long a delete waits to fill a batch of 10; default 1s
	LogUsernames    bool          // log usernames in plain text instead of hashed

	Now  func() time.Time // default time.Now
	Rand func() float64   // jitter draws in [0,1); default math/rand
}

// Validate fills defaults and checks required fields.
func (c *Config) Validate() error {
	switch {
	case c.Source == nil, c.Requeue == nil, c.DeadLetters == nil, c.Cognito == nil, c.Pacer == nil, c.Metrics == nil:
		return errors.New("worker: Source, Requeue, DeadLetters, Cognito, Pacer and Metrics are required")
	case (c.Statuses == nil) != (c.StatusPacer == nil):
		return errors.New("worker: Statuses and StatusPacer go together")
	case c.ExitWhenIdle > 0 && c.Depth == nil:
		return errors.New("worker: Depth is required with ExitWhenIdle")
	case c.Concurrency < 0, c.Policy.MaxAttempts < 0:
		return errors.New("worker: Concurrency and MaxAttempts must not be negative")
	}
	setDefault(&c.Concurrency, 16)
	setDefault(&c.Policy.MaxAttempts, 8)
	setDefault(&c.Policy.Transient.Base, 2*time.Second)
	setDefault(&c.Policy.Transient.Max, 5*time.Minute)
	setDefault(&c.Policy.Limit.Base, time.Minute)
	setDefault(&c.Policy.Limit.Max, maxDelay)
	setDefault(&c.ShutdownTimeout, 30*time.Second)
	setDefault(&c.WaitTime, 20*time.Second)
	setDefault(&c.PollTimeout, 10*time.Second)
	setDefault(&c.Visibility, 60*time.Second)
	setDefault(&c.CallTimeout, 10*time.Second)
	setDefault(&c.DeleteLinger, time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// maxDelay is SQS's longest DelaySeconds.
const maxDelay = 15 * time.Minute

// receiveBatch is SQS's largest ReceiveMessage batch.
const receiveBatch = 10

// Worker runs jobs. Create it with New and call Run once.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics.Metrics
	breaker *breaker

	held     heldSet      // messages received and not yet finished
	inflight atomic.Int64 // len(held), for the idle check without the lock
	lastIdle atomic.Int64 // when inflight last fell to 0, in Now's UnixNano
	sqsOK    atomic.Bool  // the last ReceiveMessage worked

	deletes  *batcher
	releases *batcher
	ended    endedSet // jobs that ended here, by message ID, while their delete is under way or failed
}

// New checks cfg and returns a Worker.
func New(cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, held: heldSet{m: map[string]time.Time{}},
		ended: endedSet{deletes: map[string]string{}, failed: map[string]time.Time{}}}
	w.breaker = newBreaker(cfg.Breaker, cfg.Now, func(region string, open bool, reason string) {
		v := 0.0
		if open {
			v = 1
			w.log.Warn("circuit open: calls to the region stop until a probe succeeds", "region", region, "reason", reason)
		} else {
			w.log.Info("circuit closed", "region", region)
		}
		w.m.CircuitOpen.WithLabelValues(region).Set(v)
	})
	w.sqsOK.Store(true)
	return w, nil
}

// Ready reports whether the worker can do its work: SQS answers and no
// Region's circuit is open. It backs /readyz.
func (w *Worker) Ready() error {
	if !w.sqsOK.Load() {
		return errors.New("the source queue does not answer")
	}
	if open := w.breaker.OpenRegions(); len(open) > 0 {
		return fmt.Errorf("circuit open for %v", open)
	}
	return nil
}

// Run receives and handles jobs until ctx ends (or, with ExitWhenIdle, the
// queue is drained). When ctx ends it stops receiving, releases the jobs
// that have not started their call, lets calls under way finish, and
// returns within ShutdownTimeout. It returns nil after a clean stop.
func (w *Worker) Run(ctx context.Context) error {
	// hard ends calls under way; it ends ShutdownTimeout after ctx, less the
	// time kept for the final deletes and releases.
	cleanup := min(5*time.Second, w.cfg.ShutdownTimeout/4)
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stopTimer := context.AfterFunc(ctx, func() {
		w.log.Info("shutting down: receiving stopped, waiting for calls under way", "timeout", w.cfg.ShutdownTimeout)
		time.AfterFunc(w.cfg.ShutdownTimeout-cleanup, cancelHard)
	})
	defer stopTimer()

	flushCtx := context.WithoutCancel(ctx)
	w.deletes = newBatcher(flushCtx, w.cfg.DeleteLinger, w.flushDeletes)
	w.releases = newBatcher(flushCtx, 0, w.flushReleases)

	jobs := make(chan Message) // unbuffered: the receiver holds at most one batch
	var handlers sync.WaitGroup
	for range w.cfg.Concurrency {
		handlers.Go(func() {
			for m := range jobs {
				w.handle(ctx, hard, m)
			}
		})
	}
	extendCtx, stopExtend := context.WithCancel(hard)
	var extender sync.WaitGroup
	extender.Go(func() { w.extendLoop(extendCtx) })

	err := w.receiveLoop(ctx, hard, jobs)
	close(jobs)
	handlers.Wait()
	stopExtend()
	extender.Wait()

	done := make(chan struct{})
	go func() {
		w.deletes.close()
		w.releases.close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(cleanup + w.cfg.ShutdownTimeout): // only if SQS hangs past every call timeout
		w.log.Error("final deletes did not finish; their messages will be delivered again")
	}
	return err
}

// pollGrace is how long a poll under way at shutdown may still take. A
// poll that found messages answers at once, but its answer may be in
// transit when the worker stops: cancelling it then would leave those
// messages hidden until their visibility timeout. A poll still waiting
// after pollGrace has found nothing, and is cancelled.
const pollGrace = time.Second

// receiveLoop feeds jobs until ctx ends or the queue is idle. What a poll
// under way at the end brings is released at once (see pollGrace).
func (w *Worker) receiveLoop(ctx, hard context.Context, jobs chan<- Message) error {
	wait := w.cfg.WaitTime
	if w.cfg.ExitWhenIdle > 0 {
		wait = max(time.Second, min(wait, w.cfg.ExitWhenIdle))
	}
	var idleSince time.Time
	failures := 0
	for ctx.Err() == nil {
		pollStart := w.cfg.Now()
		pollWait := wait
		if !idleSince.IsZero() { // wait no longer than the idle time left
			left := w.cfg.ExitWhenIdle - pollStart.Sub(idleSince)
			pollWait = max(time.Second, min(wait, left.Round(time.Second)))
		}
		msgs, err := w.poll(ctx, hard, pollWait)
		if ctx.Err() != nil {
			for _, m := range msgs {
				w.releases.add(m.ReceiptHandle)
				w.m.Jobs.WithLabelValues("released").Inc()
			}
			break
		}
		if err != nil {
			failures++
			w.sqsOK.Store(false)
			delay := BackoffCurve{Base: time.Second, Max: 30 * time.Second}.Delay(failures, w.cfg.Rand())
			w.log.Error("receive failed; retrying", "error", err, "failures", failures, "retry_in", delay)
			sleep(ctx, delay)
			continue
		}
		if failures > 0 {
			w.log.Info("receive works again", "failures", failures)
		}
		failures = 0
		w.sqsOK.Store(true)
		now := w.cfg.Now()
		if len(msgs) > 0 || w.inflight.Load() > 0 {
			idleSince = time.Time{}
		} else if w.cfg.ExitWhenIdle > 0 {
			if idleSince.IsZero() {
				// Idle since the poll began, or since the last job ended
				// during it: the exit comes ExitWhenIdle after the last job.
				idleSince = pollStart
				if last := time.Unix(0, w.lastIdle.Load()); last.After(idleSince) {
					idleSince = last
				}
			}
			if now.Sub(idleSince) >= w.cfg.ExitWhenIdle && w.queueDrained(ctx) {
				w.log.Info("queue drained; exiting", "idle_for", now.Sub(idleSince).Round(time.Millisecond))
				return nil
			}
		}
		for i, m := range msgs {
			w.held.add(m.ReceiptHandle, now.Add(w.cfg.Visibility))
			w.inflight.Add(1)
			w.m.Inflight.Inc()
			select {
			case jobs <- m:
			case <-ctx.Done():
				for _, rest := range msgs[i:] {
					w.finish(rest)
					w.releases.add(rest.ReceiptHandle)
					w.m.Jobs.WithLabelValues("released").Inc()
				}
				return nil
			}
		}
	}
	return nil
}

// poll receives one batch. It fails when SQS has not answered PollTimeout
// after the wait. When ctx ends during the poll, the poll gets pollGrace
// more (bounded by hard) before it is cancelled.
func (w *Worker) poll(ctx, hard context.Context, wait time.Duration) ([]Message, error) {
	pollCtx, cancel := context.WithTimeout(hard, wait+w.cfg.PollTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(pollGrace, cancel)
		context.AfterFunc(pollCtx, func() { t.Stop() })
	})
	defer stop()
	return w.cfg.Source.Receive(pollCtx, receiveBatch, wait, w.cfg.Visibility)
}

// queueDrained asks SQS whether anything is left anywhere in the queue. A
// question unanswered after CallTimeout (a hung connection) counts as "not
// drained", so the receive loop goes on instead of hanging.
func (w *Worker) queueDrained(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	d, err := w.cfg.Depth.Depth(ctx)
	if err != nil {
		w.log.Warn("reading queue depth failed", "error", err)
		return false
	}
	if d.Visible+d.InFlight+d.Delayed > 0 {
		w.log.Debug("idle here, but the queue is not empty", "visible", d.Visible, "in_flight", d.InFlight, "delayed", d.Delayed)
		return false
	}
	return true
}

// handle takes one message to its outcome. soft ends at shutdown; hard ends
// when the shutdown timeout runs out.
func (w *Worker) handle(soft, hard context.Context, m Message) {
	defer w.finish(m)
	jl := w.log.With("message_id", m.ID, "campaign", m.Campaign())
	if w.ended.take(m.ID) {
		// Its job ended here (reset, sent back or dead-lettered) and only
		// the delete failed: handling it again would fork the job.
		w.deleteEnded(m)
		jl.Info("delivered again after its job ended; deleted", "receive_count", m.ReceiveCount)
		return
	}
	if w.cfg.SigningKeys != nil {
		if err := VerifySignature(w.cfg.SigningKeys, m); err != nil {
			w.deadLetter(hard, jl, m, ReasonBadSignature, err.Error(), m.priorAttempts())
			return
		}
	}
	job, err := ParseJob([]byte(m.Body))
	if err != nil {
		w.deadLetter(hard, jl, m, ReasonInvalidJob, err.Error(), m.priorAttempts())
		return
	}
	jl = jl.With("pool", job.UserPoolID, "user", w.user(job.Username))
	if w.cfg.AllowedPools != nil && !w.cfg.AllowedPools[job.UserPoolID] {
		w.deadLetter(hard, jl, m, ReasonPoolNotAllowed, "pool "+job.UserPoolID+" is not in --allowed-pools", m.priorAttempts())
		return
	}
	region := job.Region()
	attempts := m.priorAttempts()
	// A redelivery (receive count above 1) or a sent-back copy of a job
	// whose call failed (attempts above 0: a timeout or a lost answer may
	// have reset the user all the same) may find its user reset already.
	if (m.ReceiveCount > 1 || attempts > 0) && w.alreadyReset(soft, hard, jl, job) {
		w.deleteEnded(m)
		w.m.Jobs.WithLabelValues("reset").Inc()
		jl.Info("job done", "outcome", "reset", "already_reset", true, "receive_count", m.ReceiveCount)
		return
	}
	for {
		if soft.Err() != nil {
			w.release(jl, m)
			return
		}
		if ok, wait := w.breaker.Allow(region); !ok {
			w.requeue(hard, jl, m, wait, attempts, "deferred", "circuit open for "+region)
			return
		}
		waitStart := time.Now()
		if err := w.cfg.Pacer.Wait(soft, region); err != nil {
			w.breaker.Record(region, Class{Kind: Canceled})
			w.release(jl, m)
			return
		}
		w.m.RateLimitWait.Observe(time.Since(waitStart).Seconds())

		callCtx, cancel := context.WithTimeout(hard, w.cfg.CallTimeout)
		callStart := time.Now()
		err := w.cfg.Cognito.ResetUserPassword(callCtx, job)
		cancel()
		w.m.CognitoDuration.Observe(time.Since(callStart).Seconds())
		cl := Classify(err)
		if err != nil && hard.Err() != nil {
			cl = Class{Kind: Canceled, Code: "canceled", Message: err.Error()}
		}
		w.m.CognitoRequests.WithLabelValues(MetricCode(cl)).Inc()
		w.breaker.Record(region, cl)
		switch cl.Kind {
		case Throttle:
			w.cfg.Pacer.Throttled(region)
			w.m.Throttles.WithLabelValues(region).Inc()
		case Canceled:
		default:
			w.cfg.Pacer.Succeeded(region)
		}
		if cl.Kind == Transient || cl.Kind == Limit || cl.Kind == Permanent {
			attempts++
		}

		d := Decide(cl, attempts, w.cfg.Policy, w.cfg.Rand())
		switch d.Action {
		case Delete:
			w.deleteEnded(m)
			w.m.Jobs.WithLabelValues("reset").Inc()
			jl.Info("job done", "outcome", "reset", "attempts", attempts+1)
		case RetryNow:
			jl.Debug("throttled; retrying when the limiter allows", "region", region)
			continue
		case Retry:
			w.requeue(hard, jl, m, d.Delay, attempts, "retried", cl.Code+": "+cl.Message)
		case Defer:
			_, wait := w.breaker.Allow(region)
			w.requeue(hard, jl, m, wait, attempts, "deferred", cl.Code+": "+cl.Message)
		case DeadLetter:
			msg := cl.Message
			if d.Reason == ReasonAttemptsExhausted {
				msg = cl.Code + ": " + cl.Message
			}
			w.deadLetter(hard, jl, m, d.Reason, msg, attempts)
		case Release:
			w.release(jl, m)
		}
		return
	}
}

// alreadyReset reports whether a redelivered job's user is RESET_REQUIRED,
// which means an earlier delivery reset it and its delete was lost. Any
// doubt (the check is off, fails or times out) says no: a second code is
// better than a user not reset.
func (w *Worker) alreadyReset(soft, hard context.Context, jl *slog.Logger, job Job) bool {
	if w.cfg.Statuses == nil {
		return false
	}
	region := job.Region()
	if err := w.cfg.StatusPacer.Wait(soft, region); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(hard, w.cfg.CallTimeout)
	status, err := w.cfg.Statuses.UserStatus(ctx, job)
	cancel()
	result := "not_reset"
	switch {
	case err != nil:
		result = "error"
		if Classify(err).Kind == Throttle {
			w.cfg.StatusPacer.Throttled(region)
		}
		jl.Debug("redelivery check failed; resetting", "error", err)
	case status == "RESET_REQUIRED":
		result = "already_reset"
		w.cfg.StatusPacer.Succeeded(region)
	default:
		w.cfg.StatusPacer.Succeeded(region)
	}
	w.m.RedeliveryChecks.WithLabelValues(result).Inc()
	return result == "already_reset"
}

func (w *Worker) finish(m Message) {
	w.held.remove(m.ReceiptHandle)
	if w.inflight.Add(-1) == 0 {
		w.lastIdle.Store(w.cfg.Now().UnixNano())
	}
	w.m.Inflight.Dec()
}

func (w *Worker) user(name string) string {
	if w.cfg.LogUsernames {
		return name
	}
	return hashUser(name)
}

// deadLetter sends the job to the DLQ, then deletes it from the source. If
// the send fails the message stays in the source queue and comes back later.
func (w *Worker) deadLetter(ctx context.Context, jl *slog.Logger, m Message, reason, errText string, attempts int) {
	out := Outgoing{Body: m.Body, Attributes: withAttributes(m.Attributes, map[string]string{
		AttrReason:   reason,
		AttrError:    sqsText(errText),
		AttrAttempts: strconv.Itoa(attempts),
		AttrFailedAt: w.cfg.Now().UTC().Format(time.RFC3339),
	})}
	if err := w.send(ctx, w.cfg.DeadLetters, out); err != nil {
		jl.Error("dead-letter send failed; the job stays in the queue", "reason", reason, "error", err)
		w.hide(m, 30*time.Second)
		return
	}
	w.deleteEnded(m)
	w.m.Jobs.WithLabelValues("dead_lettered").Inc()
	w.m.DeadLetters.WithLabelValues(reason).Inc()
	jl.Warn("job done", "outcome", "dead_lettered", "reason", reason, "attempts", attempts, "error", sqsText(errText))
}

// requeue sends a copy of the job back to the queue, delayed, then deletes
// the original. The copy starts with a receive count of zero, so retries
// never run into the queue's maxReceiveCount.
func (w *Worker) requeue(ctx context.Context, jl *slog.Logger, m Message, delay time.Duration, attempts int, outcome, why string) {
	delay = min(maxDelay, max(time.Second, delay.Round(time.Second)))
	out := Outgoing{Body: m.Body, Delay: delay,
		Attributes: withAttributes(m.Attributes, map[string]string{AttrAttempts: strconv.Itoa(attempts)})}
	if err := w.send(ctx, w.cfg.Requeue, out); err != nil {
		jl.Error("requeue failed; the message comes back after its visibility timeout", "error", err)
		w.hide(m, delay)
		return
	}
	w.deleteEnded(m)
	w.m.Jobs.WithLabelValues(outcome).Inc()
	jl.Info("job sent back", "outcome", outcome, "delay", delay, "attempts", attempts, "why", sqsText(why))
}

// send sends out within CallTimeout, so a send SQS never answers cannot
// hold the job, and its handler, until shutdown.
func (w *Worker) send(ctx context.Context, to Sender, out Outgoing) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	return to.Send(ctx, out)
}

// release makes the message visible again at once, untouched.
func (w *Worker) release(jl *slog.Logger, m Message) {
	w.releases.add(m.ReceiptHandle)
	w.m.Jobs.WithLabelValues("released").Inc()
	jl.Info("job released", "outcome", "released")
}

// hide keeps a message invisible for d; used when it could not be forwarded.
func (w *Worker) hide(m Message, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.CallTimeout)
	defer cancel()
	if _, err := w.cfg.Source.ChangeVisibility(ctx, []string{m.ReceiptHandle}, d); err != nil {
		w.log.Warn("change visibility failed", "message_id", m.ID, "error", err)
	}
}

// deleteEnded deletes m, whose job has ended (reset, sent back or
// dead-lettered). If the delete fails, m's ID is remembered, so that when
// SQS delivers m again this process deletes it instead of running the job
// a second time.
func (w *Worker) deleteEnded(m Message) {
	w.ended.deleting(m.ReceiptHandle, m.ID)
	w.deletes.add(m.ReceiptHandle)
}

func (w *Worker) flushDeletes(ctx context.Context, receipts []string) {
	failed := w.retryBatch(ctx, "delete", receipts, func(ctx context.Context, r []string) (map[string]error, error) {
		return w.cfg.Source.Delete(ctx, r)
	})
	w.ended.deleted(receipts, failed, w.cfg.Now())
}

func (w *Worker) flushReleases(ctx context.Context, receipts []string) {
	_ = w.retryBatch(ctx, "release", receipts, func(ctx context.Context, r []string) (map[string]error, error) {
		return w.cfg.Source.ChangeVisibility(ctx, r, 0)
	})
}

// retryBatch runs a batch call and retries the entries that failed, a few
// times. What still fails is logged and returned: a message not deleted is
// delivered again; one not released comes back when its visibility
// timeout ends.
func (w *Worker) retryBatch(ctx context.Context, op string, receipts []string, call func(context.Context, []string) (map[string]error, error)) []string {
	const tries = 3
	for try := 1; len(receipts) > 0; try++ {
		callCtx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
		failed, err := call(callCtx, receipts)
		cancel()
		if err == nil && len(failed) == 0 {
			return nil
		}
		if err == nil {
			next := receipts[:0:0]
			for _, r := range receipts {
				if failed[r] != nil {
					next = append(next, r)
				}
			}
			receipts = next
			err = errors.Join(values(failed)...)
		}
		if try == tries {
			w.log.Error(op+" failed", "messages", len(receipts), "error", err)
			return receipts
		}
		w.log.Warn(op+" failed; retrying", "messages", len(receipts), "error", err)
		sleep(ctx, BackoffCurve{Base: 200 * time.Millisecond, Max: 2 * time.Second}.Delay(try, w.cfg.Rand()))
	}
	return nil
}

// extendLoop keeps held messages invisible while they wait for the limiter
// or a call, so a slow Region does not cause duplicate deliveries.
func (w *Worker) extendLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.Visibility / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := w.cfg.Now()
		due := w.held.due(now.Add(w.cfg.Visibility / 2))
		for len(due) > 0 {
			n := min(len(due), 10)
			batch := due[:n]
			due = due[n:]
			callCtx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
			failed, err := w.cfg.Source.ChangeVisibility(callCtx, batch, w.cfg.Visibility)
			cancel()
			if err != nil {
				w.log.Warn("extending visibility failed", "messages", len(batch), "error", err)
				continue
			}
			for _, r := range batch {
				if failed[r] == nil {
					w.held.extend(r, now.Add(w.cfg.Visibility))
				}
			}
		}
	}
}

// heldSet maps the receipt handles of held messages to the time their
// visibility ends.
type heldSet struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (h *heldSet) add(receipt string, until time.Time) {
	h.mu.Lock()
	h.m[receipt] = until
	h.mu.Unlock()
}

func (h *heldSet) extend(receipt string, until time.Time) {
	h.mu.Lock()
	if _, ok := h.m[receipt]; ok {
		h.m[receipt] = until
	}
	h.mu.Unlock()
}

func (h *heldSet) remove(receipt string) {
	h.mu.Lock()
	delete(h.m, receipt)
	h.mu.Unlock()
}

// due lists the held messages whose visibility ends before t.
func (h *heldSet) due(t time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for r, until := range h.m {
		if until.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

func values(m map[string]error) []error {
	out := make([]error, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	return out
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
