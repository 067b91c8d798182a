package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/dlq"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/job"
)

// opsRun runs the built resetq with args and returns stdout, stderr and the exit code.
func opsRun(t *testing.T, e *testenv.Env, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t), args...)
	cmd.Env = e.ChildEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run resetq %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// opsBuffer is a bytes.Buffer safe for a child's output and a test reading it.
type opsBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *opsBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *opsBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// opsSendDLQ puts a dead letter as the worker writes it on the DLQ (reason
// "" for one SQS moved by itself).
func opsSendDLQ(t *testing.T, e *testenv.Env, body, reason, campaign string) {
	t.Helper()
	attrs := map[string]sqstypes.MessageAttributeValue{
		"resetq.campaign": {DataType: aws.String("String"), StringValue: aws.String(campaign)},
		"ticket":          {DataType: aws.String("String"), StringValue: aws.String("INC-7")},
	}
	if reason != "" {
		for k, v := range map[string]string{"resetq.reason": reason, "resetq.error": reason + ": details",
			"resetq.attempts": "1", "resetq.failed_at": "2026-11-23T12:00:00Z"} {
			attrs[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	if _, err := e.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &e.DLQURL, MessageBody: &body, MessageAttributes: attrs}); err != nil {
		t.Fatal(err)
	}
}

// opsDLQVisible is the DLQ's count of visible messages.
func opsDLQVisible(t *testing.T, e *testenv.Env) int {
	t.Helper()
	out, err := e.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &e.DLQURL,
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		t.Fatal(err)
	}
	if nv := out.Attributes["ApproximateNumberOfMessagesNotVisible"]; nv != "0" {
		t.Errorf("%s DLQ messages still hidden", nv)
	}
	n, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	return n
}

// TestOpsStatus: status reads the queue and its DLQ (from the RedrivePolicy)
// as text, JSON, and a bounded --watch.
func TestOpsStatus(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "status")
	e.Send("st", testenv.Job("us-east-1_abc", "a"), testenv.Job("us-east-1_abc", "b"), testenv.Job("us-east-1_abc", "c"))
	opsSendDLQ(t, e, testenv.Job("us-east-1_abc", "d"), "UserNotFoundException", "st")

	out, errOut, code := opsRun(t, e, "status", "--queue-url", e.QueueURL)
	if code != 0 || !strings.Contains(out, "visible    3\n") || !strings.Contains(out, "dlq        1") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}

	out, errOut, code = opsRun(t, e, "status", "--queue-url", e.QueueURL, "--output", "json")
	var r struct {
		Visible, InFlight, Delayed int
		DLQ                        *int
		DLQURL                     string `json:"dlq_url"`
	}
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil {
		t.Fatalf("exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	if r.Visible != 3 || r.DLQ == nil || *r.DLQ != 1 || r.DLQURL != e.DLQURL {
		t.Fatalf("%+v", r)
	}

	out, errOut, code = opsRun(t, e, "status", "--queue-url", e.QueueURL, "--watch", "--count", "2", "--interval", "200ms", "--output", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("exit %d, %d lines\n%s\n%s", code, len(lines), out, errOut)
	}
	var last struct{ Drain struct{ State string } }
	if err := json.Unmarshal([]byte(lines[1]), &last); err != nil || last.Drain.State != "stalled" {
		t.Fatalf("second sample %s: %v", lines[1], err)
	}

	out, _, code = opsRun(t, e, "status", "--queue-url", e.QueueURL, "--watch", "--count", "2", "--interval", "100ms")
	if code != 0 || !strings.Contains(out, "need another sample") || !strings.Contains(out, "stalled") {
		t.Fatalf("exit %d\n%s", code, out)
	}

	// --watch runs until SIGINT, then exits 0.
	cmd := exec.Command(testenv.Binary(t), "status", "--queue-url", e.QueueURL, "--watch", "--interval", "200ms")
	cmd.Env = e.ChildEnv()
	var watchOut opsBuffer
	cmd.Stdout, cmd.Stderr = &watchOut, &watchOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "two samples", func() bool { return strings.Count(watchOut.String(), "\n") >= 2 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("status --watch after SIGINT: %v\n%s", err, watchOut.String())
	}

	if _, errOut, code = opsRun(t, e, "status"); code != 2 || !strings.Contains(errOut, "--queue-url is required") {
		t.Fatalf("no --queue-url: exit %d %s", code, errOut)
	}
}

