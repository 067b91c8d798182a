package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/metrics"
	"github.com/resetq/resetq/queue"
)

func TestMain(m *testing.M) { mototest.Main(m) }

const region = "us-east-1"

// env is a real SQS client for the shared moto server and a pair of queues
// (source with a RedrivePolicy, and its DLQ) named after the test.
type env struct {
	srv    *moto.Server
	cfg    aws.Config
	client *sqs.Client
	name   string
	url    string // source queue
	dlqURL string
}

// newEnv creates the test's queues with maxReceiveCount 5 and a 30 s
// visibility timeout.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, 5, 30*time.Second)
}

func newEnvWith(t *testing.T, maxReceiveCount int, visibility time.Duration) *env {
	t.Helper()
	srv := mototest.Shared(t)
	cfg, err := moto.Config(t.Context(), srv.URL, region)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName(t)
	url, dlqURL, err := moto.CreateQueues(t.Context(), cfg, name, maxReceiveCount, visibility)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, cfg: cfg, client: sqs.NewFromConfig(cfg), name: name, url: url, dlqURL: dlqURL}
}

// queueSeq numbers the queues of this process: with -count=N a test runs
// again on the same shared server and must not find its old queues.
var queueSeq atomic.Int64

// uniqueName gives each test run its own queues on the shared server (SQS
// queue names allow alphanumerics, - and _, at most 80 characters; the
// longest suffix added is "-f.fifo" or "-missing").
func uniqueName(t *testing.T) string {
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	if len(name) > 50 {
		name = name[:50]
	}
	return name + "-" + strconv.FormatInt(queueSeq.Add(1), 10)
}

func (e *env) queue() *queue.Queue { return queue.New(e.client, e.url, nil) }

// sendN sends n messages with bodies prefix-0 ... prefix-(n-1), each
// exactly once. SQS is at-least-once: the SDK resends a SendMessage whose
// response was lost (moto under a parallel test load has done so once), and
// the queue then holds a duplicate that breaks the exact counts these tests
// check. So sendN sends without the SDK's retries and, after a failed send,
// reads the queue's depth (exact on moto) to learn whether the message got in
// before it sends again.
func (e *env) sendN(t *testing.T, prefix string, n int) []string {
	t.Helper()
	client := sqs.NewFromConfig(e.cfg, func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
	q := queue.New(client, e.url, nil)
	bodies := make([]string, n)
	for i := range n {
		bodies[i] = fmt.Sprintf("%s-%d", prefix, i)
		for try := 1; ; try++ {
			err := q.Send(t.Context(), job.Outgoing{Body: bodies[i]})
			if err == nil {
				break
			}
			d, derr := q.Depth(t.Context())
			if derr != nil {
				t.Fatalf("send %d: %v; then depth: %v", i, err, derr)
			}
			if d.Visible+d.InFlight+d.Delayed == int64(i+1) {
				t.Logf("send %d: %v, but moto has it: not sent again", i, err)
				break
			}
			if try == 3 {
				t.Fatalf("send %d: %v (try %d)", i, err, try)
			}
			t.Logf("send %d: %v; sending again", i, err)
		}
	}
	return bodies
}

// receiveAll receives until it holds n messages (each receive waits at
// most 1 s; at most 10 receives), and fails if more than n arrive.
func receiveAll(t *testing.T, q *queue.Queue, n int) []job.Message {
	t.Helper()
	var got []job.Message
	for try := 0; len(got) < n && try < 10; try++ {
		msgs, err := q.Receive(t.Context(), 10, time.Second, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	if len(got) != n {
		t.Fatalf("received %d messages, want %d: %s", len(got), n, describe(got))
	}
	return got
}

// describe names each message by body, ID and receive count, so that a
// failure tells a duplicated send (one body, two IDs) from a redelivery.
func describe(msgs []job.Message) string {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = fmt.Sprintf("%s (id %s, received %d)", m.Body, m.ID, m.ReceiveCount)
	}
	return strings.Join(parts, ", ")
}

func receipts(msgs []job.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ReceiptHandle
	}
	return out
}

func bodies(msgs []job.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Body
	}
	slices.Sort(out)
	return out
}

