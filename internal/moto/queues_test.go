package moto_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/internal/moto"
)

// TestCreateQueues checks the attributes and that moto moves a message to
// the DLQ on the receive after the maxReceiveCount-th.
func TestCreateQueues(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := config(t, "us-east-1")
	queueURL, dlqURL, err := moto.CreateQueues(ctx, cfg, uniqueName(t), 2, 45*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)

	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := attrs.Attributes["VisibilityTimeout"]; got != "45" {
		t.Errorf("VisibilityTimeout = %q, want 45", got)
	}
	var redrive struct {
		DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(attrs.Attributes["RedrivePolicy"]), &redrive); err != nil {
		t.Fatalf("RedrivePolicy %q: %v", attrs.Attributes["RedrivePolicy"], err)
	}
	// moto answers maxReceiveCount as a number, AWS as a string.
	if !strings.HasSuffix(redrive.DeadLetterTargetArn, ":"+uniqueName(t)+"-dlq") ||
		strings.Trim(string(redrive.MaxReceiveCount), `"`) != "2" {
		t.Errorf("RedrivePolicy = %s, want the DLQ and maxReceiveCount 2", attrs.Attributes["RedrivePolicy"])
	}

	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(queueURL),
		MessageBody: aws.String("job"),
	}); err != nil {
		t.Fatal(err)
	}
	receive := func(url string) []sqstypes.Message {
		t.Helper()
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(url),
			MaxNumberOfMessages:         10,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	for i := 1; i <= 2; i++ {
		msgs := receive(queueURL)
		if len(msgs) != 1 {
			t.Fatalf("receive %d: got %d messages, want 1", i, len(msgs))
		}
		// Make it visible again at once instead of waiting 45 s.
		if _, err := client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl:          aws.String(queueURL),
			ReceiptHandle:     msgs[0].ReceiptHandle,
			VisibilityTimeout: 0,
		}); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := receive(queueURL); len(msgs) != 0 {
		t.Fatalf("third receive: got %d messages, want 0 (moved to the DLQ)", len(msgs))
	}
	msgs := receive(dlqURL)
	if len(msgs) != 1 || aws.ToString(msgs[0].Body) != "job" {
		t.Fatalf("DLQ holds %d messages, want the job", len(msgs))
	}
	t.Logf("ApproximateReceiveCount in the DLQ: %s", msgs[0].Attributes["ApproximateReceiveCount"])
}

func TestCreateQueuesRejectsBadArguments(t *testing.T) {
	t.Parallel()
	cfg := config(t, "us-east-1")
	if _, _, err := moto.CreateQueues(t.Context(), cfg, "bad", 0, time.Second); err == nil {
		t.Error("maxReceiveCount 0: no error")
	}
	if _, _, err := moto.CreateQueues(t.Context(), cfg, "bad", 1, 13*time.Hour); err == nil {
		t.Error("visibility 13h: no error")
	}
}
