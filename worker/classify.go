package worker

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/retry"
)

// Kind is what an AdminResetUserPassword result means for the job.
type Kind int

const (
	// OK: the user was reset.
	OK Kind = iota
	// Throttle: the Region's quota is used up. Slow down and try the same job
	// again; never a reason to give up on the job.
	Throttle
	// Limit: Cognito's per-user (or account) attempt limit. Retry much later.
	Limit
	// Transient: a service fault, a timeout or a network error. Retry with
	// backoff until Policy.MaxAttempts, then dead-letter as attempts_exhausted.
	Transient
	// Permanent: this job can never succeed. Dead-letter it at once.
	Permanent
	// Systemic: the pool, its Region or our credentials are misconfigured.
	// Every job of the Region would fail the same way: open the Region's
	// circuit and leave the jobs in the queue.
	Systemic
	// Canceled: the worker gave up on the call (shutdown). The outcome is
	// unknown, so the message must not be deleted.
	Canceled
)

var kindNames = [...]string{"ok", "throttle", "limit", "transient", "permanent", "systemic", "canceled"}

func (k Kind) String() string { return kindNames[k] }

// Scope is what a Systemic or Transient failure is about, hence whose
// circuit it counts against: the Region (network, service, credentials) or
// the one user pool (its roles, triggers and settings).
type Scope int

const (
	ScopeRegion Scope = iota
	ScopePool
	// ScopeEmail: Cognito's default email sender's daily limit, per account
	// and Region, for the pools that send through it.
	ScopeEmail
	// ScopeRole: the role of --pool-roles that reaches the pool could not
	// be assumed: the pools it reaches wait, the account's others go on.
	ScopeRole
)

// Class is the classification of one call's result.
type Class struct {
	Kind  Kind
	Scope Scope
	// Code is the Cognito error code verbatim (UserNotFoundException, ...), or
	// one of ok, timeout, network, credentials, canceled, unknown. It is the
	// DLQ reason of a Permanent result.
	Code string
	// Message is the service's message or the error text, for resetq.error.
	Message string
}

// codeKinds is the table of every error AdminResetUserPassword is modeled to
// return, plus the generic AWS codes that can come back from any API.
// NotAuthorizedException is decided by its message (see classifyNotAuthorized).
var codeKinds = map[string]Kind{
	"TooManyRequestsException":                 Throttle,
	"ThrottlingException":                      Throttle,
	"LimitExceededException":                   Limit,
	"InternalErrorException":                   Transient,
	"InternalFailure":                          Transient,
	"ServiceUnavailable":                       Transient,
	"UnexpectedLambdaException":                Transient, // repeated, it opens the circuit
	"UserNotFoundException":                    Permanent,
	"UnsupportedUserStateException":            Permanent, // a re-invitation of a user not in FORCE_CHANGE_PASSWORD
	"InvalidParameterException":                Permanent,
	"InvalidPasswordException":                 Permanent, // a kill's password refused by the pool's policy
	"UserLambdaValidationException":            Permanent,
	"ResourceNotFoundException":                Permanent, // a wrong pool ID must not stop its Region
	"InvalidSmsRoleAccessPolicyException":      Systemic,
	"InvalidSmsRoleTrustRelationshipException": Systemic,
	"InvalidEmailRoleAccessPolicyException":    Systemic,
	"InvalidLambdaResponseException":           Systemic,
	"OperationNotEnabledException":             Systemic,
	"AccessDeniedException":                    Systemic,
	"UnrecognizedClientException":              Systemic,
	"InvalidClientTokenId":                     Systemic,
	"InvalidSignatureException":                Systemic,
	"SignatureDoesNotMatch":                    Systemic,
	"IncompleteSignature":                      Systemic,
	"MissingAuthenticationToken":               Systemic,
	"ExpiredTokenException":                    Systemic,
}

