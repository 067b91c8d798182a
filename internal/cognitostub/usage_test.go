package cognitostub

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"

	"github.com/resetq/resetq/awscheck"
	"github.com/resetq/resetq/internal/world"
	"github.com/resetq/resetq/usagemetrics"
)

// testClock is a settable clock, safe to read from the server's goroutines.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func awsConfig(t *testing.T, url string) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseEndpoint = aws.String(url)
	cfg.RetryMaxAttempts = 1
	return cfg
}

// minute is one expected point: its minute as "15:04" on t0's day, and
// its value.
type minute struct {
	at    string
	value float64
}

func points(pts []usagemetrics.Point) []minute {
	var out []minute
	for _, p := range pts {
		out = append(out, minute{p.At.UTC().Format("15:04"), p.Value})
	}
	return out
}

func at(hhmm string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", t0.Format("2006-01-02 ")+hhmm)
	if err != nil {
		panic(err)
	}
	return t
}

func equal(a, b []minute) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSDKUsage reads the stand-in's usage metrics with resetq's own
// reader (awscheck, the AWS Query protocol): a seeded history, then calls
// served over HTTP, each in its minute, only minutes that have ended, and
// no point for a minute without any.
func TestSDKUsage(t *testing.T) {
	t.Parallel()
	clk := &testClock{now: at("12:00:05")}
	srv := start(t, Config{Quota: 2, Now: clk.Now})
	ctx := context.Background()

	// History: real users evenly at 10/s from 11:54 to 11:58 under a
	// calendar second of 5: each minute 600 calls, 300 throttled; none in
	// 11:58 and 11:59.
	q, err := world.NewQuota(world.Second, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	u, err := world.NewUsers(world.Even, 10, at("11:54:00"), 7)
	if err != nil {
		t.Fatal(err)
	}
	srv.SeedUsage(q, u, at("11:58:00"))
	if st := srv.Stats(); st.Background.Calls != 0 {
		t.Errorf("the history counted as calls served: %+v", st.Background)
	}

	// Served at 12:00: three resets (the third throttled by the quota of
	// 2) and a real user's call, throttled; at 12:01:10 one reset.
	c := client(t, srv.URL)
	for i, user := range []string{"alice", "bob", "carol"} {
		clk.Set(at("12:00:05").Add(time.Duration(i) * 100 * time.Millisecond))
		if err := reset(ctx, c, user); (err != nil) != (user == "carol") {
			t.Fatalf("reset %s: %v", user, err)
		}
	}
	if srv.Admit(Background) {
		t.Fatal("a real user's call after two resets in the second: admitted, want throttled")
	}
	clk.Set(at("12:01:10"))
	if err := reset(ctx, c, "dave"); err != nil {
		t.Fatal(err)
	}

	usage := awscheck.New(awsConfig(t, srv.URL))
	read := func(metric string, start, end time.Time) []minute {
		t.Helper()
		pts, err := usage.Usage(ctx, "us-east-1", usagemetrics.Query{Category: usagemetrics.RecoveryCategory, Metric: metric,
			Start: start, End: end, Period: time.Minute})
		if err != nil {
			t.Fatalf("%s: %v", metric, err)
		}
		return points(pts)
	}
	history := []minute{{"11:54", 600}, {"11:55", 600}, {"11:56", 600}, {"11:57", 600}}
	throttled := []minute{{"11:54", 300}, {"11:55", 300}, {"11:56", 300}, {"11:57", 300}}
	for _, tt := range []struct {
		name, now, metric, start, end string
		want                          []minute
	}{
		{"12:01 has not ended", "12:01:30", "CallCount", "11:45:00", "12:05:00", append(history, minute{"12:00", 4})},
		{"throttles of each minute", "12:01:30", "ThrottleCount", "11:45:00", "12:05:00", append(throttled, minute{"12:00", 2})},
		{"12:01 has ended", "12:02:00", "CallCount", "11:45:00", "12:05:00", append(history, minute{"12:00", 4}, minute{"12:01", 1})},
		{"no throttle in 12:01: no point", "12:02:00", "ThrottleCount", "11:45:00", "12:05:00", append(throttled, minute{"12:00", 2})},
		{"start rounds down, end excludes", "12:02:00", "CallCount", "11:56:30", "12:00:00", []minute{{"11:56", 600}, {"11:57", 600}}},
		{"the last minute before now", "12:02:00", "CallCount", "11:58:00", "12:02:00", []minute{{"12:00", 4}, {"12:01", 1}}},
		{"nothing in range", "12:02:00", "CallCount", "11:58:00", "12:00:00", nil},
	} {
		clk.Set(at(tt.now))
		if got := read(tt.metric, at(tt.start), at(tt.end)); !equal(got, tt.want) {
			t.Errorf("%s: %s at %s from %s to %s:\n got %v\nwant %v", tt.name, tt.metric, tt.now, tt.start, tt.end, got, tt.want)
		}
	}
	if st := srv.Stats(); st.UsageReads != 7 || st.UsagePoints != 5+5+6+5+2+2 {
		t.Errorf("usage reads %d, points %d; want 7 and 25", st.UsageReads, st.UsagePoints)
	}
	srv.Reset()
	if got := read("CallCount", at("11:45:00"), at("12:05:00")); len(got) != 6 {
		t.Errorf("after Reset: %v, want the record kept", got)
	}
}

// TestUsageDelay: a minute shows UsageDelay after it ends.
func TestUsageDelay(t *testing.T) {
	t.Parallel()
	clk := &testClock{now: at("12:00:05")}
	srv := start(t, Config{UsageDelay: 3 * time.Minute, Now: clk.Now})
	srv.Admit(Background)
	usage := awscheck.New(awsConfig(t, srv.URL))
	for _, tt := range []struct {
		now  string
		want int
	}{{"12:00:59", 0}, {"12:03:59", 0}, {"12:04:00", 1}} {
		clk.Set(at(tt.now))
		pts, err := usage.Usage(context.Background(), "us-east-1", usagemetrics.Query{Category: usagemetrics.RecoveryCategory,
			Metric: "CallCount", Start: at("11:50:00"), End: at("12:10:00"), Period: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != tt.want {
			t.Errorf("at %s with a delay of 3m: %d points of 12:00, want %d", tt.now, len(pts), tt.want)
		}
	}
}

// TestGetMetricDataQueries: other metrics have no data, the default scan
// is newest first, a period sums its minutes, and what the stand-in does
// not serve is an error.
func TestGetMetricDataQueries(t *testing.T) {
	t.Parallel()
	clk := &testClock{}
	srv := start(t, Config{Now: clk.Now})
	for _, hhmm := range []string{"12:00:10", "12:01:10", "12:01:20", "12:05:10"} {
		clk.Set(at(hhmm))
		srv.Admit(Worker)
	}
	clk.Set(at("12:10:00"))
	cfg := awsConfig(t, srv.URL)
	client := awscheck.NewCloudWatch(cfg, cfg.Region)
	dims := func(resource string) []cwtypes.Dimension {
		var out []cwtypes.Dimension
		for _, d := range [][2]string{{"Service", "Cognito User Pools"}, {"Type", "API"}, {"Resource", resource}, {"Class", "None"}} {
			out = append(out, cwtypes.Dimension{Name: aws.String(d[0]), Value: aws.String(d[1])})
		}
		return out
	}
	query := func(id, namespace, metric string, dims []cwtypes.Dimension, period int32, stat string) cwtypes.MetricDataQuery {
		return cwtypes.MetricDataQuery{Id: aws.String(id), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String(namespace), MetricName: aws.String(metric), Dimensions: dims},
			Period: aws.Int32(period), Stat: aws.String(stat)}}
	}
	out, err := client.GetMetricData(context.Background(), &cw.GetMetricDataInput{
		StartTime: aws.Time(at("12:00:00")), EndTime: aws.Time(at("12:10:00")),
		MetricDataQueries: []cwtypes.MetricDataQuery{
			query("calls", "AWS/Usage", "CallCount", dims("UserAccountRecovery"), 60, "Sum"),
			query("fives", "AWS/Usage", "CallCount", dims("UserAccountRecovery"), 300, "Sum"),
			query("list", "AWS/Usage", "CallCount", dims("UserList"), 60, "Sum"),
			query("cognito", "AWS/Cognito", "CallCount", dims("UserAccountRecovery"), 60, "Sum"),
			query("partial", "AWS/Usage", "CallCount", dims("UserAccountRecovery")[:3], 60, "Sum"),
		}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]minute{
		"calls":   {{"12:05", 1}, {"12:01", 2}, {"12:00", 1}},
		"fives":   {{"12:05", 1}, {"12:00", 3}},
		"list":    nil,
		"cognito": nil,
		"partial": nil,
	}
	if len(out.MetricDataResults) != len(want) {
		t.Fatalf("%d results, want %d", len(out.MetricDataResults), len(want))
	}
	for _, r := range out.MetricDataResults {
		var got []minute
		for i := range r.Timestamps {
			got = append(got, minute{r.Timestamps[i].UTC().Format("15:04"), r.Values[i]})
		}
		id := aws.ToString(r.Id)
		if !equal(got, want[id]) || r.StatusCode != cwtypes.StatusCodeComplete || aws.ToString(r.Label) != "CallCount" {
			t.Errorf("%s: %v, status %s, label %q; want %v, Complete, CallCount", id, got, r.StatusCode, aws.ToString(r.Label), want[id])
		}
	}

	for name, q := range map[string]cwtypes.MetricDataQuery{
		"Average": query("m", "AWS/Usage", "CallCount", dims("UserAccountRecovery"), 60, "Average"),
		"Period":  query("m", "AWS/Usage", "CallCount", dims("UserAccountRecovery"), 90, "Sum"),
	} {
		_, err := client.GetMetricData(context.Background(), &cw.GetMetricDataInput{
			StartTime: aws.Time(at("12:00:00")), EndTime: aws.Time(at("12:10:00")), MetricDataQueries: []cwtypes.MetricDataQuery{q}})
		var invalid *cwtypes.InvalidParameterValueException // CloudWatch's code InvalidParameterValue
		if !errors.As(err, &invalid) {
			t.Errorf("%s: %v, want *types.InvalidParameterValueException", name, err)
		}
	}
	_, err = client.ListMetrics(context.Background(), &cw.ListMetricsInput{})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidAction" {
		t.Errorf("ListMetrics: %v, want InvalidAction", err)
	}
}

// TestCognitoBesideCloudWatch: a JSON call is still Cognito's, whatever
// the form route does.
func TestCognitoBesideCloudWatch(t *testing.T) {
	t.Parallel()
	srv := start(t, Config{})
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("Action=GetMetricData&Version=2010-08-01"))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", targetPrefix+"AdminResetUserPassword")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Amzn-ErrorType") != "SerializationException" {
		t.Errorf("a JSON call with a form body: error type %q, want SerializationException", resp.Header.Get("X-Amzn-ErrorType"))
	}
	if st := srv.Stats(); st.UsageReads != 0 {
		t.Errorf("a Cognito call was read as GetMetricData: %+v", st)
	}
}
