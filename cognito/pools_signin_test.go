package cognito_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/resetq/resetq/cognito"
)

// describeServer answers DescribeUserPool (awsJson1.1) with body, for the
// pool asked, and fails the test on any other call.
func describeServer(t *testing.T, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Amz-Target"); got != "AWSCognitoIdentityProviderService.DescribeUserPool" {
			t.Errorf("X-Amz-Target %q", got)
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		var in struct{ UserPoolId string }
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &in); err != nil || in.UserPoolId != "eu-west-1_AbC123" {
			t.Errorf("request %s: %v", b, err)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestDescribeSignInPolicy reads Policies.SignInPolicy.AllowedFirstAuthFactors
// with the real SDK from a server that answers as Cognito does (moto keeps
// what it is given, but does not apply it).
func TestDescribeSignInPolicy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, policies string
		want           []string
	}{
		{"passkeys and codes", `{"SignInPolicy":{"AllowedFirstAuthFactors":["PASSWORD","WEB_AUTHN","EMAIL_OTP","SMS_OTP"]}}`,
			[]string{"PASSWORD", "WEB_AUTHN", "EMAIL_OTP", "SMS_OTP"}},
		{"password only", `{"SignInPolicy":{"AllowedFirstAuthFactors":["PASSWORD"]}}`, []string{"PASSWORD"}},
		{"no sign-in policy", `{"PasswordPolicy":{"MinimumLength":8}}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := describeServer(t, `{"UserPool":{"Id":"eu-west-1_AbC123","Policies":`+tt.policies+
				`,"AccountRecoverySetting":{"RecoveryMechanisms":[{"Name":"verified_email","Priority":1}]}}}`)
			cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
				Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
			p, err := cognito.NewPools(cfg).Describe(t.Context(), "eu-west-1_AbC123")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.FirstAuthFactors, tt.want) || !slices.Equal(p.Recovery, []string{"verified_email"}) {
				t.Errorf("factors %v, recovery %v; want %v, [verified_email]", p.FirstAuthFactors, p.Recovery, tt.want)
			}
		})
	}
}
