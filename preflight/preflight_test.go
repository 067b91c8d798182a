package preflight

import (
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/userpool"
)

// levels maps check names to levels.
func levels(checks []Check) map[string]Level {
	m := map[string]Level{}
	for _, c := range checks {
		m[c.Name] = c.Level
	}
	return m
}

func TestCheckPool(t *testing.T) {
	tests := []struct {
		name  string
		pool  userpool.Pool
		users int
		want  map[string]Level // checks that must be present with this level
		none  []string         // checks that must be absent
		text  string           // substring of some message
	}{
		{"no recovery", userpool.Pool{ID: "us-east-1_a"}, 0,
			map[string]Level{"account recovery": Blocking}, []string{"email sender", "sms role"}, "AccountRecoverySetting"},
		{"admin only", userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryAdminOnly}}, 0,
			map[string]Level{"account recovery": Blocking}, nil, "admin_only"},
		{"email default, users known", userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryEmail}, EmailSendingAccount: "COGNITO_DEFAULT"}, 1001,
			map[string]Level{"account recovery": OK, "email sender": Warning}, []string{"sms role"}, "1001 users would take 21 day(s)"},
		{"email unset is default", userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryEmail}}, 0,
			map[string]Level{"email sender": Warning}, nil, "at most 50 emails a day"},
		{"email through SES", userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryEmail}, EmailSendingAccount: "DEVELOPER"}, 100000,
			map[string]Level{"email sender": OK}, nil, "SES"},
		{"phone without role", userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryPhone, RecoveryEmail}, EmailSendingAccount: "DEVELOPER"}, 0,
			map[string]Level{"sms role": Blocking, "email sender": OK}, nil, "SnsCallerArn"},
		{"phone with role", userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryPhone}, SMSCallerARN: "arn:aws:iam::1:role/sms"}, 0,
			map[string]Level{"sms role": OK}, []string{"email sender"}, "role/sms"},
		{"custom message lambda", userpool.Pool{ID: "us-east-1_a", Recovery: []string{RecoveryPhone}, SMSCallerARN: "r", CustomMessageLambda: "arn:aws:lambda:x"}, 0,
			map[string]Level{"custom message trigger": OK}, nil, "receives each job's ClientMetadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := CheckPool(tt.pool, tt.users, false)
			got := levels(checks)
			for name, l := range tt.want {
				if got[name] != l {
					t.Errorf("%s: %q, want %q (%+v)", name, got[name], l, checks)
				}
			}
			for _, name := range tt.none {
				if _, ok := got[name]; ok {
					t.Errorf("unexpected check %s", name)
				}
			}
			found := false
			for _, c := range checks {
				found = found || strings.Contains(c.Message, tt.text)
				if c.Subject != tt.pool.ID {
					t.Errorf("subject %q", c.Subject)
				}
			}
			if !found {
				t.Errorf("no message contains %q: %+v", tt.text, checks)
			}
		})
	}
}

func TestCheckQueue(t *testing.T) {
	good := QueueInfo{URL: "q", DLQARN: "arn:aws:sqs:us-east-1:1:q-dlq", MaxReceiveCount: 10,
		Visibility: 30 * time.Second, Retention: 4 * 24 * time.Hour, DLQRetention: 14 * 24 * time.Hour}
	mod := func(f func(*QueueInfo)) QueueInfo { q := good; f(&q); return q }
	tests := []struct {
		name string
		q    QueueInfo
		want map[string]Level
	}{
		{"good", good, map[string]Level{"dead-letter queue": OK, "maxReceiveCount": OK, "visibility timeout": OK, "retention": OK, "dlq retention": OK}},
		{"no redrive", mod(func(q *QueueInfo) { q.DLQARN = "" }), map[string]Level{"dead-letter queue": Blocking}},
		{"dlq unreadable", mod(func(q *QueueInfo) { q.DLQError = "AccessDenied" }), map[string]Level{"dead-letter queue": Blocking}},
		{"fifo", mod(func(q *QueueInfo) { q.FIFO = true }), map[string]Level{"queue type": Blocking}},
		{"low maxReceiveCount", mod(func(q *QueueInfo) { q.MaxReceiveCount = 4 }), map[string]Level{"maxReceiveCount": Warning}},
		{"maxReceiveCount 5", mod(func(q *QueueInfo) { q.MaxReceiveCount = 5 }), map[string]Level{"maxReceiveCount": OK}},
		{"short visibility", mod(func(q *QueueInfo) { q.Visibility = 29 * time.Second }), map[string]Level{"visibility timeout": Warning}},
		{"short retention", mod(func(q *QueueInfo) { q.Retention = time.Hour; q.DLQRetention = time.Hour }), map[string]Level{"retention": Warning, "dlq retention": OK}},
		{"dlq retention shorter", mod(func(q *QueueInfo) { q.DLQRetention = 3 * 24 * time.Hour }), map[string]Level{"dlq retention": Warning}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := CheckQueue(tt.q)
			got := levels(checks)
			for name, l := range tt.want {
				if got[name] != l {
					t.Errorf("%s: %q, want %q (%+v)", name, got[name], l, checks)
				}
			}
			if wantBlocked := tt.name == "no redrive" || tt.name == "dlq unreadable" || tt.name == "fifo"; Blocked(checks) != wantBlocked {
				t.Errorf("Blocked = %v", !wantBlocked)
			}
		})
	}
}

func TestCheckRate(t *testing.T) {
	tests := []struct {
		users int
		rate  float64
		share Level
		text  string
	}{
		{0, 24, OK, "leaves 20%"},
		{0, 15, OK, "leaves 50%"},
		{0, 30, Warning, "leaves nothing"},
		{0, 45, Warning, "leaves nothing"},
		{100000, 24, OK, "about 1h9m27s"},
		{100, 50, Warning, "about 3s"}, // capped at the quota
	}
	for _, tt := range tests {
		checks := CheckRate(tt.users, tt.rate)
		if levels(checks)["quota share"] != tt.share {
			t.Errorf("users %d rate %v: %+v", tt.users, tt.rate, checks)
		}
		_, hasDuration := levels(checks)["duration"]
		if hasDuration != (tt.users > 0) {
			t.Errorf("users %d: duration check present %v", tt.users, hasDuration)
		}
		found := false
		for _, c := range checks {
			found = found || strings.Contains(c.Message, tt.text)
		}
		if !found {
			t.Errorf("users %d rate %v: no %q in %+v", tt.users, tt.rate, tt.text, checks)
		}
	}
	if d := ExpectedDuration(240, 24); d != 10*time.Second {
		t.Errorf("ExpectedDuration = %v", d)
	}
}
