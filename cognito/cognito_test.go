package cognito_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/worker"
)

func TestMain(m *testing.M) { mototest.Main(m) }

const op = "AdminResetUserPassword"

// config returns an SDK configuration for endpoint in region.
func config(t *testing.T, endpoint, region string) aws.Config {
	t.Helper()
	cfg, err := moto.Config(t.Context(), endpoint, region)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// uniqueName gives each test its own pools on the shared server.
func uniqueName(t *testing.T) string {
	return strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
}

// newPool creates a pool in region (directly in moto) holding the given
// users, and returns its ID and a configuration for that Region.
func newPool(t *testing.T, region string, users map[string]moto.UserState) (string, aws.Config) {
	t.Helper()
	ctx := t.Context()
	cfg := config(t, mototest.Shared(t).URL, region)
	pool, err := moto.CreatePool(ctx, cfg, uniqueName(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range users {
		if err := moto.CreateUser(ctx, cfg, pool, name, st); err != nil {
			t.Fatal(err)
		}
	}
	return pool, cfg
}

// newClient is the adapter on a us-east-1 configuration for endpoint, as
// cmd/resetq builds it from the environment.
func newClient(t *testing.T, endpoint string) *cognito.Client {
	t.Helper()
	return cognito.New(config(t, endpoint, "us-east-1"))
}

func assertClass(t *testing.T, err error, kind worker.Kind, code string) {
	t.Helper()
	c := worker.Classify(awserr.From(err)) // the controls' plain SDK clients return the SDK's errors
	if c.Kind != kind || c.Code != code {
		t.Errorf("Classify(%v) = %v/%s (%q), want %v/%s", err, c.Kind, c.Code, c.Message, kind, code)
	}
}

// TestResetConfirmed resets a confirmed user twice: both calls succeed and
// the user is RESET_REQUIRED.
func TestResetConfirmed(t *testing.T) {
	t.Parallel()
	pool, cfg := newPool(t, "us-east-1", map[string]moto.UserState{"alice": moto.Confirmed})
	c := newClient(t, mototest.Shared(t).URL)
	job := job.Job{UserPoolID: pool, Username: "alice"}

	mototest.ExpectStatus(t, cfg, pool, "CONFIRMED", "alice")
	if err := c.ResetUserPassword(t.Context(), job); err != nil {
		t.Fatalf("first reset: %v", err)
	}
	mototest.ExpectStatus(t, cfg, pool, "RESET_REQUIRED", "alice")
	if err := c.ResetUserPassword(t.Context(), job); err != nil {
		t.Fatalf("second reset: %v", err)
	}
	mototest.ExpectStatus(t, cfg, pool, "RESET_REQUIRED", "alice")
}

// TestResetErrors checks that each failing state gives the error class the
// worker expects, and that a failed reset leaves the user as it was.
func TestResetErrors(t *testing.T) {
	t.Parallel()
	users := map[string]moto.UserState{
		"no-contact":  moto.ConfirmedNoContact,
		"unconfirmed": moto.Unconfirmed,
		"disabled":    moto.Disabled,
	}
	pool, cfg := newPool(t, "us-east-1", users)
	c := newClient(t, mototest.Shared(t).URL)

	tests := []struct {
		name       string
		job        job.Job
		kind       worker.Kind
		code       string
		msg        string // part of the service's message
		wantStatus string // "" for no user
	}{
		{"ConfirmedNoContact", job.Job{UserPoolID: pool, Username: "no-contact"},
			worker.Permanent, "InvalidParameterException", "no registered/verified email or phone_number", "CONFIRMED"},
		{"Unconfirmed", job.Job{UserPoolID: pool, Username: "unconfirmed"},
			worker.Permanent, "NotAuthorizedException", "cannot be reset in the current state", "FORCE_CHANGE_PASSWORD"},
		{"Disabled", job.Job{UserPoolID: pool, Username: "disabled"},
			worker.Permanent, "NotAuthorizedException", "User is disabled", "CONFIRMED"},
		{"MissingUser", job.Job{UserPoolID: pool, Username: "nobody"},
			worker.Permanent, "UserNotFoundException", "User does not exist", ""},
		{"MissingPool", job.Job{UserPoolID: "us-east-1_doesNotExist0", Username: "nobody"},
			worker.Permanent, "ResourceNotFoundException", "us-east-1_doesNotExist0 does not exist", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := c.ResetUserPassword(t.Context(), tt.job)
			if err == nil {
				t.Fatal("reset succeeded, want an error")
			}
			assertClass(t, err, tt.kind, tt.code)
			if cl := worker.Classify(err); !strings.Contains(cl.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", cl.Message, tt.msg)
			}
			if !strings.Contains(err.Error(), "in us-east-1") {
				t.Errorf("error %q does not name the Region", err)
			}
			if tt.wantStatus != "" {
				mototest.ExpectStatus(t, cfg, pool, tt.wantStatus, tt.job.Username)
			}
		})
	}
}

// TestResetOtherRegion resets a user of an eu-west-1 pool with an adapter
// whose configuration says us-east-1: the call goes to the pool's Region.
func TestResetOtherRegion(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	euPool, euCfg := newPool(t, "eu-west-1", map[string]moto.UserState{"bob@example.org": moto.Confirmed})
	usPool, usCfg := newPool(t, "us-east-1", map[string]moto.UserState{"carol": moto.Confirmed})
	if !strings.HasPrefix(euPool, "eu-west-1_") {
		t.Fatalf("pool ID %q lacks the eu-west-1_ prefix", euPool)
	}

	// The control: a plain client in the configured Region does not see the
	// eu-west-1 pool (moto keeps pools per request Region).
	_, err := cip.NewFromConfig(usCfg).AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{
		UserPoolId: aws.String(euPool), Username: aws.String("bob@example.org"),
	})
	var noPool *ciptypes.ResourceNotFoundException
	if !errors.As(err, &noPool) {
		t.Fatalf("control: us-east-1 client on the eu-west-1 pool: %v, want ResourceNotFoundException", err)
	}

	c := newClient(t, mototest.Shared(t).URL)
	if err := c.ResetUserPassword(ctx, job.Job{UserPoolID: euPool, Username: "bob@example.org"}); err != nil {
		t.Fatalf("reset in eu-west-1: %v", err)
	}
	mototest.ExpectStatus(t, euCfg, euPool, "RESET_REQUIRED", "bob@example.org")
	// The same adapter still serves us-east-1.
	if err := c.ResetUserPassword(ctx, job.Job{UserPoolID: usPool, Username: "carol"}); err != nil {
		t.Fatalf("reset in us-east-1: %v", err)
	}
	mototest.ExpectStatus(t, usCfg, usPool, "RESET_REQUIRED", "carol")
}

// TestResetRegionRouting checks, through a proxy that reads the Region
// from each request's signature, that every call is signed for the Region
// of its pool.
func TestResetRegionRouting(t *testing.T) {
	t.Parallel()
	euPool, _ := newPool(t, "eu-west-1", map[string]moto.UserState{"eve": moto.Confirmed})
	usPool, _ := newPool(t, "us-east-1", map[string]moto.UserState{"eve": moto.Confirmed})
	proxy := startProxy(t)
	// A quota of 1 per Region and a frozen clock: a second call in the same
	// Region is throttled, a call in another Region is not.
	proxy.SetQuota(op, 1)
	c := newClient(t, proxy.URL)
	ctx := t.Context()

	if err := c.ResetUserPassword(ctx, job.Job{UserPoolID: euPool, Username: "eve"}); err != nil {
		t.Fatalf("eu-west-1: %v", err)
	}
	if err := c.ResetUserPassword(ctx, job.Job{UserPoolID: usPool, Username: "eve"}); err != nil {
		t.Fatalf("us-east-1 after eu-west-1 (separate quotas): %v", err)
	}
	err := c.ResetUserPassword(ctx, job.Job{UserPoolID: euPool, Username: "eve"})
	assertClass(t, err, worker.Throttle, "TooManyRequestsException")
	if err == nil || !strings.Contains(err.Error(), "in eu-west-1") {
		t.Errorf("error %v does not name eu-west-1", err)
	}
}

// TestResetClientMetadata checks that ClientMetadata is sent and accepted.
func TestResetClientMetadata(t *testing.T) {
	t.Parallel()
	pool, cfg := newPool(t, "us-east-1", map[string]moto.UserState{"dave": moto.Confirmed})
	proxy := startProxy(t)
	// A delay fault that only matches a body carrying the metadata: it
	// counts the call as Faulted, then forwards it.
	proxy.AddFault(awsproxy.Fault{Operation: op, BodyContains: `"ClientMetadata":{"k":"v"}`, Delay: time.Millisecond})
	c := newClient(t, proxy.URL)

	job := job.Job{UserPoolID: pool, Username: "dave", ClientMetadata: map[string]string{"k": "v"}}
	if err := c.ResetUserPassword(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	mototest.ExpectStatus(t, cfg, pool, "RESET_REQUIRED", "dave")
	st := proxy.Stats()
	if st.Faulted[op] != 1 || st.Forwarded[op] != 1 {
		t.Errorf("proxy stats %+v: want the one call to carry ClientMetadata {\"k\":\"v\"} and be forwarded", st)
	}
}

// startProxy starts a proxy in front of the shared moto server with a
// frozen quota clock, so quotas do not depend on the test's speed.
func startProxy(t *testing.T) *awsproxy.Server {
	t.Helper()
	frozen := time.Now()
	proxy, err := awsproxy.Start(mototest.Shared(t).URL, awsproxy.WithNow(func() time.Time { return frozen }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	return proxy
}

// retryingConfig is a us-east-1 configuration for endpoint whose SDK
// clients make up to 3 attempts at once (no backoff, no retry quota), with
// RetryMaxAttempts set as AWS_MAX_ATTEMPTS=3 would. The adapter must not
// retry even when given such a configuration.
func retryingConfig(t *testing.T, endpoint string) aws.Config {
	t.Helper()
	cfg := config(t, endpoint, "us-east-1")
	cfg.RetryMaxAttempts = 3
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			o.RateLimiter = ratelimit.None
		})
	}
	return cfg
}

// calls is how many calls of op reached the proxy, whatever their fate.
func calls(st awsproxy.Stats) int {
	return st.Forwarded[op] + st.Throttled[op] + st.Faulted[op]
}

// TestResetThrottledNoRetry makes the proxy throttle: the adapter reports
// TooManyRequestsException as Throttle and sends exactly one request per
// call, although its configuration asks for SDK retries.
func TestResetThrottledNoRetry(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, "us-east-1", map[string]moto.UserState{"frank": moto.Confirmed})
	proxy := startProxy(t)
	proxy.SetQuota(op, 2)
	cfg := retryingConfig(t, proxy.URL)
	c := cognito.New(cfg)
	job := job.Job{UserPoolID: pool, Username: "frank"}

	var ok, throttled int
	for i := range 5 {
		err := c.ResetUserPassword(t.Context(), job)
		switch cl := worker.Classify(err); {
		case err == nil:
			ok++
		case cl.Kind == worker.Throttle && cl.Code == "TooManyRequestsException":
			throttled++
			var tooMany *ciptypes.TooManyRequestsException
			if !errors.As(err, &tooMany) {
				t.Errorf("call %d: %v is not a *types.TooManyRequestsException", i+1, err)
			}
		default:
			t.Errorf("call %d: %v, classified %v/%s; want success or Throttle/TooManyRequestsException", i+1, err, cl.Kind, cl.Code)
		}
	}
	// The quota clock is frozen: the first 2 calls pass, the other 3 are throttled.
	if ok != 2 || throttled != 3 {
		t.Errorf("%d successes and %d throttled, want 2 and 3", ok, throttled)
	}
	st := proxy.Stats()
	if calls(st) != 5 || st.Forwarded[op] != 2 || st.Throttled[op] != 3 {
		t.Errorf("proxy stats %+v: want exactly one request per call (2 forwarded, 3 throttled)", st)
	}

	// The control: a plain SDK client on the same configuration does retry
	// a throttled call (1 + 2 retries), so the check above can fail.
	_, err := cip.NewFromConfig(cfg).AdminResetUserPassword(t.Context(), &cip.AdminResetUserPasswordInput{
		UserPoolId: aws.String(pool), Username: aws.String("frank"),
	})
	assertClass(t, err, worker.Throttle, "TooManyRequestsException")
	if got := calls(proxy.Stats()) - calls(st); got != 3 {
		t.Errorf("control: a retrying SDK client made %d requests for one call, want 3", got)
	}
}

