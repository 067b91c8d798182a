// Package bench holds the benchmarks that need real parts (fauxqs); they
// run with `make bench`, never as tests.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// BenchmarkEnqueue100k times `resetq enqueue` (the built binary) putting
// 100,000 usernames from a file onto fauxqs, and checks that the queue then
// holds exactly 100,000 jobs. Issue 4's target: under 10 s on 2 cores.
func BenchmarkEnqueue100k(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	srv, err := fauxqs.Start(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cfg, err := moto.Config(ctx, srv.URL, "us-east-1")
	if err != nil {
		b.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)
	file := filepath.Join(b.TempDir(), "users.txt")
	f, _ := os.Create(file)
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, "user%06d@example.com\n", i)
	}
	w.Flush()
	f.Close()
	bin := filepath.Join(b.TempDir(), "resetq") // no -race: time what users run
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/resetq").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}

	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bench" + strconv.Itoa(i) + strconv.FormatInt(time.Now().UnixNano(), 36))})
		if err != nil {
			b.Fatal(err)
		}
		queueURL := aws.ToString(out.QueueUrl)
		cmd := exec.Command(bin, "enqueue", "--queue-url", queueURL, "--pool", "us-east-1_Bench1",
			"--from", file, "--format", "lines", "--campaign", "bench", "--output", "json")
		cmd.Env = []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL_SQS=" + srv.URL, "HOME=" + b.TempDir()}
		b.StartTimer()
		start := time.Now()
		stdout, err := cmd.Output()
		took := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatalf("enqueue: %v\n%s", err, stdout)
		}
		var sum struct {
			Enqueued int `json:"enqueued"`
		}
		if err := json.Unmarshal(stdout, &sum); err != nil || sum.Enqueued != n {
			b.Fatalf("summary %s: %v", stdout, err)
		}
		attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &queueURL,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
		if err != nil || attrs.Attributes["ApproximateNumberOfMessages"] != strconv.Itoa(n) {
			b.Fatalf("queue holds %v jobs (%v), want %d", attrs.Attributes, err, n)
		}
		b.ReportMetric(took.Seconds(), "s/100k")
		b.ReportMetric(n/took.Seconds(), "jobs/s")
		b.StartTimer()
	}
}
