package e2e

import (
	"bufio"
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/resetq/resetq/awscheck"
	"github.com/resetq/resetq/internal/localserver"
	"github.com/resetq/resetq/internal/localserver/localservertest"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/usagemetrics"
)

// TestWorkUsageGauges: resetq work reads the Region of its jobs' pool in
// AWS/Usage (series published into moto with PutMetricData) and its gauges
// follow the series: the latest minute's calls and throttles. The first
// reading sets the limiter's start: real users made 20 calls/s of the
// quota's 30, so resetq starts under the 10/s they leave, not at three
// quarters of --rate.
func TestWorkUsageGauges(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "usage")
	ctx := context.Background()
	// A Region of its own: every worker of this test binary reads the shared
	// moto's AWS/Usage, and real users at 20/s in us-east-1 would slow the
	// other tests' workers there (TestWorkThrottled would see no throttle).
	const region = "ap-southeast-2"
	cfg, err := moto.Config(ctx, e.Moto.URL, region)
	if err != nil {
		t.Fatal(err)
	}
	pool, _, bodies := e.ConfirmedUsers(cfg, "usage", 1)
	now := time.Now().UTC().Truncate(time.Minute)
	category := usagemetrics.RecoveryCategory
	publish := func(at time.Time, metric string, v float64) {
		t.Helper()
		if _, err := awscheck.NewCloudWatch(cfg, region).PutMetricData(ctx, &cw.PutMetricDataInput{Namespace: aws.String(usagemetrics.Namespace),
			MetricData: []cwtypes.MetricDatum{{MetricName: aws.String(metric), Timestamp: aws.Time(at), Value: aws.Float64(v), Dimensions: []cwtypes.Dimension{
				{Name: aws.String("Service"), Value: aws.String(usagemetrics.Service)},
				{Name: aws.String("Type"), Value: aws.String("API")},
				{Name: aws.String("Resource"), Value: aws.String(category)},
				{Name: aws.String("Class"), Value: aws.String("None")},
			}}}}); err != nil {
			t.Fatal(err)
		}
	}
	publish(now.Add(-4*time.Minute), "CallCount", 1200)
	publish(now.Add(-4*time.Minute), "ThrottleCount", 7)
	// The status check's reads (on by default) are in UserRead: read too.
	category = usagemetrics.ReadCategory
	publish(now.Add(-4*time.Minute), "CallCount", 4800)
	category = usagemetrics.RecoveryCategory

	cmd := exec.Command(testenv.Binary(t), "work", "--log-format", "text", "--metrics-addr", "127.0.0.1:0", "--queue-url", e.QueueURL,
		"--pool", pool, "--usage-interval", "1s")
	cmd.Env = e.ChildEnv("AWS_ENDPOINT_URL_CLOUDWATCH=" + e.Moto.URL)
	var logs opsBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	localservertest.StopAtCleanup(t, cmd, 30*time.Second, "resetq", &logs)
	e.Send("usage", bodies...) // the Region's first job starts its readings
	var addr string
	testenv.Eventually(t, time.Minute, "resetq to say where it serves /metrics", func() bool {
		a, ok := localserver.MetricsAddr([]byte(logs.String()))
		addr = a
		return ok
	})

	labels := `{account="` + moto.Account + `",category="UserAccountRecovery",region="` + region + `"}`
	want := func(calls, throttles float64) func() bool {
		return func() bool {
			m := scrape(addr)
			return m["resetq_usage_calls_per_minute"+labels] == calls && m["resetq_usage_throttles_per_minute"+labels] == throttles
		}
	}
	testenv.Eventually(t, 60*time.Second, "the gauges of the published minute", want(1200, 7))
	testenv.Eventually(t, 30*time.Second, "the UserRead gauge", func() bool {
		return scrape(addr)[`resetq_usage_calls_per_minute{account="`+moto.Account+`",category="UserRead",region="`+region+`"}`] == 4800
	})
	// The start returns to what real users leave less 1.5/s over 2 minutes.
	testenv.Eventually(t, 10*time.Second, "a start under the 10/s real users leave, less 1.5", func() bool {
		limit := scrape(addr)[`resetq_ratelimit_limit{account="`+moto.Account+`",region="`+region+`"}`]
		return limit > 0 && limit < 8.5
	})
	publish(now.Add(-3*time.Minute), "CallCount", 1800) // a newer minute without throttles
	testenv.Eventually(t, 30*time.Second, "the gauges of the newer minute", want(1800, 0))
	if m := scrape(addr); m["resetq_usage_minute_timestamp_seconds"+labels] != float64(now.Add(-3*time.Minute).Unix()) {
		t.Fatalf("minute %v", m["resetq_usage_minute_timestamp_seconds"+labels])
	}
}

// scrape reads every sample of /metrics: "name{labels}" -> value.
func scrape(addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}
