// Package worker consumes password-reset jobs from a queue and resets each
// user with Cognito's AdminResetUserPassword, paced per Region. Every job ends
// in exactly one place: the user is reset and the message deleted, or the
// message is in the dead-letter queue with a reason. Retries go back to the
// queue as fresh messages, so neither retries nor throttling use up the
// queue's maxReceiveCount.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resetq/resetq/clock"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/metrics"
	"github.com/resetq/resetq/retry"
)

// Source is the queue jobs come from.
type Source interface {
	// Receive long-polls for up to max messages, hiding them for visibility.
	Receive(ctx context.Context, max int, wait, visibility time.Duration) ([]job.Message, error)
	// Delete deletes messages by receipt handle; failed entries come back
	// keyed by receipt handle.
	Delete(ctx context.Context, receipts []string) (map[string]error, error)
	// ChangeVisibility sets the visibility timeout of messages.
	ChangeVisibility(ctx context.Context, receipts []string, timeout time.Duration) (map[string]error, error)
}

// Sender sends one message to a queue.
type Sender interface {
	Send(ctx context.Context, m job.Outgoing) error
}

// Resetter calls AdminResetUserPassword in the job's Region.
type Resetter interface {
	ResetUserPassword(ctx context.Context, job job.Job) error
}

// Remediator makes the incident calls beside the reset, in the Region of
// the job's pool.
type Remediator interface {
	// GlobalSignOut ends the user's sessions (AdminUserGlobalSignOut).
	GlobalSignOut(ctx context.Context, job job.Job) error
	// Reinvite sends a user who never signed in a new invitation with a new
	// temporary password (AdminCreateUser, MessageAction RESEND).
	Reinvite(ctx context.Context, job job.Job) error
	// DisableUser disables the user (AdminDisableUser).
	DisableUser(ctx context.Context, job job.Job) error
	// KillPassword sets a random password nobody learns
	// (AdminSetUserPassword), permanent or temporary, and sends nothing:
	// the old password stops working at once.
	KillPassword(ctx context.Context, job job.Job, permanent bool) error
}

// User is what the worker reads of a user (AdminGetUser).
type User struct {
	Username     string // as the pool stores it (one user for Bob and bob in a case-insensitive pool)
	Status       string // CONFIRMED, RESET_REQUIRED, FORCE_CHANGE_PASSWORD, ...
	Enabled      bool
	Reachable    bool      // a verified email or phone number: a code can reach the user
	LastModified time.Time // UserLastModifiedDate
}

// StatusReader reads a user (AdminGetUser): to tell whether a redelivered
// job's user was already reset, whom to re-invite, how to kill a password.
type StatusReader interface {
	ReadUser(ctx context.Context, job job.Job) (User, error)
}

// Pacer paces calls per quota scope (a job.Scope's Key: an account and
// a Region) and adapts to throttling.
type Pacer interface {
	Wait(ctx context.Context, scope string) error
	Throttled(scope string)
	Succeeded(scope string)
}

// Accounts says which AWS account a user pool is in and which role
// reaches it (accounts.Resolver), so that pacing and circuits are per
// account and Region, and a role that cannot be assumed holds its own
// pools only.
type Accounts interface {
	Account(pool string) string
	Role(pool string) string // "" for the default credentials
}

