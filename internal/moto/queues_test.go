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
	// SQS (and moto) deliver at least once: a receive may hand out the job
	// twice (one CI run saw 2 messages for one SendMessage), so the check is
	// on what came, by message ID, not on a count of one.
	sent := map[string]bool{}
	for i := 1; i <= 2; i++ {
		msgs := receive(queueURL)
		if len(msgs) == 0 {
			t.Fatalf("receive %d: no message, want the job (maxReceiveCount is 2)", i)
		}
		for _, m := range msgs {
			if aws.ToString(m.Body) != "job" {
				t.Fatalf("receive %d: body %q, want the job", i, aws.ToString(m.Body))
			}
			sent[aws.ToString(m.MessageId)] = true
			// Make it visible again at once instead of waiting 45 s.
			if _, err := client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
				QueueUrl:          aws.String(queueURL),
				ReceiptHandle:     m.ReceiptHandle,
				VisibilityTimeout: 0,
			}); err != nil {
				t.Fatal(err)
			}
		}
		if len(msgs) > 1 {
			t.Logf("receive %d: %d messages for one SendMessage (at least once): %v", i, len(msgs), sent)
		}
	}
	if msgs := receive(queueURL); len(msgs) != 0 {
		t.Fatalf("third receive: got %d messages, want 0 (moved to the DLQ)", len(msgs))
	}
	msgs := receive(dlqURL)
	if len(msgs) == 0 || len(msgs) > len(sent) {
		t.Fatalf("DLQ holds %d messages, want the job (%d copies received)", len(msgs), len(sent))
	}
	for _, m := range msgs {
		if aws.ToString(m.Body) != "job" {
			t.Fatalf("DLQ holds %q, want the job", aws.ToString(m.Body))
		}
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