// TestResetFaults injects service errors: each is classified as the worker
// expects and reaches the proxy exactly once (no SDK retry).
func TestResetFaults(t *testing.T) {
	t.Parallel()
	pool, cfg := newPool(t, "us-east-1", map[string]moto.UserState{"gina": moto.Confirmed})
	tests := []struct {
		code   string
		status int
		kind   worker.Kind
	}{
		{"InternalErrorException", 500, worker.Transient},
		{"InvalidEmailRoleAccessPolicyException", 400, worker.Systemic},
		{"TooManyRequestsException", 400, worker.Throttle},
		{"LimitExceededException", 400, worker.Limit},
		{"ServiceUnavailable", 503, worker.Transient},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			proxy := startProxy(t)
			proxy.AddFault(awsproxy.Fault{Operation: op, ErrorCode: tt.code, Status: tt.status, Message: "injected " + tt.code})
			c := cognito.New(retryingConfig(t, proxy.URL))

			err := c.ResetUserPassword(t.Context(), job.Job{UserPoolID: pool, Username: "gina"})
			assertClass(t, err, tt.kind, tt.code)
			if cl := worker.Classify(err); cl.Message != "injected "+tt.code {
				t.Errorf("message %q, want %q", cl.Message, "injected "+tt.code)
			}
			st := proxy.Stats()
			if st.Faulted[op] != 1 || calls(st) != 1 {
				t.Errorf("proxy stats %+v: want exactly one request, answered by the fault", st)
			}
		})
	}
	// No call reached moto: the user was never reset.
	mototest.ExpectStatus(t, cfg, pool, "CONFIRMED", "gina")
}