// Config holds what a Worker needs. Fields marked required have no default.
type Config struct {
	Source      Source              // required
	Requeue     Sender              // required: the source queue, for retries
	DeadLetters Sender              // required: the DLQ
	Depth       metrics.DepthReader // the source queue's depth; required with ExitWhenIdle
	Cognito     Resetter            // required
	Pacer       Pacer               // required
	// Statuses and StatusPacer, when set, turn on the status check: a job
	// delivered again or sent back whose user is already RESET_REQUIRED is
	// done without a second reset; CheckEveryJob checks every job.
	Statuses      StatusReader
	StatusPacer   Pacer
	CheckEveryJob bool
	// StatusesForReinviteOnly: Statuses is there for Reinvite alone (the
	// status check is off): no job's status is read before its reset.
	StatusesForReinviteOnly bool

	// Incident mode.
	Remedies           Remediator // makes the sign-outs, re-invitations and disables
	SignOutPacer       Pacer      // paces sign-outs and disables
	ReinvitePacer      Pacer      // paces re-invitations
	GlobalSignOut      bool       // end the user's sessions once the password is dead, and at the job's end (or AttrGlobalSignOut)
	Reinvite           bool       // re-invite, not dead-letter, FORCE_CHANGE_PASSWORD users; needs Statuses
	DisableUnreachable bool       // disable users with no verified email or phone (still dead-lettered)
	// KillPassword: when a job's code cannot go now (an open circuit, the
	// daily email limit, a retry), kill the password at once with a random
	// one nobody learns, then sign out; the code follows when it can.
	// Needs Statuses. A job with AttrIncident asks for all four.
	KillPassword bool
	Metrics      *metrics.Metrics // required
	Logger       *slog.Logger     // default: discard

	// AllowedPools, when not nil, lists the only user pools this worker
	// may reset: a job for any other pool is dead-lettered as
	// pool_not_allowed and never reaches Cognito. Being able to write to
	// the queue must not be enough to reset users of any pool.
	AllowedPools map[string]bool
	// Accounts, when not nil, gives each pool's account: each account's
	// quota is paced, and its circuits kept, apart. Nil: one account.
	Accounts Accounts
	// Ledger, when not nil, is the campaign's record outside this process:
	// a job claims its user there before a code or an invitation goes (so
	// one job in a whole fleet sends it), and records each step. While it
	// cannot be reached, jobs wait behind its circuit.
	Ledger Ledger
	// SigningKeys, when not nil, makes the worker accept only jobs signed
	// with one of these keys (see AttrSignature): an unsigned or forged
	// job is dead-lettered as bad_signature before it is even decoded.
	SigningKeys [][]byte

	Concurrency int           // jobs in flight; default 16
	Policy      Policy        // MaxAttempts default 8; backoff defaults 2s..5m (transient), 1m..15m (limit)
	Breaker     BreakerConfig // see BreakerConfig; defaults by its WithDefaults

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
	UsernameKey     []byte        // key of the usernames' hash in logs; empty: an unkeyed SHA-256

	Clock clock.Clock    // Now, timers and tickers; default clock.Real
	Rand  func() float64 // jitter draws in [0,1); default math/rand
}

// Validate checks required fields; it fills in nothing (see WithDefaults).
func (c Config) Validate() error {
	switch {
	case c.Source == nil, c.Requeue == nil, c.DeadLetters == nil, c.Cognito == nil, c.Pacer == nil, c.Metrics == nil:
		return errors.New("worker: Source, Requeue, DeadLetters, Cognito, Pacer and Metrics are required")
	case (c.Statuses == nil) != (c.StatusPacer == nil):
		return errors.New("worker: Statuses and StatusPacer go together")
	case c.Remedies == nil || c.SignOutPacer == nil || c.ReinvitePacer == nil:
		return errors.New("worker: Remedies, SignOutPacer and ReinvitePacer are required (jobs may ask for a sign-out)")
	case c.Reinvite && c.Statuses == nil:
		return errors.New("worker: Reinvite needs Statuses, to re-invite only users who never signed in")
	case c.KillPassword && c.Statuses == nil:
		return errors.New("worker: KillPassword needs Statuses, to kill a password as the user's state allows")
	case c.ExitWhenIdle > 0 && c.Depth == nil:
		return errors.New("worker: Depth is required with ExitWhenIdle")
	case c.Concurrency < 0, c.Policy.MaxAttempts < 0:
		return errors.New("worker: Concurrency and MaxAttempts must not be negative")
	}
	return nil
}

