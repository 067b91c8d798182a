package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
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
	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/ops"
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
				{Name: aws.String("Service"), Value: aws.String(ops.UsageService)},
				{Name: aws.String("Type"), Value: aws.String("API")},
				{Name: aws.String("Resource"), Value: aws.String(ops.RecoveryCategory)},
				{Name: aws.String("Class"), Value: aws.String("None")},
			}})
	}
	if _, err := awscheck.NewCloudWatch(cfg, region).PutMetricData(ctx, &cw.PutMetricDataInput{Namespace: aws.String(ops.UsageNamespace), MetricData: data}); err != nil {
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
