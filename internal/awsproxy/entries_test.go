package awsproxy_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
)

// TestSDKFailEntries: a FailEntries fault fails the chosen entries of a
// SendMessageBatch call, and the entries reported Successful, only they,
// are on the queue.
func TestSDKFailEntries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newSDKEnv(t, "us-east-1")
	queueURL, _, err := moto.CreateQueues(ctx, e.cfg, "awsproxy-entries", 3, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	send := func(bodies ...string) *sqs.SendMessageBatchOutput {
		t.Helper()
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i, b := range bodies {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("e", i)), MessageBody: aws.String(b)})
		}
		out, err := e.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ids := func(out *sqs.SendMessageBatchOutput) (ok, failed []string) {
		for _, s := range out.Successful {
			if aws.ToString(s.MessageId) == "" {
				t.Errorf("entry %s has no MessageId", aws.ToString(s.Id))
			}
			ok = append(ok, aws.ToString(s.Id))
		}
		for _, f := range out.Failed {
			if aws.ToString(f.Code) != "InternalError" || f.SenderFault {
				t.Errorf("failed entry %+v: want InternalError, not a sender fault", f)
			}
			failed = append(failed, aws.ToString(f.Id))
		}
		slices.Sort(ok)
		slices.Sort(failed)
		return ok, failed
	}

	e.proxy.AddFault(awsproxy.Fault{Operation: "SendMessageBatch", Count: 1, FailEntries: 2})
	ok, failed := ids(send("a", "b", "c", "d"))
	if !slices.Equal(ok, []string{"e2", "e3"}) || !slices.Equal(failed, []string{"e0", "e1"}) {
		t.Errorf("first call: ok %v failed %v", ok, failed)
	}
	e.proxy.AddFault(awsproxy.Fault{Operation: "SendMessageBatch", Count: 1, FailEntries: 10, EntryContains: "poison"})
	ok, failed = ids(send("x-poison", "y", "z-poison"))
	if !slices.Equal(ok, []string{"e1"}) || !slices.Equal(failed, []string{"e0", "e2"}) {
		t.Errorf("second call: ok %v failed %v", ok, failed)
	}
	e.proxy.AddFault(awsproxy.Fault{Operation: "SendMessageBatch", Count: 1, FailEntries: 10})
	ok, failed = ids(send("gone1", "gone2"))
	if len(ok) != 0 || !slices.Equal(failed, []string{"e0", "e1"}) {
		t.Errorf("third call: ok %v failed %v", ok, failed)
	}

	var got []string
	for {
		r, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			break
		}
		for _, m := range r.Messages {
			got = append(got, aws.ToString(m.Body))
		}
	}
	slices.Sort(got)
	if want := []string{"c", "d", "y"}; !slices.Equal(got, want) {
		t.Errorf("queue holds %v, want %v", got, want)
	}
	st := e.proxy.Stats()
	if st.Forwarded["SendMessageBatch"] != 2 || st.Faulted["SendMessageBatch"] != 3 {
		t.Errorf("stats %+v: want 2 forwarded, 3 faulted", st)
	}
}

func TestFailEntriesValidation(t *testing.T) {
	p, err := awsproxy.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []awsproxy.Fault{
		{FailEntries: 1, ErrorCode: "X"},      // two actions
		{EntryContains: "x", ErrorCode: "X"},  // EntryContains without FailEntries
		{FailEntries: -1, Delay: time.Second}, // negative
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AddFault(%+v) did not panic", f)
				}
			}()
			p.AddFault(f)
		}()
	}
	p.AddFault(awsproxy.Fault{FailEntries: 2, EntryContains: "x"})
}