func assertDepth(t *testing.T, q *queue.Queue, want metrics.Depth) {
	t.Helper()
	got, err := q.Depth(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Depth() = %+v, want %+v", got, want)
	}
}

// assertNoFailures fails unless a batch call succeeded for every entry.
func assertNoFailures(t *testing.T, op string, failed map[string]error, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	if len(failed) != 0 {
		t.Fatalf("%s: failed entries %v, want none", op, failed)
	}
}

// TestSendReceiveAttributes sends a message with each kind of attribute and
// checks that Receive gives back the body and attributes unchanged, the
// IDs and the receive count, and that the count goes up on redelivery.
func TestSendReceiveAttributes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := e.queue()
	ctx := t.Context()

	body := `{"UserPoolId":"us-east-1_AbC123","Username":"ålice@example.com","ClientMetadata":{"k":"v"}}`
	attrs := map[string]job.Attribute{
		"resetq.campaign": {DataType: "String", StringValue: "spring-2026"},
		"resetq.attempts": {DataType: "Number", StringValue: "3"},
		"decimal":         {DataType: "Number", StringValue: "-12.5"},
		"blob":            {DataType: "Binary", BinaryValue: []byte{0x00, 0x01, 0xfe, 0xff, 'x'}},
		"custom":          {DataType: "String.x", StringValue: "custom value ✓"},
	}
	if err := q.Send(ctx, job.Outgoing{Body: body, Attributes: attrs, Delay: 0}); err != nil {
		t.Fatal(err)
	}

	msgs, err := q.Receive(ctx, 10, time.Second, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Body != body {
		t.Errorf("Body = %q, want %q", m.Body, body)
	}
	if m.ID == "" || m.ReceiptHandle == "" {
		t.Errorf("ID = %q, ReceiptHandle = %q: want both set", m.ID, m.ReceiptHandle)
	}
	if m.ReceiveCount != 1 {
		t.Errorf("ReceiveCount = %d, want 1", m.ReceiveCount)
	}
	assertAttributes(t, m.Attributes, attrs)
	if got := m.Campaign(); got != "spring-2026" {
		t.Errorf("Campaign() = %q, want spring-2026", got)
	}
	assertDepth(t, q, metrics.Depth{InFlight: 1})

	// Make it visible at once and receive it again.
	failed, err := q.ChangeVisibility(ctx, []string{m.ReceiptHandle}, 0)
	assertNoFailures(t, "ChangeVisibility", failed, err)
	again, err := q.Receive(ctx, 10, time.Second, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 {
		t.Fatalf("second receive got %d messages, want 1", len(again))
	}
	m2 := again[0]
	if m2.ID != m.ID || m2.Body != body {
		t.Errorf("second receive: ID %q body %q, want ID %q and the same body", m2.ID, m2.Body, m.ID)
	}
	if m2.ReceiveCount != 2 {
		t.Errorf("second receive: ReceiveCount = %d, want 2", m2.ReceiveCount)
	}
	if m2.ReceiptHandle == "" {
		t.Error("second receive: no ReceiptHandle")
	}
	assertAttributes(t, m2.Attributes, attrs)
}

// TestSendWithoutAttributes checks that a message without attributes comes
// back with none (nil map), as the worker's withAttributes expects.
func TestSendWithoutAttributes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := e.queue()
	if err := q.Send(t.Context(), job.Outgoing{Body: "plain"}); err != nil {
		t.Fatal(err)
	}
	m := receiveAll(t, q, 1)[0]
	if m.Body != "plain" || len(m.Attributes) != 0 {
		t.Errorf("got body %q attributes %v, want plain and none", m.Body, m.Attributes)
	}
}

