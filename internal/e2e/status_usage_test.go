package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/resetq/resetq/awscheck"
	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/usagemetrics"
)

// TestStatusUsage: resetq status prints the latest minute of a series
// published into moto's AWS/Usage with PutMetricData, as text and JSON, one
// line for a Region without data, and nothing with --usage-region none. The
// figures are published in a Region of their own (moto keeps metrics per
// Region, shared by the tests; us-east-1 is the worker's usage test's).
func TestStatusUsage(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "stusage")
	const region, empty = "eu-north-1", "ca-central-1"
	now := time.Now().UTC().Truncate(time.Minute)
	var data []cwtypes.MetricDatum
	for _, p := range []struct {
		ago    time.Duration
		metric string
		v      float64
	}{{5, "CallCount", 900}, {5, "ThrottleCount", 2}, {4, "CallCount", 1500}, {4, "ThrottleCount", 42}} {
		data = append(data, cwtypes.MetricDatum{MetricName: aws.String(p.metric), Timestamp: aws.Time(now.Add(-p.ago * time.Minute)), Value: aws.Float64(p.v),
			Dimensions: []cwtypes.Dimension{
				{Name: aws.String("Service"), Value: aws.String(usagemetrics.Service)},
				{Name: aws.String("Type"), Value: aws.String("API")},
				{Name: aws.String("Resource"), Value: aws.String(usagemetrics.RecoveryCategory)},
				{Name: aws.String("Class"), Value: aws.String("None")},
			}})
	}
	if _, err := awscheck.NewCloudWatch(e.East, region).PutMetricData(context.Background(), &cw.PutMetricDataInput{Namespace: aws.String(usagemetrics.Namespace), MetricData: data}); err != nil {
		t.Fatal(err)
	}
	minute := now.Add(-4 * time.Minute)

	out, errOut, code := opsRun(t, e, "status", "--queue-url", e.QueueURL, "--usage-region", region+","+empty)
	for _, want := range []string{
		"usage      " + region + "  UserAccountRecovery AWS/Usage (everyone's: real users' and every resetq's together) in the minute of " +
			minute.Format("15:04") + " UTC: 1500 calls/min, 42 throttled/min\n",
		"usage      " + empty + "  UserAccountRecovery usage: no data in CloudWatch AWS/Usage",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, want %q\n%s\n%s", code, want, out, errOut)
		}
	}

	out, errOut, code = opsRun(t, e, "status", "--queue-url", e.QueueURL, "--usage-region", region, "--output", "json")
	var r struct {
		Visible int
		Usage   []struct {
			Region, Category, Whose, State string
			Minute                         time.Time
			Calls                          float64 `json:"calls_per_minute"`
			Throttles                      float64 `json:"throttles_per_minute"`
		}
	}
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || len(r.Usage) != 1 {
		t.Fatalf("exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	if u := r.Usage[0]; u.Region != region || u.Category != usagemetrics.RecoveryCategory || u.Whose != "everyone" || u.State != "ok" ||
		!u.Minute.Equal(minute) || u.Calls != 1500 || u.Throttles != 42 {
		t.Fatalf("%+v", u)
	}

	// --watch: the figures once, not again on an unchanged sample.
	out, errOut, code = opsRun(t, e, "status", "--queue-url", e.QueueURL, "--usage-region", region, "--watch", "--count", "2", "--interval", "100ms")
	if code != 0 || strings.Count(out, "1500 calls/min, 42 throttled/min") != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}

	// By default the queue's Region (AWS_REGION for moto's URLs); its figures
	// are the worker test's, whatever they are when this runs.
	out, errOut, code = opsRun(t, e, "status", "--queue-url", e.QueueURL)
	if code != 0 || !strings.Contains(out, "\nusage      us-east-1  UserAccountRecovery ") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}

	out, errOut, code = opsRun(t, e, "status", "--queue-url", e.QueueURL, "--usage-region", "none")
	if code != 0 || strings.Contains(out, "\nusage ") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}
