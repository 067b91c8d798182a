package accounts_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
)

func TestMain(m *testing.M) { mototest.Main(m) }

const (
	roleB = "arn:aws:iam::222222222222:role/resetq-target"
	roleC = "arn:aws:iam::333333333333:role/resetq-target"
)

// TestResolverMoto: a pool made with a role's credentials lives in the
// role's account, so only that role reaches it; the default credentials'
// account is learned from STS.
func TestResolverMoto(t *testing.T) {
	srv := mototest.Shared(t)
	ctx := t.Context()
	base, err := moto.Config(ctx, srv.URL, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	// The pool in account B, made with B's credentials.
	rb := accounts.New(base, accounts.Roles{"us-east-1_placeholder": {ARN: roleB, Account: "222222222222"}})
	pool, err := moto.CreatePool(ctx, rb.Pool("us-east-1_placeholder", "setup").Config, "accounts-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}

	r := accounts.New(base, accounts.Roles{pool: {ARN: roleB, Account: "222222222222"}})
	if err := r.LearnDefaultAccount(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.DefaultAccount(); got != "123456789012" {
		t.Errorf("default account = %q, want moto's 123456789012", got)
	}
	if got := r.Scope(pool).Key(); got != "222222222222/us-east-1" {
		t.Errorf("scope of the role's pool = %q", got)
	}
	if got := r.Scope("us-east-1_other").Key(); got != "123456789012/us-east-1" {
		t.Errorf("scope of a pool not in the file = %q", got)
	}
	describe := func(cfg aws.Config) error {
		_, err := cip.NewFromConfig(cfg).DescribeUserPool(ctx, &cip.DescribeUserPoolInput{UserPoolId: aws.String(pool)})
		return err
	}
	reach := r.Pool(pool, "incident-7")
	if reach.Account != "222222222222" || reach.Role != roleB || reach.Key == "" {
		t.Errorf("reach = %+v", reach)
	}
	if err := describe(reach.Config); err != nil {
		t.Errorf("the role does not reach its pool: %v", err)
	}
	if err := describe(base); err == nil {
		t.Error("the default credentials reach a pool in another account")
	}
	creds, err := reach.Config.Credentials.Retrieve(ctx)
	if err != nil || creds.AccessKeyID == "test" || creds.Expires.IsZero() {
		t.Errorf("assumed credentials = %+v, %v", creds, err)
	}
	// Account-wide reads of B use the role; of the default account, the default credentials.
	if got := r.ScopeReach("222222222222/us-east-1"); got.Role != roleB {
		t.Errorf("ScopeReach(B) = %+v", got)
	}
	if got := r.ScopeReach("123456789012/us-east-1"); got.Role != "" || got.Key != "" {
		t.Errorf("ScopeReach(default) = %+v", got)
	}
}

// stubSTS answers AssumeRole with fresh keys expiring after expiresIn, or
// with status and code when status is not 200.
type stubSTS struct {
	mu        sync.Mutex
	calls     int
	sessions  []string
	external  []string
	expiresIn time.Duration
	status    int
	code      string
}

func (s *stubSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRole" {
		http.Error(w, "unexpected", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.sessions = append(s.sessions, r.Form.Get("RoleSessionName"))
	s.external = append(s.external, r.Form.Get("ExternalId"))
	w.Header().Set("Content-Type", "text/xml")
	if s.status != 0 && s.status != http.StatusOK {
		w.WriteHeader(s.status)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>refused by the stub</Message></Error><RequestId>r</RequestId></ErrorResponse>`, s.code)
		return
	}
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>
<AccessKeyId>ASIA%04d</AccessKeyId><SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken>
<Expiration>%s</Expiration></Credentials><AssumedRoleUser><Arn>%s/x</Arn><AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>`,
		s.calls, time.Now().Add(s.expiresIn).UTC().Format(time.RFC3339), roleB)
}

func stubConfig(t *testing.T, s *stubSTS) aws.Config {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("base", "base", "")),
		config.WithBaseEndpoint(srv.URL), config.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRenewedBeforeExpiry: credentials inside the refresh window are
// assumed again before the next call; credentials far from expiry are
// reused. Nothing waits: the stub's expiry times decide.
func TestRenewedBeforeExpiry(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		expiresIn time.Duration
		wantCalls int
	}{
		{2 * time.Minute, 3}, // within accounts.RefreshBefore (less its jitter): renewed each time
		{2 * time.Hour, 1},
	} {
		s := &stubSTS{expiresIn: tc.expiresIn}
		r := accounts.New(stubConfig(t, s), accounts.Roles{"us-east-1_P": {ARN: roleB, Account: "222222222222", ExternalID: "ext-1"}})
		keys := map[string]bool{}
		for range 3 {
			c, err := r.Pool("us-east-1_P", "camp").Config.Credentials.Retrieve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			keys[c.AccessKeyID] = true
		}
		if s.calls != tc.wantCalls || len(keys) != tc.wantCalls {
			t.Errorf("expiring in %v: %d AssumeRole calls, %d distinct keys; want %d", tc.expiresIn, s.calls, len(keys), tc.wantCalls)
		}
		if s.sessions[0] != "resetq-camp" || s.external[0] != "ext-1" {
			t.Errorf("session %q, external ID %q", s.sessions[0], s.external[0])
		}
	}
}

// TestSessionsBounded: a session per campaign, up to MaxSessions per
// role; past it, further campaigns share "resetq".
func TestSessionsBounded(t *testing.T) {
	s := &stubSTS{expiresIn: 2 * time.Hour}
	r := accounts.New(stubConfig(t, s), accounts.Roles{"us-east-1_P": {ARN: roleB, Account: "222222222222"}})
	keys := map[string]bool{}
	for i := range accounts.MaxSessions + 10 {
		keys[r.Pool("us-east-1_P", fmt.Sprintf("c%d", i)).Key] = true
	}
	if len(keys) != accounts.MaxSessions+1 {
		t.Errorf("%d credential sessions for %d campaigns, want %d", len(keys), accounts.MaxSessions+10, accounts.MaxSessions+1)
	}
}

// TestAssumeRoleErrors: a refusal is a denied *awserr.RoleError naming the
// role, through the SDK's wrapping of a Cognito call; a fault is not denied.
func TestAssumeRoleErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		denied bool
	}{
		{403, "AccessDenied", true},
		{400, "RegionDisabledException", true},
		{503, "ServiceUnavailable", false},
		{400, "Throttling", false},
	} {
		s := &stubSTS{status: tc.status, code: tc.code}
		r := accounts.New(stubConfig(t, s), accounts.Roles{"us-east-1_P": {ARN: roleC, Account: "333333333333"}})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := cip.NewFromConfig(r.Pool("us-east-1_P", "").Config).AdminGetUser(ctx,
			&cip.AdminGetUserInput{UserPoolId: aws.String("us-east-1_P"), Username: aws.String("u")})
		cancel()
		var re *awserr.RoleError
		if !errors.As(awserr.From(err), &re) {
			t.Fatalf("%s: err = %v, want an *awserr.RoleError", tc.code, err)
		}
		if re.Role != roleC || re.Denied != tc.denied {
			t.Errorf("%s: role %q denied %v, want %q %v", tc.code, re.Role, re.Denied, roleC, tc.denied)
		}
	}
}

// TestInvalidate: credentials Cognito said expired are assumed again
// before the next call, though their expiry time is far.
func TestInvalidate(t *testing.T) {
	s := &stubSTS{expiresIn: 2 * time.Hour}
	r := accounts.New(stubConfig(t, s), accounts.Roles{"us-east-1_P": {ARN: roleB, Account: "222222222222"}})
	reach := r.Pool("us-east-1_P", "c")
	for range 2 {
		if _, err := reach.Config.Credentials.Retrieve(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	r.Invalidate(r.Pool("us-east-1_P", "c"))
	if _, err := reach.Config.Credentials.Retrieve(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.calls != 2 {
		t.Errorf("%d AssumeRole calls, want 2: one, then one after Invalidate", s.calls)
	}
	r.Invalidate(r.Pool("us-east-1_other", "c")) // the default credentials: nothing to do
}

// TestDenialRemembered: a refused AssumeRole is answered from memory for
// DenialMemory, so the jobs of a denied role do not each call STS; a fault
// is not remembered.
func TestDenialRemembered(t *testing.T) {
	for _, tc := range []struct {
		status    int
		code      string
		wantCalls int
	}{{403, "AccessDenied", 1}, {503, "ServiceUnavailable", 3}, {403, "InvalidClientTokenId", 3}} {
		s := &stubSTS{status: tc.status, code: tc.code}
		r := accounts.New(stubConfig(t, s), accounts.Roles{"us-east-1_P": {ARN: roleC, Account: "333333333333"}})
		for range 3 {
			_, err := r.Pool("us-east-1_P", "").Config.Credentials.Retrieve(t.Context())
			var re *awserr.RoleError
			if !errors.As(err, &re) {
				t.Fatalf("%s: %v", tc.code, err)
			}
		}
		if s.calls != tc.wantCalls {
			t.Errorf("%s: %d AssumeRole calls for 3 retrievals, want %d", tc.code, s.calls, tc.wantCalls)
		}
	}
}
