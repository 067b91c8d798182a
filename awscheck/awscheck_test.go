package awscheck

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
	"github.com/resetq/resetq/preflight"
	"github.com/resetq/resetq/usagemetrics"
)

func TestMain(m *testing.M) { mototest.Main(m) }

func motoConfig(t *testing.T) aws.Config {
	t.Helper()
	cfg, err := moto.Config(t.Context(), mototest.Shared(t).URL, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSendQuota: moto answers a sandbox account's quota.
func TestSendQuota(t *testing.T) {
	t.Parallel()
	max24h, maxRate, _, err := New(motoConfig(t)).SendQuota(t.Context(), "us-east-1")
	if err != nil || max24h != 200 || maxRate != 1 {
		t.Fatalf("%v a day, %v/s, %v", max24h, maxRate, err)
	}
}

// TestMonthlySpendLimit: unset, then set with SetSMSAttributes. moto keeps
// SMS attributes per account and Region, shared by the parallel tests, so
// this one uses its own Region.
func TestMonthlySpendLimit(t *testing.T) {
	t.Parallel()
	cfg, err := moto.Config(t.Context(), mototest.Shared(t).URL, "ap-southeast-2")
	if err != nil {
		t.Fatal(err)
	}
	c := New(cfg)
	if usd, set, err := c.MonthlySpendLimit(t.Context(), "ap-southeast-2"); err != nil || set {
		t.Fatalf("unset: %v %v %v", usd, set, err)
	}
	if _, err := sns.NewFromConfig(cfg).SetSMSAttributes(t.Context(), &sns.SetSMSAttributesInput{Attributes: map[string]string{"MonthlySpendLimit": "250"}}); err != nil {
		t.Fatal(err)
	}
	if usd, set, err := c.MonthlySpendLimit(t.Context(), "ap-southeast-2"); err != nil || !set || usd != 250 {
		t.Fatalf("set: %v %v %v", usd, set, err)
	}
}

// TestUsage: a series published with PutMetricData in AWS/Usage comes back
// per minute, oldest first; another category's does not.
func TestUsage(t *testing.T) {
	t.Parallel()
	cfg := motoConfig(t)
	category := fmt.Sprintf("Test%d", time.Now().UnixNano())
	now := time.Now().UTC().Truncate(time.Minute)
	PublishUsage(t, cfg, category, "CallCount", map[time.Time]float64{now.Add(-3 * time.Minute): 120, now.Add(-2 * time.Minute): 900})
	PublishUsage(t, cfg, category+"x", "CallCount", map[time.Time]float64{now.Add(-2 * time.Minute): 5000})
	pts, err := New(cfg).Usage(t.Context(), "us-east-1", usagemetrics.Query{Category: category, Metric: "CallCount",
		Start: now.Add(-time.Hour), End: now, Period: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Value != 120 || pts[1].Value != 900 || !pts[1].At.Equal(now.Add(-2*time.Minute)) {
		t.Fatalf("%+v", pts)
	}
}

// PublishUsage puts one value per minute into Cognito's usage metric.
func PublishUsage(t *testing.T, cfg aws.Config, category, metric string, values map[time.Time]float64) {
	t.Helper()
	var data []cwtypes.MetricDatum
	for at, v := range values {
		data = append(data, cwtypes.MetricDatum{MetricName: aws.String(metric), Timestamp: aws.Time(at), Value: aws.Float64(v),
			Dimensions: []cwtypes.Dimension{
				{Name: aws.String("Service"), Value: aws.String(usagemetrics.Service)},
				{Name: aws.String("Type"), Value: aws.String("API")},
				{Name: aws.String("Resource"), Value: aws.String(category)},
				{Name: aws.String("Class"), Value: aws.String("None")},
			}})
	}
	if _, err := NewCloudWatch(cfg, cfg.Region).PutMetricData(context.Background(), &cw.PutMetricDataInput{Namespace: aws.String(usagemetrics.Namespace), MetricData: data}); err != nil {
		t.Fatal(err)
	}
}

// sqServer is Service Quotas over HTTP (awsJson1.1), as the real service
// answers: moto 5.2.1 has no cognito-idp quotas (NoSuchResourceException).
func sqServer(t *testing.T, status int, body string) aws.Config {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Amz-Target"); got != "ServiceQuotasV20190624.GetServiceQuota" {
			t.Errorf("target %q", got)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if status != 200 {
			w.Header().Set("X-Amzn-ErrorType", strings.SplitN(body, `"`, 5)[3])
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	cfg, err := moto.Config(t.Context(), srv.URL, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	return cfg
}

func TestServiceQuota(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   float64
		denied string
		noData bool
	}{
		{"applied value", 200, `{"Quota":{"ServiceCode":"cognito-idp","QuotaCode":"L-7D6E8ED3","QuotaName":"Rate of UserAccountRecovery requests","Value":50.0,"Adjustable":false}}`, 50, "", false},
		{"no value", 200, `{"Quota":{"ServiceCode":"cognito-idp","QuotaCode":"L-7D6E8ED3"}}`, 0, "", true},
		{"denied", 400, `{"__type":"AccessDeniedException","message":"not authorized"}`, 0, "servicequotas:GetServiceQuota", false},
		{"unknown quota", 400, `{"__type":"NoSuchResourceException","message":"no such quota"}`, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := New(sqServer(t, tt.status, tt.body)).ServiceQuota(t.Context(), "eu-west-1", preflight.QuotaService, preflight.RecoveryQuotaCode)
			var denied *awserr.DeniedError
			switch {
			case tt.denied != "":
				if !errors.As(err, &denied) || denied.Action != tt.denied {
					t.Fatalf("err %v, want denied %s", err, tt.denied)
				}
			case tt.noData:
				if !errors.Is(err, awserr.ErrNoData) {
					t.Fatalf("err %v, want ErrNoData", err)
				}
			case err != nil || v != tt.want:
				t.Fatalf("%v %v, want %v", v, err, tt.want)
			}
		})
	}
}
