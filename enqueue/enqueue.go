// Package enqueue puts AdminResetUserPassword jobs on an SQS queue for
// resetq work: from a file of usernames (lines or CSV) or of job objects
// (JSONL), or from a Cognito listing (a whole pool, filtered, or a group).
// Every job is checked with the worker's own validator; invalid inputs are
// reported with their line numbers and not sent; a user named twice is sent
// once (in a pool whose usernames are not case-sensitive, whatever the
// case). Jobs go out in SendMessageBatch calls of 10 from several workers;
// failed entries and failed calls are retried with backoff, and what still
// fails is rejected (reported, and written to a rejects file). The Summary
// counts exactly the entries SQS reported successful.
package enqueue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/queue"
)

// BatchSender sends a batch of messages; *queue.BatchSender is one.
type BatchSender interface {
	SendBatch(context.Context, []job.Outgoing) ([]queue.EntryResult, error)
}

// BatchSize is the most entries of a SendMessageBatch call.
const BatchSize = 10

// maxBatchBytes bounds the message bodies of one call, under the 256 KiB
// that queues with the former default MaximumMessageSize accept a call.
const maxBatchBytes = 200 << 10

// maxListed bounds the invalid lines and rejects listed in a Summary; the
// counts are always complete.
const maxListed = 1000

// Config sets up a Runner.
type Config struct {
	Queue    BatchSender
	QueueURL string // for the Summary
	// Campaign is the resetq.campaign attribute of every message.
	Campaign string
	// SigningKey, when set, signs every message (resetq.signature, job.Sign).
	SigningKey []byte
	// GlobalSignOut asks for every job's user's sessions to be ended before
	// the reset (the resetq.global-sign-out attribute, signed with the rest).
	GlobalSignOut bool
	// Incident asks for everything an incident needs for every job's user
	// (the resetq.incident attribute, signed with the rest): see
	// job.AttrIncident.
	Incident bool
	Builder  Builder
	// Concurrency is the number of SendMessageBatch calls in flight (default 8).
	Concurrency int
	// Retries is how many times a failed entry or call is tried again
	// (default 5); Backoff the first wait (default 200ms, doubling up to 5s).
	Retries int
	Backoff time.Duration
	// DryRun validates and counts, and sends nothing; each job that would
	// be sent is written to DryRunOut when it is set.
	DryRun    bool
	DryRunOut io.Writer
	// Rejects, when set, receives one JSON object a line for every job not
	// enqueued: {"line":N,"job":{...},"error":"..."}.
	Rejects io.Writer
	// OnInvalid, when set, is called for each invalid input as it is found
	// (from one goroutine).
	OnInvalid func(Invalid)
	// CaseSensitive, when set, reports whether the usernames of a pool are
	// case-sensitive; it is asked once per pool. Where they are not,
	// usernames that differ only in case are one user, sent once as first
	// named. Nil: every pool's usernames are case-sensitive.
	CaseSensitive func(ctx context.Context, pool string) bool
	// OnSent, when set, is called with the jobs of each SendMessageBatch
	// call that SQS accepted (the campaign ledger records them); its first
	// error fails the run once the sends end.
	OnSent func(ctx context.Context, sent []Sent) error
	// Fatal reports whether a failed SendMessageBatch call means no call
	// can succeed (no such queue, access denied): the run then stops, and
	// everything not yet enqueued is rejected.
	Fatal func(error) bool
}

// Invalid is an input that is not a valid job.
type Invalid struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// Reject is a valid job that is not on the queue.
type Reject struct {
	Line  int             `json:"line"`
	Job   json.RawMessage `json:"job"`
	Error string          `json:"error"`
}

