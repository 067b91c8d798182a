package queue

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
)

// BatchAPI is the part of the SQS client a producer uses.
type BatchAPI interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// BatchSender sends messages to one queue in SendMessageBatch calls. It is
// safe for concurrent use.
type BatchSender struct {
	api BatchAPI
	url string
}

// NewBatchSender returns a BatchSender for the queue at url.
func NewBatchSender(api BatchAPI, url string) *BatchSender { return &BatchSender{api: api, url: url} }

// EntryResult is what SendMessageBatch answered for one message: Sent, or
// Failed with its code, or neither (the answer did not name the entry).
type EntryResult struct {
	Sent, Failed bool
	Code         string
	Message      string
	SenderFault  bool
}

// SendBatch sends up to 10 messages in one SendMessageBatch call. The
// results are in the order of msgs.
func (s *BatchSender) SendBatch(ctx context.Context, msgs []job.Outgoing) ([]EntryResult, error) {
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.url)}
	for i, m := range msgs {
		in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(m.Body), MessageAttributes: toSQS(m.Attributes),
			DelaySeconds: int32(m.Delay / time.Second),
		})
	}
	out, err := s.api.SendMessageBatch(ctx, in)
	if err != nil {
		return nil, awserr.From(err)
	}
	res := make([]EntryResult, len(msgs))
	for _, ok := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(ok.Id)); err == nil && i >= 0 && i < len(msgs) {
			res[i].Sent = true
		}
	}
	for _, f := range out.Failed {
		if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= 0 && i < len(msgs) && !res[i].Sent {
			res[i] = EntryResult{Failed: true, Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), SenderFault: f.SenderFault}
		}
	}
	return res, nil
}
