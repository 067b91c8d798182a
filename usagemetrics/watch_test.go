package usagemetrics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/usagemetrics"
	"github.com/resetq/resetq/usagemetrics/usagemetricstest"
)

func TestPoll(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 10, 30, 0, time.UTC)
	m := now.Truncate(time.Minute)
	f := usagemetricstest.New(map[string][]usagemetrics.Point{
		"eu-west-1/CallCount":     {{At: m.Add(-5 * time.Minute), Value: 900}, {At: m.Add(-4 * time.Minute), Value: 1500}},
		"eu-west-1/ThrottleCount": {{At: m.Add(-4 * time.Minute), Value: 42}},
		"us-east-1/CallCount":     {{At: m.Add(-3 * time.Minute), Value: 60}},
	}, map[string]error{"ap-south-1": &awserr.DeniedError{Action: "cloudwatch:GetMetricData", Err: errors.New("no")}})
	var logs bytes.Buffer
	reg := prometheus.NewPedanticRegistry()
	w := usagemetrics.NewWatcher(usagemetrics.WatcherConfig{Reader: f, Log: slog.New(slog.NewTextHandler(&logs, nil))}, reg)
	for _, r := range []string{"eu-west-1", "us-east-1", "ap-south-1", "sa-east-1", "eu-west-1"} {
		w.Add(r)
	}
	w.Poll(context.Background(), now)
	want := `
# HELP resetq_usage_calls_per_minute Calls of the quota category in the account and Region in the latest minute CloudWatch has (AWS/Usage CallCount): real users' and every resetq's.
# TYPE resetq_usage_calls_per_minute gauge
resetq_usage_calls_per_minute{account="",category="UserAccountRecovery",region="eu-west-1"} 1500
resetq_usage_calls_per_minute{account="",category="UserAccountRecovery",region="us-east-1"} 60
# HELP resetq_usage_throttles_per_minute Throttled calls of the quota category in the account and Region in that minute (AWS/Usage ThrottleCount): real users' and every resetq's.
# TYPE resetq_usage_throttles_per_minute gauge
resetq_usage_throttles_per_minute{account="",category="UserAccountRecovery",region="eu-west-1"} 42
resetq_usage_throttles_per_minute{account="",category="UserAccountRecovery",region="us-east-1"} 0
`
	want += fmt.Sprintf(`# HELP resetq_usage_minute_timestamp_seconds Start of the minute the usage gauges are for, in Unix seconds.
# TYPE resetq_usage_minute_timestamp_seconds gauge
resetq_usage_minute_timestamp_seconds{account="",category="UserAccountRecovery",region="eu-west-1"} %d
resetq_usage_minute_timestamp_seconds{account="",category="UserAccountRecovery",region="us-east-1"} %d
`, m.Add(-4*time.Minute).Unix(), m.Add(-3*time.Minute).Unix())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "resetq_usage_calls_per_minute", "resetq_usage_throttles_per_minute", "resetq_usage_minute_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	q := f.Queries()[0]
	if q.Category != usagemetrics.RecoveryCategory || q.Period != time.Minute || !q.End.Equal(m) || q.End.Sub(q.Start) != 15*time.Minute {
		t.Fatalf("query %+v", q)
	}
	if !strings.Contains(logs.String(), "action=cloudwatch:GetMetricData") || !strings.Contains(logs.String(), "no usage data in CloudWatch yet") {
		t.Fatalf("logs:\n%s", logs.String())
	}

	// Second round: the denied Region is not read again, nothing is
	// logged again, and a Region whose data went away loses its gauges.
	f.Set("us-east-1/CallCount", nil)
	n := len(f.Queries())
	logs.Reset()
	w.Poll(context.Background(), now.Add(time.Minute))
	if c, err := testutil.GatherAndCount(reg, "resetq_usage_calls_per_minute"); err != nil || c != 1 {
		t.Fatalf("%d call gauges, want eu-west-1's only", c)
	}
	if strings.Contains(logs.String(), "ap-south-1") || strings.Contains(logs.String(), "sa-east-1") {
		t.Fatalf("warned twice:\n%s", logs.String())
	}
	if got := len(f.Queries()) - n; got != 2+1+1 { // eu-west-1 both metrics, us-east-1 and sa-east-1 calls only
		t.Fatalf("%d queries in the second round", got)
	}
}