// Summary is the outcome of a run.
type Summary struct {
	Campaign string `json:"campaign"`
	QueueURL string `json:"queue_url"`
	DryRun   bool   `json:"dry_run"`
	// Read is the number of inputs: lines, records or users listed.
	Read int64 `json:"read"`
	// Enqueued is the number of jobs SQS reported as sent: exactly the
	// jobs this run put on the queue.
	Enqueued int64 `json:"enqueued"`
	// WouldEnqueue is the number of jobs a dry run would have sent.
	WouldEnqueue int64 `json:"would_enqueue,omitempty"`
	Invalid      int64 `json:"invalid"`
	Duplicates   int64 `json:"duplicates"`
	Rejected     int64 `json:"rejected"`
	// Calls is the number of SendMessageBatch calls, retries included.
	Calls          int64     `json:"send_calls"`
	Retried        int64     `json:"retried_entries"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	Rate           float64   `json:"rate_per_second"`
	InvalidLines   []Invalid `json:"invalid_lines,omitempty"`
	Rejects        []Reject  `json:"rejects,omitempty"`
}

// Progress is a snapshot of a run under way.
type Progress struct {
	Read, Enqueued, WouldEnqueue, Invalid, Duplicates, Rejected int64
	Elapsed                                                     time.Duration
}

// Done is the number of inputs dealt with.
func (p Progress) Done() int64 {
	return p.Enqueued + p.WouldEnqueue + p.Invalid + p.Duplicates + p.Rejected
}

// Runner runs one enqueue. Make it with New; Run it once.
type Runner struct {
	cfg   Config
	start time.Time

	read, enqueued, would, invalid, dups, rejected, calls, retried atomic.Int64

	mu           sync.Mutex // guards the lists and cfg.Rejects
	invalidLines []Invalid
	rejects      []Reject
	rejectErr    error
	onSentErr    error
}

// Defaults of Config's and Listing's zero fields.
const (
	DefaultConcurrency = 8
	DefaultRetries     = 5
	DefaultBackoff     = 200 * time.Millisecond
)

// New returns a Runner for cfg, or cfg's error.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg.withDefaults(), start: time.Now()}, nil
}

// Validate checks c; it fills in nothing (see withDefaults).
func (c Config) Validate() error {
	if c.Concurrency < 0 || c.Retries < 0 || c.Backoff < 0 {
		return fmt.Errorf("enqueue: Concurrency (%d), Retries (%d) and Backoff (%v) must not be negative", c.Concurrency, c.Retries, c.Backoff)
	}
	return nil
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.Retries = cmp.Or(c.Retries, DefaultRetries)
	c.Backoff = cmp.Or(c.Backoff, DefaultBackoff)
	if c.Fatal == nil {
		c.Fatal = func(error) bool { return false }
	}
	return c
}

// Progress is a snapshot of the counts so far.
func (r *Runner) Progress() Progress {
	return Progress{
		Read: r.read.Load(), Enqueued: r.enqueued.Load(), WouldEnqueue: r.would.Load(),
		Invalid: r.invalid.Load(), Duplicates: r.dups.Load(), Rejected: r.rejected.Load(),
		Elapsed: time.Since(r.start),
	}
}

type entry struct {
	line int
	body string
	sent Sent
}

// Sent is a job SQS accepted (see Config.OnSent).
type Sent struct {
	Job  job.Job
	Fold bool // its pool compares usernames in any case
}

// Source produces the inputs of a run: ReadFile or Listing.List, bound to
// their arguments.
type Source func(ctx context.Context, fn func(Input) error) error

// Run reads src, builds and sends the jobs, and returns the summary. Its
// error is the source's (the inputs read before it are still sent), a
// fatal SendMessageBatch error, or a failure to write the rejects; jobs
// rejected after retries are in the summary, not the error.
func (r *Runner) Run(ctx context.Context, src Source) (Summary, error) {
	r.start = time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	batches := make(chan []entry, 2*r.cfg.Concurrency)
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for b := range batches {
				r.send(ctx, cancel, b)
			}
		})
	}

	seen := newUserSet()
	fold := map[string]bool{} // pool: usernames are not case-sensitive
	var batch []entry
	batchBytes := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case batches <- batch:
		case <-ctx.Done():
			r.rejectAll(batch, fmt.Errorf("not sent: %w", context.Cause(ctx)))
		}
		batch, batchBytes = nil, 0
		return ctx.Err()
	}
	srcErr := src(ctx, func(in Input) error {
		r.read.Add(1)
		body, job, err := r.cfg.Builder.Build(in)
		if err != nil {
			r.addInvalid(Invalid{Line: in.Line, Error: err.Error()})
			return nil
		}
		f, known := fold[job.UserPoolID]
		if !known {
			f = r.cfg.CaseSensitive != nil && !r.cfg.CaseSensitive(ctx, job.UserPoolID)
			fold[job.UserPoolID] = f
		}
		if !seen.Add(job.UserPoolID, job.Username, f) {
			r.dups.Add(1)
			return nil
		}
		if r.cfg.DryRun {
			r.would.Add(1)
			if r.cfg.DryRunOut != nil {
				if _, err := io.WriteString(r.cfg.DryRunOut, body+"\n"); err != nil {
					return err
				}
			}
			return nil
		}
		if len(batch) > 0 && batchBytes+len(body) > maxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, entry{line: in.Line, body: body, sent: Sent{Job: job, Fold: f}})
		batchBytes += len(body)
		if len(batch) == BatchSize {
			return flush()
		}
		return nil
	})
	if srcErr == nil {
		srcErr = flush()
	} else if len(batch) > 0 {
		_ = flush()
	}
	close(batches)
	wg.Wait()

	s := r.summary()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return s, cause // a fatal send error
	}
	if srcErr != nil {
		return s, srcErr
	}
	if ctx.Err() != nil {
		return s, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.onSentErr != nil {
		return s, fmt.Errorf("record the enqueued jobs: %w", r.onSentErr)
	}
	if r.rejectErr != nil {
		return s, fmt.Errorf("write the rejects: %w", r.rejectErr)
	}
	return s, nil
}

func (r *Runner) summary() Summary {
	p := r.Progress()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Summary{
		Campaign: r.cfg.Campaign, QueueURL: r.cfg.QueueURL, DryRun: r.cfg.DryRun,
		Read: p.Read, Enqueued: p.Enqueued, WouldEnqueue: p.WouldEnqueue, Invalid: p.Invalid,
		Duplicates: p.Duplicates, Rejected: p.Rejected, Calls: r.calls.Load(), Retried: r.retried.Load(),
		ElapsedSeconds: p.Elapsed.Seconds(),
		InvalidLines:   r.invalidLines, Rejects: r.rejects,
	}
	if secs := p.Elapsed.Seconds(); secs > 0 {
		s.Rate = float64(p.Enqueued+p.WouldEnqueue) / secs
	}
	return s
}

func (r *Runner) addInvalid(inv Invalid) {
	r.invalid.Add(1)
	r.mu.Lock()
	if len(r.invalidLines) < maxListed {
		r.invalidLines = append(r.invalidLines, inv)
	}
	r.mu.Unlock()
	if r.cfg.OnInvalid != nil {
		r.cfg.OnInvalid(inv)
	}
}

func (r *Runner) rejectAll(es []entry, err error) {
	for _, e := range es {
		r.reject(e, err.Error())
	}
}

func (r *Runner) reject(e entry, msg string) {
	r.rejected.Add(1)
	rj := Reject{Line: e.line, Job: json.RawMessage(e.body), Error: msg}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rejects) < maxListed {
		r.rejects = append(r.rejects, rj)
	}
	if r.cfg.Rejects != nil && r.rejectErr == nil {
		b, err := json.Marshal(rj)
		if err == nil {
			_, err = r.cfg.Rejects.Write(append(b, '\n'))
		}
		r.rejectErr = err
	}
}

// send sends one batch, retrying failed entries and failed calls.
func (r *Runner) send(ctx context.Context, cancel context.CancelCauseFunc, pending []entry) {
	if ctx.Err() != nil {
		r.rejectAll(pending, fmt.Errorf("not sent: %w", context.Cause(ctx)))
		return
	}
	errs := make([]string, len(pending))
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			r.retried.Add(int64(len(pending)))
			if err := pause(ctx, r.cfg.Backoff, attempt); err != nil {
				r.rejectAll(pending, fmt.Errorf("not sent: %w", context.Cause(ctx)))
				return
			}
		}
		msgs := make([]job.Outgoing, len(pending))
		for i, e := range pending {
			msgs[i] = job.Outgoing{Body: e.body, Attributes: r.attributes(e.body)}
		}
		r.calls.Add(1)
		results, err := r.cfg.Queue.SendBatch(ctx, msgs)
		if err != nil {
			if r.cfg.Fatal(err) {
				cancel(err)
				r.rejectAll(pending, err)
				return
			}
			if ctx.Err() != nil || attempt >= r.cfg.Retries {
				r.rejectAll(pending, fmt.Errorf("SendMessageBatch (%d tries): %w", attempt+1, err))
				return
			}
			for i := range errs {
				errs[i] = err.Error()
			}
			continue
		}
		var still []entry
		var stillErrs []string
		var sent []Sent
		for i, e := range pending {
			res := results[i]
			if res.Sent {
				r.enqueued.Add(1)
				sent = append(sent, e.sent)
				continue
			}
			msg := "no result for the entry"
			if res.Failed {
				msg = fmt.Sprintf("%s: %s", res.Code, res.Message)
				if res.SenderFault && !retryableCode(res.Code) {
					r.reject(e, msg) // our mistake: the same request fails again
					continue
				}
			}
			still = append(still, e)
			stillErrs = append(stillErrs, msg)
		}
		r.noteSent(ctx, sent)
		pending, errs = still, stillErrs
		if len(pending) == 0 {
			return
		}
		if attempt >= r.cfg.Retries {
			for i, e := range pending {
				r.reject(e, fmt.Sprintf("%s (%d tries)", errs[i], attempt+1))
			}
			return
		}
	}
}

// retryableCode is a sender-fault entry error worth trying again.
func retryableCode(code string) bool {
	switch code {
	case "ThrottlingException", "Throttling", "RequestThrottled", "AWS.SimpleQueueService.RequestThrottled":
		return true
	}
	return false
}

// attributes are a job's message attributes: the campaign, the sign-out
// and incident requests if asked, and the signature over them if a key is
// set.
func (r *Runner) attributes(body string) map[string]job.Attribute {
	attrs := map[string]job.Attribute{job.AttrCampaign: {DataType: "String", StringValue: r.cfg.Campaign}}
	if r.cfg.GlobalSignOut && !r.cfg.Incident { // the incident asks for it: one attribute, not two
		attrs[job.AttrGlobalSignOut] = job.Attribute{DataType: "String", StringValue: "true"}
	}
	if r.cfg.Incident {
		attrs[job.AttrIncident] = job.Attribute{DataType: "String", StringValue: "true"}
	}
	if r.cfg.SigningKey != nil {
		attrs[job.AttrSignature] = job.Attribute{DataType: "String", StringValue: job.SignMessage(r.cfg.SigningKey, attrs, body)}
	}
	return attrs
}

// noteSent hands the jobs SQS accepted to OnSent; its first error is kept.
func (r *Runner) noteSent(ctx context.Context, sent []Sent) {
	if r.cfg.OnSent == nil || len(sent) == 0 {
		return
	}
	if err := r.cfg.OnSent(context.WithoutCancel(ctx), sent); err != nil {
		r.mu.Lock()
		if r.onSentErr == nil {
			r.onSentErr = err
		}
		r.mu.Unlock()
	}
}
