package awsproxy_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
)

func TestMain(m *testing.M) { mototest.Main(m) }

// sdkEnv is a proxy in front of the shared moto server, a pool with users
// alice and bob in region, and SDK clients (without retries) that go
// through the proxy.
type sdkEnv struct {
	proxy   *awsproxy.Server
	cfg     aws.Config // through the proxy
	cognito *cip.Client
	sqs     *sqs.Client
	pool    string
}

func newSDKEnv(t *testing.T, region string, opts ...awsproxy.Option) *sdkEnv {
	t.Helper()
	ctx := t.Context()
	server := mototest.Shared(t)
	proxy, err := awsproxy.Start(server.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	direct, err := moto.Config(ctx, server.URL, region)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := moto.CreatePool(ctx, direct, strings.ReplaceAll(t.Name(), "/", "-"))
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"alice", "bob"} {
		if err := moto.CreateUser(ctx, direct, pool, user, moto.Confirmed); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := moto.Config(ctx, proxy.URL, region)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	return &sdkEnv{
		proxy:   proxy,
		cfg:     cfg,
		cognito: cip.NewFromConfig(cfg),
		sqs:     sqs.NewFromConfig(cfg),
		pool:    pool,
	}
}

func (e *sdkEnv) reset(ctx context.Context, user string) error {
	_, err := e.cognito.AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{
		UserPoolId: aws.String(e.pool),
		Username:   aws.String(user),
	})
	return err
}

// assertCode checks that err is an API error with code and HTTP status.
func assertCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("got %v, want API error %s", err, code)
	}
	if apiErr.ErrorCode() != code {
		t.Errorf("error code %q, want %q", apiErr.ErrorCode(), code)
	}
	var respErr *awshttp.ResponseError
	if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != status {
		t.Errorf("got %v, want HTTP status %d", err, status)
	}
}

func TestSDKThrottled(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t, "us-east-1", awsproxy.WithNow(newClock().Now))
	e.proxy.SetQuota("AdminResetUserPassword", 1)
	if err := e.reset(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	err := e.reset(t.Context(), "bob")
	var throttled *ciptypes.TooManyRequestsException
	if !errors.As(err, &throttled) {
		t.Fatalf("got %v, want *types.TooManyRequestsException", err)
	}
	if throttled.ErrorMessage() != "Rate exceeded" {
		t.Errorf("message %q, want Rate exceeded", throttled.ErrorMessage())
	}
	assertCode(t, err, "TooManyRequestsException", 400)
	st := e.proxy.Stats()
	if st.Forwarded["AdminResetUserPassword"] != 1 || st.Throttled["AdminResetUserPassword"] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSDKQuotaPerRegion(t *testing.T) {
	t.Parallel()
	clk := newClock()
	us := newSDKEnv(t, "us-east-1", awsproxy.WithNow(clk.Now))
	us.proxy.SetQuota("AdminResetUserPassword", 1)
	// A second client in another Region, through the same proxy.
	eu := newSDKEnv(t, "eu-west-1")
	eu.cognito = cip.NewFromConfig(eu.cfg, func(o *cip.Options) { o.BaseEndpoint = aws.String(us.proxy.URL) })

	if err := us.reset(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if err := eu.reset(t.Context(), "alice"); err != nil {
		t.Fatalf("eu-west-1 throttled by the us-east-1 window: %v", err)
	}
	var throttled *ciptypes.TooManyRequestsException
	if err := eu.reset(t.Context(), "bob"); !errors.As(err, &throttled) {
		t.Errorf("second eu-west-1 call: got %v, want TooManyRequestsException", err)
	}
	clk.Advance(time.Second)
	if err := us.reset(t.Context(), "bob"); err != nil {
		t.Errorf("us-east-1 after a second: %v", err)
	}
}

func TestSDKInjectedErrors(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t, "us-east-1")

	id := e.proxy.AddFault(awsproxy.Fault{
		Operation: "AdminResetUserPassword",
		ErrorCode: "InvalidEmailRoleAccessPolicyException",
		Message:   "Cognito is not allowed to use your email identity",
	})
	err := e.reset(t.Context(), "alice")
	var policy *ciptypes.InvalidEmailRoleAccessPolicyException
	if !errors.As(err, &policy) {
		t.Fatalf("got %v, want *types.InvalidEmailRoleAccessPolicyException", err)
	}
	if policy.ErrorMessage() != "Cognito is not allowed to use your email identity" {
		t.Errorf("message %q", policy.ErrorMessage())
	}
	e.proxy.RemoveFault(id)

	id = e.proxy.AddFault(awsproxy.Fault{ErrorCode: "InternalErrorException", Status: 500})
	err = e.reset(t.Context(), "alice")
	var internal *ciptypes.InternalErrorException
	if !errors.As(err, &internal) {
		t.Errorf("got %v, want *types.InternalErrorException", err)
	}
	assertCode(t, err, "InternalErrorException", 500)
	e.proxy.RemoveFault(id)

	// A code the Cognito model does not know still comes out as its code.
	e.proxy.AddFault(awsproxy.Fault{ErrorCode: "ServiceUnavailable", Status: 503})
	err = e.reset(t.Context(), "alice")
	assertCode(t, err, "ServiceUnavailable", 503)
	e.proxy.ClearFaults()

	// None of the faulted calls reached moto.
	status, err := moto.UserStatus(t.Context(), e.cfg, e.pool, "alice")
	if err != nil || status != "CONFIRMED" {
		t.Errorf("alice is %q (%v), want CONFIRMED", status, err)
	}
}

func TestSDKResetConnection(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t, "us-east-1")
	e.proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", Count: 1, ResetConnection: true})
	err := e.reset(t.Context(), "alice")
	var sendErr *smithyhttp.RequestSendError
	if !errors.As(err, &sendErr) {
		t.Fatalf("got %v, want a *smithyhttp.RequestSendError", err)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		t.Errorf("got API error %v, want a network error", apiErr)
	}
	t.Logf("reset connection gives: %v", err)
	if err := e.reset(t.Context(), "alice"); err != nil {
		t.Errorf("after Count ran out: %v", err)
	}
}

