package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"github.com/resetq/resetq/worker"
)

// Queue is the part of queue.Queue that reading and redriving a DLQ uses.
type Queue interface {
	Receive(ctx context.Context, max int, wait, visibility time.Duration) ([]worker.Message, error)
	Delete(ctx context.Context, receipts []string) (map[string]error, error)
	ChangeVisibility(ctx context.Context, receipts []string, timeout time.Duration) (map[string]error, error)
}

// Sender sends a message to a queue (the redrive target).
type Sender interface {
	Send(ctx context.Context, m worker.Outgoing) error
}

// NoReason is how a DLQ message without resetq.reason is counted: SQS moved
// it by itself after maxReceiveCount receives.
const NoReason = "(no reason: maxReceiveCount)"

// ReasonNone is the --reason value that selects messages without resetq.reason.
const ReasonNone = "none"

// ScanConfig bounds one pass over a DLQ.
type ScanConfig struct {
	Limit      int           // stop after this many distinct messages (0: no limit)
	Visibility time.Duration // how long a received message stays hidden during the pass
	Wait       time.Duration // long-poll wait of each receive (SQS: whole seconds)
	// IdleReceives ends the pass after this many receives in a row that
	// bring no message not already seen (default 2; each receive long-polls
	// for Wait, so an empty answer means nothing is visible).
	IdleReceives int
}

func (c ScanConfig) withDefaults() ScanConfig {
	if c.Visibility <= 0 {
		c.Visibility = 60 * time.Second
	}
	if c.IdleReceives <= 0 {
		c.IdleReceives = 2
	}
	return c
}

// Job is a DLQ message as the operator sees it.
type Job struct {
	MessageID string `json:"message_id"`
	Pool      string `json:"pool,omitempty"`
	Username  string `json:"username,omitempty"`
	Campaign  string `json:"campaign,omitempty"`
	Reason    string `json:"reason"`
	Error     string `json:"error,omitempty"`
	Attempts  string `json:"attempts,omitempty"`
	FailedAt  string `json:"failed_at,omitempty"`
	Body      string `json:"body,omitempty"` // only when it is not a valid job
}

// JobOf describes m. A body that is not a job still has its pool and
// username picked out when the JSON allows.
func JobOf(m worker.Message) Job {
	j := Job{
		MessageID: m.ID,
		Campaign:  m.Attributes[worker.AttrCampaign].StringValue,
		Reason:    ReasonOf(m),
		Error:     m.Attributes[worker.AttrError].StringValue,
		Attempts:  m.Attributes[worker.AttrAttempts].StringValue,
		FailedAt:  m.Attributes[worker.AttrFailedAt].StringValue,
	}
	if job, err := worker.ParseJob([]byte(m.Body)); err == nil {
		j.Pool, j.Username = job.UserPoolID, job.Username
		return j
	}
	var loose struct {
		UserPoolID any `json:"UserPoolId"`
		Username   any
	}
	if json.Unmarshal([]byte(m.Body), &loose) == nil {
		if s, ok := loose.UserPoolID.(string); ok {
			j.Pool = s
		}
		if s, ok := loose.Username.(string); ok {
			j.Username = s
		}
	}
	const maxBody = 200
	j.Body = m.Body
	if len(j.Body) > maxBody {
		j.Body = j.Body[:maxBody] + "..."
	}
	return j
}

// ReasonOf is the message's resetq.reason, or NoReason.
func ReasonOf(m worker.Message) string {
	if r := m.Attributes[worker.AttrReason].StringValue; r != "" {
		return r
	}
	return NoReason
}

// Filter selects DLQ messages by reason and campaign; empty fields match all.
type Filter struct {
	Reason   string // a resetq.reason, or ReasonNone for messages without one
	Campaign string
}

// Match reports whether m passes the filter.
func (f Filter) Match(m worker.Message) bool {
	if f.Reason != "" {
		r := m.Attributes[worker.AttrReason].StringValue
		if f.Reason == ReasonNone {
			if r != "" {
				return false
			}
		} else if r != f.Reason {
			return false
		}
	}
	return f.Campaign == "" || m.Attributes[worker.AttrCampaign].StringValue == f.Campaign
}