// poolScoped are the codes about one pool's settings (its SMS and email
// roles, its triggers, its features, IAM access to it): they open that
// pool's circuit, not the Region's, so one misconfigured pool does not stop
// the others.
var poolScoped = map[string]bool{
	"InvalidPasswordException":                 true,
	"InvalidSmsRoleAccessPolicyException":      true,
	"InvalidSmsRoleTrustRelationshipException": true,
	"InvalidEmailRoleAccessPolicyException":    true,
	"InvalidLambdaResponseException":           true,
	"UnexpectedLambdaException":                true,
	"OperationNotEnabledException":             true,
	"AccessDeniedException":                    true,
	"NotAuthorizedException":                   true,
}

// notAuthorizedPerUser are the NotAuthorizedException messages that concern
// one user only (a user in a state that cannot be reset, or disabled). Any
// other NotAuthorizedException is about the caller, hence systemic.
var notAuthorizedPerUser = []string{
	"cannot be reset in the current state",
	"user is disabled",
}

// Classify maps the error of one Cognito call, as the cognito adapter
// returns it (awserr), to a Class.
// Codes missing from the table are Transient: they are retried a bounded
// number of times and then dead-lettered as attempts_exhausted, so an
// unforeseen error can neither loop forever nor empty the queue at once.
func Classify(err error) Class {
	if err == nil {
		return Class{Kind: OK, Code: "ok"}
	}
	msg := err.Error()
	var role *awserr.RoleError
	if errors.As(err, &role) {
		// The pool's role (--pool-roles) could not be assumed: every pool
		// the role reaches fails alike, so the role's circuit opens; the
		// account's other pools and the other accounts go on.
		if role.Denied {
			return Class{Kind: Systemic, Scope: ScopeRole, Code: job.ReasonAssumeRoleDenied, Message: "role " + role.Role + " cannot be assumed: " + msg}
		}
		return Class{Kind: Transient, Scope: ScopeRole, Code: CodeAssumeRoleFailed, Message: "role " + role.Role + ": " + msg}
	}
	if apiErr, ok := awserr.As(err); ok {
		code, m := apiErr.Code, apiErr.Message
		scope := ScopeRegion
		if poolScoped[code] {
			scope = ScopePool
		}
		if code == "NotAuthorizedException" {
			return Class{Kind: classifyNotAuthorized(m), Scope: scope, Code: code, Message: m}
		}
		if code == "LimitExceededException" && strings.Contains(strings.ToLower(m), "daily email limit") {
			// Not the per-user attempt limit: no retry helps for a day.
			return Class{Kind: Systemic, Scope: ScopeEmail, Code: CodeEmailLimit, Message: m}
		}
		kind, known := codeKinds[code]
		if !known {
			kind = Transient
		}
		if m == "" {
			m = msg
		}
		return Class{Kind: kind, Scope: scope, Code: code, Message: m}
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return Class{Kind: Canceled, Code: "canceled", Message: msg}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return Class{Kind: Transient, Code: "timeout", Message: msg}
	case errors.Is(err, awserr.ErrCredentials):
		return Class{Kind: Systemic, Code: "credentials", Message: msg}
	case errors.As(err, &netErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED):
		return Class{Kind: Transient, Code: "network", Message: msg}
	}
	return Class{Kind: Transient, Code: "unknown", Message: msg}
}

// CodeAssumeRoleFailed is the Code of an AssumeRole that STS did not
// answer (throttled, a fault, the network): retried like a fault.
const CodeAssumeRoleFailed = "assume_role_failed"

// CodeEmailLimit is the Code of LimitExceededException "Exceeded daily
// email limit", told apart from the per-user attempt limit.
const CodeEmailLimit = "DailyEmailLimitExceeded"

// cannotBeReset reports a reset refused for the user's state
// (FORCE_CHANGE_PASSWORD, UNCONFIRMED, an external IdP's user).
func cannotBeReset(c Class) bool {
	return c.Code == "NotAuthorizedException" && strings.Contains(strings.ToLower(c.Message), "cannot be reset in the current state")
}

