// Package dlq reads and redrives a dead-letter queue for resetq dlq: one
// pass reads every message once without consuming it (Peek), counts its
// jobs (Summarize), lists them (List), or moves them back to the source
// queue (Redrive).
package dlq

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

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

// maxHide is the longest SQS hides a message: 12 hours from its receive.
const maxHide = 12 * time.Hour

// Defaults of a ScanConfig.
const (
	DefaultVisibility   = 60 * time.Second
	DefaultIdleReceives = 2
	DefaultSettle       = 2 * time.Minute
)

// ScanConfig bounds one pass over a DLQ.
type ScanConfig struct {
	Limit int // stop after this many distinct messages (0: no limit)
	// Visibility is how long a message read is hidden at first; the pass
	// renews the hiding until it ends, for at least as long as it has run
	// (default DefaultVisibility).
	Visibility time.Duration
	Wait       time.Duration // long-poll wait of each receive (SQS: whole seconds)
	// IdleReceives is how many receives in a row must bring no message not
	// already seen before the pass may end (default DefaultIdleReceives).
	IdleReceives int
	// Settle is how long a pass that reads nothing new waits for the DLQ's
	// counts to show no message it has not read; then it ends and reports
	// them as unread (default DefaultSettle).
	Settle time.Duration
	Now    func() time.Time // the clock (default time.Now)
}

func (c ScanConfig) withDefaults() ScanConfig {
	c.Visibility = cmp.Or(c.Visibility, DefaultVisibility)
	c.IdleReceives = cmp.Or(c.IdleReceives, DefaultIdleReceives)
	c.Settle = cmp.Or(c.Settle, DefaultSettle)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a negative Visibility, IdleReceives or Settle (zero is
// the default).
func (c ScanConfig) Validate() error {
	switch {
	case c.Visibility < 0:
		return fmt.Errorf("dlq scan: negative visibility %v", c.Visibility)
	case c.IdleReceives < 0:
		return fmt.Errorf("dlq scan: negative idle receives %d", c.IdleReceives)
	case c.Settle < 0:
		return fmt.Errorf("dlq scan: negative settle %v", c.Settle)
	}
	return nil
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

// Peek reads the DLQ once without consuming it, handing each message to fn
// once; fn returns false to end the pass early.
func Peek(ctx context.Context, q Queue, cfg ScanConfig, fn func(job.Message) bool) (s Scan, err error) {
	if err := cfg.Validate(); err != nil {
		return s, err
	}
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
