package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

// TestWorkOutcomes: a campaign with every kind of job ends with each user
// reset or each job in the DLQ with the right reason, nothing left behind,
// and the worker exits 0 by itself.
func TestWorkOutcomes(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "outcomes")
	east := e.Pool(e.East, map[string]moto.UserState{
		"alice": moto.Confirmed, "bob@example.com": moto.Confirmed, "carol": moto.Confirmed,
		"nocontact": moto.ConfirmedNoContact, "unconfirmed": moto.Unconfirmed, "disabled": moto.Disabled, "flaky": moto.Confirmed,
	})
	west := e.Pool(e.West, map[string]moto.UserState{"wendy": moto.Confirmed})
	// flaky's calls always fail with a 500: it must end attempts_exhausted.
	e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", BodyContains: `"Username":"flaky"`,
		Status: 500, ErrorCode: "InternalErrorException", Message: "injected"})

	e.Send("camp-1",
		testenv.Job(east, "alice"), testenv.Job(east, "bob@example.com"), testenv.Job(west, "wendy"),
		`{"UserPoolId":"`+east+`","Username":"carol","ClientMetadata":{"reason":"incident-7"}}`,
		testenv.Job(east, "nocontact"), testenv.Job(east, "unconfirmed"), testenv.Job(east, "disabled"), testenv.Job(east, "ghost"),
		testenv.Job("us-east-1_doesNotExist0", "alice"), testenv.Job(east, "flaky"),
		`not json`, `{"UserPoolId":"`+east+`","Username":"x","Admin":true}`, `{"UserPoolId":"nopool","Username":"x"}`,
		`{"UserPoolId":"`+east+`","Username":42}`,
	)
	// A job written by the AWS CLI, as an operator would, is accepted as is.
	cli := exec.Command("aws", "--endpoint-url", e.Moto.URL, "--region", "us-east-1", "sqs", "send-message",
		"--queue-url", e.QueueURL, "--message-body", testenv.Job(east, "carol"))
	cli.Env = e.ChildEnv("AWS_DEFAULT_REGION=us-east-1")
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("aws sqs send-message: %v\n%s", err, out)
	}

	p := e.Start("--exit-when-idle", "3s", "--max-attempts", "2")
	if code := p.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	for user, pool := range map[string]string{"alice": east, "bob@example.com": east, "carol": east} {
		if s := e.Status(e.East, pool, user); s != "RESET_REQUIRED" {
			t.Errorf("%s is %s, want RESET_REQUIRED", user, s)
		}
	}
	if s := e.Status(e.West, west, "wendy"); s != "RESET_REQUIRED" {
		t.Errorf("wendy (eu-west-1) is %s, want RESET_REQUIRED", s)
	}
	for _, u := range []string{"nocontact", "disabled", "flaky"} {
		if s := e.Status(e.East, east, u); s == "RESET_REQUIRED" {
			t.Errorf("%s was reset", u)
		}
	}

	want := map[string]string{ // body substring -> reason
		`"nocontact"`:   "InvalidParameterException",
		`"unconfirmed"`: "NotAuthorizedException",
		`"disabled"`:    "NotAuthorizedException",
		`"ghost"`:       "UserNotFoundException",
		`doesNotExist0`: "ResourceNotFoundException",
		`"flaky"`:       "attempts_exhausted",
		`not json`:      "invalid_job",
		`"Admin":true`:  "invalid_job",
		`"nopool"`:      "invalid_job",
		`"Username":42`: "invalid_job",
	}
	dl := e.DrainDLQ()
	if len(dl) != len(want) {
		for _, d := range dl {
			t.Logf("DLQ: %s %v", d.Body, d.Attrs)
		}
		t.Fatalf("%d DLQ messages, want %d", len(dl), len(want))
	}
	for _, d := range dl {
		matched := false
		for sub, reason := range want {
			if strings.Contains(d.Body, sub) {
				matched = true
				if d.Attrs["resetq.reason"] != reason {
					t.Errorf("%s: reason %q, want %q (error %q)", d.Body, d.Attrs["resetq.reason"], reason, d.Attrs["resetq.error"])
				}
			}
		}
		if !matched {
			t.Errorf("unexpected DLQ message %s %v", d.Body, d.Attrs)
		}
		if d.Attrs["resetq.campaign"] != "camp-1" {
			t.Errorf("%s: campaign %q not kept", d.Body, d.Attrs["resetq.campaign"])
		}
		if d.Attrs["resetq.error"] == "" || d.Attrs["resetq.attempts"] == "" {
			t.Errorf("%s: missing resetq.error/attempts: %v", d.Body, d.Attrs)
		}
		if _, err := time.Parse(time.RFC3339, d.Attrs["resetq.failed_at"]); err != nil {
			t.Errorf("%s: failed_at %q", d.Body, d.Attrs["resetq.failed_at"])
		}
		if strings.Contains(d.Body, `"flaky"`) && (d.Attrs["resetq.attempts"] != "2" || !strings.Contains(d.Attrs["resetq.error"], "InternalErrorException")) {
			t.Errorf("flaky: attempts %q error %q", d.Attrs["resetq.attempts"], d.Attrs["resetq.error"])
		}
	}
	if v, f, d := e.Depth(); v+f+d != 0 {
		t.Fatalf("source queue not empty: %d visible, %d in flight, %d delayed", v, f, d)
	}
	logs := p.Logs()
	for _, secret := range []string{"bob@example.com", "incident-7"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q: usernames are hashed by default and ClientMetadata is never logged", secret)
		}
	}
}

