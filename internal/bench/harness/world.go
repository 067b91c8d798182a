package main

import (
	"context"
	"fmt"
	"github.com/resetq/resetq/job"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/cognitostub"
	"github.com/resetq/resetq/internal/fauxqs"
)

// pool is the user pool of every job.
const pool = "us-east-1_bench"

// world is what every scenario runs against: the built resetq, fauxqs with
// a counting proxy in front, and the Cognito stand-in.
type world struct {
	dir    string // temporary: the binary, logs, HOME
	bin    string
	fauxqs *fauxqs.Server
	proxy  *awsproxy.Server // in front of fauxqs: counts the worker's SQS calls
	stub   *cognitostub.Server
	sqs    *sqs.Client // straight to fauxqs: enqueueing is not counted
	cfg    aws.Config  // static credentials, us-east-1
	// seq numbers queues, tables and logs; shared by the worlds withStub
	// makes, whose runs share the folder and fauxqs.
	seq *atomic.Int64
	// latency is the stand-in's answer latency (-latency), for the
	// stand-ins withStub's callers start.
	latency time.Duration
	// campaign is the resetq.campaign attribute of the jobs newQueues
	// enqueues ("": none).
	campaign string
	// body is the i-th job's body (nil: jobBody(username(i)), in pool).
	body func(i int) string
	// env is more variables for every resetq process (a scenario's
	// endpoints); one named above replaces it.
	env []string
	// keepLogs is a folder to keep every resetq process's log in ("":
	// logs go with the temporary folder, kept only for a failed run's
	// error).
	keepLogs string
	// gauges: each resetq process's pacing gauges are read every second
	// (row.Gauges).
	gauges bool
	// redisMissing is "" when `resetq work` has --redis-url and --fleet-size,
	// else why the Redis row cannot run.
	redisMissing string
}

func newWorld(ctx context.Context, root string, latency time.Duration, keepLogs string) (*world, error) {
	w := &world{keepLogs: keepLogs, seq: new(atomic.Int64), latency: latency}
	var err error
	if w.dir, err = os.MkdirTemp("", "resetq-bench-"); err != nil {
		return nil, err
	}
	w.bin = filepath.Join(w.dir, "resetq")
	build := exec.CommandContext(ctx, "go", "build", "-o", w.bin, "./cmd/resetq") // no -race: measure what users run
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		w.close()
		return nil, fmt.Errorf("build resetq: %v\n%s", err, out)
	}
	help, _ := exec.CommandContext(ctx, w.bin, "work", "--help").CombinedOutput()
	w.redisMissing = missingFlags(string(help), "--redis-url", "--fleet-size")
	if w.fauxqs, err = fauxqs.Start(ctx); err != nil {
		w.close()
		return nil, err
	}
	if w.proxy, err = awsproxy.Start(w.fauxqs.URL); err != nil {
		w.close()
		return nil, err
	}
	if w.stub, err = cognitostub.Start(cognitostub.Config{Latency: latency}); err != nil {
		w.close()
		return nil, err
	}
	if w.cfg, err = config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", ""))); err != nil {
		w.close()
		return nil, err
	}
	w.sqs = sqs.NewFromConfig(w.cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(w.fauxqs.URL) })
	return w, nil
}

// withStub is a world like w, but for stub instead of w's stand-in: its
// runs share w's binary, folder, fauxqs and SQS proxy, and their own
// stand-in lets runs go on at once, each in its own quota (scenario 8).
// It has no campaign, job bodies or environment of its own; closing stub
// is the caller's.
func (w *world) withStub(stub *cognitostub.Server) *world {
	return &world{dir: w.dir, bin: w.bin, fauxqs: w.fauxqs, proxy: w.proxy, stub: stub, sqs: w.sqs, cfg: w.cfg,
		seq: w.seq, latency: w.latency, keepLogs: w.keepLogs, redisMissing: w.redisMissing}
}

func (w *world) close() {
	if w.stub != nil {
		w.stub.Close()
	}
	if w.proxy != nil {
		w.proxy.Close()
	}
	if w.fauxqs != nil {
		w.fauxqs.Close()
	}
	os.RemoveAll(w.dir)
}

// queues is a source queue and its DLQ on fauxqs.
type queues struct{ url, dlq string }

// newQueues creates a fresh queue and DLQ (no RedrivePolicy: resetq gets
// --dlq-url) and fills the queue with n jobs for user000000, user000001...
func (w *world) newQueues(ctx context.Context, n int) (queues, error) {
	name := "bench" + strconv.FormatInt(w.seq.Add(1), 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var q queues
	for _, p := range []struct {
		name string
		url  *string
	}{{name, &q.url}, {name + "-dlq", &q.dlq}} {
		out, err := w.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(p.name)})
		if err != nil {
			return q, fmt.Errorf("create queue %s: %w", p.name, err)
		}
		*p.url = aws.ToString(out.QueueUrl)
	}
	return q, w.enqueue(ctx, q.url, n)
}

// enqueue sends n jobs in SendMessageBatch calls of 10, 8 at a time.
func (w *world) enqueue(ctx context.Context, queueURL string, n int) error {
	batches := make(chan int)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := range batches {
				var entries []sqstypes.SendMessageBatchRequestEntry
				for i := first; i < min(first+10, n); i++ {
					entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
						Id:                aws.String(strconv.Itoa(i - first)),
						MessageBody:       aws.String(w.jobBody(i)),
						MessageAttributes: w.jobAttributes(),
					})
				}
				out, err := w.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &queueURL, Entries: entries})
				if err == nil && len(out.Failed) > 0 {
					err = fmt.Errorf("%d entries failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
				}
				if err != nil {
					errs <- fmt.Errorf("enqueue: %w", err)
					return
				}
			}
		}()
	}
	var err error
send:
	for first := 0; first < n; first += 10 {
		select {
		case batches <- first:
		case err = <-errs:
			break send
		}
	}
	close(batches)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

func (w *world) deleteQueues(ctx context.Context, q queues) {
	for _, u := range []string{q.url, q.dlq} {
		_, _ = w.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
	}
}

// depth is a queue's messages: visible + in flight + delayed.
func (w *world) depth(ctx context.Context, queueURL string) (int, error) {
	out, err := w.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &queueURL,
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages",
			"ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"}})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, v := range out.Attributes {
		n, _ := strconv.Atoi(v)
		total += n
	}
	return total, nil
}

// sqsCalls is the total of the proxy's forwarded SQS calls so far.
func (w *world) sqsCalls() int {
	total := 0
	for _, n := range w.proxy.Stats().Forwarded {
		total += n
	}
	return total
}

// jobAttributes are the message attributes of every job: the campaign's,
// if any.
func (w *world) jobAttributes() map[string]sqstypes.MessageAttributeValue {
	if w.campaign == "" {
		return nil
	}
	return map[string]sqstypes.MessageAttributeValue{
		job.AttrCampaign: {DataType: aws.String("String"), StringValue: aws.String(w.campaign)},
	}
}

// jobBody is the i-th job's body.
func (w *world) jobBody(i int) string {
	if w.body != nil {
		return w.body(i)
	}
	return jobBody(username(i))
}

func username(i int) string { return fmt.Sprintf("user%06d", i) }

func jobBody(user string) string {
	return job.MustBody(pool, user)
}