// TestOnRead: each reading passes the Region's minutes, oldest first, with
// the throttles of the same minute (none where ThrottleCount has no point).
func TestOnRead(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 10, 30, 0, time.UTC)
	m := now.Truncate(time.Minute)
	f := usagemetricstest.New(map[string][]usagemetrics.Point{
		"eu-west-1/CallCount":     {{At: m.Add(-5 * time.Minute), Value: 900}, {At: m.Add(-4 * time.Minute), Value: 1500}, {At: m.Add(-3 * time.Minute), Value: 700}},
		"eu-west-1/ThrottleCount": {{At: m.Add(-4 * time.Minute), Value: 42}},
	}, nil)
	var got []usagemetrics.Minute
	var region string
	w := usagemetrics.NewWatcher(usagemetrics.WatcherConfig{Reader: f, OnRead: func(r, _ string, ms []usagemetrics.Minute) { region, got = r, ms }}, prometheus.NewRegistry())
	w.Add("eu-west-1")
	w.Poll(context.Background(), now)
	want := []usagemetrics.Minute{{At: m.Add(-5 * time.Minute), Calls: 900}, {At: m.Add(-4 * time.Minute), Calls: 1500, Throttles: 42}, {At: m.Add(-3 * time.Minute), Calls: 700}}
	if region != "eu-west-1" || len(got) != len(want) {
		t.Fatalf("OnRead(%q, %v), want eu-west-1's %v", region, got, want)
	}
	for i := range want {
		if !got[i].At.Equal(want[i].At) || got[i].Calls != want[i].Calls || got[i].Throttles != want[i].Throttles {
			t.Fatalf("minute %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestAddReadsAtOnce: a Region added while Run waits for its next round is
// read at once, not an Interval later (the limiter's start needs it).
func TestAddReadsAtOnce(t *testing.T) {
	t.Parallel()
	m := time.Now().Truncate(time.Minute)
	f := usagemetricstest.New(map[string][]usagemetrics.Point{
		"eu-west-1/CallCount": {{At: m.Add(-3 * time.Minute), Value: 60}},
		"us-east-1/CallCount": {{At: m.Add(-3 * time.Minute), Value: 60}},
	}, nil)
	read := make(chan string, 4)
	w := usagemetrics.NewWatcher(usagemetrics.WatcherConfig{Reader: f, Interval: time.Hour, OnRead: func(r, _ string, _ []usagemetrics.Minute) { read <- r }}, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.Add("eu-west-1")
	go w.Run(ctx)
	wait := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case r := <-read:
				if r == want {
					return
				}
			case <-deadline:
				t.Fatalf("%s, added, was not read within 10 s; the interval is an hour", want)
			}
		}
	}
	wait("eu-west-1")
	w.Add("us-east-1") // after Run's first round
	wait("us-east-1")
}

// TestCategories: each category is read in each Region added, its gauges
// labelled by category, and each reading handed over with its category.
func TestCategories(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 10, 30, 0, time.UTC)
	m := now.Truncate(time.Minute)
	f := usagemetricstest.New(map[string][]usagemetrics.Point{
		"222222222222/eu-west-1/CallCount":            {{At: m.Add(-3 * time.Minute), Value: 1500}},
		"222222222222/eu-west-1/UserUpdate/CallCount": {{At: m.Add(-3 * time.Minute), Value: 600}},
		"222222222222/eu-west-1/UserRead/CallCount":   {{At: m.Add(-3 * time.Minute), Value: 2400}},
	}, nil)
	got := map[string]float64{}
	reg := prometheus.NewPedanticRegistry()
	w := usagemetrics.NewWatcher(usagemetrics.WatcherConfig{Reader: f,
		Categories: []string{usagemetrics.RecoveryCategory, usagemetrics.UpdateCategory, usagemetrics.ReadCategory},
		OnRead:     func(_, c string, ms []usagemetrics.Minute) { got[c] = ms[len(ms)-1].Calls }}, reg)
	w.Add("222222222222/eu-west-1")
	w.Poll(context.Background(), now)
	want := map[string]float64{usagemetrics.RecoveryCategory: 1500, usagemetrics.UpdateCategory: 600, usagemetrics.ReadCategory: 2400}
	for c, v := range want {
		if got[c] != v {
			t.Errorf("OnRead of %s: %v calls, want %v", c, got[c], v)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "resetq_usage_calls_per_minute"); err != nil || n != 3 {
		t.Errorf("%d call gauges (%v), want one per category", n, err)
	}
}
