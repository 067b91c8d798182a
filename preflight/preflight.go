// Package preflight holds resetq preflight's checks, each a finding with a
// level (ok, warning, blocking): the pools' recovery, email and SMS
// settings and sign-in factors, the queue and its DLQ, the campaign's rate,
// the capacity around it (SES, SNS, Service Quotas, real users' use), and
// probes that prove each Cognito call permitted.
package preflight

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/resetq/resetq/userpool"
)

// Level is how serious a preflight finding is.
type Level string

const (
	OK       Level = "ok"
	Warning  Level = "warning"
	Blocking Level = "blocking"
)

// Check is one preflight finding.
type Check struct {
	Level   Level  `json:"level"`
	Subject string `json:"subject"` // a pool ID, a queue URL, or "campaign"
	Name    string `json:"check"`
	Message string `json:"message"`
}

// Quotas the checks use.
const (
	// CognitoDefaultEmailsPerDay is what Cognito's own email sender
	// (EmailSendingAccount COGNITO_DEFAULT) sends per day per account.
	CognitoDefaultEmailsPerDay = 50
	// RecoveryQuota is the UserAccountRecovery quota per account and
	// Region (AdminResetUserPassword and ForgotPassword share it).
	RecoveryQuota = 30
)

// Recovery mechanism names of AccountRecoverySetting.
const (
	RecoveryEmail     = "verified_email"
	RecoveryPhone     = "verified_phone_number"
	RecoveryAdminOnly = "admin_only"
)

// CheckPool checks one pool for a campaign of users resets (0: unknown);
// incident is true for an incident campaign, which must not take days.
func CheckPool(p userpool.Pool, users int, incident bool) []Check {
	c := func(l Level, name, format string, a ...any) Check {
		return Check{Level: l, Subject: p.ID, Name: name, Message: fmt.Sprintf(format, a...)}
	}
	var out []Check
	switch {
	case len(p.Recovery) == 0:
		out = append(out, c(Blocking, "account recovery", "no AccountRecoverySetting mechanism: set verified_email and/or verified_phone_number so that reset users can receive a code"))
	case slices.Equal(p.Recovery, []string{RecoveryAdminOnly}):
		out = append(out, c(Blocking, "account recovery", "account recovery is admin_only: reset users get no code and cannot sign in until an administrator sets their password"))
	default:
		out = append(out, c(OK, "account recovery", "users recover by %s", strings.Join(p.Recovery, ", then ")))
	}
	if slices.Contains(p.Recovery, RecoveryEmail) {
		out = append(out, emailSender(p, users, incident))
	}
	if slices.Contains(p.Recovery, RecoveryPhone) {
		if p.SMSCallerARN == "" {
			out = append(out, c(Blocking, "sms role", "recovery uses verified_phone_number but the pool has no SmsConfiguration.SnsCallerArn: codes by SMS cannot be sent"))
		} else {
			out = append(out, c(OK, "sms role", "SMS codes are sent with role %s", p.SMSCallerARN))
		}
	}
	if p.CustomMessageLambda != "" {
		out = append(out, c(OK, "custom message trigger", "custom-message Lambda %s receives each job's ClientMetadata", p.CustomMessageLambda))
	} else {
		out = append(out, c(OK, "custom message trigger", "no custom-message Lambda: ClientMetadata in jobs is not used by anything"))
	}
	return out
}

// emailSender judges the pool's email sender for users resets: Cognito's
// default sender takes a day per 50 users, which an incident cannot wait.
func emailSender(p userpool.Pool, users int, incident bool) Check {
	c := Check{Level: Warning, Subject: p.ID, Name: "email sender"}
	if p.EmailSendingAccount != "" && p.EmailSendingAccount != "COGNITO_DEFAULT" {
		c.Level, c.Message = OK, fmt.Sprintf("codes are sent through Amazon SES (%s)", p.EmailSendingAccount)
		return c
	}
	days := (users + CognitoDefaultEmailsPerDay - 1) / CognitoDefaultEmailsPerDay
	if incident && users > CognitoDefaultEmailsPerDay {
		c.Level, c.Message = Blocking, fmt.Sprintf("%d users take %d days of Cognito's default email (%d emails a day for the account); configure SES (EmailSendingAccount=DEVELOPER) before an incident campaign",
			users, days, CognitoDefaultEmailsPerDay)
		return c
	}
	c.Message = fmt.Sprintf("Cognito's default email sender sends at most %d emails a day for the account", CognitoDefaultEmailsPerDay)
	if users > 0 {
		c.Message += fmt.Sprintf(": %d users would take %d day(s)", users, days)
	}
	c.Message += "; configure Amazon SES (EmailSendingAccount DEVELOPER) before a large campaign"
	if incident && users == 0 {
		c.Message += " (give --users: an incident campaign of more than a day's emails is blocking)"
	}
	return c
}

