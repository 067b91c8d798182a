package preflight

import (
	"testing"

	"github.com/resetq/resetq/userpool"
)

// TestCheckPoolIncidentEmail: in an incident, Cognito's default email for
// more than a day's 50 users is blocking, said in days; otherwise what it
// was.
func TestCheckPoolIncidentEmail(t *testing.T) {
	defaultEmail := userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryEmail}}
	ses := userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryEmail}, EmailSendingAccount: "DEVELOPER"}
	phone := userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryPhone}, SMSCallerARN: "arn:aws:iam::1:role/sms"}
	for _, tt := range []struct {
		name     string
		pool     userpool.Pool
		users    int
		incident bool
		level    Level // of "email sender"; "" when absent
		message  string
	}{
		{"incident, 200 users", defaultEmail, 200, true, Blocking,
			"200 users take 4 days of Cognito's default email (50 emails a day for the account); configure SES (EmailSendingAccount=DEVELOPER) before an incident campaign"},
		{"incident, 51 users", withSender(defaultEmail, "COGNITO_DEFAULT"), 51, true, Blocking,
			"51 users take 2 days of Cognito's default email (50 emails a day for the account); configure SES (EmailSendingAccount=DEVELOPER) before an incident campaign"},
		{"incident, 50 users fit a day", defaultEmail, 50, true, Warning,
			"Cognito's default email sender sends at most 50 emails a day for the account: 50 users would take 1 day(s); configure Amazon SES (EmailSendingAccount DEVELOPER) before a large campaign"},
		{"incident, users unknown", defaultEmail, 0, true, Warning,
			"Cognito's default email sender sends at most 50 emails a day for the account; configure Amazon SES (EmailSendingAccount DEVELOPER) before a large campaign (give --users: an incident campaign of more than a day's emails is blocking)"},
		{"rotation, 200 users", defaultEmail, 200, false, Warning,
			"Cognito's default email sender sends at most 50 emails a day for the account: 200 users would take 4 day(s); configure Amazon SES (EmailSendingAccount DEVELOPER) before a large campaign"},
		{"incident through SES", ses, 100000, true, OK, "codes are sent through Amazon SES (DEVELOPER)"},
		{"incident, phone only", phone, 100000, true, "", ""},
	} {
		var got *Check
		for _, c := range CheckPool(tt.pool, tt.users, tt.incident) {
			if c.Name == "email sender" {
				got = &c
			}
		}
		switch {
		case tt.level == "" && got != nil:
			t.Errorf("%s: unexpected %+v", tt.name, *got)
		case tt.level == "":
		case got == nil:
			t.Errorf("%s: no email sender check", tt.name)
		case got.Level != tt.level || got.Message != tt.message:
			t.Errorf("%s:\n got %s %q\nwant %s %q", tt.name, got.Level, got.Message, tt.level, tt.message)
		}
	}
}

func withSender(p userpool.Pool, account string) userpool.Pool {
	p.EmailSendingAccount = account
	return p
}
