package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/metrics"
)

// fakeQueue is an in-memory SQS queue on a fake clock: a receive hides
// messages for the visibility asked and moves the clock by tick, receipts
// change on each receive, ChangeVisibility sets a new hiding (0 shows them
// again).
type fakeQueue struct {
	mu       sync.Mutex
	msgs     []*fakeMsg
	receipts int
	now      time.Time
	tick     time.Duration // how long each receive takes on the fake clock
	// redeliver: each receive also returns the first hidden message again
	// with a new receipt, as SQS may.
	redeliver     bool
	failDelete    map[string]bool // message IDs whose delete entry fails
	failRelease   bool            // ChangeVisibility entries fail
	receiveCalls  int
	renewed       int                  // ChangeVisibility entries with a timeout above 0
	sentBeforeDel func(id string) bool // checked on delete: the job is on the source already
}

type fakeMsg struct {
	m       job.Message
	until   time.Time // hidden until
	receipt string
}

func dlqMsg(id, reason, campaign string) job.Message {
	a := map[string]job.Attribute{"custom": {DataType: "String", StringValue: "keep-" + id}}
	if campaign != "" {
		a[job.AttrCampaign] = job.Attribute{DataType: "String", StringValue: campaign}
	}
	if reason != "" {
		a[job.AttrReason] = job.Attribute{DataType: "String", StringValue: reason}
		a[job.AttrError] = job.Attribute{DataType: "String", StringValue: "err " + id}
		a[job.AttrAttempts] = job.Attribute{DataType: "Number", StringValue: "1"}
		a[job.AttrFailedAt] = job.Attribute{DataType: "String", StringValue: "2026-01-01T00:00:00Z"}
	}
	return job.Message{ID: id, Body: fmt.Sprintf(`{"UserPoolId":"us-east-1_abc","Username":"user-%s"}`, id), Attributes: a}
}

// withJob is m as a record of job id (resetq.job-id).
func withJob(m job.Message, id string) job.Message {
	m.Attributes[job.AttrJobID] = job.Attribute{DataType: "String", StringValue: id}
	return m
}

func newFake(msgs ...job.Message) *fakeQueue {
	q := &fakeQueue{failDelete: map[string]bool{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, m := range msgs {
		q.msgs = append(q.msgs, &fakeMsg{m: m})
	}
	return q
}

// clock is the fake clock, for ScanConfig.Now.
func (q *fakeQueue) clock() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.now
}

func (q *fakeQueue) hidden(fm *fakeMsg) bool { return q.now.Before(fm.until) }

func (q *fakeQueue) Receive(_ context.Context, max int, _, visibility time.Duration) ([]job.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.receiveCalls++
	q.now = q.now.Add(q.tick)
	var out []job.Message
	give := func(fm *fakeMsg) {
		q.receipts++
		fm.until = q.now.Add(visibility)
		fm.receipt = "r" + strconv.Itoa(q.receipts)
		m := fm.m
		m.ReceiptHandle = fm.receipt
		out = append(out, m)
	}
	if q.redeliver {
		for _, fm := range q.msgs {
			if q.hidden(fm) {
				give(fm)
				break
			}
		}
	}
	for _, fm := range q.msgs {
		if len(out) >= max {
			break
		}
		if !q.hidden(fm) {
			give(fm)
		}
	}
	return out, nil
}

func (q *fakeQueue) find(receipt string) int {
	for i, fm := range q.msgs {
		if fm.receipt == receipt {
			return i
		}
	}
	return -1
}

func (q *fakeQueue) Delete(_ context.Context, receipts []string) (map[string]error, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(receipts) > 10 {
		return nil, errors.New("more than 10 entries")
	}
	failed := map[string]error{}
	for _, r := range receipts {
		i := q.find(r)
		if i < 0 {
			failed[r] = errors.New("ReceiptHandleIsInvalid")
			continue
		}
		id := q.msgs[i].m.ID
		if q.failDelete[id] {
			failed[r] = errors.New("InternalError")
			continue
		}
		if q.sentBeforeDel != nil && !q.sentBeforeDel(id) {
			return nil, fmt.Errorf("delete of %s before it was sent", id)
		}
		q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
	}
	return failed, nil
}

func (q *fakeQueue) ChangeVisibility(_ context.Context, receipts []string, timeout time.Duration) (map[string]error, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(receipts) > 10 {
		return nil, errors.New("more than 10 entries")
	}
	failed := map[string]error{}
	for _, r := range receipts {
		i := q.find(r)
		if i < 0 || q.failRelease || !q.hidden(q.msgs[i]) {
			failed[r] = errors.New("ReceiptHandleIsInvalid")
			continue
		}
		if timeout > 0 {
			q.renewed++
		}
		q.msgs[i].until = q.now.Add(timeout)
	}
	return failed, nil
}

func (q *fakeQueue) Depth(context.Context) (metrics.Depth, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var d metrics.Depth
	for _, fm := range q.msgs {
		if q.hidden(fm) {
			d.InFlight++
		} else {
			d.Visible++
		}
	}
	return d, nil
}

func (q *fakeQueue) visible() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, fm := range q.msgs {
		if !q.hidden(fm) {
			n++
		}
	}
	return n
}

type fakeSender struct {
	mu   sync.Mutex
	sent []job.Outgoing
	fail map[string]bool // bodies that fail
}

func (s *fakeSender) Send(_ context.Context, m job.Outgoing) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail[m.Body] {
		return errors.New("send failed")
	}
	s.sent = append(s.sent, m)
	return nil
}

func (s *fakeSender) has(body string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.sent {
		if m.Body == body {
			return true
		}
	}
	return false
}

func sample() []job.Message {
	var msgs []job.Message
	for i := range 25 {
		reason := []string{"UserNotFoundException", "invalid_job", ""}[i%3]
		campaign := []string{"c1", "c2"}[i%2]
		msgs = append(msgs, dlqMsg(fmt.Sprintf("m%02d", i), reason, campaign))
	}
	return msgs
}
