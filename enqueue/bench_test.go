package enqueue

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/resetq/resetq/queue"
)

// slowSQS accepts every entry after a fixed latency per call.
type slowSQS struct {
	latency time.Duration
	n       atomic.Int64
}

func (s *slowSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if s.latency > 0 {
		time.Sleep(s.latency)
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String("m")})
	}
	s.n.Add(int64(len(in.Entries)))
	return out, nil
}

var benchLatency = 2 * time.Millisecond

// BenchmarkRun100k: 100,000 usernames from a file through the whole
// pipeline (read, build, validate, dedupe, batch) to an SQS that answers
// each call after 2ms, with 8 calls in flight.
func BenchmarkRun100k(b *testing.B) {
	var sb strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&sb, "user%06d@example.com\n", i)
	}
	file := sb.String()
	for b.Loop() {
		api := &slowSQS{latency: benchLatency}
		r, err := New(Config{Queue: queue.NewBatchSender(api, "http://q"), QueueURL: "http://q", Campaign: "c", Builder: Builder{Pool: pool}, Concurrency: 8})
		if err != nil {
			b.Fatal(err)
		}
		s, err := r.Run(context.Background(), func(_ context.Context, fn func(Input) error) error {
			return ReadFile(strings.NewReader(file), Lines, "", fn)
		})
		if err != nil || s.Enqueued != 100_000 {
			b.Fatalf("%+v %v", s, err)
		}
	}
}
