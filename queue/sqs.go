// Package queue adapts Amazon SQS to the worker: long-poll receives, batch
// deletes and visibility changes with every entry checked, sends with
// message attributes, queue depth, and the RedrivePolicy lookup.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/metrics"
	"github.com/resetq/resetq/worker"
)

// API is the part of the SQS client the adapter uses.
type API interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(context.Context, *sqs.ChangeMessageVisibilityBatchInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
}

// Queue is one SQS queue. It is safe for concurrent use.
type Queue struct {
	api API
	url string
	m   *metrics.Metrics // may be nil
}

var (
	_ worker.Source       = (*Queue)(nil)
	_ worker.Sender       = (*Queue)(nil)
	_ metrics.DepthReader = (*Queue)(nil)
)

// New returns the queue at url. m, if not nil, counts the SQS calls.
func New(api API, url string, m *metrics.Metrics) *Queue { return &Queue{api: api, url: url, m: m} }

// URL is the queue's URL.
func (q *Queue) URL() string { return q.url }

func (q *Queue) record(op string, start time.Time, err error) {
	if q.m != nil {
		q.m.SQSCall(op, start, err)
	}
}

// Receive long-polls for up to max messages with their message attributes
// and receive counts.
func (q *Queue) Receive(ctx context.Context, max int, wait, visibility time.Duration) ([]job.Message, error) {
	start := time.Now()
	out, err := q.api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    &q.url,
		MaxNumberOfMessages:         int32(max),
		WaitTimeSeconds:             int32(wait / time.Second),
		VisibilityTimeout:           int32(visibility / time.Second),
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
	})
	q.record("ReceiveMessage", start, err)
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q.url, awserr.From(err))
	}
	msgs := make([]job.Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		n, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		msgs = append(msgs, job.Message{
			ID:            aws.ToString(m.MessageId),
			ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body:          aws.ToString(m.Body),
			Attributes:    fromSQS(m.MessageAttributes),
			ReceiveCount:  n,
		})
	}
	return msgs, nil
}

// Delete deletes up to 10 messages in one DeleteMessageBatch call. Entries
// that failed come back keyed by receipt handle.
func (q *Queue) Delete(ctx context.Context, receipts []string) (map[string]error, error) {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(receipts))
	for i, r := range receipts {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r)}
	}
	start := time.Now()
	out, err := q.api.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &q.url, Entries: entries})
	q.record("DeleteMessageBatch", start, err)
	if err != nil {
		return nil, fmt.Errorf("delete from %s: %w", q.url, awserr.From(err))
	}
	return failures(receipts, out.Failed, len(out.Successful))
}

// ChangeVisibility sets the visibility timeout of up to 10 messages in one
// ChangeMessageVisibilityBatch call (0 makes them visible at once).
func (q *Queue) ChangeVisibility(ctx context.Context, receipts []string, timeout time.Duration) (map[string]error, error) {
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(receipts))
	for i, r := range receipts {
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r), VisibilityTimeout: int32(timeout / time.Second)}
	}
	start := time.Now()
	out, err := q.api.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &q.url, Entries: entries})
	q.record("ChangeMessageVisibilityBatch", start, err)
	if err != nil {
		return nil, fmt.Errorf("change visibility in %s: %w", q.url, awserr.From(err))
	}
	return failures(receipts, out.Failed, len(out.Successful))
}

// failures maps the Failed entries of a batch result back to receipt
// handles. An entry the result names neither as successful nor as failed
// counts as failed.
func failures(receipts []string, failed []types.BatchResultErrorEntry, successful int) (map[string]error, error) {
	out := map[string]error{}
	for _, f := range failed {
		i, err := strconv.Atoi(aws.ToString(f.Id))
		if err != nil || i < 0 || i >= len(receipts) {
			return nil, fmt.Errorf("batch result names unknown entry %q", aws.ToString(f.Id))
		}
		out[receipts[i]] = fmt.Errorf("%s: %s (sender fault: %v)", aws.ToString(f.Code), aws.ToString(f.Message), f.SenderFault)
	}
	if successful+len(failed) < len(receipts) {
		return nil, fmt.Errorf("batch result accounts for %d of %d entries", successful+len(failed), len(receipts))
	}
	return out, nil
}

// Send sends one message with its attributes and delay.
func (q *Queue) Send(ctx context.Context, m job.Outgoing) error {
	start := time.Now()
	_, err := q.api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:          &q.url,
		MessageBody:       &m.Body,
		MessageAttributes: toSQS(m.Attributes),
		DelaySeconds:      int32(m.Delay / time.Second),
	})
	q.record("SendMessage", start, err)
	if err != nil {
		return fmt.Errorf("send to %s: %w", q.url, awserr.From(err))
	}
	return nil
}

