package ops

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"github.com/resetq/resetq/internal/valutil"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/metrics"
)

// Queue is the part of queue.Queue that reading and redriving a DLQ uses.
type Queue interface {
	Receive(ctx context.Context, max int, wait, visibility time.Duration) ([]job.Message, error)
	Delete(ctx context.Context, receipts []string) (map[string]error, error)
	ChangeVisibility(ctx context.Context, receipts []string, timeout time.Duration) (map[string]error, error)
	metrics.DepthReader
}

// Sender sends a message to a queue (the redrive target).
type Sender interface {
	Send(ctx context.Context, m job.Outgoing) error
}

// NoReason is how a DLQ message without resetq.reason is counted: SQS moved
// it by itself after maxReceiveCount receives.
const NoReason = "(no reason: maxReceiveCount)"

// ReasonNone is the Filter.Reason that selects messages without resetq.reason.
const ReasonNone = "none"

// JobID is the job m is of: its resetq.job-id, or its own message ID when
// it has none (records written before the attribute existed).
func JobID(m job.Message) string {
	if id := m.Attributes[job.AttrJobID].StringValue; id != "" {
		return id
	}
	return m.ID
}

// maxHide is the longest SQS hides a message: 12 hours from its receive.
const maxHide = 12 * time.Hour

// ScanConfig bounds one pass over a DLQ.
type ScanConfig struct {
	Limit int // stop after this many distinct messages (0: no limit)
	// Visibility is how long a message read is hidden at first; the pass
	// renews the hiding until it ends, for at least as long as it has run.
	Visibility time.Duration
	Wait       time.Duration // long-poll wait of each receive (SQS: whole seconds)
	// IdleReceives is how many receives in a row must bring no message not
	// already seen before the pass may end (default 2).
	IdleReceives int
	// Settle is how long a pass that reads nothing new waits for the DLQ's
	// counts to show no message it has not read; then it ends and reports
	// them as unread (default 2m).
	Settle time.Duration
	Now    func() time.Time // the clock (default time.Now)
}

