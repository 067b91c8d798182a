package queue

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// TestSameQueueURL: spellings of one queue match; other queues do not.
func TestSameQueueURL(t *testing.T) {
	const q = "https://sqs.us-east-1.amazonaws.com/123456789012/resets"
	tests := []struct {
		b    string
		same bool
	}{
		{q, true},
		{"http://sqs.us-east-1.amazonaws.com/123456789012/resets", true},
		{q + "/", true},
		{"https://SQS.us-east-1.amazonaws.com/123456789012/resets", true},
		{"https://us-east-1.queue.amazonaws.com/123456789012/resets", true},
		{"https://queue.amazonaws.com/123456789012/resets", true},
		{"https://sqs.us-east-1.amazonaws.com:443/123456789012/resets", true},
		{"https://sqs-fips.us-east-1.amazonaws.com/123456789012/resets", true},
		{"https://sqs.us-east-1.api.aws/123456789012/resets", true},
		{"https://vpce-0a1b2c3d-4e5f.sqs.us-east-1.vpce.amazonaws.com/123456789012/resets", true},
		{" " + q + " ", true},
		{"https://sqs.us-east-1.amazonaws.com/123456789012/resets-dlq", false},
		{"https://sqs.us-east-1.amazonaws.com/123456789012/Resets", false},
		{"https://sqs.us-east-1.amazonaws.com/210987654321/resets", false},
		{"https://sqs.us-west-2.amazonaws.com/123456789012/resets", false},
		{"https://eu-west-1.queue.amazonaws.com/123456789012/resets", false},
		{"http://127.0.0.1:4566/123456789012/resets", false},
	}
	for _, tt := range tests {
		if got := SameURL(q, tt.b); got != tt.same {
			t.Errorf("SameURL(%s, %s) = %v, want %v", q, tt.b, got, tt.same)
		}
	}
	const local = "http://127.0.0.1:4566/123456789012/resets"
	if !SameURL(local, "https://127.0.0.1:4566/123456789012/resets/") || SameURL(local, "http://127.0.0.1:4567/123456789012/resets") {
		t.Error("local endpoints: the scheme and a trailing slash do not matter, the port does")
	}
}

// arnAPI answers GetQueueAttributes with the ARN of each URL it knows and
// AccessDenied for the others.
type arnAPI struct {
	API
	arns map[string]string
}

func (f arnAPI) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	arn, ok := f.arns[aws.ToString(in.QueueUrl)]
	if !ok {
		return nil, errors.New("AccessDenied")
	}
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{"QueueArn": arn}}, nil
}

// TestSameQueueByARN: two URLs no rule of spelling relates (a private DNS
// name) are one queue when their ARNs are; without ARNs, the URLs decide.
func TestSameQueueByARN(t *testing.T) {
	const (
		q       = "https://sqs.us-east-1.amazonaws.com/123456789012/resets"
		private = "https://sqs.internal.example.com/123456789012/resets"
		dlq     = "https://sqs.us-east-1.amazonaws.com/123456789012/resets-dlq"
		arn     = "arn:aws:sqs:us-east-1:123456789012:resets"
	)
	api := arnAPI{arns: map[string]string{q: arn, private: arn, dlq: arn + "-dlq"}}
	ctx := context.Background()
	if !New(api, q, nil).SameAs(ctx, private) {
		t.Error("same ARN, not the same queue")
	}
	if New(api, q, nil).SameAs(ctx, dlq) {
		t.Error("different ARNs, the same queue")
	}
	none := arnAPI{}
	if !New(none, q, nil).SameAs(ctx, "http://queue.amazonaws.com/123456789012/resets/") {
		t.Error("no ARN: the URL spellings of one queue are not the same queue")
	}
	if New(none, q, nil).SameAs(ctx, private) {
		t.Error("no ARN: different URLs are the same queue")
	}
}
