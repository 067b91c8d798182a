// Package bench holds the benchmarks that need real parts (fauxqs); they
// run with `make bench`, never as tests.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/internal/fauxqs"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// enqueueBench is fauxqs, a Cognito that describes every pool as one whose
// usernames are not case-sensitive, the resetq binary built without -race
// (time what users run) and a file of n usernames.
type enqueueBench struct {
	url, cognitoURL string
	client          *sqs.Client
	bin             string
	file            string
}

func newEnqueueBench(b *testing.B, n int) *enqueueBench {
	b.Helper()
	ctx := context.Background()
	srv, err := fauxqs.Start(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	cfg, err := moto.Config(ctx, srv.URL, "us-east-1")
	if err != nil {
		b.Fatal(err)
	}
	cognito := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprint(w, `{"UserPool":{"Id":"us-east-1_Bench1","UsernameConfiguration":{"CaseSensitive":false}}}`)
	}))
	b.Cleanup(cognito.Close)
	e := &enqueueBench{url: srv.URL, cognitoURL: cognito.URL, client: sqs.NewFromConfig(cfg),
		bin: filepath.Join(b.TempDir(), "resetq"), file: filepath.Join(b.TempDir(), "users.txt")}
	f, err := os.Create(e.file)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, "user%08d@example.com\n", i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("go", "build", "-o", e.bin, "../../cmd/resetq").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	return e
}

func (e *enqueueBench) queue(b *testing.B) string {
	b.Helper()
	out, err := e.client.CreateQueue(context.Background(), &sqs.CreateQueueInput{
		QueueName: aws.String("bench" + strconv.FormatInt(time.Now().UnixNano(), 36))})
	if err != nil {
		b.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

// enqueueRun is one `resetq enqueue`: its summary, wall time and peak RSS.
type enqueueRun struct {
	Enqueued     int `json:"enqueued"`
	WouldEnqueue int `json:"would_enqueue"`
	took         time.Duration
	maxRSSMiB    float64
}

// run runs `resetq enqueue` of the file onto queueURL with extra flags,
// the timer on only while it runs.
func (e *enqueueBench) run(b *testing.B, queueURL string, extra ...string) enqueueRun {
	b.Helper()
	cmd := exec.Command(e.bin, append([]string{"enqueue", "--queue-url", queueURL, "--pool", "us-east-1_Bench1",
		"--from", e.file, "--format", "lines", "--campaign", "bench", "--output", "json"}, extra...)...)
	cmd.Env = []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL_SQS=" + e.url,
		"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + e.cognitoURL, "HOME=" + b.TempDir()}
	b.StartTimer()
	start := time.Now()
	stdout, err := cmd.Output()
	took := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("enqueue: %v\n%s", err, stdout)
	}
	var r enqueueRun
	if err := json.Unmarshal(stdout, &r); err != nil {
		b.Fatalf("summary %s: %v", stdout, err)
	}
	r.took = took
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSSMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	return r
}

func (e *enqueueBench) depth(b *testing.B, queueURL string) string {
	b.Helper()
	attrs, err := e.client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &queueURL,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		b.Fatal(err)
	}
	return attrs.Attributes["ApproximateNumberOfMessages"]
}

// BenchmarkEnqueue100k times `resetq enqueue` (the built binary) putting
// 100,000 usernames from a file onto fauxqs, and checks that the queue then
// holds exactly 100,000 jobs. The target: under 10 s on 2 cores.
func BenchmarkEnqueue100k(b *testing.B) {
	const n = 100_000
	e := newEnqueueBench(b, n)
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		q := e.queue(b)
		r := e.run(b, q)
		if r.Enqueued != n {
			b.Fatalf("enqueued %d, want %d", r.Enqueued, n)
		}
		if d := e.depth(b, q); d != strconv.Itoa(n) {
			b.Fatalf("queue holds %s jobs, want %d", d, n)
		}
		b.ReportMetric(r.took.Seconds(), "s/100k")
		b.ReportMetric(n/r.took.Seconds(), "jobs/s")
		b.ReportMetric(r.maxRSSMiB, "MiB-maxrss")
	}
}

// BenchmarkEnqueue10M reads 10 million distinct usernames with
// `resetq enqueue --dry-run`: every line read, validated, lower-cased and
// deduplicated, nothing sent. It reports the wall time and the process's peak RSS,
// which the set of users seen dominates.
func BenchmarkEnqueue10M(b *testing.B) {
	const n = 10_000_000
	e := newEnqueueBench(b, n)
	q := e.queue(b)
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		r := e.run(b, q, "--dry-run")
		if r.WouldEnqueue != n {
			b.Fatalf("would enqueue %d, want %d", r.WouldEnqueue, n)
		}
		b.ReportMetric(r.took.Seconds(), "s/10M")
		b.ReportMetric(r.maxRSSMiB, "MiB-maxrss")
	}
}
