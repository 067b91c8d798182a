package cognitostub

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// baseConfig is the benchmark's default credentials ("test") in
// us-east-1, every service at url.
func baseConfig(t *testing.T, url string) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(DefaultRegion),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseEndpoint = aws.String(url)
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	return cfg
}

// assume is cfg with the credentials of role, as resetq gets them
// (stscreds behind a cache).
func assume(cfg aws.Config, role, externalID string) aws.Config {
	out := cfg.Copy()
	out.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), role,
		func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "resetq-bench"
			o.Duration = time.Hour
			if externalID != "" {
				o.ExternalID = aws.String(externalID)
			}
		}))
	return out
}

// TestSTSWithTheSDK: the real SDK reads the stand-in's AssumeRole and
// GetCallerIdentity answers; the credentials name the role's account, and
// the caller's identity is that of its access key.
func TestSTSWithTheSDK(t *testing.T) {
	t.Parallel()
	srv := start(t, Config{})
	ctx := context.Background()
	base := baseConfig(t, srv.URL)

	id, err := sts.NewFromConfig(base).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(id.Account) != DefaultAccount || !strings.Contains(aws.ToString(id.Arn), DefaultAccount) || aws.ToString(id.UserId) == "" {
		t.Errorf("default credentials: %s %s %s, want account %s", aws.ToString(id.Account), aws.ToString(id.Arn), aws.ToString(id.UserId), DefaultAccount)
	}

	role := assume(base, "arn:aws:iam::111111111111:role/path/resetq-target", "ext-1")
	creds, err := role.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if AccountOf(creds.AccessKeyID) != "111111111111" || len(creds.AccessKeyID) != 20 || creds.SessionToken == "" {
		t.Errorf("assumed credentials %+v: want a 20-character key of account 111111111111 and a session token", creds)
	}
	if left := time.Until(creds.Expires); !creds.CanExpire || left < 59*time.Minute || left > time.Hour {
		t.Errorf("expires %v (can expire %v), want in an hour", creds.Expires, creds.CanExpire)
	}
	id, err = sts.NewFromConfig(role).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:sts::111111111111:assumed-role/resetq-target/resetq-bench"; aws.ToString(id.Account) != "111111111111" || aws.ToString(id.Arn) != want {
		t.Errorf("assumed identity %s %s, want 111111111111 %s", aws.ToString(id.Account), aws.ToString(id.Arn), want)
	}

	// A second session gets another key in the same account.
	other, err := assume(base, "arn:aws:iam::111111111111:role/resetq-target", "").Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if other.AccessKeyID == creds.AccessKeyID || AccountOf(other.AccessKeyID) != "111111111111" {
		t.Errorf("second session's key %s (first %s): want another key of 111111111111", other.AccessKeyID, creds.AccessKeyID)
	}

	_, err = assume(base, "arn:aws:iam::1111:role/short", "").Credentials.Retrieve(ctx)
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationError" {
		t.Errorf("a bad role ARN: %v, want ValidationError", err)
	}
	if st := srv.Stats(); st.AssumeRoles != 2 || st.Identities != 2 {
		t.Errorf("stats %+v: want 2 AssumeRole (the bad ARN is not one) and 2 GetCallerIdentity", st)
	}
}

// TestQuotaPerAccountRegion: each account in each Region has a quota of
// its own, the account being the one the caller's access key belongs to.
func TestQuotaPerAccountRegion(t *testing.T) {
	t.Parallel()
	// Now near the real time: the SDK judges the credentials' expiry by it.
	t1 := time.Now().Truncate(time.Second)
	now := t1
	srv := start(t, Config{Quota: 1, Now: func() time.Time { return now }})
	ctx := context.Background()
	base := baseConfig(t, srv.URL)
	role := assume(base, "arn:aws:iam::222222222222:role/resetq", "")
	clients := map[string]*cip.Client{
		ScopeKey(DefaultAccount, "us-east-1"): cip.NewFromConfig(base),
		ScopeKey(DefaultAccount, "eu-west-1"): cip.NewFromConfig(base, func(o *cip.Options) { o.Region = "eu-west-1" }),
		ScopeKey("222222222222", "us-east-1"): cip.NewFromConfig(role),
		ScopeKey("222222222222", "eu-west-1"): cip.NewFromConfig(role, func(o *cip.Options) { o.Region = "eu-west-1" }),
	}
	resetIn := func(c *cip.Client, user string) error {
		pool := c.Options().Region + "_bench"
		_, err := c.AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{UserPoolId: aws.String(pool), Username: aws.String(user)})
		return err
	}
	for key, c := range clients {
		if err := resetIn(c, "alice"); err != nil {
			t.Errorf("%s: the first call in the second: %v", key, err)
		}
	}
	for key, c := range clients {
		var tooMany *types.TooManyRequestsException
		if err := resetIn(c, "bob"); !errors.As(err, &tooMany) {
			t.Errorf("%s: the second call in the second: %v, want TooManyRequestsException", key, err)
		}
	}
	if srv.Admit(Background) {
		t.Error("the background is in the default scope, whose one call this second is spent: want a throttle")
	}
	st := srv.ScopeStats()
	if len(st) != 4 {
		t.Errorf("scopes %v, want the 4 account-Regions", st)
	}
	for key := range clients {
		want := ScopeStats{Calls: 2, Throttles: 1, Resets: 1, FirstReset: t1, LastReset: t1}
		if st[key] != want {
			t.Errorf("%s: %+v, want %+v", key, st[key], want)
		}
		if got := st[key].ThrottledShare(); got != 0.5 {
			t.Errorf("%s: throttled share %v, want 0.5", key, got)
		}
	}
	if all := srv.Stats(); all.Worker != (Counts{Calls: 8, Throttles: 4}) || all.Resets != 4 || all.AssumeRoles != 1 {
		t.Errorf("stats %+v: want 8 calls, 4 throttled, 4 resets, 1 AssumeRole (its credentials cached)", all)
	}
	srv.Reset()
	if st := srv.ScopeStats(); len(st) != 0 {
		t.Errorf("after Reset: %v, want no counts", st)
	}
	now = now.Add(time.Second)
	if err := resetIn(clients[ScopeKey("222222222222", "us-east-1")], "carol"); err != nil {
		t.Errorf("a second later: %v", err)
	}
}