func (c ScanConfig) withDefaults() ScanConfig {
	c.Visibility = valutil.PositiveOrDefault(c.Visibility, 60*time.Second)
	c.IdleReceives = valutil.PositiveOrDefault(c.IdleReceives, 2)
	c.Settle = valutil.PositiveOrDefault(c.Settle, 2*time.Minute)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Scan says how far one pass over a DLQ got.
type Scan struct {
	Read    int  `json:"read"`    // messages read, each once
	Limited bool `json:"limited"` // the pass stopped at a limit: there may be more
	// Unread is how many messages the DLQ still counted (visible, delayed,
	// or hidden by another reader) when the pass stopped waiting for them.
	Unread int64 `json:"unread"`
}

// Complete reports whether the pass read every message of the DLQ.
func (s Scan) Complete() bool { return !s.Limited && s.Unread == 0 }

// pass is one read of a DLQ: each message received stays hidden, renewed,
// until release shows them all again, so the pass reads it once.
type pass struct {
	q      Queue
	cfg    ScanConfig
	start  time.Time
	seen   map[string]bool
	held   map[string]*heldMsg // message ID -> its latest receipt
	due    dueHeap             // held messages by the end of their hiding
	idle   int                 // receives in a row that brought nothing new
	idleAt time.Time           // when the first of them was made
}

type heldMsg struct {
	receipt  string
	received time.Time // when the receipt was asked for
	until    time.Time // when its hiding ends, at the latest
}

func newPass(q Queue, cfg ScanConfig) *pass {
	return &pass{q: q, cfg: cfg, start: cfg.Now(), seen: map[string]bool{}, held: map[string]*heldMsg{}}
}

// hideFor is how long a message received or renewed at now is hidden: at
// least Visibility and as long as the pass has run, so that each message
// is renewed a few times however long the pass, never once a batch.
func (p *pass) hideFor(now time.Time) time.Duration {
	return min(max(p.cfg.Visibility, now.Sub(p.start)), maxHide).Truncate(time.Second)
}

// receive renews what is due, then receives up to 10 messages, holds them
// all and returns those not seen before.
func (p *pass) receive(ctx context.Context) ([]job.Message, error) {
	if err := p.renew(ctx); err != nil {
		return nil, err
	}
	now := p.cfg.Now()
	vis := p.hideFor(now)
	msgs, err := p.q.Receive(ctx, 10, p.cfg.Wait, vis)
	if err != nil {
		return nil, err
	}
	var fresh []job.Message
	for _, m := range msgs {
		p.hold(m.ID, &heldMsg{receipt: m.ReceiptHandle, received: now, until: now.Add(vis)})
		if !p.seen[m.ID] {
			p.seen[m.ID] = true
			fresh = append(fresh, m)
		}
	}
	switch {
	case len(fresh) > 0:
		p.idle = 0
	case p.idle == 0:
		p.idle, p.idleAt = 1, p.cfg.Now()
	default:
		p.idle++
	}
	return fresh, nil
}

func (p *pass) hold(id string, h *heldMsg) {
	p.held[id] = h
	heap.Push(&p.due, dueEntry{id: id, h: h})
}

// forget stops holding a message the pass deleted.
func (p *pass) forget(id string) { delete(p.held, id) }

// renew extends the hiding of every held message that ends within half a
// Visibility, ten at a time. A message whose receipt SQS refuses is no
// longer held: if it is still in the DLQ, a receive holds it again.
func (p *pass) renew(ctx context.Context) error {
	now := p.cfg.Now()
	byTimeout := map[time.Duration][]string{} // timeout -> message IDs
	for len(p.due) > 0 && p.due[0].h.until.Sub(now) < p.cfg.Visibility/2 {
		e := heap.Pop(&p.due).(dueEntry)
		if p.held[e.id] != e.h {
			continue // deleted, or received again since
		}
		t := min(p.hideFor(now), e.h.received.Add(maxHide-time.Minute).Sub(now).Truncate(time.Second))
		if t <= 0 {
			delete(p.held, e.id) // SQS shows it again soon; a receive holds it again
			continue
		}
		byTimeout[t] = append(byTimeout[t], e.id)
	}
	for t, ids := range byTimeout {
		for len(ids) > 0 {
			n := min(10, len(ids))
			receipts := make([]string, n)
			for i, id := range ids[:n] {
				receipts[i] = p.held[id].receipt
			}
			failed, err := p.q.ChangeVisibility(ctx, receipts, t)
			if err != nil {
				return fmt.Errorf("keep %d messages hidden during the pass: %w", n, err)
			}
			for i, id := range ids[:n] {
				if failed[receipts[i]] != nil {
					delete(p.held, id)
					continue
				}
				h := *p.held[id]
				h.until = now.Add(t)
				p.hold(id, &h)
			}
			ids = ids[n:]
		}
	}
	return nil
}

// done reports whether the pass has read the whole DLQ, or has waited
// Settle for the rest; unread is what it could not read.
func (p *pass) done(ctx context.Context) (done bool, unread int64, err error) {
	if p.idle < p.cfg.IdleReceives {
		return false, 0, nil
	}
	d, err := p.q.Depth(ctx)
	if err != nil {
		return false, 0, fmt.Errorf("count the messages left: %w", err)
	}
	unread = d.Visible + d.Delayed + max(0, d.InFlight-int64(len(p.held)))
	if unread == 0 {
		return true, 0, nil
	}
	return p.cfg.Now().Sub(p.idleAt) >= p.cfg.Settle, unread, nil
}

// release makes every held message visible again. It runs even when ctx
// is canceled: the messages would otherwise stay hidden for as long as the
// pass had run.
func (p *pass) release(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	receipts := make([]string, 0, len(p.held))
	for _, h := range p.held {
		receipts = append(receipts, h.receipt)
	}
	p.held = map[string]*heldMsg{}
	return release(rctx, p.q, receipts)
}

type dueEntry struct {
	id string
	h  *heldMsg
}

// dueHeap orders held messages by the end of their hiding, soonest first.
type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].h.until.Before(h[j].h.until) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Job is a DLQ message as the operator sees it.
type Job struct {
	MessageID string `json:"message_id"`
	JobID     string `json:"job_id"`
	Records   int    `json:"records"` // DLQ messages of this job read (2 or more: dead-lettered again before its delete)
	Pool      string `json:"pool,omitempty"`
	Username  string `json:"username,omitempty"`
	Campaign  string `json:"campaign,omitempty"`
	Reason    string `json:"reason"`
	Error     string `json:"error,omitempty"`
	Attempts  string `json:"attempts,omitempty"`
	FailedAt  string `json:"failed_at,omitempty"`
	// Steps are the steps done before the job failed (signed_out,
	// disabled); Remediation what was done for its user instead of a
	// reset ("disabled": re-enable after checking the person out of band).
	Steps       string `json:"steps,omitempty"`
	Remediation string `json:"remediation,omitempty"`
	Body        string `json:"body,omitempty"` // only when it is not a valid job
}