// Defaults of Config's zero fields (the flags of resetq work use them too).
const (
	DefaultConcurrency     = 16
	DefaultMaxAttempts     = 8
	DefaultShutdownTimeout = 30 * time.Second
	DefaultWaitTime        = 20 * time.Second
	DefaultPollTimeout     = 10 * time.Second
	DefaultVisibility      = 60 * time.Second
	DefaultCallTimeout     = 10 * time.Second
	DefaultDeleteLinger    = time.Second
)

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.Policy.MaxAttempts = cmp.Or(c.Policy.MaxAttempts, DefaultMaxAttempts)
	c.Policy.Transient.Base = cmp.Or(c.Policy.Transient.Base, 2*time.Second)
	c.Policy.Transient.Max = cmp.Or(c.Policy.Transient.Max, 5*time.Minute)
	c.Policy.Limit.Base = cmp.Or(c.Policy.Limit.Base, time.Minute)
	c.Policy.Limit.Max = cmp.Or(c.Policy.Limit.Max, maxDelay)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.WaitTime = cmp.Or(c.WaitTime, DefaultWaitTime)
	c.PollTimeout = cmp.Or(c.PollTimeout, DefaultPollTimeout)
	c.Visibility = cmp.Or(c.Visibility, DefaultVisibility)
	c.CallTimeout = cmp.Or(c.CallTimeout, DefaultCallTimeout)
	c.DeleteLinger = cmp.Or(c.DeleteLinger, DefaultDeleteLinger)
	c.Breaker = c.Breaker.WithDefaults()
	c.Logger = cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	c.Clock = cmp.Or[clock.Clock](c.Clock, clock.Real{})
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
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

	deletes  *batcher // deletes of reset jobs, batched for up to DeleteLinger
	urgent   *batcher // deletes after a send (sent back, dead-lettered): at once, so a crash leaves no second copy
	releases *batcher
	ended    endedSet // jobs that ended here, by message ID, while their delete is under way or failed
	users    userLocks
	// emailPools are the pools seen to hit Cognito's daily email limit:
	// their jobs also wait on the Region's email circuit.
	emailPools poolSet
	// What this process did for users, by campaign and user (memoKey):
	// done, the steps by the job's name (with "found_disabled" for a user
	// a first delivery found disabled, so not by this campaign);
	// reinvited, by the name the pool stores (Bob and bob are one user
	// only in a case-insensitive pool).
	done, reinvited memo
	campaigns       sync.Map // the campaigns of the jobs admitted here (at most maxCampaigns)
	nCampaigns      atomic.Int64
	pendingRecords  chan pendingRecord // ledger records to make again (recordRetrier)
	pendingN        atomic.Int64       // of which not yet made
	tally           sync.Map           // outcome label -> *atomic.Int64: this process's jobs by outcome
}

// progressAttrs are a job's progress attributes (see job.StateOf).
var progressAttrs = []string{job.AttrJobID, job.AttrAttempts, job.AttrDeferredSince, job.AttrSteps, job.AttrStateSignature}

// New checks cfg and returns a Worker with cfg's defaults filled in.
func New(cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if cfg.Visibility*5/6 <= cfg.callNeeds() {
		return nil, fmt.Errorf("worker: Visibility %v must be over 6/5 of %v (twice CallTimeout %v and slack): a code call needs that much of it left",
			cfg.Visibility, cfg.callNeeds(), cfg.CallTimeout)
	}
	w := &Worker{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, held: heldSet{m: map[string]*heldMsg{}},
		ended: endedSet{deletes: map[string]string{}, failed: map[string]time.Time{}},
		users: userLocks{m: map[string]chan struct{}{}}, pendingRecords: make(chan pendingRecord, maxPendingRecords)}
	w.breaker = newBreaker(cfg.Breaker, w.circuitChanged)
	w.sqsOK.Store(true)
	return w, nil
}

// Ready reports whether the worker can do its work: SQS answers and no
// Region's circuit is open. It backs /readyz.
func (w *Worker) Ready() error {
	if !w.sqsOK.Load() {
		return errors.New("the source queue does not answer")
	}
	var regions []string
	for _, k := range w.breaker.OpenKeys(w.cfg.Clock.Now()) {
		if !strings.Contains(k, ":") { // an account-Region's, not a pool's or the email limit's
			regions = append(regions, k)
		}
	}
	if len(regions) > 0 {
		sort.Strings(regions)
		return fmt.Errorf("circuit open for %v", regions)
	}
	return nil
}

