package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/smithy-go"
	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/retry"
)

// apiErr is a Cognito error answer as the SDK returns it, wrapped as the
// adapter wraps it.
func apiErr(code, msg string) error {
	return fmt.Errorf("admin-reset-user-password in us-east-1: %w", awserr.From(
		&smithy.OperationError{ServiceID: "Cognito Identity Provider", OperationName: "AdminResetUserPassword",
			Err: &smithy.GenericAPIError{Code: code, Message: msg}}))
}

// roleErr is a Cognito call whose role's credentials could not be got, as
// the SDK wraps the provider's error.
func roleErr(denied bool, stsCode string) error {
	return fmt.Errorf("admin-reset-user-password in us-east-1: %w", &smithy.OperationError{ServiceID: "Cognito Identity Provider",
		OperationName: "AdminResetUserPassword", Err: fmt.Errorf("get identity: get credentials: failed to refresh cached credentials, %w",
			&awserr.RoleError{Role: "arn:aws:iam::222222222222:role/r", Denied: denied,
				Err: &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: &smithy.GenericAPIError{Code: stsCode}}})})
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		kind Kind
		code string
	}{
		{"success", nil, OK, "ok"},
		// The modeled errors of AdminResetUserPassword, as the SDK types them.
		{"TooManyRequests typed", &types.TooManyRequestsException{Message: new("Rate exceeded")}, Throttle, "TooManyRequestsException"},
		{"LimitExceeded typed", &types.LimitExceededException{Message: new("Attempt limit exceeded, please try after some time.")}, Limit, "LimitExceededException"},
		{"InternalError typed", &types.InternalErrorException{}, Transient, "InternalErrorException"},
		{"UnexpectedLambda typed", &types.UnexpectedLambdaException{}, Transient, "UnexpectedLambdaException"},
		{"UserNotFound typed", &types.UserNotFoundException{Message: new("User does not exist.")}, Permanent, "UserNotFoundException"},
		{"InvalidParameter typed", &types.InvalidParameterException{}, Permanent, "InvalidParameterException"},
		{"UserLambdaValidation typed", &types.UserLambdaValidationException{}, Permanent, "UserLambdaValidationException"},
		{"ResourceNotFound typed", &types.ResourceNotFoundException{}, Permanent, "ResourceNotFoundException"},
		{"InvalidSmsRoleAccessPolicy typed", &types.InvalidSmsRoleAccessPolicyException{}, Systemic, "InvalidSmsRoleAccessPolicyException"},
		{"InvalidSmsRoleTrustRelationship typed", &types.InvalidSmsRoleTrustRelationshipException{}, Systemic, "InvalidSmsRoleTrustRelationshipException"},
		{"InvalidEmailRoleAccessPolicy typed", &types.InvalidEmailRoleAccessPolicyException{}, Systemic, "InvalidEmailRoleAccessPolicyException"},
		{"InvalidLambdaResponse typed", &types.InvalidLambdaResponseException{}, Systemic, "InvalidLambdaResponseException"},
		{"NotAuthorized state", &types.NotAuthorizedException{Message: new("User password cannot be reset in the current state.")}, Permanent, "NotAuthorizedException"},
		{"NotAuthorized disabled", apiErr("NotAuthorizedException", "User is disabled."), Permanent, "NotAuthorizedException"},
		{"NotAuthorized other", apiErr("NotAuthorizedException", "Access to this pool is not authorized."), Systemic, "NotAuthorizedException"},
		{"OperationNotEnabled", apiErr("OperationNotEnabledException", "not enabled"), Systemic, "OperationNotEnabledException"},
		{"AccessDenied", apiErr("AccessDeniedException", "User is not authorized to perform: cognito-idp:AdminResetUserPassword"), Systemic, "AccessDeniedException"},
		{"expired token", apiErr("ExpiredTokenException", "expired"), Systemic, "ExpiredTokenException"},
		{"bad signature", apiErr("InvalidSignatureException", "sig"), Systemic, "InvalidSignatureException"},
		{"unknown code", apiErr("SomethingNewException", "?"), Transient, "SomethingNewException"},
		{"wrapped deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), Transient, "timeout"},
		{"canceled", fmt.Errorf("call: %w", context.Canceled), Canceled, "canceled"},
		{"connection reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, Transient, "network"},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), Transient, "network"},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), Transient, "network"},
		{"no credentials", fmt.Errorf("operation error: get identity: get credentials: failed to refresh cached credentials"), Systemic, "credentials"},
		{"signing error", &v4.SigningError{Err: errors.New("failed to retrieve credentials")}, Systemic, "credentials"},
		{"anything else", errors.New("boom"), Transient, "unknown"},
		// A role of --pool-roles that cannot be assumed, inside the SDK's
		// credential wrapping; the STS answer inside must not read as Cognito's.
		{"assume role denied", roleErr(true, "AccessDenied"), Systemic, job.ReasonAssumeRoleDenied},
		{"assume role faulted", roleErr(false, "ServiceUnavailable"), Transient, CodeAssumeRoleFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(awserr.From(tt.err)) // as the cognito adapter hands it over
			if got.Kind != tt.kind || got.Code != tt.code {
				t.Fatalf("Classify(%v) = %v/%s, want %v/%s", tt.err, got.Kind, got.Code, tt.kind, tt.code)
			}
			if tt.err != nil && got.Message == "" {
				t.Fatal("Classify lost the message")
			}
		})
	}
}

