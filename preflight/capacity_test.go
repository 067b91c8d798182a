package preflight

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/usagemetrics"
	"github.com/resetq/resetq/userpool"
)

func TestCheckSES(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		q           SendQuota
		err         error
		users       int
		rate        float64
		quota, rlev Level
		text        string
	}{
		{"sandbox", SendQuota{Max24h: 200, MaxRate: 1}, nil, 100, 10, Blocking, Warning, "sandbox"},
		{"production, room", SendQuota{Max24h: 1e6, MaxRate: 50, Sent24h: 1000}, nil, 100000, 20, OK, OK, "999000 left"},
		{"quota used up", SendQuota{Max24h: 50000, MaxRate: 14, Sent24h: 50000}, nil, 10, 10, Blocking, OK, "nothing left"},
		{"more users than a day", SendQuota{Max24h: 50000, MaxRate: 14, Sent24h: 10000}, nil, 200000, 10, Warning, OK, "4 more day(s)"},
		{"rate above SES's", SendQuota{Max24h: 1e6, MaxRate: 14}, nil, 0, 20, OK, Warning, ""},
	}
	for _, tt := range tests {
		got := CheckSES("us-east-1_a", "us-east-1", tt.q, tt.err, tt.users, tt.rate)
		if len(got) != 2 || got[0].Level != tt.quota || got[1].Level != tt.rlev || !strings.Contains(got[0].Message, tt.text) {
			t.Errorf("%s: %+v", tt.name, got)
		}
	}
	denied := CheckSES("us-east-1_a", "us-east-1", SendQuota{}, &awserr.DeniedError{Action: "ses:GetSendQuota", Err: errors.New("no")}, 0, 10)
	if len(denied) != 1 || denied[0].Level != Warning || !strings.Contains(denied[0].Message, "permission ses:GetSendQuota is missing") {
		t.Errorf("denied: %+v", denied)
	}
}

func TestCheckSMS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		usd   float64
		set   bool
		err   error
		users int
		want  Level
		text  string
	}{
		{"unset: the default USD 1", 0, false, nil, 0, Warning, "USD 1 "},
		{"USD 1", 1, true, nil, 0, Warning, "default"},
		{"enough", 5000, true, nil, 10000, OK, "775194 SMS"},
		{"too little for the users", 50, true, nil, 10000, Warning, "fewer than the 10000 users"},
		{"denied", 0, false, &awserr.DeniedError{Action: "sns:GetSMSAttributes", Err: errors.New("no")}, 0, Warning, "sns:GetSMSAttributes"},
	}
	for _, tt := range tests {
		if got := CheckSMS("p", tt.usd, tt.set, tt.err, tt.users); got.Level != tt.want || !strings.Contains(got.Message, tt.text) {
			t.Errorf("%s: %+v", tt.name, got)
		}
	}
}

func TestCheckQuotaAndUsage(t *testing.T) {
	t.Parallel()
	if c := CheckQuota("eu-west-1", 30, awserr.ErrNoData, 24); c.Level != OK || !strings.Contains(c.Message, "documented default") {
		t.Errorf("fallback: %+v", c)
	}
	if c := CheckQuota("eu-west-1", 30, &awserr.DeniedError{Action: "servicequotas:GetServiceQuota", Err: errors.New("no")}, 24); c.Level != Warning || !strings.Contains(c.Message, "servicequotas:GetServiceQuota") {
		t.Errorf("denied: %+v", c)
	}
	if c := CheckQuota("eu-west-1", 50, nil, 60); c.Level != Warning || !strings.Contains(c.Message, "50/s, from Service Quotas") {
		t.Errorf("rate above: %+v", c)
	}
	at := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	pts := []usagemetrics.Point{{At: at.Add(-time.Minute), Value: 60}, {At: at, Value: 480}, {At: at.Add(time.Minute), Value: 12}}
	tests := []struct {
		name string
		pts  []usagemetrics.Point
		err  error
		rate float64
		want Level
		text string
	}{
		{"peak 8/s leaves 19", pts, nil, 24, Warning, "recommended --rate 19"},
		{"within", pts, nil, 15, OK, "real users' peak 8.00 calls/s (480 in the minute of 2026-11-28T09:30:00Z)"},
		{"no data", nil, nil, 24, OK, "recommended --rate 27"},
		{"denied", nil, &awserr.DeniedError{Action: "cloudwatch:GetMetricData", Err: errors.New("no")}, 24, Warning, "cloudwatch:GetMetricData"},
	}
	for _, tt := range tests {
		if c := CheckUsage("eu-west-1", tt.pts, tt.err, 30, tt.rate); c.Level != tt.want || !strings.Contains(c.Message, tt.text) {
			t.Errorf("%s: %+v", tt.name, c)
		}
	}
	if r := RecommendedRate(30, 29); r != 0 {
		t.Errorf("nothing left: %v", r)
	}
}

// fakeCapacity answers every reading with fixed values and records the
// usage query.
type fakeCapacity struct{ q usagemetrics.Query }

func (f *fakeCapacity) SendQuota(context.Context, string) (max24h, maxRate, sent24h float64, err error) {
	return 1e5, 40, 0, nil
}
func (f *fakeCapacity) MonthlySpendLimit(context.Context, string) (float64, bool, error) {
	return 0, false, nil
}
func (f *fakeCapacity) ServiceQuota(context.Context, string, string, string) (float64, error) {
	return 0, awserr.ErrNoData
}
func (f *fakeCapacity) Usage(_ context.Context, _ string, q usagemetrics.Query) ([]usagemetrics.Point, error) {
	f.q = q
	return nil, nil
}

func TestCapacityCheck(t *testing.T) {
	t.Parallel()
	f := &fakeCapacity{}
	now := time.Date(2026, 11, 29, 12, 0, 30, 0, time.UTC)
	pools := []userpool.Pool{
		{ID: "us-east-1_a", Recovery: []string{RecoveryEmail}, EmailSendingAccount: "DEVELOPER", EmailSourceARN: "arn:aws:ses:eu-west-1:1:identity/x"},
		{ID: "us-east-1_b", Recovery: []string{RecoveryPhone}},
		{ID: "us-east-1_c", Recovery: []string{RecoveryEmail}}, // COGNITO_DEFAULT: no SES reading
	}
	checks := Capacity{SES: f, SMS: f, Quota: f, Usage: f}.Check(context.Background(), pools, 1000, 20, now)
	var names []string
	for _, c := range checks {
		names = append(names, c.Subject+" "+c.Name)
	}
	want := "us-east-1_a ses quota,us-east-1_a ses rate,us-east-1_b sms spend limit,us-east-1 recovery quota,us-east-1 real users' use"
	if strings.Join(names, ",") != want || !strings.Contains(checks[0].Message, "SES in eu-west-1") {
		t.Fatalf("%v\n%+v", names, checks)
	}
	if f.q.Category != usagemetrics.RecoveryCategory || f.q.Metric != "CallCount" || f.q.Period != time.Minute || !f.q.End.Equal(now.Truncate(time.Minute)) || f.q.End.Sub(f.q.Start) != 7*24*time.Hour {
		t.Fatalf("query %+v", f.q)
	}
}
