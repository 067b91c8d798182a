package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/job"
)

// TestWorkSignedJobs: a worker with --signing-key-file resets the jobs
// `resetq enqueue` signed with the same file, and a job another producer
// sent with the documented recipe (docs/send-signed-job.sh: openssl and
// the AWS CLI). It dead-letters as bad_signature, without calling Cognito,
// a job sent unsigned, one signed with another key, and a signed job
// whose body was changed. The key file holds two keys (rotation): enqueue
// signs with the first, the worker accepts both.
func TestWorkSignedJobs(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "signed")
	pool, users, _ := e.ConfirmedUsers(e.East, "signed", 8)
	keys := writeFile(t, "keys", "# current\n"+strings.Repeat("n", 64)+"\n# previous, until every producer has switched\n"+strings.Repeat("o", 64)+"\n")
	oldKeyFirst := writeFile(t, "old", strings.Repeat("o", 64)+"\n")
	otherKey := writeFile(t, "other", strings.Repeat("x", 64)+"\n")

	enqueue := func(keyFile string, users ...string) {
		t.Helper()
		if r := runEnqueue(t, e, nil, strings.Join(users, "\n")+"\n", "--queue-url", e.QueueURL, "--pool", pool,
			"--campaign", "signed-1", "--signing-key-file", keyFile, "--from", "-"); r.code != 0 {
			t.Fatalf("enqueue: exit %d", r.code)
		}
	}
	enqueue(keys, users[0], users[1])               // signed with the current key
	enqueue(oldKeyFirst, users[2])                  // a producer not yet switched to the new key
	enqueue(otherKey, users[3])                     // a key the worker does not know
	e.Send("signed-1", testenv.Job(pool, users[4])) // unsigned
	recipe := func(body string, env ...string) {
		t.Helper()
		script, _ := filepath.Abs("../../docs/send-signed-job.sh")
		cmd := exec.Command("sh", script, body)
		cmd.Env = e.ChildEnv(append([]string{"AWS_DEFAULT_REGION=us-east-1", "AWS_ENDPOINT_URL=" + e.Moto.URL,
			"QUEUE_URL=" + e.QueueURL, "KEY_FILE=" + keys, "CAMPAIGN=signed-1"}, env...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docs/send-signed-job.sh: %v\n%s", err, out)
		}
	}
	recipe(testenv.Job(pool, users[5]))
	recipe(testenv.Job(pool, users[7]), "SIGN_OUT=true") // the sign-out request signed too
	// A signed job whose body was changed on the way: users[0]'s signature
	// on users[6]'s body.
	if _, err := e.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &e.QueueURL,
		MessageBody: aws.String(testenv.Job(pool, users[6])),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			job.AttrCampaign:  {DataType: aws.String("String"), StringValue: aws.String("signed-1")},
			job.AttrSignature: {DataType: aws.String("String"), StringValue: aws.String(job.Sign([]byte(strings.Repeat("n", 64)), "signed-1", testenv.Job(pool, users[0])))},
		}}); err != nil {
		t.Fatal(err)
	}

	p := e.Start("--exit-when-idle", "2s", "--signing-key-file", keys)
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("work: exit %d", code)
	}
	e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users[0], users[1], users[2], users[5], users[7])
	e.ExpectStatus(e.East, pool, "CONFIRMED", users[3], users[4], users[6])
	if n := e.Proxy.Stats().Forwarded["AdminResetUserPassword"]; n != 5 {
		t.Errorf("%d resets reached Cognito, want 5", n)
	}
	if n := e.Proxy.Stats().Forwarded["AdminUserGlobalSignOut"]; n != 1 {
		t.Errorf("%d sign-outs reached Cognito, want 1 (the recipe's SIGN_OUT=true job)", n)
	}
	dl := e.DrainDLQ()
	got := map[string]string{}
	for _, d := range dl {
		got[d.Body] = d.Attrs["resetq.reason"]
	}
	want := map[string]string{}
	for _, u := range []string{users[3], users[4], users[6]} {
		want[testenv.Job(pool, u)] = "bad_signature"
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dead letters (body: reason) %v, want %v", got, want)
	}
	if !strings.Contains(p.Logs(), "accepting only signed jobs") {
		t.Error("the worker did not log that it accepts only signed jobs")
	}
}