// JobOf describes m. A body that is not a job still has its pool and
// username picked out when the JSON allows.
func JobOf(m job.Message) Job {
	j := Job{
		MessageID:   m.ID,
		JobID:       JobID(m),
		Records:     1,
		Campaign:    m.Attributes[job.AttrCampaign].StringValue,
		Reason:      ReasonOf(m),
		Error:       m.Attributes[job.AttrError].StringValue,
		Attempts:    m.Attributes[job.AttrAttempts].StringValue,
		FailedAt:    m.Attributes[job.AttrFailedAt].StringValue,
		Steps:       m.Attributes[job.AttrSteps].StringValue,
		Remediation: m.Attributes[job.AttrRemediation].StringValue,
	}
	if job, err := job.ParseJob([]byte(m.Body)); err == nil {
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
func ReasonOf(m job.Message) string {
	if r := m.Attributes[job.AttrReason].StringValue; r != "" {
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
func (f Filter) Match(m job.Message) bool {
	if f.Reason != "" {
		r := m.Attributes[job.AttrReason].StringValue
		if f.Reason == ReasonNone {
			if r != "" {
				return false
			}
		} else if r != f.Reason {
			return false
		}
	}
	return f.Campaign == "" || m.Attributes[job.AttrCampaign].StringValue == f.Campaign
}

// Peek reads the DLQ once without consuming it, handing each message to fn
// once; fn returns false to end the pass early.
func Peek(ctx context.Context, q Queue, cfg ScanConfig, fn func(job.Message) bool) (s Scan, err error) {
	cfg = cfg.withDefaults()
	p := newPass(q, cfg)
	defer func() {
		if rerr := p.release(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		msgs, err := p.receive(ctx)
		if err != nil {
			return s, err
		}
		for _, m := range msgs {
			if cfg.Limit > 0 && s.Read >= cfg.Limit {
				break // released at the end, not counted
			}
			s.Read++
			if !fn(m) {
				s.Limited = true
				return s, nil
			}
		}
		if cfg.Limit > 0 && s.Read >= cfg.Limit {
			s.Limited = true
			return s, nil
		}
		done, unread, err := p.done(ctx)
		if err != nil {
			return s, err
		}
		if done {
			s.Unread = unread
			return s, nil
		}
	}
}

// release makes messages visible again, ten at a time, checking every entry.
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
	Jobs     int    `json:"jobs"`
	Messages int    `json:"messages"` // DLQ records of those jobs: more than Jobs when some were dead-lettered twice
}

// Summary counts the jobs of a DLQ by reason and campaign, each job once
// however many records it has (JobID). A job is counted under its first
// record read.
type Summary struct {
	Total      int     `json:"total"`      // jobs
	Duplicates int     `json:"duplicates"` // records of a job already counted
	Counts     []Count `json:"counts"`
	Scan
}

// Summarize reads the DLQ once (Peek) and counts its jobs.
func Summarize(ctx context.Context, q Queue, cfg ScanConfig) (Summary, error) {
	counts := map[[2]string]*Count{}
	jobs := map[string][2]string{} // job ID -> the key it is counted under
	sc, err := Peek(ctx, q, cfg, func(m job.Message) bool {
		key, dup := jobs[JobID(m)]
		if !dup {
			key = [2]string{ReasonOf(m), m.Attributes[job.AttrCampaign].StringValue}
			jobs[JobID(m)] = key
		}
		c := counts[key]
		if c == nil {
			c = &Count{Reason: key[0], Campaign: key[1]}
			counts[key] = c
		}
		c.Messages++
		if !dup {
			c.Jobs++
		}
		return true
	})
	s := Summary{Total: len(jobs), Duplicates: sc.Read - len(jobs), Scan: sc}
	for _, c := range counts {
		s.Counts = append(s.Counts, *c)
	}
	sort.Slice(s.Counts, func(i, j int) bool {
		a, b := s.Counts[i], s.Counts[j]
		if a.Jobs != b.Jobs {
			return a.Jobs > b.Jobs
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return a.Campaign < b.Campaign
	})
	return s, err
}

// List reads the DLQ once (Peek) and returns the jobs passing f, each once
// (JobID) with its number of records, up to max jobs (0: no maximum).
func List(ctx context.Context, q Queue, cfg ScanConfig, f Filter, max int) ([]Job, Scan, error) {
	var jobs []Job
	index := map[string]int{} // job ID -> its place in jobs
	sc, err := Peek(ctx, q, cfg, func(m job.Message) bool {
		if !f.Match(m) {
			return true
		}
		if i, ok := index[JobID(m)]; ok {
			jobs[i].Records++
			return true
		}
		if max > 0 && len(jobs) >= max {
			return false // one more job than shown: the pass is limited
		}
		index[JobID(m)] = len(jobs)
		jobs = append(jobs, JobOf(m))
		return true
	})
	return jobs, sc, err
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
