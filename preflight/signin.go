package preflight

import (
	"fmt"
	"strings"

	"github.com/resetq/resetq/userpool"
)

// First sign-in factors of a pool's sign-in policy (AuthFactorType).
const (
	FactorPassword = "PASSWORD"
	FactorEmailOTP = "EMAIL_OTP"
	FactorSMSOTP   = "SMS_OTP"
	FactorWebAuthn = "WEB_AUTHN"
)

// factorHolders says, per factor, whom a reset does not lock out.
var factorHolders = map[string]string{
	FactorWebAuthn: "registered a passkey (WEB_AUTHN)",
	FactorEmailOTP: "reads the user's email (EMAIL_OTP)",
	FactorSMSOTP:   "reads the user's text messages (SMS_OTP)",
}

// CheckSignIn says which of the pool's first sign-in factors a reset leaves
// open: every factor but the password.
func CheckSignIn(p userpool.Pool) Check {
	c := Check{Level: OK, Subject: p.ID, Name: "sign-in factors"}
	var others, holders []string
	for _, f := range p.FirstAuthFactors {
		if f == FactorPassword {
			continue
		}
		others = append(others, f)
		h, ok := factorHolders[f]
		if !ok {
			h = "holds the factor " + f
		}
		holders = append(holders, h)
	}
	if len(others) == 0 {
		c.Message = "users sign in with a password only, which the reset changes"
		return c
	}
	c.Level = Warning
	c.Message = fmt.Sprintf("the sign-in policy allows first factors other than the password (%s; in app clients with ALLOW_USER_AUTH): "+
		"the campaign does not lock out an attacker who %s. --unreachable disable does not cover it: "+
		"disable the affected users (AdminDisableUser blocks every factor), or take the factor off the pool "+
		"for the incident (UpdateUserPool Policies.SignInPolicy.AllowedFirstAuthFactors)",
		strings.Join(others, ", "), strings.Join(holders, " or who "))
	return c
}

// CheckTokens says what happens to the tokens users already hold, with or
// without the campaign's global sign-out.
func CheckTokens(signOut bool) Check {
	c := Check{Level: OK, Subject: "campaign", Name: "issued tokens"}
	if signOut {
		c.Message = "after the sign-out Cognito refuses the users' tokens, but access and ID tokens already issued " +
			"stay valid up to their lifetime (1 h by default, per app client) in services that only check their signature"
	} else {
		c.Message = "the campaign does not sign users out: refresh tokens already issued keep working (30 days by default) " +
			"and so do access and ID tokens (1 h by default); --global-sign-out ends the refresh tokens"
	}
	return c
}