func assertAttributes(t *testing.T, got, want map[string]job.Attribute) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d attributes %v, want %d", len(got), got, len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("attribute %q missing", k)
		case g.DataType != w.DataType || g.StringValue != w.StringValue || !bytes.Equal(g.BinaryValue, w.BinaryValue):
			t.Errorf("attribute %q = {%s %q %x}, want {%s %q %x}",
				k, g.DataType, g.StringValue, g.BinaryValue, w.DataType, w.StringValue, w.BinaryValue)
		}
	}
}

// TestReceiveAtMostMax sends 15 messages: a receive of 10 gets at most 10,
// a receive of 3 at most 3, and all 15 come out exactly once.
func TestReceiveAtMostMax(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := e.queue()
	ctx := t.Context()
	sent := e.sendN(t, "m", 15)

	first, err := q.Receive(ctx, 10, time.Second, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) == 0 || len(first) > 10 {
		t.Fatalf("Receive(max 10) got %d messages, want 1-10", len(first))
	}
	small, err := q.Receive(ctx, 3, time.Second, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(small) > 3 {
		t.Fatalf("Receive(max 3) got %d messages, want at most 3", len(small))
	}
	got := append(first, small...)
	got = append(got, receiveAll(t, q, 15-len(got))...)
	if b := bodies(got); !slices.Equal(b, sortedCopy(sent)) {
		t.Errorf("received bodies %q, want %q", b, sortedCopy(sent))
	}
	assertDepth(t, q, metrics.Depth{InFlight: 15})
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// TestDeleteBatch deletes a batch of received messages: nothing fails and
// the queue is empty afterwards.
func TestDeleteBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := e.queue()
	e.sendN(t, "d", 10)
	msgs := receiveAll(t, q, 10)
	assertDepth(t, q, metrics.Depth{InFlight: 10})

	failed, err := q.Delete(t.Context(), receipts(msgs))
	assertNoFailures(t, "Delete", failed, err)
	assertDepth(t, q, metrics.Depth{})
}

// TestDeleteBogusReceipt deletes good receipt handles with a bogus one in
// the middle: exactly the bogus one fails, the good ones are deleted.
func TestDeleteBogusReceipt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := e.queue()
	e.sendN(t, "d", 3)
	msgs := receiveAll(t, q, 3)

	const bogus = "bogus-receipt-handle"
	batch := []string{msgs[0].ReceiptHandle, bogus, msgs[1].ReceiptHandle, msgs[2].ReceiptHandle}
	failed, err := q.Delete(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[bogus] == nil {
		t.Fatalf("Delete failures = %v, want exactly the bogus receipt handle", failed)
	}
	t.Logf("moto's failure for a bogus receipt handle: %v", failed[bogus])
	assertDepth(t, q, metrics.Depth{})
}

// TestChangeVisibility hides received messages, makes them visible with a
// timeout of 0 and receives them again; a bogus receipt handle fails alone.
func TestChangeVisibility(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := e.queue()
	ctx := t.Context()
	e.sendN(t, "v", 3)
	msgs := receiveAll(t, q, 3)
	assertDepth(t, q, metrics.Depth{InFlight: 3})
	// Nothing is visible while they are held.
	if none, err := q.Receive(ctx, 10, 0, 30*time.Second); err != nil || len(none) != 0 {
		t.Fatalf("receive while hidden: %d messages, %v; want none", len(none), err)
	}

	failed, err := q.ChangeVisibility(ctx, receipts(msgs[:2]), 0)
	assertNoFailures(t, "ChangeVisibility", failed, err)
	assertDepth(t, q, metrics.Depth{Visible: 2, InFlight: 1})

	again := receiveAll(t, q, 2)
	if got, want := bodies(again), bodies(msgs[:2]); !slices.Equal(got, want) {
		t.Errorf("received again %q, want %q", got, want)
	}
	for _, m := range again {
		if m.ReceiveCount != 2 {
			t.Errorf("%s: ReceiveCount = %d, want 2", m.Body, m.ReceiveCount)
		}
	}

	const bogus = "bogus-receipt-handle"
	batch := []string{again[0].ReceiptHandle, bogus, again[1].ReceiptHandle}
	failed, err = q.ChangeVisibility(ctx, batch, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[bogus] == nil {
		t.Fatalf("ChangeVisibility failures = %v, want exactly the bogus receipt handle", failed)
	}
	t.Logf("moto's failure for a bogus receipt handle: %v", failed[bogus])
	// The good entries of that batch took effect.
	assertDepth(t, q, metrics.Depth{Visible: 2, InFlight: 1})
}

// TestSendDelayed checks that a message sent with a delay counts as
// delayed and cannot be received yet.
func TestSendDelayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := e.queue()
	ctx := t.Context()
	if err := q.Send(ctx, job.Outgoing{Body: "later", Delay: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	assertDepth(t, q, metrics.Depth{Delayed: 1})
	msgs, err := q.Receive(ctx, 10, 0, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Errorf("received %d messages during the delay, want none", len(msgs))
	}
}

// TestSettings reads the visibility timeout and RedrivePolicy of a queue
// and of its DLQ (which has none) and resolves the DLQ's ARN to its URL.
func TestSettings(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, 7, 45*time.Second)
	ctx := t.Context()

	attrs, err := e.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(e.dlqURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatal(err)
	}
	dlqARN := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if !strings.HasPrefix(dlqARN, "arn:aws:sqs:"+region+":") || !strings.HasSuffix(dlqARN, ":"+e.name+"-dlq") {
		t.Fatalf("DLQ ARN %q is not the ARN of %s-dlq", dlqARN, e.name)
	}

	s, err := e.queue().Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := queue.Settings{Visibility: 45 * time.Second, DLQARN: dlqARN, MaxReceiveCount: 7, FIFO: false}
	if s != want {
		t.Errorf("Settings() = %+v, want %+v", s, want)
	}

	dlqSettings, err := queue.New(e.client, e.dlqURL, nil).Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The DLQ has moto's (and SQS's) default visibility timeout and no RedrivePolicy.
	if want := (queue.Settings{Visibility: 30 * time.Second}); dlqSettings != want {
		t.Errorf("DLQ Settings() = %+v, want %+v", dlqSettings, want)
	}

	got, err := queue.URLForARN(ctx, e.client, s.DLQARN)
	if err != nil {
		t.Fatal(err)
	}
	if got != e.dlqURL {
		t.Errorf("URLForARN(%s) = %q, want %q", s.DLQARN, got, e.dlqURL)
	}
}

// TestARN: one queue has one ARN however its URL is spelled.
func TestARN(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	arn, err := e.queue().ARN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:sqs:" + region + ":123456789012:" + e.name; arn != want {
		t.Fatalf("ARN() = %q, want %q", arn, want)
	}
	other := strings.Replace(strings.Replace(e.url, "http://", "https://", 1), "127.0.0.1", "localhost", 1)
	if got, err := queue.New(e.client, other, nil).ARN(ctx); err != nil || got != arn {
		t.Fatalf("ARN() of %s = %q, %v; want %q", other, got, err, arn)
	}
	if dlq, err := queue.New(e.client, e.dlqURL, nil).ARN(ctx); err != nil || dlq == arn {
		t.Fatalf("ARN() of the DLQ = %q, %v", dlq, err)
	}
}