// TestResetFaultRetryControl shows that the retrying configuration used
// above does retry a 500 with a plain SDK client, so the one-request checks
// of TestResetFaults can fail.
func TestResetFaultRetryControl(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, "us-east-1", map[string]moto.UserState{"hal": moto.Confirmed})
	proxy := startProxy(t)
	proxy.AddFault(awsproxy.Fault{Operation: op, ErrorCode: "InternalErrorException", Status: 500})
	_, err := cip.NewFromConfig(retryingConfig(t, proxy.URL)).AdminResetUserPassword(t.Context(),
		&cip.AdminResetUserPasswordInput{UserPoolId: aws.String(pool), Username: aws.String("hal")})
	assertClass(t, err, worker.Transient, "InternalErrorException")
	if st := proxy.Stats(); calls(st) != 3 {
		t.Errorf("proxy stats %+v: want 3 requests (1 + 2 SDK retries)", st)
	}
}

// TestResetConnectionReset drops the connection: the adapter reports a
// Transient network error after exactly one request.
func TestResetConnectionReset(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, "us-east-1", map[string]moto.UserState{"ivan": moto.Confirmed})
	proxy := startProxy(t)
	proxy.AddFault(awsproxy.Fault{Operation: op, ResetConnection: true})
	c := cognito.New(retryingConfig(t, proxy.URL))

	err := c.ResetUserPassword(t.Context(), job.Job{UserPoolID: pool, Username: "ivan"})
	if cl := worker.Classify(err); cl.Kind != worker.Transient || cl.Code != "network" {
		t.Errorf("Classify(%v) = %v/%s, want transient/network", err, cl.Kind, cl.Code)
	}
	if st := proxy.Stats(); calls(st) != 1 {
		t.Errorf("proxy stats %+v: want exactly one request", st)
	}
}