// circuitChanged logs a circuit's change and sets its gauge: a Region's
// resetq_circuit_open, or the count of open pool circuits. An open pool
// circuit stops that pool's jobs only, and leaves the worker ready.
func (w *Worker) circuitChanged(key string, open bool, reason string) {
	pool, isPool := strings.CutPrefix(key, "pool:")
	region, isEmail := strings.CutPrefix(key, "email:")
	roleScope, isRole := strings.CutPrefix(key, "role:")
	roleScope, role, _ := strings.Cut(roleScope, " ")
	role, _, _ = strings.Cut(role, "|") // the ARN; the external ID stays out of the logs
	switch {
	case isRole && open:
		w.m.CircuitOpen.WithLabelValues(scopeLabels(roleScope)...).Set(1)
		w.log.Error("the pools' role cannot be assumed: their jobs wait, the account's other pools go on", "scope", roleScope, "role", role, "reason", reason)
	case isRole:
		w.m.CircuitOpen.WithLabelValues(scopeLabels(roleScope)...).Set(0)
		w.log.Info("the pools' role is assumed again", "scope", roleScope, "role", role)
	case isEmail && open:
		w.m.EmailLimit.WithLabelValues(scopeLabels(region)...).Set(1)
	case isEmail:
		w.m.EmailLimit.WithLabelValues(scopeLabels(region)...).Set(0)
		w.log.Info("daily email limit lifted: resets go on", "scope", region)
	case key == ledgerKey:
		if open {
			w.m.LedgerCircuitOpen.Set(1)
			w.log.Error("the ledger cannot be reached: jobs wait, no code goes without a claim", "reason", reason)
		} else {
			w.m.LedgerCircuitOpen.Set(0)
			w.log.Info("the ledger answers again")
		}
	case isPool && open:
		w.m.PoolCircuitsOpen.Inc()
		w.log.Warn("circuit open: calls for the pool stop until a probe succeeds", "pool", pool, "reason", reason)
	case isPool:
		w.m.PoolCircuitsOpen.Dec()
		w.log.Info("circuit closed", "pool", pool)
	case open:
		w.m.CircuitOpen.WithLabelValues(scopeLabels(key)...).Set(1)
		w.log.Warn("circuit open: calls to the account's Region stop until a probe succeeds", "scope", key, "reason", reason)
	default:
		w.m.CircuitOpen.WithLabelValues(scopeLabels(key)...).Set(0)
		w.log.Info("circuit closed", "scope", key)
	}
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
		w.cfg.Clock.AfterFunc(w.cfg.ShutdownTimeout-cleanup, cancelHard)
	})
	defer stopTimer()

	flushCtx := context.WithoutCancel(ctx)
	w.deletes = newBatcher(flushCtx, w.cfg.Clock, w.cfg.DeleteLinger, w.flushDeletes)
	w.urgent = newBatcher(flushCtx, w.cfg.Clock, 0, w.flushDeletes)
	w.releases = newBatcher(flushCtx, w.cfg.Clock, 0, w.flushReleases)

	jobs := make(chan job.Message) // unbuffered: the receiver holds at most one batch
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
	if w.cfg.Ledger != nil {
		extender.Go(func() { w.recordRetrier(extendCtx) })
	}

	err := w.receiveLoop(ctx, hard, jobs)
	close(jobs)
	handlers.Wait()

	// Messages stay extended until their deletes and releases are settled.
	done := make(chan struct{})
	go func() {
		w.deletes.close()
		w.urgent.close()
		w.releases.close()
		close(done)
	}()
	giveUp := w.cfg.Clock.NewTimer(cleanup + w.cfg.ShutdownTimeout)
	defer giveUp.Stop()
	select {
	case <-done:
	case <-giveUp.C(): // only if SQS hangs past every call timeout
		w.log.Error("final deletes did not finish; their messages will be delivered again")
	}
	stopExtend()
	extender.Wait()
	return err
}

// pollGrace is how long a poll under way at shutdown may still take, so
// that messages in its answer are released rather than left hidden.
const pollGrace = time.Second

