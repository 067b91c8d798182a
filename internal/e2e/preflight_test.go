package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/resetq/resetq/awscheck"
	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/preflight"
	"github.com/resetq/resetq/usagemetrics"
	"github.com/resetq/resetq/userpool"
)

// TestPreflightCapacity: preflight reads SES (moto's account is in the
// sandbox: blocking), SNS (a spend limit set with SetSMSAttributes),
// Service Quotas (moto 5.2.1 has no cognito-idp quotas: the documented
// 30/s) and real users' use published into AWS/Usage with PutMetricData,
// in a Region of its own (moto keeps metrics and SMS attributes per Region,
// shared by the tests).
func TestPreflightCapacity(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "capacity")
	ctx := context.Background()
	const region = "ap-northeast-1"
	cfg := e.East.Copy()
	cfg.Region = region
	api := cip.NewFromConfig(cfg)
	mk := func(in *cip.CreateUserPoolInput) string {
		in.PoolName = aws.String("cap" + strconv.FormatInt(time.Now().UnixNano(), 36))
		out, err := api.CreateUserPool(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.UserPool.Id)
	}
	recovery := func(n ciptypes.RecoveryOptionNameType) *ciptypes.AccountRecoverySettingType {
		return &ciptypes.AccountRecoverySettingType{RecoveryMechanisms: []ciptypes.RecoveryOptionType{{Name: n, Priority: aws.Int32(1)}}}
	}
	sesPool := mk(&cip.CreateUserPoolInput{AccountRecoverySetting: recovery(ciptypes.RecoveryOptionNameTypeVerifiedEmail),
		EmailConfiguration: &ciptypes.EmailConfigurationType{EmailSendingAccount: ciptypes.EmailSendingAccountTypeDeveloper,
			SourceArn: aws.String("arn:aws:ses:" + region + ":123456789012:identity/example.com")}})
	smsPool := mk(&cip.CreateUserPoolInput{AccountRecoverySetting: recovery(ciptypes.RecoveryOptionNameTypeVerifiedPhoneNumber),
		SmsConfiguration: &ciptypes.SmsConfigurationType{SnsCallerArn: aws.String("arn:aws:iam::123456789012:role/sms")}})

	if _, err := sns.NewFromConfig(cfg).SetSMSAttributes(ctx, &sns.SetSMSAttributesInput{Attributes: map[string]string{"MonthlySpendLimit": "500"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Minute)
	var data []cwtypes.MetricDatum
	for i, v := range []float64{60, 600, 120} { // peak: 600 a minute, 10/s
		data = append(data, cwtypes.MetricDatum{MetricName: aws.String("CallCount"), Timestamp: aws.Time(now.Add(time.Duration(i-30) * time.Minute)), Value: aws.Float64(v),
			Dimensions: []cwtypes.Dimension{
				{Name: aws.String("Service"), Value: aws.String(usagemetrics.Service)},
				{Name: aws.String("Type"), Value: aws.String("API")},
				{Name: aws.String("Resource"), Value: aws.String(usagemetrics.RecoveryCategory)},
				{Name: aws.String("Class"), Value: aws.String("None")},
			}})
	}
	if _, err := awscheck.NewCloudWatch(cfg, region).PutMetricData(ctx, &cw.PutMetricDataInput{Namespace: aws.String(usagemetrics.Namespace), MetricData: data}); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := preflightRun(t, e, []string{"AWS_ENDPOINT_URL=" + e.Moto.URL, "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + e.Moto.URL},
		"preflight", "--pool", sesPool, "--pool", smsPool, "--users", "100000", "--rate", "24", "--output", "json")
	var r struct {
		Blocked bool
		Checks  []struct{ Level, Subject, Check, Message string }
	}
	if err := json.Unmarshal([]byte(stdout), &r); code != 1 || err != nil || !r.Blocked {
		t.Fatalf("exit %d %v\n%s\n%s", code, err, stdout, stderr)
	}
	got := map[string]string{}
	for _, c := range r.Checks {
		got[c.Subject+" "+c.Check] = c.Level + ": " + c.Message
	}
	for key, want := range map[string]string{
		sesPool + " ses quota":        "blocking: SES in " + region + ": 200 a day, 0 sent in the last 24 h (200 left): the account is in the SES sandbox",
		sesPool + " ses rate":         "warning: SES sends 1 emails/s: --rate 24 is above it",
		smsPool + " sms spend limit":  "warning: SNS MonthlySpendLimit USD 500 (about 77519 SMS",
		region + " recovery quota":    "ok: UserAccountRecovery quota 30/s, from the documented default (Service Quotas did not say",
		region + " real users' use":   "warning: real users' peak 10.00 calls/s (600 in the minute of " + now.Add(-29*time.Minute).Format(time.RFC3339) + ") of the 30/s quota: --rate 24 would throttle them at such a peak; recommended --rate 17",
		sesPool + " account recovery": "ok:",
	} {
		if !strings.HasPrefix(got[key], want) {
			t.Errorf("%s:\n got %q\nwant %q...", key, got[key], want)
		}
	}

	// --capacity=false: the checks of before, nothing read beyond Cognito.
	stdout, stderr, code = preflightRun(t, e, []string{"AWS_ENDPOINT_URL=" + e.Moto.URL, "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + e.Moto.URL},
		"preflight", "--pool", smsPool, "--capacity=false")
	if code != 0 || strings.Contains(stdout, "sms spend limit") || strings.Contains(stdout, "real users' use") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// preflightRun runs the built resetq with env added to the child's (the last
// value of a variable wins) and returns stdout, stderr and the exit code.
func preflightRun(t *testing.T, e *testenv.Env, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t), args...)
	cmd.Env = e.ChildEnv(env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("run resetq %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// preflightResult is preflight's JSON output, checks keyed by subject and name.
type preflightResult struct {
	Blocked bool
	Checks  map[string]preflight.Check
}

func preflightJSON(t *testing.T, stdout, stderr string) preflightResult {
	t.Helper()
	var r struct {
		Blocked bool
		Checks  []preflight.Check
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s\n%s", err, stdout, stderr)
	}
	out := preflightResult{Blocked: r.Blocked, Checks: map[string]preflight.Check{}}
	for _, c := range r.Checks {
		out.Checks[c.Subject+" "+c.Name] = c
	}
	return out
}

// poolUsers is each user of pool with its status and whether it is enabled.
func poolUsers(t *testing.T, cfg aws.Config, pool string) map[string]string {
	t.Helper()
	out, err := cip.NewFromConfig(cfg).ListUsers(t.Context(), &cip.ListUsersInput{UserPoolId: aws.String(pool)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, u := range out.Users {
		m[aws.ToString(u.Username)] = string(u.UserStatus) + " enabled=" + strconv.FormatBool(u.Enabled)
	}
	return m
}

// TestPreflightIncidentProbes: preflight --incident makes each incident call
// once per pool for a user that cannot exist; moto answers
// UserNotFoundException to each (ok), the pool's users are as before, and
// a sign-out the proxy denies is blocking, named by its IAM action. Calls
// the flags do not imply are not made, and --probe-calls=false makes none.
func TestPreflightIncidentProbes(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "probes")
	pool := e.Pool(e.East, map[string]moto.UserState{"alice": moto.Confirmed, "bob": moto.Unconfirmed, "carol": moto.ConfirmedNoContact, "dave": moto.Disabled})
	before := poolUsers(t, e.East, pool)
	run := func(args ...string) (preflightResult, int, string) {
		t.Helper()
		stdout, stderr, code := preflightRun(t, e, nil, append([]string{"preflight", "--pool", pool, "--capacity=false", "--output", "json"}, args...)...)
		return preflightJSON(t, stdout, stderr), code, stdout + stderr
	}
	forwarded := func() map[string]int { return e.Proxy.Stats().Forwarded }

	r, code, out := run("--incident")
	if code != 0 || r.Blocked {
		t.Fatalf("exit %d, want 0\n%s", code, out)
	}
	for _, op := range userpool.IncidentCalls() {
		c := r.Checks[pool+" call "+op]
		if c.Level != preflight.OK || !strings.Contains(c.Message, "cognito-idp:"+op+" permitted") {
			t.Errorf("%s: %+v", op, c)
		}
		if n := forwarded()[op]; n != 1 {
			t.Errorf("%s reached Cognito %d times, want once", op, n)
		}
	}
	if c := r.Checks["campaign issued tokens"]; c.Level != preflight.OK || !strings.Contains(c.Message, "1 h by default") {
		t.Errorf("issued tokens: %+v", c)
	}
	if after := poolUsers(t, e.East, pool); !maps.Equal(after, before) {
		t.Errorf("users after the probes %v, before %v", after, before)
	}

	// The proxy denies the sign-out as IAM would: blocking, in text too.
	e.Proxy.AddFault(awsproxy.Fault{Operation: userpool.OpGlobalSignOut, ErrorCode: "AccessDeniedException",
		Message: "User: arn:aws:sts::123456789012:assumed-role/resetq-worker/i-0 is not authorized to perform: cognito-idp:AdminUserGlobalSignOut on resource: arn:aws:cognito-idp:us-east-1:123456789012:userpool/" + pool})
	stdout, stderr, code := preflightRun(t, e, nil, "preflight", "--pool", pool, "--capacity=false", "--incident")
	want := "cognito-idp:AdminUserGlobalSignOut is denied on " + pool + " to these credentials (AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/resetq-worker/i-0 is not authorized"
	line := ""
	for l := range strings.Lines(stdout) {
		if strings.Contains(l, "call AdminUserGlobalSignOut") {
			line = l
		}
	}
	if code != 1 || !strings.HasPrefix(line, "blocking") || !strings.Contains(line, want) || !strings.Contains(stderr, "blocking problems found") {
		t.Fatalf("exit %d, sign-out line %q, want blocking with %q\n%s\n%s", code, line, want, stdout, stderr)
	}
	r, code, out = run("--global-sign-out", "--status-check", "off")
	if c := r.Checks[pool+" call "+userpool.OpGlobalSignOut]; code != 1 || c.Level != preflight.Blocking {
		t.Errorf("--global-sign-out: exit %d, %+v\n%s", code, c, out)
	}

	// A rotation with the status check off makes the reset alone: the
	// denied sign-out is not its business. --probe-calls=false makes none.
	for _, tt := range []struct {
		args []string
		made []string
	}{
		{[]string{"--status-check", "off"}, []string{userpool.OpResetPassword}},
		{[]string{"--incident", "--probe-calls=false"}, nil},
	} {
		calls := forwarded()
		r, code, out = run(tt.args...)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s", tt.args, code, out)
		}
		now := forwarded()
		for _, op := range userpool.IncidentCalls() {
			want := 0
			if slices.Contains(tt.made, op) {
				want = 1
			}
			if now[op]-calls[op] != want {
				t.Errorf("%v: %s reached Cognito %d times, want %d", tt.args, op, now[op]-calls[op], want)
			}
			if _, ok := r.Checks[pool+" call "+op]; ok != (want == 1) {
				t.Errorf("%v: check of %s present %v, want %v", tt.args, op, ok, want == 1)
			}
		}
	}
	if after := poolUsers(t, e.East, pool); !maps.Equal(after, before) {
		t.Errorf("users at the end %v, before %v", after, before)
	}
}

// TestPreflightIncidentPool: with --incident, more users than a day of
// Cognito's default email is blocking; a pool whose sign-in policy allows
// passkeys gets the warning (moto keeps the policy it is given, though it
// does not apply it).
func TestPreflightIncidentPool(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "incidentpool")
	api := cip.NewFromConfig(e.East)
	out, err := api.CreateUserPool(t.Context(), &cip.CreateUserPoolInput{
		PoolName: aws.String("passkeys" + strconv.FormatInt(time.Now().UnixNano(), 36)),
		AccountRecoverySetting: &ciptypes.AccountRecoverySettingType{RecoveryMechanisms: []ciptypes.RecoveryOptionType{
			{Name: ciptypes.RecoveryOptionNameTypeVerifiedEmail, Priority: aws.Int32(1)}}},
		Policies: &ciptypes.UserPoolPolicyType{SignInPolicy: &ciptypes.SignInPolicyType{
			AllowedFirstAuthFactors: []ciptypes.AuthFactorType{ciptypes.AuthFactorTypePassword, ciptypes.AuthFactorTypeWebAuthn}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	passkeys := aws.ToString(out.UserPool.Id)
	plain := e.Pool(e.East, nil)

	stdout, stderr, code := preflightRun(t, e, nil, "preflight", "--pool", passkeys, "--pool", plain, "--capacity=false", "--probe-calls=false",
		"--incident", "--users", "200", "--output", "json")
	r := preflightJSON(t, stdout, stderr)
	if code != 1 || !r.Blocked {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	for key, want := range map[string]string{
		plain + " email sender":       "blocking: 200 users take 4 days of Cognito's default email (50 emails a day for the account); configure SES (EmailSendingAccount=DEVELOPER) before an incident campaign",
		passkeys + " sign-in factors": "warning: the sign-in policy allows first factors other than the password (WEB_AUTHN;",
		plain + " sign-in factors":    "ok: users sign in with a password only",
	} {
		c := r.Checks[key]
		if got := string(c.Level) + ": " + c.Message; !strings.HasPrefix(got, want) {
			t.Errorf("%s:\n got %q\nwant %q...", key, got, want)
		}
	}

	// Not an incident: the same email sender is a warning again.
	stdout, stderr, code = preflightRun(t, e, nil, "preflight", "--pool", plain, "--capacity=false", "--probe-calls=false", "--users", "200", "--output", "json")
	if r := preflightJSON(t, stdout, stderr); code != 0 || r.Checks[plain+" email sender"].Level != preflight.Warning {
		t.Errorf("rotation: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
