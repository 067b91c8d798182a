package dlq

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/resetq/resetq/job"
)

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
