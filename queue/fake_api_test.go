package queue

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// fakeAPI answers the two calls below with canned outputs; moto cannot
// produce these answers. The embedded nil API panics on anything else.
type fakeAPI struct {
	API
	deleteOut *sqs.DeleteMessageBatchOutput
	attrs     map[string]string
}

func (f fakeAPI) DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	return f.deleteOut, nil
}

func (f fakeAPI) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{Attributes: f.attrs}, nil
}

// TestBatchResultMustAccountForEveryEntry: an entry the result names
// neither as successful nor as failed is an error, not a silent success.
func TestBatchResultMustAccountForEveryEntry(t *testing.T) {
	t.Parallel()
	q := New(fakeAPI{deleteOut: &sqs.DeleteMessageBatchOutput{
		Successful: []types.DeleteMessageBatchResultEntry{{Id: aws.String("0")}},
	}}, "http://q", nil)
	if _, err := q.Delete(context.Background(), []string{"r0", "r1"}); err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Fatalf("Delete = %v, want an error about the missing entry", err)
	}
	q = New(fakeAPI{deleteOut: &sqs.DeleteMessageBatchOutput{
		Failed: []types.BatchResultErrorEntry{{Id: aws.String("7"), Code: aws.String("X")}},
	}}, "http://q", nil)
	if _, err := q.Delete(context.Background(), []string{"r0"}); err == nil {
		t.Fatal("a failure naming an unknown entry was accepted")
	}
}

// TestSettingsMaxReceiveCountAsString: AWS returns maxReceiveCount as a
// string inside the RedrivePolicy JSON; moto returns a number.
func TestSettingsMaxReceiveCountAsString(t *testing.T) {
	t.Parallel()
	q := New(fakeAPI{attrs: map[string]string{
		"VisibilityTimeout": "60",
		"RedrivePolicy":     `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":"12"}`,
	}}, "http://q", nil)
	s, err := q.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxReceiveCount != 12 || s.DLQARN != "arn:aws:sqs:us-east-1:123456789012:dlq" || s.Visibility.Seconds() != 60 {
		t.Fatalf("Settings = %+v", s)
	}
	q = New(fakeAPI{attrs: map[string]string{"RedrivePolicy": `{not json`}}, "http://q", nil)
	if _, err := q.Settings(context.Background()); err == nil {
		t.Fatal("a broken RedrivePolicy was accepted")
	}
}