// TestOpsDLQ: summary and list read the DLQ without consuming it; redrive
// of one reason moves exactly those jobs back, failure record stripped,
// campaign and other attributes kept, and leaves the others in the DLQ.
func TestOpsDLQ(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "dlq")
	pool := "us-east-1_abc"
	for _, u := range []string{"gone1", "gone2", "gone3"} {
		opsSendDLQ(t, e, testenv.Job(pool, u), "UserNotFoundException", "c1")
	}
	opsSendDLQ(t, e, `not json`, "invalid_job", "c1")
	opsSendDLQ(t, e, testenv.Job(pool, "slow"), "", "c2")

	out, errOut, code := opsRun(t, e, "dlq", "summary", "--queue-url", e.QueueURL)
	if code != 0 {
		t.Fatalf("summary: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"5 jobs in 5 messages", "3     3         UserNotFoundException", "invalid_job", "(no reason: maxReceiveCount)  c2", "read every message once"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if n := opsDLQVisible(t, e); n != 5 {
		t.Fatalf("after summary the DLQ shows %d messages, want 5", n)
	}

	out, errOut, code = opsRun(t, e, "dlq", "summary", "--dlq-url", e.DLQURL, "--output", "json")
	var s struct {
		Total  int
		Counts []struct {
			Reason, Campaign string
			Messages         int
		}
	}
	if err := json.Unmarshal([]byte(out), &s); code != 0 || err != nil || s.Total != 5 || len(s.Counts) != 3 {
		t.Fatalf("summary json: exit %d %v\n%s\n%s", code, err, out, errOut)
	}

	out, errOut, code = opsRun(t, e, "dlq", "list", "--queue-url", e.QueueURL, "--reason", "UserNotFoundException", "--output", "json")
	var l struct {
		Jobs []struct {
			Pool, Username, Reason, Error, Attempts, Campaign string
			FailedAt                                          string `json:"failed_at"`
		}
	}
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || len(l.Jobs) != 3 {
		t.Fatalf("list: exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	for _, j := range l.Jobs {
		if j.Pool != pool || !strings.HasPrefix(j.Username, "gone") || j.Reason != "UserNotFoundException" ||
			j.Error == "" || j.Attempts != "1" || j.FailedAt == "" || j.Campaign != "c1" {
			t.Errorf("job %+v", j)
		}
	}
	out, _, code = opsRun(t, e, "dlq", "list", "--queue-url", e.QueueURL)
	if code != 0 || !strings.Contains(out, "not json") || !strings.Contains(out, "slow") || !strings.Contains(out, "5 jobs shown of 5") {
		t.Fatalf("list text: exit %d\n%s", code, out)
	}
	if n := opsDLQVisible(t, e); n != 5 {
		t.Fatalf("after list the DLQ shows %d messages, want 5", n)
	}

	out, errOut, code = opsRun(t, e, "dlq", "redrive", "--queue-url", e.QueueURL, "--reason", "UserNotFoundException", "--max-rate", "20")
	if code != 0 || !strings.Contains(out, "read 5, moved 3, duplicates dropped 0, skipped 2 (left in the DLQ), failed 0") {
		t.Fatalf("redrive: exit %d\n%s\n%s", code, out, errOut)
	}
	// The source queue holds the three jobs, failure record stripped.
	back := map[string]bool{}
	for len(back) < 3 {
		r, err := e.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.QueueURL,
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			t.Fatalf("only %d jobs back on the source queue", len(back))
		}
		for _, m := range r.Messages {
			body := aws.ToString(m.Body)
			if back[body] || !strings.Contains(body, `"gone`) {
				t.Fatalf("unexpected message on the source queue: %s", body)
			}
			back[body] = true
			if len(m.MessageAttributes) != 2 || aws.ToString(m.MessageAttributes["resetq.campaign"].StringValue) != "c1" ||
				aws.ToString(m.MessageAttributes["ticket"].StringValue) != "INC-7" {
				t.Errorf("%s: attributes %v", body, m.MessageAttributes)
			}
		}
	}
	// The DLQ holds the two others, unchanged.
	dl := e.DrainDLQ()
	if len(dl) != 2 {
		t.Fatalf("%d messages left in the DLQ, want 2: %v", len(dl), dl)
	}
	for _, d := range dl {
		if d.Body == "not json" && d.Attrs["resetq.reason"] != "invalid_job" || strings.Contains(d.Body, "slow") && d.Attrs["resetq.campaign"] != "c2" {
			t.Errorf("left in the DLQ: %+v", d)
		}
	}

	if _, errOut, code = opsRun(t, e, "dlq", "redrive", "--dlq-url", e.DLQURL); code != 2 || !strings.Contains(errOut, "--queue-url") {
		t.Fatalf("redrive without --queue-url: exit %d %s", code, errOut)
	}
	if _, _, code = opsRun(t, e, "dlq", "nope"); code != 2 {
		t.Fatalf("unknown subcommand: exit %d", code)
	}
}