func TestMetricCodeIsBounded(t *testing.T) {
	t.Parallel()
	if got := MetricCode(Classify(apiErr("SomethingNewException", "?"))); got != "other" {
		t.Fatalf("unknown code label = %q, want other", got)
	}
	if got := MetricCode(Classify(apiErr("UserNotFoundException", "x"))); got != "UserNotFoundException" {
		t.Fatalf("known code label = %q", got)
	}
	// The ledger's circuit keeps its reason: jobs it holds past
	// --max-deferral are dead-lettered as ledger_unavailable, not circuit_open.
	if got := MetricCode(Class{Kind: Systemic, Code: job.ReasonLedgerUnavailable}); got != job.ReasonLedgerUnavailable {
		t.Fatalf("the ledger's label = %q", got)
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	p := Policy{MaxAttempts: 3, Transient: retry.Curve{Base: 2 * time.Second, Max: time.Minute}, Limit: retry.Curve{Base: time.Minute, Max: 15 * time.Minute}}
	tests := []struct {
		name     string
		class    Class
		attempts int
		want     Decision
	}{
		{"ok deletes", Class{Kind: OK}, 1, Decision{Action: Delete}},
		{"throttle retries now, however many times", Class{Kind: Throttle}, 1000, Decision{Action: RetryNow}},
		{"permanent dead-letters with the code", Class{Kind: Permanent, Code: "UserNotFoundException"}, 1, Decision{Action: DeadLetter, Reason: "UserNotFoundException"}},
		{"systemic defers", Class{Kind: Systemic, Code: "AccessDeniedException"}, 99, Decision{Action: Defer}},
		{"canceled releases", Class{Kind: Canceled}, 1, Decision{Action: Release}},
		{"transient first retry", Class{Kind: Transient}, 1, Decision{Action: Retry, Delay: 1500 * time.Millisecond}},
		{"transient second retry", Class{Kind: Transient}, 2, Decision{Action: Retry, Delay: 3 * time.Second}},
		{"transient exhausted", Class{Kind: Transient, Code: "InternalErrorException"}, 3, Decision{Action: DeadLetter, Reason: job.ReasonAttemptsExhausted}},
		{"limit waits long", Class{Kind: Limit}, 1, Decision{Action: Retry, Delay: 45 * time.Second}},
		{"limit exhausted", Class{Kind: Limit}, 3, Decision{Action: DeadLetter, Reason: job.ReasonAttemptsExhausted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.class, tt.attempts, p, 0.5); got != tt.want {
				t.Fatalf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWithAttributesKeepsFailureRecordUnderLimit(t *testing.T) {
	t.Parallel()
	orig := map[string]job.Attribute{job.AttrCampaign: {DataType: "String", StringValue: "c"}}
	for i := range 9 {
		orig[fmt.Sprintf("a%d", i)] = job.Attribute{DataType: "String", StringValue: "x"}
	}
	got := withAttributes(orig, map[string]string{job.AttrReason: "r", job.AttrError: "e", job.AttrAttempts: "1", job.AttrFailedAt: "t"})
	if len(got) != maxAttributes {
		t.Fatalf("%d attributes, want %d", len(got), maxAttributes)
	}
	for _, k := range []string{job.AttrCampaign, job.AttrReason, job.AttrError, job.AttrAttempts, job.AttrFailedAt, "a0"} {
		if _, ok := got[k]; !ok {
			t.Errorf("attribute %s dropped", k)
		}
	}
	if _, ok := got["a8"]; ok {
		t.Error("a8 kept; the last names should go first")
	}
	small := withAttributes(map[string]job.Attribute{"x": {DataType: "Number", StringValue: "1"}}, map[string]string{job.AttrAttempts: "2"})
	if small["x"].DataType != "Number" || small[job.AttrAttempts].StringValue != "2" || len(small) != 2 {
		t.Errorf("withAttributes = %+v", small)
	}
}

func TestSQSText(t *testing.T) {
	t.Parallel()
	if got := sqsText("a\x00b\x1bc\td"); got != "a\uFFFDb\uFFFDc\td" {
		t.Errorf("sqsText = %q", got)
	}
	if got := sqsText(""); got == "" {
		t.Error("empty error text stays empty")
	}
	long := sqsText(string(make([]byte, 5000)))
	if len(long) > maxErrorLen+3 {
		t.Errorf("sqsText length %d", len(long))
	}
}
