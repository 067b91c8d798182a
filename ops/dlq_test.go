package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/resetq/resetq/worker"
)

// fakeQueue is an in-memory SQS queue: receives hide messages, receipts
// change on each receive, ChangeVisibility 0 shows them again.
type fakeQueue struct {
	mu       sync.Mutex
	msgs     []*fakeMsg
	receipts int
	// redeliver: each receive also returns the first hidden message again
	// with a new receipt, as SQS may.
	redeliver     bool
	failDelete    map[string]bool // message IDs whose delete entry fails
	failRelease   bool            // ChangeVisibility entries fail
	receiveCalls  int
	sentBeforeDel func(id string) bool // checked on delete: the job is on the source already
}

type fakeMsg struct {
	m       worker.Message
	hidden  bool
	receipt string
}

func dlqMsg(id, reason, campaign string) worker.Message {
	a := map[string]worker.Attribute{"custom": {DataType: "String", StringValue: "keep-" + id}}
	if campaign != "" {
		a[worker.AttrCampaign] = worker.Attribute{DataType: "String", StringValue: campaign}
	}
	if reason != "" {
		a[worker.AttrReason] = worker.Attribute{DataType: "String", StringValue: reason}
		a[worker.AttrError] = worker.Attribute{DataType: "String", StringValue: "err " + id}
		a[worker.AttrAttempts] = worker.Attribute{DataType: "Number", StringValue: "1"}
		a[worker.AttrFailedAt] = worker.Attribute{DataType: "String", StringValue: "2026-01-01T00:00:00Z"}
	}
	return worker.Message{ID: id, Body: fmt.Sprintf(`{"UserPoolId":"us-east-1_abc","Username":"user-%s"}`, id), Attributes: a}
}

func newFake(msgs ...worker.Message) *fakeQueue {
	q := &fakeQueue{failDelete: map[string]bool{}}
	for _, m := range msgs {
		q.msgs = append(q.msgs, &fakeMsg{m: m})
	}
	return q
}

func (q *fakeQueue) Receive(_ context.Context, max int, _, _ time.Duration) ([]worker.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.receiveCalls++
	var out []worker.Message
	give := func(fm *fakeMsg) {
		q.receipts++
		fm.hidden = true
		fm.receipt = "r" + strconv.Itoa(q.receipts)
		m := fm.m
		m.ReceiptHandle = fm.receipt
		out = append(out, m)
	}
	if q.redeliver {
		for _, fm := range q.msgs {
			if fm.hidden {
				give(fm)
				break
			}
		}
	}
	for _, fm := range q.msgs {
		if len(out) >= max {
			break
		}
		if !fm.hidden {
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
		if i < 0 || q.failRelease {
			failed[r] = errors.New("ReceiptHandleIsInvalid")
			continue
		}
		if timeout == 0 {
			q.msgs[i].hidden = false
		}
	}
	return failed, nil
}

func (q *fakeQueue) visible() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, fm := range q.msgs {
		if !fm.hidden {
			n++
		}
	}
	return n
}

type fakeSender struct {
	mu   sync.Mutex
	sent []worker.Outgoing
	fail map[string]bool // bodies that fail
}

func (s *fakeSender) Send(_ context.Context, m worker.Outgoing) error {
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

func sample() []worker.Message {
	var msgs []worker.Message
	for i := range 25 {
		reason := []string{"UserNotFoundException", "invalid_job", ""}[i%3]
		campaign := []string{"c1", "c2"}[i%2]
		msgs = append(msgs, dlqMsg(fmt.Sprintf("m%02d", i), reason, campaign))
	}
	return msgs
}

func TestSummarizeDoesNotConsume(t *testing.T) {
	for _, redeliver := range []bool{false, true} {
		t.Run(fmt.Sprintf("redeliver=%v", redeliver), func(t *testing.T) {
			q := newFake(sample()...)
			q.redeliver = redeliver
			s, err := Summarize(context.Background(), q, ScanConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if s.Total != 25 || s.Limited {
				t.Fatalf("total %d limited %v", s.Total, s.Limited)
			}
			got := map[string]int{}
			sum := 0
			for _, c := range s.Counts {
				got[c.Reason] += c.Messages
				sum += c.Messages
			}
			want := map[string]int{"UserNotFoundException": 9, "invalid_job": 8, NoReason: 8}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %d, want %d (%+v)", k, got[k], v, s.Counts)
				}
			}
			if sum != 25 {
				t.Errorf("counts sum to %d", sum)
			}
			if q.visible() != 25 || len(q.msgs) != 25 {
				t.Fatalf("after summary: %d of %d visible", q.visible(), len(q.msgs))
			}
		})
	}
}

func TestSummarizeLimit(t *testing.T) {
	q := newFake(sample()...)
	s, err := Summarize(context.Background(), q, ScanConfig{Limit: 12})
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 12 || !s.Limited {
		t.Fatalf("total %d limited %v", s.Total, s.Limited)
	}
	if q.visible() != 25 {
		t.Fatalf("%d visible after summary", q.visible())
	}
}

func TestPeekReleaseFailureReported(t *testing.T) {
	q := newFake(sample()[:3]...)
	q.failRelease = true
	_, err := Summarize(context.Background(), q, ScanConfig{})
	if err == nil {
		t.Fatal("no error when messages could not be made visible again")
	}
}