// TestWorkThrottled: with a quota far below --rate, calls are throttled,
// the limiter adapts, and every job still ends reset, none dead-lettered.
func TestWorkThrottled(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "throttled")
	pool, users, bodies := e.ConfirmedUsers(e.East, "u", 40)
	e.Proxy.SetQuota("AdminResetUserPassword", 4)
	e.Send("throttle", bodies...)

	p := e.Start("--exit-when-idle", "3s", "--rate", "30", "--max-attempts", "1")
	// Read the worker's own view of the throttling while it runs.
	var throttles, limit float64
	testenv.Eventually(t, 2*time.Minute, "resetq_throttles_total to rise", func() bool {
		throttles = p.Metric(t, `resetq_throttles_total{account="`+moto.Account+`",region="us-east-1"}`)
		limit = p.Metric(t, `resetq_ratelimit_limit{account="`+moto.Account+`",region="us-east-1"}`)
		return throttles > 0
	})
	if code := p.Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users...)
	if dl := e.DrainDLQ(); len(dl) != 0 {
		t.Fatalf("%d jobs dead-lettered; throttling must never dead-letter (first: %v)", len(dl), dl[0].Attrs)
	}
	st := e.Proxy.Stats()
	if st.Throttled["AdminResetUserPassword"] == 0 {
		t.Fatal("the proxy throttled nothing: the test did not exercise throttling")
	}
	if limit <= 0 || limit >= 30 {
		t.Errorf("resetq_ratelimit_limit %v after a throttle, want it cut below the ceiling 30", limit)
	}
	if got := st.Forwarded["AdminResetUserPassword"]; got != len(users) {
		t.Errorf("%d resets reached Cognito, want exactly %d (one per user)", got, len(users))
	}
	t.Logf("throttled %d of %d calls", st.Throttled["AdminResetUserPassword"], st.Throttled["AdminResetUserPassword"]+st.Forwarded["AdminResetUserPassword"])
}

// TestWorkCircuitBreaker: credentials refused in us-east-1 (as in a
// Region not enabled for the account) open that Region's circuit after a
// few calls; its jobs stay in the queue (none dead-lettered), eu-west-1
// jobs keep flowing, readiness is false, and when the fault clears
// everything completes.
func TestWorkCircuitBreaker(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "circuit")
	east, eastUsers, eastJobs := e.ConfirmedUsers(e.East, "e", 10)
	west, westUsers, westJobs := e.ConfirmedUsers(e.West, "w", 10)
	fault := e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", BodyContains: `"UserPoolId":"` + east + `"`,
		ErrorCode: "UnrecognizedClientException", Message: "The security token included in the request is invalid."})
	e.Send("circuit", append(eastJobs, westJobs...)...)

	p := e.Start("--exit-when-idle", "3s", "--circuit-cooldown", "1s", "--concurrency", "4")
	testenv.Eventually(t, time.Minute, "the us-east-1 circuit to open", func() bool {
		return p.Metric(t, `resetq_circuit_open{account="`+moto.Account+`",region="us-east-1"}`) == 1
	})
	resp, err := httpGet("http://" + p.MetricsAddr() + "/readyz")
	if err != nil || resp != 503 {
		t.Errorf("/readyz = %d %v with an open circuit, want 503", resp, err)
	}
	testenv.Eventually(t, time.Minute, "eu-west-1 jobs to complete while us-east-1 is broken", func() bool {
		for _, u := range westUsers {
			if e.Status(e.West, west, u) != "RESET_REQUIRED" {
				return false
			}
		}
		return true
	})
	faulted := e.Proxy.Stats().Faulted["AdminResetUserPassword"]
	if faulted > 4+3 { // at most the calls in flight when it opened, plus a few probes
		t.Errorf("%d calls hit the broken pool; the circuit should stop them after a few", faulted)
	}
	e.Proxy.RemoveFault(fault)
	if code := p.Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	e.ExpectStatus(e.East, east, "RESET_REQUIRED", eastUsers...)
	if dl := e.DrainDLQ(); len(dl) != 0 {
		t.Fatalf("%d jobs dead-lettered by a systemic error (first: %v)", len(dl), dl[0].Attrs)
	}
	if !strings.Contains(p.Logs(), "circuit open") || !strings.Contains(p.Logs(), "circuit closed") {
		t.Error("the log does not say that the circuit opened and closed")
	}
}