// TestOpsPreflight: a pool with Cognito's default email sender is a warning
// (exit 0); a pool without account recovery is blocking (exit 1).
func TestOpsPreflight(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "preflight")
	good := e.Pool(e.East, nil) // verified_email recovery, COGNITO_DEFAULT email (moto's default)
	out, errOut, code := opsRun(t, e, "preflight", "--pool", good, "--queue-url", e.QueueURL, "--users", "1000")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"warning", "1000 users would take 20 day(s)", "ok", "RedrivePolicy moves jobs to", "leaves 20%"} {
		if !strings.Contains(out, want) {
			t.Errorf("preflight lacks %q:\n%s", want, out)
		}
	}

	created, err := cip.NewFromConfig(e.West).CreateUserPool(context.Background(), &cip.CreateUserPoolInput{
		PoolName:               aws.String("norecovery" + strconv.FormatInt(time.Now().UnixNano(), 36)),
		AccountRecoverySetting: &ciptypes.AccountRecoverySettingType{RecoveryMechanisms: []ciptypes.RecoveryOptionType{}},
		EmailConfiguration:     &ciptypes.EmailConfigurationType{EmailSendingAccount: ciptypes.EmailSendingAccountTypeDeveloper, SourceArn: aws.String("arn:aws:ses:eu-west-1:123456789012:identity/example.com")},
	})
	if err != nil {
		t.Fatal(err)
	}
	bad := aws.ToString(created.UserPool.Id)
	out, errOut, code = opsRun(t, e, "preflight", "--pool", good, "--pool", bad, "--output", "json")
	var r struct {
		Blocked bool
		Checks  []struct{ Level, Subject, Check, Message string }
	}
	if err := json.Unmarshal([]byte(out), &r); code != 1 || err != nil || !r.Blocked {
		t.Fatalf("exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	found := false
	for _, c := range r.Checks {
		if c.Subject == bad && c.Check == "account recovery" {
			found = c.Level == "blocking"
		}
	}
	if !found {
		t.Fatalf("no blocking account recovery check for %s: %+v", bad, r.Checks)
	}

	if _, _, code = opsRun(t, e, "preflight", "--pool", "not-a-pool"); code != 2 {
		t.Fatalf("bad --pool: exit %d", code)
	}
}

// TestOpsDLQFromWorker: the operator's story with the worker's own dead
// letters: a job for a user not created yet and a malformed job fail; the
// summary shows both reasons; once the user exists, a redrive of that
// reason only and a second worker run reset them, and the malformed job
// stays in the DLQ.
func TestOpsDLQFromWorker(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "dlqwork")
	pool := e.Pool(e.East, nil)
	e.Send("story", testenv.Job(pool, "late"), `{"UserPoolId":"`+pool+`"}`)
	if code := e.Start("--exit-when-idle", "2s").Wait(t, time.Minute); code != 0 {
		t.Fatalf("work: exit %d", code)
	}

	out, errOut, code := opsRun(t, e, "dlq", "summary", "--queue-url", e.QueueURL, "--output", "json")
	var s struct {
		Total  int
		Counts []struct {
			Reason, Campaign string
			Messages         int
		}
	}
	if err := json.Unmarshal([]byte(out), &s); code != 0 || err != nil || s.Total != 2 {
		t.Fatalf("summary: exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	got := map[string]int{}
	for _, c := range s.Counts {
		if c.Campaign != "story" {
			t.Errorf("campaign %q", c.Campaign)
		}
		got[c.Reason] += c.Messages
	}
	if got["UserNotFoundException"] != 1 || got["invalid_job"] != 1 {
		t.Fatalf("counts %v", got)
	}

	if err := moto.CreateUser(context.Background(), e.East, pool, "late", moto.Confirmed); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = opsRun(t, e, "dlq", "redrive", "--queue-url", e.QueueURL, "--reason", "UserNotFoundException")
	if code != 0 || !strings.Contains(out, "moved 1, duplicates dropped 0, skipped 1") {
		t.Fatalf("redrive: exit %d\n%s\n%s", code, out, errOut)
	}
	if code := e.Start("--exit-when-idle", "2s").Wait(t, time.Minute); code != 0 {
		t.Fatalf("second work: exit %d", code)
	}
	if st := e.Status(e.East, pool, "late"); st != "RESET_REQUIRED" {
		t.Fatalf("late is %s after the redrive", st)
	}
	dl := e.DrainDLQ()
	if len(dl) != 1 || dl[0].Attrs["resetq.reason"] != "invalid_job" || dl[0].Attrs["resetq.error"] == "" {
		t.Fatalf("DLQ after: %+v", dl)
	}
}

// opsRecord is a DLQ record as the worker writes it: reason "" for one SQS
// moved by itself, jobID "" for one written before resetq.job-id.
type opsRecord struct {
	body, reason, campaign, jobID string
}

// opsFillDLQ puts records on the DLQ, ten a call.
func opsFillDLQ(t *testing.T, e *testenv.Env, recs []opsRecord) {
	t.Helper()
	str := func(v string) sqstypes.MessageAttributeValue {
		return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	for len(recs) > 0 {
		n := min(10, len(recs))
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i, r := range recs[:n] {
			attrs := map[string]sqstypes.MessageAttributeValue{"resetq.campaign": str(r.campaign)}
			if r.reason != "" {
				attrs["resetq.reason"], attrs["resetq.error"] = str(r.reason), str(r.reason+": details")
				attrs["resetq.attempts"], attrs["resetq.failed_at"] = str("1"), str("2026-11-23T12:00:00Z")
			}
			if r.jobID != "" {
				attrs["resetq.job-id"] = str(r.jobID)
			}
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
				MessageBody: aws.String(r.body), MessageAttributes: attrs})
		}
		out, err := e.SQS.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &e.DLQURL, Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("fill the DLQ: %v %+v", err, out)
		}
		recs = recs[n:]
	}
}