// TestSettingsFIFO checks that a FIFO queue reports FIFO, which the worker
// refuses at start-up.
func TestSettingsFIFO(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	out, err := e.client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(e.name + "-f.fifo"),
		Attributes: map[string]string{string(sqstypes.QueueAttributeNameFifoQueue): "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := queue.New(e.client, aws.ToString(out.QueueUrl), nil).Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (queue.Settings{Visibility: 30 * time.Second, FIFO: true}); s != want {
		t.Errorf("FIFO Settings() = %+v, want %+v", s, want)
	}
}

// startupCodes are the API error codes cmd/resetq's startupError turns into
// a configuration error (exit 2).
var startupCodes = []string{"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "AccessDenied",
	"AccessDeniedException", "InvalidAddress", "InvalidClientTokenId", "UnrecognizedClientException"}

// TestSettingsMissingQueue checks the error for a queue that does not
// exist: an API error whose code the worker reports as a configuration error.
func TestSettingsMissingQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	missing := strings.TrimSuffix(e.url, e.name) + e.name + "-missing"
	_, err := queue.New(e.client, missing, nil).Settings(ctx)
	if err == nil {
		t.Fatal("Settings of a missing queue: no error")
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("Settings of a missing queue: %v is not an API error", err)
	}
	t.Logf("missing queue: code %q, message %q", apiErr.ErrorCode(), apiErr.ErrorMessage())
	if !slices.Contains(startupCodes, apiErr.ErrorCode()) {
		t.Errorf("code %q is not one startupError maps to exit 2 (%v)", apiErr.ErrorCode(), startupCodes)
	}
	var notExist *sqstypes.QueueDoesNotExist
	if !errors.As(err, &notExist) {
		t.Errorf("%v is not a *types.QueueDoesNotExist", err)
	}
	if !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q does not name the queue URL", err)
	}

	// The ARN of a missing queue fails to resolve, also with an API error.
	arn := "arn:aws:sqs:" + region + ":123456789012:" + e.name + "-missing"
	_, err = queue.URLForARN(ctx, e.client, arn)
	if !errors.As(err, &apiErr) || !slices.Contains(startupCodes, apiErr.ErrorCode()) {
		t.Errorf("URLForARN(%s): %v, want an API error with a code in %v", arn, err, startupCodes)
	}
}