// TestWorkBadPoolDoesNotStallItsRegion: two pools in one Region, one of
// them misconfigured (its SMS role cannot be assumed). Every job of the
// good pool is reset without waiting; the bad pool's jobs stay on the
// queue, with calls for it bounded by the probes, until --max-deferral
// dead-letters them with the error, for a redrive after the fix.
func TestWorkBadPoolDoesNotStallItsRegion(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "badpool")
	bad, badUsers, badJobs := e.ConfirmedUsers(e.East, "b", 8)
	good, goodUsers, goodJobs := e.ConfirmedUsers(e.East, "g", 12)
	e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", BodyContains: `"UserPoolId":"` + bad + `"`,
		ErrorCode: "InvalidSmsRoleAccessPolicyException", Message: "Role does not have permission to publish with SNS"})
	var jobs []string
	for i := range goodJobs { // interleaved, so the good pool's jobs come after bad ones
		jobs = append(jobs, goodJobs[i])
		if i < len(badJobs) {
			jobs = append(jobs, badJobs[i])
		}
	}
	e.Send("badpool", jobs...)

	p := e.Start("--circuit-cooldown", "2s", "--max-deferral", "20s", "--concurrency", "4", "--exit-when-idle", "3s")
	start := time.Now()
	testenv.Eventually(t, time.Minute, "every good-pool job reset", func() bool {
		for _, u := range goodUsers {
			if e.Status(e.East, good, u) != "RESET_REQUIRED" {
				return false
			}
		}
		return true
	})
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the good pool took %v: the bad pool held it up", took)
	}
	if p.Metric(t, `resetq_circuit_open{account="`+moto.Account+`",region="us-east-1"}`) != 0 {
		t.Error("a pool-level error opened the Region's circuit")
	}
	if code := p.Ready(); code != 200 {
		t.Errorf("/readyz = %d with one bad pool, want 200", code)
	}
	if p.Metric(t, "resetq_pool_circuits_open") != 1 {
		t.Error("resetq_pool_circuits_open is not 1")
	}
	if code := p.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	elapsed := time.Since(start)
	// Calls for the bad pool: those in flight when it opened, then one
	// probe per cooldown (2s, doubling to the 10m cap) at most.
	faulted := e.Proxy.Stats().Faulted["AdminResetUserPassword"]
	if maxCalls := 4 + int(elapsed/(2*time.Second)) + 1; faulted > maxCalls {
		t.Errorf("%d calls hit the bad pool in %v; want at most %d (the probes)", faulted, elapsed.Round(time.Second), maxCalls)
	}
	dl := e.DrainDLQ()
	if len(dl) != len(badJobs) {
		t.Fatalf("%d dead letters, want the %d jobs of the bad pool after --max-deferral", len(dl), len(badJobs))
	}
	for _, d := range dl {
		if d.Attrs["resetq.reason"] != "InvalidSmsRoleAccessPolicyException" {
			t.Fatalf("dead letter %v: want the systemic reason", d.Attrs)
		}
	}
	e.ExpectStatus(e.East, bad, "CONFIRMED", badUsers...)
}