// opsDepth is a queue's count of visible messages, checking none is hidden.
func opsDepth(t *testing.T, e *testenv.Env, url string) int {
	t.Helper()
	out, err := e.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		t.Fatal(err)
	}
	if nv := out.Attributes["ApproximateNumberOfMessagesNotVisible"]; nv != "0" {
		t.Errorf("%s: %s messages still hidden", url, nv)
	}
	n, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	return n
}

// TestOpsDLQRedriveLongPass: a redrive whose pass lasts many times its
// --visibility (40 jobs of one reason among 300 dead letters of four others)
// moves every matching job; a summary then counts every message once.
func TestOpsDLQRedriveLongPass(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "dlqlong")
	const pool, match = "us-east-1_abc", "InvalidParameterException"
	others := []string{"UserNotFoundException", "invalid_job", "", "NotAuthorizedException"}
	var recs []opsRecord
	left := map[string]int{} // reason -> jobs that stay in the DLQ
	for i := range 340 {
		r := opsRecord{body: testenv.Job(pool, "u"+strconv.Itoa(i)), reason: others[i%4], campaign: "long"}
		if i%8 == 2 && i < 320 {
			r.reason = match
		} else {
			left[dlq.ReasonOf(job.Message{Attributes: map[string]job.Attribute{"resetq.reason": {StringValue: r.reason}}})]++
		}
		recs = append(recs, r)
	}
	opsFillDLQ(t, e, recs)

	start := time.Now()
	out, errOut, code := opsRun(t, e, "dlq", "redrive", "--queue-url", e.QueueURL, "--reason", match, "--max-rate", "0", "--visibility", "2s")
	t.Logf("redrive took %v", time.Since(start))
	if code != 0 || !strings.Contains(out, "read 340, moved 40, duplicates dropped 0, skipped 300 (left in the DLQ), failed 0") {
		t.Fatalf("redrive: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := opsDepth(t, e, e.QueueURL); n != 40 {
		t.Fatalf("%d jobs on the source queue, want 40", n)
	}
	if n := opsDepth(t, e, e.DLQURL); n != 300 {
		t.Fatalf("%d messages left in the DLQ, want 300", n)
	}

	start = time.Now()
	out, errOut, code = opsRun(t, e, "dlq", "summary", "--queue-url", e.QueueURL, "--visibility", "1s", "--output", "json")
	t.Logf("summary took %v", time.Since(start))
	var s struct {
		Total, Read int
		Unread      int64
		Counts      []struct {
			Reason string
			Jobs   int
		}
	}
	if err := json.Unmarshal([]byte(out), &s); code != 0 || err != nil || s.Total != 300 || s.Read != 300 || s.Unread != 0 {
		t.Fatalf("summary: exit %d %v %+v\n%s", code, err, s, errOut)
	}
	for _, c := range s.Counts {
		if c.Jobs != left[c.Reason] {
			t.Errorf("%s: %d jobs, want %d", c.Reason, c.Jobs, left[c.Reason])
		}
	}
	if n := opsDepth(t, e, e.DLQURL); n != 300 {
		t.Fatalf("after the summary the DLQ shows %d messages, want 300", n)
	}
}