// QueueInfo is what preflight needs from the source queue and its DLQ.
type QueueInfo struct {
	URL             string
	FIFO            bool
	DLQARN          string // from the RedrivePolicy; "" when there is none
	DLQError        string // the DLQ could not be read
	MaxReceiveCount int
	Visibility      time.Duration
	Retention       time.Duration
	DLQRetention    time.Duration // 0 when unknown
}

// Thresholds of the queue checks.
const (
	MinMaxReceiveCount = 5
	MinVisibility      = 30 * time.Second
	MinRetention       = 24 * time.Hour
)

// CheckQueue checks the source queue and its DLQ.
func CheckQueue(q QueueInfo) []Check {
	c := func(l Level, name, format string, a ...any) Check {
		return Check{Level: l, Subject: q.URL, Name: name, Message: fmt.Sprintf(format, a...)}
	}
	var out []Check
	if q.FIFO {
		out = append(out, c(Blocking, "queue type", "a FIFO queue: resetq needs a standard queue (retries are sent back with a per-message delay)"))
	}
	switch {
	case q.DLQARN == "":
		out = append(out, c(Blocking, "dead-letter queue", "the queue has no RedrivePolicy: set one with a DLQ, or jobs that keep failing are received forever"))
	case q.DLQError != "":
		out = append(out, c(Blocking, "dead-letter queue", "the DLQ %s of the RedrivePolicy cannot be read: %s", q.DLQARN, q.DLQError))
	default:
		out = append(out, c(OK, "dead-letter queue", "RedrivePolicy moves jobs to %s", q.DLQARN))
		if q.MaxReceiveCount < MinMaxReceiveCount {
			out = append(out, c(Warning, "maxReceiveCount", "maxReceiveCount is %d (< %d): every receive counts, including after a crash or a shutdown, and SQS then dead-letters the job without a reason", q.MaxReceiveCount, MinMaxReceiveCount))
		} else {
			out = append(out, c(OK, "maxReceiveCount", "maxReceiveCount is %d", q.MaxReceiveCount))
		}
		switch {
		case q.DLQRetention == 0:
		case q.DLQRetention < q.Retention:
			out = append(out, c(Warning, "dlq retention", "the DLQ keeps messages %v, less than the source's %v: dead letters can expire before anyone reads them (SQS keeps a message's original enqueue time)", q.DLQRetention, q.Retention))
		default:
			out = append(out, c(OK, "dlq retention", "the DLQ keeps messages %v", q.DLQRetention))
		}
	}
	if q.Visibility < MinVisibility {
		out = append(out, c(Warning, "visibility timeout", "the visibility timeout is %v (< %v); the worker uses at least %v on its receives, but other consumers would see jobs again too early", q.Visibility, MinVisibility, MinVisibility))
	} else {
		out = append(out, c(OK, "visibility timeout", "the visibility timeout is %v", q.Visibility))
	}
	if q.Retention < MinRetention {
		out = append(out, c(Warning, "retention", "the queue keeps messages %v (< %v): jobs of a campaign throttled or paused for long can expire unprocessed", q.Retention, MinRetention))
	} else {
		out = append(out, c(OK, "retention", "the queue keeps messages %v", q.Retention))
	}
	return out
}

// CheckRate describes a campaign of users resets at rate per second per
// Region (users 0: unknown).
func CheckRate(users int, rate float64) []Check {
	c := func(l Level, name, format string, a ...any) Check {
		return Check{Level: l, Subject: "campaign", Name: name, Message: fmt.Sprintf(format, a...)}
	}
	var out []Check
	left := (RecoveryQuota - rate) / RecoveryQuota
	if rate >= RecoveryQuota {
		out = append(out, c(Warning, "quota share", "--rate %g leaves nothing of the Region's %d/s recovery quota to real users' ForgotPassword, and will be throttled", rate, RecoveryQuota))
	} else {
		out = append(out, c(OK, "quota share", "--rate %g leaves %.0f%% of the Region's %d/s recovery quota (%.4g/s) to real users' ForgotPassword", rate, 100*left, RecoveryQuota, RecoveryQuota-rate))
	}
	if users > 0 {
		d := ExpectedDuration(users, rate)
		out = append(out, c(OK, "duration", "%d resets at %g/s take about %v when their pools are in one account and Region (less when they spread over accounts and Regions)", users, rate, d))
	}
	return out
}

// ExpectedDuration is how long users resets take at rate per second (the
// rate is capped at the quota), rounded to the second.
func ExpectedDuration(users int, rate float64) time.Duration {
	r := math.Min(rate, RecoveryQuota)
	if r <= 0 {
		return 0
	}
	return time.Duration(float64(users) / r * float64(time.Second)).Round(time.Second)
}

// Blocked reports whether any check is blocking.
func Blocked(checks []Check) bool {
	for _, c := range checks {
		if c.Level == Blocking {
			return true
		}
	}
	return false
}