// TestURLForARNInvalid checks that strings which are not SQS queue ARNs are
// refused without a call.
func TestURLForARNInvalid(t *testing.T) {
	t.Parallel()
	for _, arn := range []string{"", "queue", "arn:aws:sns:us-east-1:123456789012:topic",
		"arn:aws:sqs:us-east-1:123456789012:", "arn:aws:sqs:us-east-1:123456789012:a:b"} {
		// A nil API would panic if it were called.
		if _, err := queue.URLForARN(t.Context(), nil, arn); err == nil || !strings.Contains(err.Error(), "is not an SQS queue ARN") {
			t.Errorf("URLForARN(%q) = %v, want a not-an-ARN error", arn, err)
		}
	}
}

// TestMetrics checks that the adapter counts its calls by operation and result.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	m := metrics.New(prometheus.NewRegistry(), "test")
	q := queue.New(e.client, e.url, m)
	count := func(op, result string) float64 {
		return testutil.ToFloat64(m.SQSRequests.WithLabelValues(op, result))
	}

	if err := q.Send(ctx, job.Outgoing{Body: "x"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := q.Receive(ctx, 10, 0, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Depth(ctx); err != nil {
		t.Fatal(err)
	}
	missing := queue.New(e.client, e.url+"-missing", m)
	if _, err := missing.Receive(ctx, 10, 0, 30*time.Second); err == nil {
		t.Fatal("receive from a missing queue: no error")
	}

	for _, c := range []struct {
		op, result string
		want       float64
	}{
		{"ReceiveMessage", "ok", 3},
		{"ReceiveMessage", "error", 1},
		{"SendMessage", "ok", 1},
		{"GetQueueAttributes", "ok", 1},
		{"DeleteMessageBatch", "ok", 0},
	} {
		if got := count(c.op, c.result); got != c.want {
			t.Errorf("resetq_sqs_requests_total{operation=%q,result=%q} = %v, want %v", c.op, c.result, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.SQSDuration, "resetq_sqs_request_duration_seconds"); n != 3 {
		t.Errorf("resetq_sqs_request_duration_seconds has %d series, want 3 (one per operation)", n)
	}
}

// TestContextCanceled checks that a receive with a canceled context fails
// with context.Canceled, which the worker treats as shutdown.
func TestContextCanceled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.queue().Receive(ctx, 10, time.Second, 30*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Receive with a canceled context: %v, want context.Canceled", err)
	}
}