// TestOpsDLQOneRecordPerJob: a job dead-lettered twice (two records with
// one resetq.job-id) is one job in summary and list, and a redrive sends it
// once and deletes its other record. A campaign or username with a newline
// cannot forge rows of the tables.
func TestOpsDLQOneRecordPerJob(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "dlqdup")
	const pool = "us-east-1_abc"
	twice, thrice, legacy := testenv.Job(pool, "twice"), testenv.Job(pool, "thrice"), testenv.Job(pool, "legacy")
	forged := `{"UserPoolId":"us-east-1_abc","Username":"eve\nm-1  us-east-1_abc  admin"}`
	opsFillDLQ(t, e, []opsRecord{
		{twice, "NotAuthorizedException", "c", "job-1"}, {thrice, "NotAuthorizedException", "c", "job-2"},
		{twice, "NotAuthorizedException", "c", "job-1"}, {thrice, "NotAuthorizedException", "c", "job-2"},
		{thrice, "NotAuthorizedException", "c", "job-2"}, {legacy, "NotAuthorizedException", "c", ""},
		{forged, "invalid_job", "c\n9  NotAuthorizedException  forged", ""},
	})

	out, errOut, code := opsRun(t, e, "dlq", "summary", "--queue-url", e.QueueURL)
	if code != 0 || !strings.Contains(out, "4 jobs in 7 messages") || !strings.Contains(out, "3     6         NotAuthorizedException  c\n") ||
		!strings.Contains(out, "3 messages were further records") || strings.Contains(out, "\n9  ") {
		t.Fatalf("summary: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = opsRun(t, e, "dlq", "list", "--queue-url", e.QueueURL)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 7 || !strings.Contains(out, `"eve\nm-1  us-east-1_abc  admin"`) || !strings.Contains(out, "4 jobs shown of 7 messages read") {
		t.Fatalf("list: exit %d, %d lines\n%s\n%s", code, len(lines), out, errOut)
	}

	out, errOut, code = opsRun(t, e, "dlq", "redrive", "--queue-url", e.QueueURL, "--reason", "NotAuthorizedException", "--output", "json")
	var r struct {
		Read, Moved, Skipped, Failed int
		Dropped                      int `json:"duplicates_dropped"`
	}
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || r.Read != 7 || r.Moved != 3 || r.Dropped != 3 || r.Skipped != 1 || r.Failed != 0 {
		t.Fatalf("redrive: exit %d %v %+v\n%s\n%s", code, err, r, out, errOut)
	}
	back := map[string]int{}
	for {
		rm, err := e.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.QueueURL,
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rm.Messages) == 0 {
			break
		}
		for _, m := range rm.Messages {
			back[aws.ToString(m.Body)]++
			if b := aws.ToString(m.Body); b != legacy && m.MessageAttributes["resetq.job-id"].StringValue == nil {
				t.Errorf("%s lost its job ID", b)
			}
		}
	}
	if len(back) != 3 || back[twice] != 1 || back[thrice] != 1 || back[legacy] != 1 {
		t.Fatalf("on the source queue: %v", back)
	}
	if n := opsDepth(t, e, e.DLQURL); n != 1 {
		t.Fatalf("%d messages left in the DLQ, want the invalid job only", n)
	}
}

