package worker

// apply and the SQS plumbing that settles a job: the one place a message
// is deleted, released, hidden, sent back or dead-lettered.

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resetq/resetq/clock"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/retry"
)

// apply carries out o for m: the one place that sends, deletes, counts and
// logs a job's end.
func (w *Worker) apply(ctx context.Context, jl *slog.Logger, m job.Message, o outcome) {
	switch o.Action {
	case Forget:
		// Its job ended here (reset, sent back or dead-lettered) and only the
		// delete failed: handling it again would fork the job.
		w.deleteEnded(m, true)
		jl.Info("delivered again after its job ended; deleted", "receive_count", m.ReceiveCount)
		return
	case Abandon:
		w.held.remove(m.ReceiptHandle)
		jl.Warn("visibility of the message lapsed while it waited; left to its next delivery, no call made")
		if !o.CodeCalled {
			w.release(ctx, o.User, o.Holder) // its next delivery, or another job, need not wait for the lease
		}
	case Release:
		w.releases.add(m.ReceiptHandle)
		jl.Info("job released", "outcome", o.Label)
		if !o.CodeCalled {
			w.release(ctx, o.User, o.Holder)
		}
	case Hide:
		w.hide(m, o.Delay)
		jl.Info("another delivery of the message holds the job: hidden until its claim ends, nothing else touched",
			"delay", o.Delay, "receive_count", m.ReceiveCount, "why", sqsText(o.Detail))
	case Delete:
		// A re-invitation's delete goes at once: a crash in the linger would
		// send a second invitation, which no status check can prevent.
		w.deleteEnded(m, slices.Contains(o.Steps, job.StepReinvited))
		jl.Info("job done", "outcome", o.Label, "steps", strings.Join(o.Steps, ","), "already_reset", o.AlreadyReset,
			"attempts", o.Attempts, "receive_count", m.ReceiveCount)
	case Retry, Defer:
		if !w.requeue(ctx, jl, m, o) {
			return
		}
		w.release(ctx, o.User, o.Holder)
	case DeadLetter:
		if !w.deadLetter(ctx, jl, m, o) {
			return
		}
		w.m.DeadLetters.WithLabelValues(o.Reason).Inc()
		w.record(ctx, o.User, StepDeadLettered, o.Reason)
		w.release(ctx, o.User, o.Holder)
	}
	w.count(o.Label)
}

// requeue sends a copy of the job back to the queue, delayed, then deletes
// the original. The copy starts with a receive count of zero, so retries
// never run into the queue's maxReceiveCount. It reports whether the copy
// went; if not, the original comes back after the delay.
func (w *Worker) requeue(ctx context.Context, jl *slog.Logger, m job.Message, o outcome) bool {
	delay := min(maxDelay, max(time.Second, o.Delay.Round(time.Second)))
	var key []byte // with signing keys, the copy's progress is signed: see job.StateOf
	if len(w.cfg.SigningKeys) > 0 {
		key = w.cfg.SigningKeys[0]
	}
	st := job.State{JobID: o.JobID, Attempts: o.Attempts, DeferredSince: o.DeferredSince, Steps: o.Steps}
	attrs := st.Attributes(key, m)
	out := job.Outgoing{Body: m.Body, Delay: delay, Attributes: withAttributes(without(m.Attributes, progressAttrs...), attrs)}
	if err := w.send(ctx, w.cfg.Requeue, out); err != nil {
		jl.Error("requeue failed; the message comes back after its visibility timeout", "error", err)
		w.hide(m, delay)
		return false
	}
	w.deleteEnded(m, true)
	jl.Info("job sent back", "outcome", o.Label, "delay", delay, "attempts", o.Attempts, "why", sqsText(o.Detail))
	return true
}

// hide keeps a message invisible for d; used when it could not be forwarded.
func (w *Worker) hide(m job.Message, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.CallTimeout)
	defer cancel()
	if _, err := w.cfg.Source.ChangeVisibility(ctx, []string{m.ReceiptHandle}, d); err != nil {
		w.log.Warn("change visibility failed", "message_id", m.ID, "error", err)
	}
	w.held.remove(m.ReceiptHandle)
}