// TestResetTimeout holds the call past the caller's deadline: the error is
// Transient/timeout, not Canceled.
func TestResetTimeout(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, "us-east-1", map[string]moto.UserState{"judy": moto.Confirmed})
	proxy := startProxy(t)
	proxy.AddFault(awsproxy.Fault{Operation: op, Delay: 5 * time.Second})
	c := cognito.New(retryingConfig(t, proxy.URL))

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := c.ResetUserPassword(ctx, job.Job{UserPoolID: pool, Username: "judy"})
	if cl := worker.Classify(err); cl.Kind != worker.Transient || cl.Code != "timeout" {
		t.Errorf("Classify(%v) = %v/%s, want transient/timeout", err, cl.Kind, cl.Code)
	}
}

// TestResetCanceled calls with a canceled context: the error is Canceled,
// so the worker releases the message instead of judging the job.
func TestResetCanceled(t *testing.T) {
	t.Parallel()
	pool, cfg := newPool(t, "us-east-1", map[string]moto.UserState{"kim": moto.Confirmed})
	c := newClient(t, mototest.Shared(t).URL)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := c.ResetUserPassword(ctx, job.Job{UserPoolID: pool, Username: "kim"})
	assertClass(t, err, worker.Canceled, "canceled")
	mototest.ExpectStatus(t, cfg, pool, "CONFIRMED", "kim")
}

// TestResetConcurrent resets users of two Regions from many goroutines
// through one adapter (its per-Region client cache under -race).
func TestResetConcurrent(t *testing.T) {
	t.Parallel()
	users := map[string]moto.UserState{}
	for _, u := range []string{"u0", "u1", "u2", "u3"} {
		users[u] = moto.Confirmed
	}
	usPool, usCfg := newPool(t, "us-east-1", users)
	euPool, euCfg := newPool(t, "eu-west-1", users)
	c := newClient(t, mototest.Shared(t).URL)

	errs := make(chan error, 2*len(users))
	for u := range users {
		for _, pool := range []string{usPool, euPool} {
			go func() { errs <- c.ResetUserPassword(t.Context(), job.Job{UserPoolID: pool, Username: u}) }()
		}
	}
	for range 2 * len(users) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for u := range users {
		mototest.ExpectStatus(t, usCfg, usPool, "RESET_REQUIRED", u)
		mototest.ExpectStatus(t, euCfg, euPool, "RESET_REQUIRED", u)
	}
}