// TestOpsSameQueueSpellings: a DLQ that is the source queue spelled another
// way (https for http, localhost for 127.0.0.1, the legacy AWS host) is
// refused by work, status and dlq redrive: its ARN is the source's.
func TestOpsSameQueueSpellings(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "spell")
	path := e.QueueURL[strings.Index(e.QueueURL[len("http://"):], "/")+len("http://"):]
	for _, other := range []string{
		strings.Replace(strings.Replace(e.QueueURL, "http://", "https://", 1), "127.0.0.1", "localhost", 1),
		"https://queue.amazonaws.com" + path,
	} {
		if code := e.Start("--dlq-url", other, "--exit-when-idle", "1s").Wait(t, time.Minute); code != 2 {
			t.Errorf("work --dlq-url %s: exit %d, want 2", other, code)
		}
		if _, errOut, code := opsRun(t, e, "dlq", "redrive", "--queue-url", e.QueueURL, "--dlq-url", other); code != 2 ||
			!strings.Contains(errOut, "the dead-letter queue is the source queue") {
			t.Errorf("redrive --dlq-url %s: exit %d %s", other, code, errOut)
		}
		if _, errOut, code := opsRun(t, e, "status", "--queue-url", e.QueueURL, "--dlq-url", other); code != 2 {
			t.Errorf("status --dlq-url %s: exit %d %s", other, code, errOut)
		}
	}
	if _, errOut, code := opsRun(t, e, "status", "--queue-url", e.QueueURL, "--dlq-url", e.DLQURL); code != 0 {
		t.Errorf("status with the real DLQ: exit %d %s", code, errOut)
	}
}
