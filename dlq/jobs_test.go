package dlq

import (
	"context"
	"fmt"
	"testing"

	"github.com/resetq/resetq/job"
)

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