func TestList(t *testing.T) {
	q := newFake(sample()...)
	jobs, read, err := List(context.Background(), q, ScanConfig{}, Filter{Reason: "invalid_job", Campaign: "c2"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if read != 25 || len(jobs) != 4 { // i%3==1 && i%2==1: 1, 7, 13, 19
		t.Fatalf("read %d, %d jobs: %+v", read, len(jobs), jobs)
	}
	j := jobs[0]
	if j.MessageID != "m01" || j.Pool != "us-east-1_abc" || j.Username != "user-m01" || j.Reason != "invalid_job" ||
		j.Error != "err m01" || j.Attempts != "1" || j.FailedAt == "" || j.Campaign != "c2" || j.Body != "" {
		t.Errorf("job %+v", j)
	}
	if q.visible() != 25 {
		t.Fatalf("%d visible after list", q.visible())
	}
	jobs, _, _ = List(context.Background(), q, ScanConfig{}, Filter{Reason: ReasonNone}, 3)
	if len(jobs) != 3 || jobs[0].Reason != NoReason {
		t.Fatalf("reason none, max 3: %+v", jobs)
	}
	if q.visible() != 25 {
		t.Fatalf("%d visible after list", q.visible())
	}
}

func TestJobOfBadBody(t *testing.T) {
	j := JobOf(worker.Message{ID: "x", Body: `{"UserPoolId":"nopool","Username":"bob","Extra":1}`})
	if j.Pool != "nopool" || j.Username != "bob" || j.Body == "" || j.Reason != NoReason {
		t.Errorf("%+v", j)
	}
	j = JobOf(worker.Message{ID: "y", Body: "not json"})
	if j.Pool != "" || j.Body != "not json" {
		t.Errorf("%+v", j)
	}
}

func TestRedriven(t *testing.T) {
	m := dlqMsg("a", "invalid_job", "camp")
	out := Redriven(m)
	if out.Body != m.Body || out.Delay != 0 {
		t.Fatalf("%+v", out)
	}
	if len(out.Attributes) != 2 || out.Attributes[worker.AttrCampaign].StringValue != "camp" || out.Attributes["custom"].StringValue != "keep-a" {
		t.Fatalf("attributes %+v", out.Attributes)
	}
	if Redriven(worker.Message{Body: "b"}).Attributes != nil {
		t.Fatal("no attributes should stay nil")
	}
}

func TestRedriveOneReason(t *testing.T) {
	q := newFake(sample()...)
	src := &fakeSender{}
	q.sentBeforeDel = func(id string) bool {
		return src.has(fmt.Sprintf(`{"UserPoolId":"us-east-1_abc","Username":"user-%s"}`, id))
	}
	res, err := Redrive(context.Background(), q, src, RedriveConfig{Filter: Filter{Reason: "UserNotFoundException"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 9 || res.Skipped != 16 || res.Failed != 0 || res.Read != 25 {
		t.Fatalf("%+v", res)
	}
	if len(src.sent) != 9 || len(q.msgs) != 16 || q.visible() != 16 {
		t.Fatalf("sent %d, DLQ %d (%d visible)", len(src.sent), len(q.msgs), q.visible())
	}
	for _, m := range src.sent {
		if _, ok := m.Attributes[worker.AttrReason]; ok {
			t.Fatalf("reason not stripped: %+v", m.Attributes)
		}
		if m.Attributes[worker.AttrCampaign].StringValue == "" {
			t.Fatalf("campaign lost: %+v", m.Attributes)
		}
	}
	for _, fm := range q.msgs {
		if fm.m.Attributes[worker.AttrReason].StringValue == "UserNotFoundException" {
			t.Fatalf("%s still in the DLQ", fm.m.ID)
		}
	}
}

func TestRedriveFailures(t *testing.T) {
	msgs := sample()[:6]
	q := newFake(msgs...)
	q.failDelete["m01"] = true
	src := &fakeSender{fail: map[string]bool{msgs[2].Body: true}}
	res, err := Redrive(context.Background(), q, src, RedriveConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 4 || res.Failed != 2 || len(res.Failures) != 2 {
		t.Fatalf("%+v", res)
	}
	// m02 (send failed) and m01 (delete failed, duplicated) are still in the DLQ, visible.
	if len(q.msgs) != 2 || q.visible() != 2 {
		t.Fatalf("DLQ %d, visible %d", len(q.msgs), q.visible())
	}
	dup := 0
	for _, f := range res.Failures {
		if f.Duplicated {
			dup++
			if f.MessageID != "m01" {
				t.Errorf("duplicated %s", f.MessageID)
			}
		}
	}
	if dup != 1 {
		t.Errorf("%d duplicated", dup)
	}
	if len(src.sent) != 5 {
		t.Errorf("%d sent", len(src.sent))
	}
}

func TestRedriveMaxAndRate(t *testing.T) {
	q := newFake(sample()...)
	src := &fakeSender{}
	start := time.Now()
	res, err := Redrive(context.Background(), q, src, RedriveConfig{Max: 5, Limiter: rate.NewLimiter(50, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 5 || len(src.sent) != 5 || len(q.msgs) != 20 || q.visible() != 20 {
		t.Fatalf("%+v; DLQ %d visible %d", res, len(q.msgs), q.visible())
	}
	if el := time.Since(start); el < 70*time.Millisecond {
		t.Errorf("5 moves at 50/s took %v", el)
	}
}

func TestRedriveCanceled(t *testing.T) {
	q := newFake(sample()...)
	src := &fakeSender{}
	ctx, cancel := context.WithCancel(context.Background())
	lim := rate.NewLimiter(rate.Every(time.Hour), 1) // the second move waits
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	res, err := Redrive(ctx, q, src, RedriveConfig{Limiter: lim})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if res.Moved != 1 || len(q.msgs) != 24 || q.visible() != 24 {
		t.Fatalf("%+v; DLQ %d visible %d", res, len(q.msgs), q.visible())
	}
}
