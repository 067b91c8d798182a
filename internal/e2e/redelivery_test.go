package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

// TestWorkRedeliveryCheck: a worker reset a user and died before deleting
// the message. On the next delivery the user must not get a second code:
// the job is counted done after one AdminGetUser, no reset call. With
// --status-check=redelivered only the redelivery is checked; with all
// (the default) every job; with off (or the deprecated
// --redelivery-check=false) none, and the reset is sent again.
func TestWorkRedeliveryCheck(t *testing.T) {
	t.Parallel()
	for _, check := range []string{"redelivered", "all", "off", "legacy-false"} {
		e := testenv.New(t, "redelivery")
		pool := e.Pool(e.East, map[string]moto.UserState{"done": moto.Confirmed, "fresh": moto.Confirmed})
		ctx := context.Background()
		// The earlier delivery's reset, which happened...
		if _, err := cip.NewFromConfig(e.East).AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{
			UserPoolId: aws.String(pool), Username: aws.String("done")}); err != nil {
			t.Fatal(err)
		}
		// ...and its message, received and never deleted (the crash).
		e.Send("redelivery", testenv.Job(pool, "done"))
		got, err := e.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &e.QueueURL, MaxNumberOfMessages: 1})
		if err != nil || len(got.Messages) != 1 {
			t.Fatalf("receive: %v %v", err, got)
		}
		if _, err := e.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: &e.QueueURL, ReceiptHandle: got.Messages[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			t.Fatal(err)
		}
		e.Send("redelivery", testenv.Job(pool, "fresh")) // a first delivery

		args := []string{"--exit-when-idle", "2s"}
		switch check {
		case "legacy-false":
			args = append(args, "--redelivery-check=false")
		case "redelivered", "off":
			args = append(args, "--status-check", check)
		}
		p := e.Start(args...)
		if code := p.Wait(t, time.Minute); code != 0 {
			t.Fatalf("check=%s: exit %d", check, code)
		}
		st := e.Proxy.Stats()
		wantResets, wantReads := map[string]int{"redelivered": 1, "all": 1, "off": 2, "legacy-false": 2}[check],
			map[string]int{"redelivered": 1, "all": 2, "off": 0, "legacy-false": 0}[check]
		if st.Forwarded["AdminResetUserPassword"] != wantResets || st.Forwarded["AdminGetUser"] != wantReads {
			t.Errorf("check=%s: %d resets and %d AdminGetUser reached Cognito, want %d and %d",
				check, st.Forwarded["AdminResetUserPassword"], st.Forwarded["AdminGetUser"], wantResets, wantReads)
		}
		if s := e.Status(e.East, pool, "fresh"); s != "RESET_REQUIRED" {
			t.Errorf("check=%s: fresh is %s", check, s)
		}
		if v, f, d := e.Depth(); v+f+d != 0 || len(e.DrainDLQ()) != 0 {
			t.Errorf("check=%s: jobs left behind", check)
		}
	}
}