// TestWorkSIGTERM: SIGTERM mid-campaign stops the worker within the
// shutdown timeout with exit 0; every job is a reset user or still in the
// queue, visible again at once; a second run finishes the campaign.
func TestWorkSIGTERM(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "sigterm")
	pool, users, bodies := e.ConfirmedUsers(e.East, "s", 40)
	e.Send("sigterm", bodies...)
	resetCount := func() int {
		n := 0
		for _, u := range users {
			if e.Status(e.East, pool, u) == "RESET_REQUIRED" {
				n++
			}
		}
		return n
	}

	p := e.Start("--rate", "4", "--shutdown-timeout", "10s")
	testenv.Eventually(t, time.Minute, "a few resets", func() bool { return p.Metric(t, `resetq_jobs_total{outcome="reset"}`) >= 4 })
	p.Signal(t, syscall.SIGTERM)
	start := time.Now()
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("exited %v after SIGTERM, more than --shutdown-timeout 10s", took)
	}
	done := resetCount()
	visible, inflight, delayed := e.Depth()
	if inflight != 0 {
		t.Errorf("%d messages still in flight after shutdown: they should be visible again at once", inflight)
	}
	if done+visible+delayed != len(users) {
		t.Fatalf("ledger after SIGTERM: %d reset + %d in queue != %d jobs", done, visible+delayed, len(users))
	}
	if done == len(users) {
		t.Fatal("everything was done before SIGTERM: the test did not stop mid-run")
	}
	t.Logf("SIGTERM after %d of %d resets", done, len(users))

	p2 := e.Start("--exit-when-idle", "3s")
	if code := p2.Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("second run exit code %d", code)
	}
	if n := resetCount(); n != len(users) {
		t.Fatalf("%d of %d reset after the second run", n, len(users))
	}
	if dl := e.DrainDLQ(); len(dl) != 0 {
		t.Fatalf("%d dead letters", len(dl))
	}
}

// TestWorkUsage: bad usage and configuration exit 2 with a clear message.
func TestWorkUsage(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "usage")
	ctx := context.Background()
	plainURL, err := createPlainQueue(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no queue", []string{"work"}, nil, "--queue-url is required"},
		{"bad rate", []string{"work", "--queue-url", e.QueueURL, "--rate", "0"}, nil, "--rate must be positive"},
		{"bad rate env", []string{"work"}, []string{"RESETQ_QUEUE_URL=" + e.QueueURL, "RESETQ_RATE=fast"}, "RESETQ_RATE"},
		{"bad flag", []string{"work", "--queue-url", e.QueueURL, "--nope"}, nil, "flag provided but not defined"},
		{"bad log format", []string{"work", "--queue-url", e.QueueURL, "--log-format", "xml"}, nil, "--log-format"},
		{"no DLQ", []string{"work", "--queue-url", plainURL}, nil, "no dead-letter queue"},
		{"missing queue", []string{"work", "--queue-url", e.Moto.URL + "/123456789012/nope"}, nil, "read the source queue"},
		{"DLQ is the source", []string{"work", "--queue-url", e.QueueURL, "--dlq-url", e.QueueURL}, nil, "dead-letter queue is the source queue"},
		{"no pool choice", []string{"work", "--queue-url", e.QueueURL}, []string{"RESETQ_ALLOW_ANY_POOL=false"}, "set --pool"},
		{"bad allowed pool", []string{"work", "--queue-url", e.QueueURL, "--pool", "us-east-1_A,nope"}, []string{"RESETQ_ALLOW_ANY_POOL=false"}, "--pool"},
		{"both pool choices", []string{"work", "--queue-url", e.QueueURL, "--pool", "us-east-1_A"}, nil, "contradict"},
		{"unknown command", []string{"frobnicate"}, nil, "unknown command"},
	}
	for _, tt := range tests {
		cmd := exec.Command(testenv.Binary(t), tt.args...)
		cmd.Env = e.ChildEnv(append([]string{"RESETQ_ALLOW_ANY_POOL=true"}, tt.env...)...)
		out, err := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		if code != 2 || !strings.Contains(string(out), tt.want) {
			t.Errorf("%s: exit %d (%v), output %q; want exit 2 mentioning %q", tt.name, code, err, out, tt.want)
		}
	}
	// A DLQ given by flag makes a queue without RedrivePolicy usable.
	p := e.Start("--exit-when-idle", "1s", "--queue-url", plainURL, "--dlq-url", e.DLQURL)
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("with --dlq-url: exit %d", code)
	}
}

func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// createPlainQueue makes a queue with no RedrivePolicy.
func createPlainQueue(ctx context.Context, e *testenv.Env) (string, error) {
	out, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("plain" + strconv.FormatInt(time.Now().UnixNano(), 36))})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.QueueUrl), nil
}
