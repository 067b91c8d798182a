package preflight

import (
	"strings"
	"testing"

	"github.com/resetq/resetq/userpool"
)

func TestCheckSignIn(t *testing.T) {
	const id = "us-east-1_a"
	for _, tt := range []struct {
		name    string
		factors []string
		level   Level
		text    []string
		not     []string
	}{
		{"no sign-in policy", nil, OK, []string{"password only"}, nil},
		{"password only", []string{FactorPassword}, OK, []string{"password only"}, nil},
		{"passkeys", []string{FactorPassword, FactorWebAuthn}, Warning,
			[]string{"(WEB_AUTHN;", "registered a passkey (WEB_AUTHN)", "--unreachable disable does not cover it", "AdminDisableUser blocks every factor", "UpdateUserPool Policies.SignInPolicy"},
			[]string{"PASSWORD", "EMAIL_OTP"}},
		{"email and SMS codes", []string{FactorPassword, FactorEmailOTP, FactorSMSOTP}, Warning,
			[]string{"(EMAIL_OTP, SMS_OTP;", "reads the user's email (EMAIL_OTP) or who reads the user's text messages (SMS_OTP)"}, nil},
		{"a factor not known yet", []string{FactorPassword, "FACE"}, Warning, []string{"holds the factor FACE"}, nil},
	} {
		c := CheckSignIn(userpool.Pool{ID: id, FirstAuthFactors: tt.factors})
		if c.Level != tt.level || c.Subject != id || c.Name != "sign-in factors" {
			t.Errorf("%s: %+v, want level %s", tt.name, c, tt.level)
		}
		for _, s := range tt.text {
			if !strings.Contains(c.Message, s) {
				t.Errorf("%s: message %q lacks %q", tt.name, c.Message, s)
			}
		}
		for _, s := range tt.not {
			if strings.Contains(c.Message, s) {
				t.Errorf("%s: message %q has %q", tt.name, c.Message, s)
			}
		}
	}
}

func TestCheckTokens(t *testing.T) {
	for _, tt := range []struct {
		signOut bool
		text    string
	}{
		{true, "stay valid up to their lifetime (1 h by default, per app client) in services that only check their signature"},
		{false, "does not sign users out: refresh tokens already issued keep working"},
	} {
		c := CheckTokens(tt.signOut)
		if c.Level != OK || c.Subject != "campaign" || !strings.Contains(c.Message, tt.text) {
			t.Errorf("sign-out %v: %+v, want ok with %q", tt.signOut, c, tt.text)
		}
	}
}
