package dlq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/resetq/resetq/job"
)

func TestPeekReleaseFailureReported(t *testing.T) {
	q := newFake(sample()[:3]...)
	q.failRelease = true
	_, err := Summarize(context.Background(), q, ScanConfig{})
	if err == nil {
		t.Fatal("no error when messages could not be made visible again")
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

// TestScanConfigDefaults: zero is the default, a negative value is refused
// before anything is read.
func TestScanConfigDefaults(t *testing.T) {
	t.Parallel()
	c := ScanConfig{}.withDefaults()
	if c.Visibility != DefaultVisibility || c.IdleReceives != DefaultIdleReceives || c.Settle != DefaultSettle || c.Now == nil {
		t.Errorf("defaults %+v", c)
	}
	for _, bad := range []ScanConfig{{Visibility: -time.Second}, {IdleReceives: -1}, {Settle: -time.Minute}} {
		q := newFake(sample()...)
		if _, err := Peek(t.Context(), q, bad, func(job.Message) bool { return true }); err == nil {
			t.Errorf("%+v: Peek took it", bad)
		}
		if _, err := Redrive(t.Context(), q, &fakeSender{}, RedriveConfig{Scan: bad}); err == nil {
			t.Errorf("%+v: Redrive took it", bad)
		}
		if q.visible() != len(sample()) {
			t.Errorf("%+v: messages read", bad)
		}
	}
}
