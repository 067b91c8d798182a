// Package userpool is what resetq knows of Cognito user pools without the
// SDK: a user's state, the pool settings preflight judges, and the admin
// operations a campaign calls. The cognito adapter fills these in; report,
// preflight and the permission probes read them.
package userpool

import (
	"strings"
	"time"
)

// User is a user's state as Cognito reports it (AdminGetUser, ListUsers).
type User struct {
	Username     string
	Status       string // UserStatus, e.g. CONFIRMED
	Enabled      bool
	LastModified time.Time // UserLastModifiedDate
}

// Pool is what preflight needs from DescribeUserPool.
type Pool struct {
	ID                  string
	Recovery            []string // AccountRecoverySetting mechanisms, by priority
	EmailSendingAccount string   // COGNITO_DEFAULT, DEVELOPER, or "" (unset: COGNITO_DEFAULT)
	EmailSourceARN      string
	SMSCallerARN        string // SmsConfiguration.SnsCallerArn
	CustomMessageLambda string // LambdaConfig.CustomMessage
	// FirstAuthFactors is Policies.SignInPolicy.AllowedFirstAuthFactors
	// (PASSWORD, EMAIL_OTP, SMS_OTP, WEB_AUTHN); empty: password only.
	FirstAuthFactors []string
	// EstimatedUsers is DescribeUserPool's EstimatedNumberOfUsers.
	EstimatedUsers int
}

// Region is the pool's Region, the prefix of its ID.
func (p Pool) Region() string {
	region, _, _ := strings.Cut(p.ID, "_")
	return region
}