// unreachable reports a reset refused because the user has no verified
// email or phone to send a code to.
func unreachable(c Class) bool {
	return c.Code == "InvalidParameterException" && strings.Contains(strings.ToLower(c.Message), "verified")
}

func classifyNotAuthorized(message string) Kind {
	m := strings.ToLower(message)
	for _, s := range notAuthorizedPerUser {
		if strings.Contains(m, s) {
			return Permanent
		}
	}
	return Systemic
}

// MetricCode bounds the code label of resetq_cognito_requests_total: codes
// from the table and the worker's own codes pass, anything else is "other".
func MetricCode(c Class) string {
	if _, known := codeKinds[c.Code]; known || c.Code == "NotAuthorizedException" {
		return c.Code
	}
	switch c.Code {
	case "ok", "timeout", "network", "credentials", "canceled", "unknown", CodeEmailLimit, job.ReasonLedgerUnavailable,
		job.ReasonAssumeRoleDenied, CodeAssumeRoleFailed:
		return c.Code
	}
	return "other"
}

// Action is what the worker does with a message after a call.
type Action int

const (
	// Delete: the job is done; delete the message.
	Delete Action = iota
	// RetryNow: call again in this process once the limiter allows; the
	// message stays invisible and no attempt is used.
	RetryNow
	// Retry: send a copy back to the queue with Delay and one more attempt
	// counted, then delete the original.
	Retry
	// Defer: like Retry, but no attempt is used (the Region's circuit is open).
	Defer
	// DeadLetter: send to the DLQ with Reason, then delete the original.
	DeadLetter
	// Release: make the message visible again without touching it.
	Release
	// Forget: the job already ended in this process and only its delete
	// failed; delete the message, count nothing.
	Forget
	// Abandon: the message's visibility lapsed before the call (extending
	// it failed); its next delivery owns the job, so touch nothing.
	Abandon
	// Hide: another delivery of the same message (SQS delivers at least
	// once) holds the user's claim: this one hides the message for Delay,
	// until that claim's lease ends, and touches nothing else; the holder
	// owns the job.
	Hide
)

var actionNames = [...]string{"delete", "retry_now", "retry", "defer", "dead_letter", "release", "forget", "abandon", "hide"}

func (a Action) String() string { return actionNames[a] }

// leaves reports whether a job with this outcome leaves this process
// without an end of its own: another delivery owns it (Release, Abandon,
// Hide), so it owes its user no kill and no sign-out here.
func (a Action) leaves() bool { return a == Release || a == Abandon || a == Hide }

// Decision is the outcome Decide picks for a job.
type Decision struct {
	Action Action
	Delay  time.Duration // for Retry
	Reason string        // for DeadLetter
}

// Policy holds the retry settings Decide applies.
type Policy struct {
	MaxAttempts int         // attempts (calls that failed other than by throttling) before attempts_exhausted
	Transient   retry.Curve // delay before retrying a Transient failure
	Limit       retry.Curve // delay before retrying a LimitExceededException
}

// Decide turns the class of the latest call and the number of attempts
// used so far (including that call; throttled calls do not count) into what
// happens to the job. r in [0,1) is the jitter draw. It is the one place
// that decides a job's outcome.
func Decide(c Class, attempts int, p Policy, r float64) Decision {
	switch c.Kind {
	case OK:
		return Decision{Action: Delete}
	case Throttle:
		return Decision{Action: RetryNow}
	case Permanent:
		return Decision{Action: DeadLetter, Reason: c.Code}
	case Systemic:
		return Decision{Action: Defer}
	case Canceled:
		return Decision{Action: Release}
	}
	// Transient and Limit use an attempt each.
	if attempts >= p.MaxAttempts {
		return Decision{Action: DeadLetter, Reason: job.ReasonAttemptsExhausted}
	}
	curve := p.Transient
	if c.Kind == Limit {
		curve = p.Limit
	}
	return Decision{Action: Retry, Delay: curve.Delay(attempts, r)}
}