// TestSignOutAndDescribePool: incident mode's sign-outs are counted per
// scope and not in the quota; DescribeUserPool says usernames are
// case-insensitive.
func TestSignOutAndDescribePool(t *testing.T) {
	t.Parallel()
	srv := start(t, Config{Quota: 1})
	ctx := context.Background()
	role := assume(baseConfig(t, srv.URL), "arn:aws:iam::333333333333:role/resetq", "")
	c := cip.NewFromConfig(role)
	for _, user := range []string{"alice", "bob", "carol"} {
		if _, err := c.AdminUserGlobalSignOut(ctx, &cip.AdminUserGlobalSignOutInput{UserPoolId: aws.String(pool), Username: aws.String(user)}); err != nil {
			t.Fatal(err)
		}
	}
	if st := srv.Stats(); st.SignOuts != 3 || st.Worker.Calls != 0 {
		t.Errorf("stats %+v: want 3 sign-outs, no call in the quota", st)
	}
	if got := srv.ScopeStats()[ScopeKey("333333333333", "us-east-1")].SignOuts; got != 3 {
		t.Errorf("the role's scope counted %d sign-outs, want 3", got)
	}
	out, err := c.DescribeUserPool(ctx, &cip.DescribeUserPoolInput{UserPoolId: aws.String(pool)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.UserPool.Id) != pool || out.UserPool.UsernameConfiguration == nil || aws.ToBool(out.UserPool.UsernameConfiguration.CaseSensitive) {
		t.Errorf("DescribeUserPool: %+v, want %s with case-insensitive usernames", out.UserPool, pool)
	}
	if srv.Conns() < 1 {
		t.Errorf("Conns %d, want the client's connection counted", srv.Conns())
	}
}

func TestAccountOf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ key, want string }{
		{AccessKey("444444444444", 0), "444444444444"},
		{AccessKey("444444444444", 36*36*36*36+5), "444444444444"},
		{"ASIA4444444444440000", "444444444444"},
		{"test", DefaultAccount},
		{"AKIA4444444444440000", DefaultAccount}, // a long-term key of someone else's
		{"ASIA44444444444A0000", DefaultAccount},
		{"ASIA444444444444000", DefaultAccount}, // 19 characters
		{"", DefaultAccount},
	} {
		if got := AccountOf(c.key); got != c.want {
			t.Errorf("AccountOf(%q) = %q, want %q", c.key, got, c.want)
		}
	}
	if k := AccessKey("444444444444", 35); k != "ASIA4444444444440000"[:16]+"000Z" {
		t.Errorf("AccessKey(_, 35) = %q", k)
	}
}

func TestCredentialOf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		auth, key, region string
		ok                bool
	}{
		{"AWS4-HMAC-SHA256 Credential=ASIA1/20261205/eu-west-1/cognito-idp/aws4_request, SignedHeaders=host, Signature=ab", "ASIA1", "eu-west-1", true},
		{"AWS4-HMAC-SHA256 Credential=test/20261205/us-east-1/sts/aws4_request,SignedHeaders=host", "test", "us-east-1", true},
		{"", "", "", false},
		{"AWS4-HMAC-SHA256 Credential=test/20261205", "", "", false},
		{"AWS4-HMAC-SHA256 Credential=/20261205/us-east-1/sts/aws4_request", "", "", false},
	} {
		key, region, ok := credentialOf(c.auth)
		if key != c.key || region != c.region || ok != c.ok {
			t.Errorf("credentialOf(%q) = %q, %q, %v; want %q, %q, %v", c.auth, key, region, ok, c.key, c.region, c.ok)
		}
	}
}

// FuzzCredentialOf: no Authorization header panics the parser, and what it
// reads makes a scope of an account of 12 digits.
func FuzzCredentialOf(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=ASIA1111111111110000/20261205/eu-west-1/cognito-idp/aws4_request, SignedHeaders=host")
	f.Add("Credential=////")
	f.Fuzz(func(t *testing.T, auth string) {
		key, region, ok := credentialOf(auth)
		if !ok {
			return
		}
		if region == "" || key == "" || len(AccountOf(key)) != 12 {
			t.Errorf("credentialOf(%q) = %q, %q: want a key and a Region", auth, key, region)
		}
	})
}
