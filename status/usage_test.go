package status

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/usagemetrics"
	"github.com/resetq/resetq/usagemetrics/usagemetricstest"
)

// TestLatestUsage: the decision and the line each state prints.
func TestLatestUsage(t *testing.T) {
	t.Parallel()
	m := time.Date(2026, 11, 29, 12, 6, 0, 0, time.UTC)
	tests := []struct {
		name    string
		minutes []usagemetrics.Minute
		err     error
		state   string
		text    string
	}{
		{"latest minute", []usagemetrics.Minute{{At: m.Add(-time.Minute), Calls: 900, Throttles: 3}, {At: m, Calls: 1200, Throttles: 7}}, nil, usagemetrics.StateOK,
			"eu-west-1  UserAccountRecovery AWS/Usage (everyone's: real users' and every resetq's together) in the minute of 12:06 UTC: 1200 calls/min, 7 throttled/min"},
		{"no throttle in the minute", []usagemetrics.Minute{{At: m.Add(-time.Minute), Calls: 900, Throttles: 3}, {At: m, Calls: 1200}}, nil, usagemetrics.StateOK, "1200 calls/min, 0 throttled/min"},
		{"no minutes", nil, nil, usagemetrics.StateNoData, "eu-west-1  UserAccountRecovery usage: no data in CloudWatch AWS/Usage"},
		{"no data", nil, awserr.ErrNoData, usagemetrics.StateNoData, "no calls, or not published yet"},
		{"denied", nil, &awserr.DeniedError{Action: "cloudwatch:GetMetricData", Err: errors.New("AccessDenied")}, usagemetrics.StateDenied,
			"eu-west-1  UserAccountRecovery usage not read: permission cloudwatch:GetMetricData missing"},
		{"other failure", nil, errors.New("cloudwatch:GetMetricData: connection refused"), usagemetrics.StateFailed,
			"usage not read: cloudwatch:GetMetricData: connection refused"},
	}
	for _, tt := range tests {
		u := LatestUsage("eu-west-1", usagemetrics.RecoveryCategory, tt.minutes, tt.err)
		if u.State != tt.state || u.Whose != UsageEveryone || !strings.Contains(u.Text(), tt.text) {
			t.Errorf("%s: %+v\n got %q\nwant %q", tt.name, u, u.Text(), tt.text)
		}
		if (u.State == usagemetrics.StateOK) != (u.Calls != nil && u.Throttles != nil && u.Minute != nil) {
			t.Errorf("%s: figures %+v", tt.name, u)
		}
	}
}

// TestUsageCache: each Region read once a minute, a denied one never again,
// the query the usage gauges make.
func TestUsageCache(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 10, 30, 0, time.UTC)
	m := now.Truncate(time.Minute)
	f := usagemetricstest.New(map[string][]usagemetrics.Point{
		"us-east-1/CallCount":     {{At: m.Add(-4 * time.Minute), Value: 1200}},
		"us-east-1/ThrottleCount": {{At: m.Add(-4 * time.Minute), Value: 7}},
	}, map[string]error{"ap-south-1": &awserr.DeniedError{Action: "cloudwatch:GetMetricData", Err: errors.New("no")}})
	s := &UsageCache{Reader: f}
	regions := []string{"us-east-1", "ap-south-1", "sa-east-1"}
	got := s.Read(context.Background(), regions, now)
	if len(got) != 3 || got[0].State != usagemetrics.StateOK || *got[0].Calls != 1200 || *got[0].Throttles != 7 || !got[0].Minute.Equal(m.Add(-4*time.Minute)) ||
		got[1].State != usagemetrics.StateDenied || got[1].Action != "cloudwatch:GetMetricData" || got[2].State != usagemetrics.StateNoData {
		t.Fatalf("%+v", got)
	}
	q := f.Queries()[0]
	if q.Category != usagemetrics.RecoveryCategory || q.Metric != "CallCount" || q.Period != time.Minute || !q.End.Equal(m) || q.End.Sub(q.Start) != 15*time.Minute {
		t.Fatalf("query %+v", q)
	}
	if n := len(f.Queries()); n != 2+1+1 {
		t.Fatalf("%d queries in the first round", n)
	}

	n := len(f.Queries())
	s.Read(context.Background(), regions, now.Add(30*time.Second)) // under a minute: nothing read
	if q := f.Queries()[n:]; len(q) != 0 {
		t.Fatalf("read again within the minute: %+v", q)
	}
	f.Set("us-east-1/CallCount", []usagemetrics.Point{{At: m.Add(-4 * time.Minute), Value: 1200}, {At: m.Add(-3 * time.Minute), Value: 1800}})
	got = s.Read(context.Background(), regions, now.Add(time.Minute))
	if q := f.Queries()[n:]; len(q) != 2+1 { // us-east-1 both metrics, sa-east-1 calls; the denied Region not again
		t.Fatalf("%d queries a minute later", len(q))
	}
	if *got[0].Calls != 1800 || *got[0].Throttles != 0 || got[1].State != usagemetrics.StateDenied {
		t.Fatalf("%+v", got)
	}
}