// TestSDKBodyContains checks how the SDK writes the request body: compact
// JSON with the members in case-insensitive alphabetical order (Username
// before UserPoolId), so `"Username":"bob"` selects bob's calls.
func TestSDKBodyContains(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newSDKEnv(t, "us-east-1")
	e.proxy.AddFault(awsproxy.Fault{
		Operation:    "AdminResetUserPassword",
		BodyContains: `{"Username":"bob","UserPoolId":"` + e.pool + `"}`,
		ErrorCode:    "UserLambdaValidationException",
	})
	if err := e.reset(ctx, "alice"); err != nil {
		t.Errorf("alice: %v", err)
	}
	var lambda *ciptypes.UserLambdaValidationException
	if err := e.reset(ctx, "bob"); !errors.As(err, &lambda) {
		t.Errorf("bob: got %v, want UserLambdaValidationException", err)
	}
	for user, want := range map[string]string{"alice": "RESET_REQUIRED", "bob": "CONFIRMED"} {
		if got, err := moto.UserStatus(ctx, e.cfg, e.pool, user); err != nil || got != want {
			t.Errorf("%s is %q (%v), want %s", user, got, err, want)
		}
	}
	st := e.proxy.Stats()
	if st.Faulted["AdminResetUserPassword"] != 1 || st.Forwarded["AdminResetUserPassword"] != 1 ||
		st.Forwarded["AdminGetUser"] != 2 {
		t.Errorf("stats = %+v", st)
	}
}

// TestSDKSQS drives SQS (JSON 1.0, AmazonSQS.*) through the proxy.
func TestSDKSQS(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newSDKEnv(t, "us-east-1", awsproxy.WithNow(newClock().Now))
	queueURL, _, err := moto.CreateQueues(ctx, e.cfg, "awsproxy-sdk", 3, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String("job")}); err != nil {
		t.Fatal(err)
	}

	e.proxy.SetQuota("ReceiveMessage", 1)
	out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %d messages, %v", len(out.Messages), err)
	}
	_, err = e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL)})
	assertCode(t, err, "TooManyRequestsException", 400)

	e.proxy.AddFault(awsproxy.Fault{Operation: "DeleteMessageBatch", Count: 1, ErrorCode: "OverLimit", Status: 403})
	entries := []sqstypes.DeleteMessageBatchRequestEntry{{Id: aws.String("0"), ReceiptHandle: out.Messages[0].ReceiptHandle}}
	_, err = e.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
	var overLimit *sqstypes.OverLimit
	if !errors.As(err, &overLimit) {
		t.Errorf("got %v, want *types.OverLimit", err)
	}
	del, err := e.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
	if err != nil || len(del.Successful) != 1 {
		t.Errorf("delete after the fault: %+v, %v", del, err)
	}

	st := e.proxy.Stats()
	want := awsproxy.Stats{
		Forwarded: map[string]int{"CreateQueue": 2, "GetQueueAttributes": 1, "SendMessage": 1, "ReceiveMessage": 1, "DeleteMessageBatch": 1},
		Throttled: map[string]int{"ReceiveMessage": 1},
		Faulted:   map[string]int{"DeleteMessageBatch": 1},
	}
	if !maps.Equal(st.Forwarded, want.Forwarded) || !maps.Equal(st.Throttled, want.Throttled) ||
		!maps.Equal(st.Faulted, want.Faulted) {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
}