// deleteEnded deletes m, whose job has ended (reset, sent back or
// dead-lettered): at once when urgent, else in a batch. If the delete
// fails, m's ID is remembered, so that when SQS delivers m again this
// process deletes it instead of running the job a second time.
func (w *Worker) deleteEnded(m job.Message, urgent bool) {
	w.ended.deleting(m.ReceiptHandle, m.ID)
	if urgent {
		w.urgent.add(m.ReceiptHandle)
	} else {
		w.deletes.add(m.ReceiptHandle)
	}
}

func (w *Worker) flushDeletes(ctx context.Context, receipts []string) {
	failed := w.retryBatch(ctx, "delete", receipts, func(ctx context.Context, r []string) (map[string]error, error) {
		return w.cfg.Source.Delete(ctx, r)
	})
	w.ended.deleted(receipts, failed, w.cfg.Clock.Now())
	w.held.remove(receipts...)
}

func (w *Worker) flushReleases(ctx context.Context, receipts []string) {
	_ = w.retryBatch(ctx, "release", receipts, func(ctx context.Context, r []string) (map[string]error, error) {
		return w.cfg.Source.ChangeVisibility(ctx, r, 0)
	})
	w.held.remove(receipts...)
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
		clock.Sleep(ctx, w.cfg.Clock, retry.Curve{Base: 200 * time.Millisecond, Max: 2 * time.Second}.Delay(try, w.cfg.Rand()))
	}
	return nil
}

// deadLetter sends the job to the DLQ with its reason, then deletes it
// from the source. A record the DLQ refuses is tried once more cut to the
// essentials (a body near SQS's size limit leaves no room for a long
// error). If that fails too, the message stays in the source queue, hidden
// for longer each time, counted and logged as an error.
func (w *Worker) deadLetter(ctx context.Context, jl *slog.Logger, m job.Message, o outcome) bool {
	record := map[string]string{
		job.AttrReason:   o.Reason,
		job.AttrError:    sqsText(o.Detail),
		job.AttrAttempts: strconv.Itoa(o.Attempts),
		job.AttrFailedAt: w.cfg.Clock.Now().UTC().Format(time.RFC3339),
		job.AttrJobID:    o.JobID,
	}
	if len(o.Steps) > 0 {
		record[job.AttrSteps] = strings.Join(o.Steps, ",")
	}
	if o.Remediation != "" {
		record[job.AttrRemediation] = o.Remediation
	}
	// A record is evidence, not a job's progress: it carries no state
	// signature, so a redrive starts the job afresh.
	base := without(m.Attributes, progressAttrs...)
	err := w.send(ctx, w.cfg.DeadLetters, job.Outgoing{Body: m.Body, Attributes: withAttributes(base, record)})
	if err != nil {
		record[job.AttrError] = job.Truncate(record[job.AttrError], 128)
		err = w.send(ctx, w.cfg.DeadLetters, job.Outgoing{Body: m.Body, Attributes: withAttributes(essentials(m.Attributes), record)})
	}
	if err != nil {
		w.m.DeadLetterFailures.Inc()
		delay := retry.Curve{Base: time.Minute, Max: 12 * time.Hour}.Delay(m.ReceiveCount, w.cfg.Rand())
		jl.Error("dead-letter send failed; the job stays in the source queue and is tried again later",
			"reason", o.Reason, "error", err, "retry_in", delay, "receive_count", m.ReceiveCount)
		if m.ReceiveCount >= deadLetterAlarm {
			jl.Error("a job has failed to reach the DLQ many times: fix the DLQ (permissions, KMS key, size) or it is lost when the source queue's retention ends",
				"reason", o.Reason, "job_id", o.JobID, "receive_count", m.ReceiveCount)
		}
		w.hide(m, delay)
		return false
	}
	w.deleteEnded(m, true)
	jl.Warn("job done", "outcome", o.Label, "reason", o.Reason, "steps", strings.Join(o.Steps, ","), "remediation", o.Remediation,
		"attempts", o.Attempts, "error", sqsText(o.Detail))
	return true
}

// deadLetterAlarm is the receive count from which a job that cannot reach
// the DLQ is logged as in danger of being lost.
const deadLetterAlarm = 5
