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
	jobs, sc, err := List(context.Background(), q, ScanConfig{}, Filter{Reason: "invalid_job", Campaign: "c2"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Read != 25 || !sc.Complete() || len(jobs) != 4 { // i%3==1 && i%2==1: 1, 7, 13, 19
		t.Fatalf("%+v, %d jobs: %+v", sc, len(jobs), jobs)
	}
	j := jobs[0]
	if j.MessageID != "m01" || j.JobID != "m01" || j.Records != 1 || j.Pool != "us-east-1_abc" || j.Username != "user-m01" || j.Reason != "invalid_job" ||
		j.Error != "err m01" || j.Attempts != "1" || j.FailedAt == "" || j.Campaign != "c2" || j.Body != "" {
		t.Errorf("job %+v", j)
	}
	if q.visible() != 25 {
		t.Fatalf("%d visible after list", q.visible())
	}
	jobs, sc, _ = List(context.Background(), q, ScanConfig{}, Filter{Reason: ReasonNone}, 3)
	if len(jobs) != 3 || jobs[0].Reason != NoReason || !sc.Limited {
		t.Fatalf("reason none, max 3: %+v %+v", sc, jobs)
	}
	if q.visible() != 25 {
		t.Fatalf("%d visible after list", q.visible())
	}
}

func TestJobOfBadBody(t *testing.T) {
	j := JobOf(job.Message{ID: "x", Body: `{"UserPoolId":"nopool","Username":"bob","Extra":1}`})
	if j.Pool != "nopool" || j.Username != "bob" || j.Body == "" || j.Reason != NoReason {
		t.Errorf("%+v", j)
	}
	j = JobOf(job.Message{ID: "y", Body: "not json"})
	if j.Pool != "" || j.Body != "not json" {
		t.Errorf("%+v", j)
	}
}

func TestRedriven(t *testing.T) {
	m := dlqMsg("a", "invalid_job", "camp")
	m.Attributes[job.AttrDeferredSince] = job.Attribute{DataType: "String", StringValue: "2026-01-01T00:00:00Z"}
	m.Attributes[job.AttrSteps] = job.Attribute{DataType: "String", StringValue: "signed_out,disabled"}
	m.Attributes[job.AttrRemediation] = job.Attribute{DataType: "String", StringValue: "disabled"}
	m.Attributes[job.AttrGlobalSignOut] = job.Attribute{DataType: "String", StringValue: "true"}
	out := Redriven(m)
	if out.Body != m.Body || out.Delay != 0 {
		t.Fatalf("%+v", out)
	}
	if len(out.Attributes) != 3 || out.Attributes[job.AttrCampaign].StringValue != "camp" || out.Attributes["custom"].StringValue != "keep-a" ||
		out.Attributes[job.AttrGlobalSignOut].StringValue != "true" {
		t.Fatalf("attributes %+v", out.Attributes)
	}
	if Redriven(job.Message{Body: "b"}).Attributes != nil {
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
		if _, ok := m.Attributes[job.AttrReason]; ok {
			t.Fatalf("reason not stripped: %+v", m.Attributes)
		}
		if m.Attributes[job.AttrCampaign].StringValue == "" {
			t.Fatalf("campaign lost: %+v", m.Attributes)
		}
	}
	for _, fm := range q.msgs {
		if fm.m.Attributes[job.AttrReason].StringValue == "UserNotFoundException" {
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

// longDLQ is n messages, every tenth of reason "match", the others of
// three other reasons, as a DLQ holds them after a campaign.
func longDLQ(n int) []job.Message {
	var msgs []job.Message
	for i := range n {
		reason := []string{"UserNotFoundException", "invalid_job", ""}[i%3]
		if i%10 == 5 {
			reason = "match"
		}
		msgs = append(msgs, dlqMsg(fmt.Sprintf("m%03d", i), reason, "c"))
	}
	return msgs
}

// TestRedriveLongPassMovesEveryMatch: a pass far longer than the
// visibility of one receive (300 messages, a second a receive, 5 s hidden)
// still moves every matching job: the skipped messages stay hidden for the
// whole pass and the pass ends only once the DLQ counts nothing unread.
func TestRedriveLongPassMovesEveryMatch(t *testing.T) {
	q := newFake(longDLQ(300)...)
	q.tick = time.Second
	src := &fakeSender{}
	res, err := Redrive(context.Background(), q, src, RedriveConfig{
		Scan: ScanConfig{Visibility: 5 * time.Second, Now: q.clock}, Filter: Filter{Reason: "match"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 30 || res.Skipped != 270 || res.Failed != 0 || res.Read != 300 || len(src.sent) != 30 {
		t.Fatalf("%+v, %d sent", res, len(src.sent))
	}
	if !res.Complete() {
		t.Fatalf("pass not complete: %+v", res.Scan)
	}
	for _, fm := range q.msgs {
		if fm.m.Attributes[job.AttrReason].StringValue == "match" {
			t.Fatalf("%s still in the DLQ", fm.m.ID)
		}
	}
	if len(q.msgs) != 270 || q.visible() != 270 {
		t.Fatalf("DLQ %d, %d visible", len(q.msgs), q.visible())
	}
	// Each hiding lasts as long as the pass so far: a few renewals each.
	t.Logf("%d receives, %d renewals", q.receiveCalls, q.renewed)
	if q.renewed > 4*270 {
		t.Errorf("%d renewals for 270 held messages", q.renewed)
	}
}

// TestSummarizeLongPassCountsEveryMessage: the same for a summary.
func TestSummarizeLongPassCountsEveryMessage(t *testing.T) {
	q := newFake(longDLQ(300)...)
	q.tick = time.Second
	s, err := Summarize(context.Background(), q, ScanConfig{Visibility: 5 * time.Second, Now: q.clock})
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 300 || !s.Complete() || q.visible() != 300 {
		t.Fatalf("%+v; %d visible", s, q.visible())
	}
}

// TestScanReportsUnread: a message another reader hides for the whole pass
// is not read; the pass waits Settle for it, then ends and says so.
func TestScanReportsUnread(t *testing.T) {
	newQ := func() *fakeQueue {
		q := newFake(longDLQ(30)...)
		q.tick = time.Second
		q.msgs[7].until = q.now.Add(time.Hour)
		return q
	}
	q := newQ()
	cfg := ScanConfig{Visibility: 5 * time.Second, Settle: 20 * time.Second, Now: q.clock}
	s, err := Summarize(context.Background(), q, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 29 || s.Unread != 1 || s.Complete() {
		t.Fatalf("%+v", s)
	}
	if q.receiveCalls < 3+20 { // 3 receives of messages, then 20 s of empty ones
		t.Fatalf("gave up after %d receives", q.receiveCalls)
	}

	q = newQ()
	cfg.Now = q.clock
	res, err := Redrive(context.Background(), q, &fakeSender{}, RedriveConfig{Scan: cfg, Filter: Filter{Reason: "match"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 3 || res.Unread != 1 || res.Complete() {
		t.Fatalf("%+v", res)
	}
}

// TestScanSurvivesLostHiding: a message whose hiding could not be renewed
// shows again; the pass holds it again and reads it once.
func TestScanSurvivesLostHiding(t *testing.T) {
	q := newFake(longDLQ(40)...)
	q.tick = time.Second
	q.redeliver = true // every receive also brings a message already read
	s, err := Summarize(context.Background(), q, ScanConfig{Visibility: 5 * time.Second, Now: q.clock})
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 40 || s.Duplicates != 0 || !s.Complete() || q.visible() != 40 {
		t.Fatalf("%+v; %d visible", s, q.visible())
	}
}

// twice is a DLQ where job "j1" was dead-lettered twice and job "j2" three
// times (a worker killed between its DLQ send and its delete), next to
// records without resetq.job-id (counted by their message ID).
func twice() []job.Message {
	return []job.Message{
		withJob(dlqMsg("a1", "UserNotFoundException", "c"), "j1"),
		withJob(dlqMsg("b1", "invalid_job", "c"), "j2"),
		dlqMsg("old1", "UserNotFoundException", "c"),
		withJob(dlqMsg("a2", "UserNotFoundException", "c"), "j1"),
		withJob(dlqMsg("b2", "invalid_job", "c"), "j2"),
		dlqMsg("old2", "UserNotFoundException", "c"),
		withJob(dlqMsg("b3", "invalid_job", "c"), "j2"),
	}
}

func TestSummarizeOneJobTwoRecords(t *testing.T) {
	q := newFake(twice()...)
	s, err := Summarize(context.Background(), q, ScanConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 4 || s.Read != 7 || s.Duplicates != 3 || len(s.Counts) != 2 {
		t.Fatalf("%+v", s)
	}
	want := []Count{{Reason: "UserNotFoundException", Campaign: "c", Jobs: 3, Messages: 4}, {Reason: "invalid_job", Campaign: "c", Jobs: 1, Messages: 3}}
	for i, c := range want {
		if s.Counts[i] != c {
			t.Errorf("count %d: %+v, want %+v", i, s.Counts[i], c)
		}
	}
}

func TestListOneJobTwoRecords(t *testing.T) {
	q := newFake(twice()...)
	jobs, sc, err := List(context.Background(), q, ScanConfig{}, Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, j := range jobs {
		got[j.JobID] = j.Records
	}
	if sc.Read != 7 || len(jobs) != 4 || got["j1"] != 2 || got["j2"] != 3 || got["old1"] != 1 || got["old2"] != 1 {
		t.Fatalf("%+v: %+v", sc, jobs)
	}
}

// TestRedriveOneCopyPerJob: one send per job; the other records of a job
// moved are deleted, and counted.
func TestRedriveOneCopyPerJob(t *testing.T) {
	q := newFake(twice()...)
	src := &fakeSender{}
	res, err := Redrive(context.Background(), q, src, RedriveConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 4 || res.Dropped != 3 || res.Failed != 0 || res.Read != 7 || len(src.sent) != 4 || len(q.msgs) != 0 {
		t.Fatalf("%+v; %d sent, %d left", res, len(src.sent), len(q.msgs))
	}
	sentJobs := map[string]int{}
	for _, m := range src.sent {
		sentJobs[m.Attributes[job.AttrJobID].StringValue]++
	}
	if sentJobs["j1"] != 1 || sentJobs["j2"] != 1 {
		t.Fatalf("sent per job %v: the job ID goes with the job", sentJobs)
	}
}

// TestRedriveDuplicateOfFailedSend: when a job's send fails, its other
// records stay in the DLQ too, each reported.
func TestRedriveDuplicateOfFailedSend(t *testing.T) {
	msgs := twice()
	q := newFake(msgs...)
	src := &fakeSender{fail: map[string]bool{msgs[1].Body: true}} // b1, the first record of j2
	res, err := Redrive(context.Background(), q, src, RedriveConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 3 || res.Dropped != 1 || res.Failed != 3 || len(q.msgs) != 3 || q.visible() != 3 {
		t.Fatalf("%+v; %d left, %d visible", res, len(q.msgs), q.visible())
	}
	for _, f := range res.Failures {
		if f.JobID != "j2" || f.Duplicated {
			t.Errorf("failure %+v", f)
		}
	}
}