// receiveLoop feeds jobs until ctx ends or the queue is idle. What a poll
// under way at the end brings is released at once (see pollGrace).
func (w *Worker) receiveLoop(ctx, hard context.Context, jobs chan<- job.Message) error {
	wait := w.cfg.WaitTime
	if w.cfg.ExitWhenIdle > 0 {
		wait = max(time.Second, min(wait, w.cfg.ExitWhenIdle))
	}
	var idleSince time.Time
	drainedOnce := false
	failures := 0
	for ctx.Err() == nil {
		pollStart := w.cfg.Clock.Now()
		pollWait := wait
		if !idleSince.IsZero() { // wait no longer than the idle time left
			left := w.cfg.ExitWhenIdle - pollStart.Sub(idleSince)
			pollWait = max(time.Second, min(wait, left.Round(time.Second)))
		}
		msgs, err := w.poll(ctx, hard, pollWait)
		if ctx.Err() != nil {
			for _, m := range msgs {
				w.held.add(m.ReceiptHandle, w.cfg.Clock.Now().Add(w.cfg.Visibility))
				w.apply(hard, w.log.With("message_id", m.ID), m, released())
			}
			break
		}
		if err != nil {
			failures++
			w.sqsOK.Store(false)
			delay := retry.Curve{Base: time.Second, Max: 30 * time.Second}.Delay(failures, w.cfg.Rand())
			w.log.Error("receive failed; retrying", "error", err, "failures", failures, "retry_in", delay)
			clock.Sleep(ctx, w.cfg.Clock, delay)
			continue
		}
		if failures > 0 {
			w.log.Info("receive works again", "failures", failures)
		}
		failures = 0
		w.sqsOK.Store(true)
		now := w.cfg.Clock.Now()
		if len(msgs) > 0 || w.inflight.Load() > 0 {
			idleSince, drainedOnce = time.Time{}, false
		} else if w.cfg.ExitWhenIdle > 0 {
			if idleSince.IsZero() {
				// Idle since the poll began, or since the last job ended
				// during it: the exit comes ExitWhenIdle after the last job.
				idleSince = pollStart
				if last := time.Unix(0, w.lastIdle.Load()); last.After(idleSince) {
					idleSince = last
				}
			}
			// Ledger records still to make hold the exit, for a while: a
			// reset whose record is lost leaves its user pending for ever.
			recordsDue := w.pendingN.Load() > 0 && now.Sub(idleSince) < w.cfg.ExitWhenIdle+recordsWait
			if now.Sub(idleSince) >= w.cfg.ExitWhenIdle && !recordsDue && w.queueDrained(ctx) {
				// SQS's counts are approximate, and a delayed message can
				// turn visible between the empty poll and the count: exit
				// only when one more poll after a drained count is empty too.
				if drainedOnce {
					w.log.Info("queue drained; exiting", "idle_for", now.Sub(idleSince).Round(time.Millisecond))
					return nil
				}
				drainedOnce = true
				continue
			}
			drainedOnce = false
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
					w.apply(hard, w.log.With("message_id", rest.ID), rest, released())
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
func (w *Worker) poll(ctx, hard context.Context, wait time.Duration) ([]job.Message, error) {
	pollCtx, cancel := context.WithTimeout(hard, wait+w.cfg.PollTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := w.cfg.Clock.AfterFunc(pollGrace, cancel)
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

// extendLoop keeps held messages invisible while they wait for the limiter
// or a call, so a slow Region does not cause duplicate deliveries.
func (w *Worker) extendLoop(ctx context.Context) {
	t := w.cfg.Clock.NewTicker(w.cfg.Visibility / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		due := w.held.due(w.cfg.Clock.Now().Add(w.extendAhead()))
		for len(due) > 0 {
			n := min(len(due), 10)
			w.extend(ctx, due[:n])
			due = due[n:]
		}
	}
}

// extend extends the visibility of up to 10 held messages, and reports
// whether all were extended. An extension counts only if its answer came
// before the visibility's known end: after it, SQS may have handed the
// message to another worker before it took the change, so the message is
// lost, as is one whose extension failed past that end.
func (w *Worker) extend(ctx context.Context, receipts []string) bool {
	sent := w.cfg.Clock.Now()
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	failed, err := w.cfg.Source.ChangeVisibility(callCtx, receipts, w.cfg.Visibility)
	cancel()
	answered := w.cfg.Clock.Now()
	if err != nil {
		w.log.Warn("extending visibility failed", "messages", len(receipts), "error", err)
	}
	all := true
	for _, r := range receipts {
		if err == nil && failed[r] == nil && w.held.extend(r, answered, sent.Add(w.cfg.Visibility)) {
			continue
		}
		all = false
		if w.held.failed(r, answered) {
			w.log.Warn("a held message's visibility lapsed: it may be delivered again; its job makes no call here", "error", errors.Join(err, failed[r]))
		}
	}
	return all
}

// callNeeds is how much visibility a call that must not run beside another
// delivery's (op.alone) needs left when it starts: the call, the ledger's
// record of it, each bounded by CallTimeout, and slack for pauses between
// the check and the call (2 s, or a tenth of a short visibility).
func (c Config) callNeeds() time.Duration {
	return 2*c.CallTimeout + min(2*time.Second, c.Visibility/10)
}

// extendAhead: the extension loop extends the held messages whose
// visibility ends within it: half the visibility or, so that a call never
// needs to extend its message itself while the loop works, what a call
// needs plus two of the loop's ticks.
func (w *Worker) extendAhead() time.Duration {
	return max(w.cfg.Visibility/2, w.cfg.callNeeds()+w.cfg.Visibility/3)
}

// needs is the visibility o's call needs left when it starts: a code's
// call and the ledger's record of it (callNeeds); a kill's call alone, as
// a redelivery that kills again does no harm, and a kill held back leaves
// the old password working until that redelivery.
func (w *Worker) needs(o op) time.Duration {
	if o.emails {
		return w.cfg.callNeeds()
	}
	return w.cfg.callNeeds() - w.cfg.CallTimeout
}

// keepsThrough reports whether r's message stays invisible for need from
// now (needs), so that no other delivery of it can call at the same time.
// When the extension loop has not kept it that far ahead (SQS failed, the
// loop is late), the job extends it itself, and makes no call if SQS
// refuses or answers after the visibility's end, or if it had already
// ended (SQS may have handed the message on).
func (w *Worker) keepsThrough(ctx context.Context, r *run, need time.Duration) bool {
	until, held := w.held.until(r.m.ReceiptHandle)
	if !held {
		return false
	}
	now := w.cfg.Clock.Now()
	if until.Sub(now) > need {
		return true
	}
	if !now.Before(until) {
		w.held.failed(r.m.ReceiptHandle, now)
		return false
	}
	w.extend(ctx, []string{r.m.ReceiptHandle})
	until, held = w.held.until(r.m.ReceiptHandle)
	return held && until.Sub(w.cfg.Clock.Now()) > need
}

func values(m map[string]error) []error {
	out := make([]error, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	return out
}

// Campaigns are the campaigns of the jobs this worker has admitted.
func (w *Worker) Campaigns() []string {
	var out []string
	w.campaigns.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	sort.Strings(out)
	return out
}

// maxCampaigns bounds the campaigns a worker follows (their progress is a
// metric label): whoever can write to the queue can name campaigns.
const maxCampaigns = 20

func (w *Worker) noteCampaign(c string) {
	if _, known := w.campaigns.Load(c); !known && w.nCampaigns.Add(1) <= maxCampaigns {
		w.campaigns.Store(c, true)
	}
}

// Tally is this process's jobs so far by outcome (resetq_jobs_total's
// labels).
func (w *Worker) Tally() map[string]int64 {
	out := map[string]int64{}
	w.tally.Range(func(k, v any) bool { out[k.(string)] = v.(*atomic.Int64).Load(); return true })
	return out
}

// count adds a job to the tally of its outcome.
func (w *Worker) count(label string) {
	n, _ := w.tally.LoadOrStore(label, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	w.m.Jobs.WithLabelValues(label).Inc()
}