// Peek reads the DLQ once without consuming it: every message received is
// kept hidden until the pass ends (so that the pass sees each message at
// most once while SQS spreads receives over its servers), then made visible
// again with ChangeMessageVisibility 0. Each message ID is handed to fn once
// even if SQS delivers it twice. fn returns false to end the pass early.
// The error lists messages that could not be made visible again; they
// reappear by themselves when their visibility timeout ends.
func Peek(ctx context.Context, q Queue, cfg ScanConfig, fn func(worker.Message) bool) (seen int, err error) {
	cfg = cfg.withDefaults()
	held := map[string]string{} // message ID -> latest receipt handle
	defer func() {
		if rerr := releaseHeld(ctx, q, held); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	idle := 0
	for idle < cfg.IdleReceives && (cfg.Limit == 0 || seen < cfg.Limit) {
		if err := ctx.Err(); err != nil {
			return seen, err
		}
		msgs, err := q.Receive(ctx, 10, cfg.Wait, cfg.Visibility)
		if err != nil {
			return seen, err
		}
		fresh := 0
		dup := make([]bool, len(msgs))
		for i, m := range msgs { // hold the whole batch first: all of it is released at the end
			_, dup[i] = held[m.ID]
			held[m.ID] = m.ReceiptHandle
		}
		for i, m := range msgs {
			if dup[i] || (cfg.Limit > 0 && seen >= cfg.Limit) {
				continue // released at the end, not counted
			}
			seen++
			fresh++
			if !fn(m) {
				return seen, nil
			}
		}
		if fresh == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return seen, nil
}

// release makes messages visible again, ten at a time, checking every entry.
// releaseHeld makes the held messages (message ID -> receipt handle)
// visible again at the end of a pass. It runs even when ctx is canceled:
// the messages would otherwise stay hidden for their visibility timeout.
func releaseHeld(ctx context.Context, q Queue, held map[string]string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	receipts := make([]string, 0, len(held))
	for _, r := range held {
		receipts = append(receipts, r)
	}
	return release(rctx, q, receipts)
}

func release(ctx context.Context, q Queue, receipts []string) error {
	var errs []error
	for len(receipts) > 0 {
		n := min(10, len(receipts))
		failed, err := q.ChangeVisibility(ctx, receipts[:n], 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("make %d messages visible again: %w", n, err))
		}
		for _, e := range failed {
			errs = append(errs, fmt.Errorf("make a message visible again: %w", e))
		}
		receipts = receipts[n:]
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d messages stay hidden until their visibility timeout ends: %w", len(errs), errors.Join(errs...))
	}
	return nil
}

// Count is one line of a DLQ summary.
type Count struct {
	Reason   string `json:"reason"`
	Campaign string `json:"campaign"`
	Messages int    `json:"messages"`
}

// Summary counts DLQ messages by reason and campaign.
type Summary struct {
	Total   int     `json:"total"`
	Counts  []Count `json:"counts"`
	Limited bool    `json:"limited"` // the pass stopped at the limit: there may be more
}

// Summarize reads the DLQ once (Peek) and counts its messages.
func Summarize(ctx context.Context, q Queue, cfg ScanConfig) (Summary, error) {
	counts := map[[2]string]int{}
	n, err := Peek(ctx, q, cfg, func(m worker.Message) bool {
		counts[[2]string{ReasonOf(m), m.Attributes[worker.AttrCampaign].StringValue}]++
		return true
	})
	s := Summary{Total: n, Limited: cfg.Limit > 0 && n >= cfg.Limit}
	for k, v := range counts {
		s.Counts = append(s.Counts, Count{Reason: k[0], Campaign: k[1], Messages: v})
	}
	sort.Slice(s.Counts, func(i, j int) bool {
		a, b := s.Counts[i], s.Counts[j]
		if a.Messages != b.Messages {
			return a.Messages > b.Messages
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return a.Campaign < b.Campaign
	})
	return s, err
}

// List reads the DLQ once (Peek) and returns up to max jobs passing f
// (0: no maximum), and how many messages it read.
func List(ctx context.Context, q Queue, cfg ScanConfig, f Filter, max int) ([]Job, int, error) {
	var jobs []Job
	n, err := Peek(ctx, q, cfg, func(m worker.Message) bool {
		if f.Match(m) {
			jobs = append(jobs, JobOf(m))
		}
		return max == 0 || len(jobs) < max
	})
	return jobs, n, err
}

// failureAttrs are the attributes the worker adds when it dead-letters a
// job; redrive strips them so that the job starts again from scratch.
var failureAttrs = []string{worker.AttrReason, worker.AttrError, worker.AttrAttempts, worker.AttrFailedAt}

// Redriven is a DLQ message as it goes back to the source queue: the body
// unchanged, every attribute but the failure record kept (resetq.campaign
// among them).
func Redriven(m worker.Message) worker.Outgoing {
	attrs := make(map[string]worker.Attribute, len(m.Attributes))
	for k, v := range m.Attributes {
		attrs[k] = v
	}
	for _, k := range failureAttrs {
		delete(attrs, k)
	}
	if len(attrs) == 0 {
		attrs = nil
	}
	return worker.Outgoing{Body: m.Body, Attributes: attrs}
}

// RedriveConfig is one redrive.
type RedriveConfig struct {
	Scan    ScanConfig // Scan.Limit bounds the messages read
	Filter  Filter
	Max     int           // move at most this many (0: all)
	Limiter *rate.Limiter // paces moves; nil: as fast as the queues allow
}

// RedriveFailure is a message that was not moved, or moved but not deleted.
type RedriveFailure struct {
	MessageID string `json:"message_id"`
	Error     string `json:"error"`
	// Duplicated: the job is on the source queue and still in the DLQ, so a
	// later redrive moves it again (a user may get a second code).
	Duplicated bool `json:"duplicated,omitempty"`
}

// RedriveResult counts what a redrive did.
type RedriveResult struct {
	Read     int              `json:"read"`
	Moved    int              `json:"moved"`
	Skipped  int              `json:"skipped"` // did not match the filter; left in the DLQ
	Failed   int              `json:"failed"`
	Failures []RedriveFailure `json:"failures,omitempty"`
}

// Redrive moves DLQ messages that pass the filter back to the source queue.
// Each is sent to the source before it is deleted from the DLQ, so a crash
// or an error between the two leaves a duplicate, never a loss. Messages
// that do not match, and messages whose send failed (counted as failed),
// stay hidden until the pass ends and are then made visible again: released
// at once, SQS would hand them back before the rest of the DLQ.
func Redrive(ctx context.Context, dlq Queue, source Sender, cfg RedriveConfig) (res RedriveResult, err error) {
	sc := cfg.Scan.withDefaults()
	seen := map[string]bool{}
	held := map[string]string{} // message ID -> latest receipt, released at the end
	defer func() {
		if rerr := releaseHeld(ctx, dlq, held); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	sent := 0 // sent to the source, moved or not
	full := func() bool { return cfg.Max > 0 && res.Moved+sent+res.Failed >= cfg.Max }
	idle := 0
	for idle < sc.IdleReceives && (sc.Limit == 0 || res.Read < sc.Limit) && !full() {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		msgs, err := dlq.Receive(ctx, 10, sc.Wait, sc.Visibility)
		if err != nil {
			return res, err
		}
		var toDelete []string
		deleteIDs := map[string]string{} // receipt -> message ID
		fresh := 0
		for _, m := range msgs {
			if seen[m.ID] || (sc.Limit > 0 && res.Read >= sc.Limit) || full() || ctx.Err() != nil {
				held[m.ID] = m.ReceiptHandle
				continue
			}
			seen[m.ID] = true
			fresh++
			res.Read++
			if !cfg.Filter.Match(m) {
				res.Skipped++
				held[m.ID] = m.ReceiptHandle
				continue
			}
			if cfg.Limiter != nil {
				if err := cfg.Limiter.Wait(ctx); err != nil {
					res.Read--
					res.Skipped++
					held[m.ID] = m.ReceiptHandle
					continue
				}
			}
			if err := source.Send(ctx, Redriven(m)); err != nil {
				res.Failed++
				res.Failures = append(res.Failures, RedriveFailure{MessageID: m.ID, Error: err.Error()})
				held[m.ID] = m.ReceiptHandle
				continue
			}
			sent++
			toDelete = append(toDelete, m.ReceiptHandle)
			deleteIDs[m.ReceiptHandle] = m.ID
		}
		if len(toDelete) > 0 {
			// Delete even if ctx was canceled meanwhile: what was sent
			// must leave the DLQ.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			failed, err := dlq.Delete(dctx, toDelete)
			cancel()
			for _, r := range toDelete {
				e := err
				if e == nil {
					e = failed[r]
				}
				if e != nil {
					held[deleteIDs[r]] = r // made visible again: it is still in the DLQ
					res.Failed++
					res.Failures = append(res.Failures, RedriveFailure{MessageID: deleteIDs[r], Duplicated: true,
						Error: "sent to the source queue but not deleted from the DLQ: " + e.Error()})
				} else {
					res.Moved++
				}
			}
			sent -= len(toDelete)
		}
		if fresh == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}
