package dlq

import (
	"context"
	"errors"
	"time"

	"golang.org/x/time/rate"

	"github.com/resetq/resetq/job"
)

// Sender sends a message to a queue (the redrive target).
type Sender interface {
	Send(ctx context.Context, m job.Outgoing) error
}

// failureAttrs are the attributes of a job's failures the worker adds;
// redrive strips them so that the job starts again from scratch.
var failureAttrs = []string{job.AttrReason, job.AttrError, job.AttrAttempts, job.AttrFailedAt, job.AttrDeferredSince,
	job.AttrSteps, job.AttrRemediation}

// Redriven is a DLQ message as it goes back to the source queue: the body
// unchanged, every attribute but the failure record kept (resetq.campaign
// among them).
func Redriven(m job.Message) job.Outgoing {
	attrs := make(map[string]job.Attribute, len(m.Attributes))
	for k, v := range m.Attributes {
		attrs[k] = v
	}
	for _, k := range failureAttrs {
		delete(attrs, k)
	}
	if len(attrs) == 0 {
		attrs = nil
	}
	return job.Outgoing{Body: m.Body, Attributes: attrs}
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
	JobID     string `json:"job_id"`
	Error     string `json:"error"`
	// Duplicated: the job is on the source queue and still in the DLQ, so a
	// later redrive moves it again (a user may get a second code).
	Duplicated bool `json:"duplicated,omitempty"`
}

// RedriveResult counts what a redrive did. Moved and Failed count jobs
// (JobID), Read and Skipped count messages.
type RedriveResult struct {
	Scan
	Moved int `json:"moved"`
	// Dropped counts the records deleted without a send because another
	// record of their job was moved in this pass.
	Dropped  int              `json:"duplicates_dropped"`
	Skipped  int              `json:"skipped"` // did not match the filter; left in the DLQ
	Failed   int              `json:"failed"`  // records that match but stay in the DLQ
	Failures []RedriveFailure `json:"failures,omitempty"`
}

// Redrive moves the jobs in the DLQ that pass the filter back to the source
// queue, one copy per job (JobID), each sent before its records are deleted.
func Redrive(ctx context.Context, dlq Queue, source Sender, cfg RedriveConfig) (res RedriveResult, err error) {
	if err := cfg.Scan.Validate(); err != nil {
		return res, err
	}
	sc := cfg.Scan.withDefaults()
	p := newPass(dlq, sc)
	defer func() {
		if rerr := p.release(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	sent := map[string]bool{} // job ID -> sent to the source (true) or its send failed (false)
	full := func() bool { return cfg.Max > 0 && len(sent) >= cfg.Max }
	for {
		if full() || (sc.Limit > 0 && res.Read >= sc.Limit) {
			res.Limited = true
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		msgs, err := p.receive(ctx)
		if err != nil {
			return res, err
		}
		var moves []move
		for _, m := range msgs {
			if (sc.Limit > 0 && res.Read >= sc.Limit) || full() || ctx.Err() != nil {
				continue // held, released at the end
			}
			res.Read++
			if !cfg.Filter.Match(m) {
				res.Skipped++
				continue
			}
			id := JobID(m)
			if ok, seen := sent[id]; seen {
				if ok {
					moves = append(moves, move{m: m, dup: true})
				} else {
					res.Failed++
					res.Failures = append(res.Failures, RedriveFailure{MessageID: m.ID, JobID: id,
						Error: "another record of a job whose send failed"})
				}
				continue
			}
			if cfg.Limiter != nil {
				if err := cfg.Limiter.Wait(ctx); err != nil {
					res.Read--
					res.Skipped++
					continue
				}
			}
			if err := p.renew(ctx); err != nil {
				return res, err
			}
			if err := source.Send(ctx, Redriven(m)); err != nil {
				sent[id] = false
				res.Failed++
				res.Failures = append(res.Failures, RedriveFailure{MessageID: m.ID, JobID: id, Error: err.Error()})
				continue
			}
			sent[id] = true
			moves = append(moves, move{m: m})
		}
		deleteMoved(ctx, p, moves, &res)
		done, unread, err := p.done(ctx)
		if err != nil {
			return res, err
		}
		if done {
			res.Unread = unread
			return res, ctx.Err()
		}
	}
}

// move is a record whose job is on the source queue: sent from it, or from
// another record of the job (dup).
type move struct {
	m   job.Message
	dup bool
}

// deleteMoved deletes the records of moved jobs from the DLQ (at most 10),
// even if ctx was canceled meanwhile: what was sent must leave the DLQ.
func deleteMoved(ctx context.Context, p *pass, moves []move, res *RedriveResult) {
	if len(moves) == 0 {
		return
	}
	receipts := make([]string, len(moves))
	for i, mv := range moves {
		receipts[i] = mv.m.ReceiptHandle
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	failed, err := p.q.Delete(dctx, receipts)
	cancel()
	for i, mv := range moves {
		e := err
		if e == nil {
			e = failed[receipts[i]]
		}
		switch {
		case e != nil: // still held: made visible again at the end
			what := "sent to the source queue but not deleted from the DLQ: "
			if mv.dup {
				what = "a second record of a job moved in this pass, not deleted from the DLQ: "
			}
			res.Failed++
			res.Failures = append(res.Failures, RedriveFailure{MessageID: mv.m.ID, JobID: JobID(mv.m), Duplicated: true,
				Error: what + e.Error()})
		case mv.dup:
			p.forget(mv.m.ID)
			res.Dropped++
		default:
			p.forget(mv.m.ID)
			res.Moved++
		}
	}
}