// Depth reads the approximate number of visible, in-flight and delayed messages.
func (q *Queue) Depth(ctx context.Context) (metrics.Depth, error) {
	a, err := q.attributes(ctx, types.QueueAttributeNameApproximateNumberOfMessages,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed)
	if err != nil {
		return metrics.Depth{}, err
	}
	n := func(name types.QueueAttributeName) int64 {
		v, _ := strconv.ParseInt(a[string(name)], 10, 64)
		return v
	}
	return metrics.Depth{
		Visible:  n(types.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: n(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:  n(types.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}, nil
}

func (q *Queue) attributes(ctx context.Context, names ...types.QueueAttributeName) (map[string]string, error) {
	start := time.Now()
	out, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &q.url, AttributeNames: names})
	q.record("GetQueueAttributes", start, err)
	if err != nil {
		return nil, fmt.Errorf("get attributes of %s: %w", q.url, awserr.From(err))
	}
	return out.Attributes, nil
}

// ARN reads the queue's ARN, which names it however its URL is spelled.
func (q *Queue) ARN(ctx context.Context) (string, error) {
	a, err := q.attributes(ctx, types.QueueAttributeNameQueueArn)
	if err != nil {
		return "", err
	}
	arn := a[string(types.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", fmt.Errorf("get attributes of %s: no QueueArn in the answer", q.url)
	}
	return arn, nil
}

// Settings are the queue attributes the worker starts from.
type Settings struct {
	Visibility      time.Duration
	DLQARN          string // from the RedrivePolicy; "" when there is none
	MaxReceiveCount int    // from the RedrivePolicy
	FIFO            bool
}

// Settings reads the queue's visibility timeout and RedrivePolicy. It also
// proves the queue exists and the credentials may read it.
func (q *Queue) Settings(ctx context.Context) (Settings, error) {
	a, err := q.attributes(ctx, types.QueueAttributeNameVisibilityTimeout,
		types.QueueAttributeNameRedrivePolicy, types.QueueAttributeNameFifoQueue)
	if err != nil {
		return Settings{}, err
	}
	var s Settings
	vt, _ := strconv.Atoi(a[string(types.QueueAttributeNameVisibilityTimeout)])
	s.Visibility = time.Duration(vt) * time.Second
	s.FIFO = a[string(types.QueueAttributeNameFifoQueue)] == "true"
	if rp := a[string(types.QueueAttributeNameRedrivePolicy)]; rp != "" {
		var p struct {
			DeadLetterTargetArn string
			MaxReceiveCount     json.RawMessage // a number, or a string in some responses
		}
		if err := json.Unmarshal([]byte(rp), &p); err != nil {
			return s, fmt.Errorf("RedrivePolicy of %s is not valid JSON: %w", q.url, awserr.From(err))
		}
		s.DLQARN = p.DeadLetterTargetArn
		s.MaxReceiveCount, _ = strconv.Atoi(strings.Trim(string(p.MaxReceiveCount), `"`))
	}
	return s, nil
}

// URLForARN resolves a queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME) to its URL.
func URLForARN(ctx context.Context, api API, arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return "", fmt.Errorf("%q is not an SQS queue ARN", arn)
	}
	out, err := api.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &parts[5], QueueOwnerAWSAccountId: &parts[4]})
	if err != nil {
		return "", fmt.Errorf("look up the URL of %s: %w", arn, awserr.From(err))
	}
	return aws.ToString(out.QueueUrl), nil
}

func fromSQS(in map[string]types.MessageAttributeValue) map[string]job.Attribute {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]job.Attribute, len(in))
	for k, v := range in {
		out[k] = job.Attribute{DataType: aws.ToString(v.DataType), StringValue: aws.ToString(v.StringValue), BinaryValue: v.BinaryValue}
	}
	return out
}

func toSQS(in map[string]job.Attribute) map[string]types.MessageAttributeValue {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]types.MessageAttributeValue, len(in))
	for k, v := range in {
		a := types.MessageAttributeValue{DataType: aws.String(v.DataType)}
		if strings.HasPrefix(v.DataType, "Binary") {
			a.BinaryValue = v.BinaryValue
		} else {
			a.StringValue = aws.String(v.StringValue)
		}
		out[k] = a
	}
	return out
}

// ErrNoDLQ is returned by ResolveDLQ when neither a flag nor a RedrivePolicy names a DLQ.
var ErrNoDLQ = errors.New("no dead-letter queue: the queue has no RedrivePolicy and --dlq-url is not set")

// Client is an SQS client with every call resetq makes: the worker's (API)
// and the producer's (BatchAPI).
type Client interface {
	API
	BatchAPI
}

// NewClient returns an SQS client for region, built on cfg.
func NewClient(cfg aws.Config, region string) Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.Region = region })
}

// Retention reads the queue's message retention period.
func (q *Queue) Retention(ctx context.Context) (time.Duration, error) {
	a, err := q.attributes(ctx, types.QueueAttributeNameMessageRetentionPeriod)
	if err != nil {
		return 0, err
	}
	v := a[string(types.QueueAttributeNameMessageRetentionPeriod)]
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: MessageRetentionPeriod %q: %v", q.url, v, err)
	}
	return time.Duration(n) * time.Second, nil
}

// DLQURL is the URL of the dead-letter queue that s's RedrivePolicy names,
// "" when s has none.
func (q *Queue) DLQURL(ctx context.Context, s Settings) (string, error) {
	if s.DLQARN == "" {
		return "", nil
	}
	return URLForARN(ctx, q.api, s.DLQARN)
}

// SameAs reports whether url names this queue: by the URLs (SameURL), else
// by the queues' ARNs when both can be read.
func (q *Queue) SameAs(ctx context.Context, url string) bool {
	if SameURL(q.url, url) {
		return true
	}
	arnA, errA := q.ARN(ctx)
	arnB, errB := New(q.api, url, nil).ARN(ctx)
	return errA == nil && errB == nil && arnA == arnB
}
