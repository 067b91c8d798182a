package preflight

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/userpool"
)

// answer is an AWS error as the cognito adapter hands a probe's over: its
// text "Code: Message", wrapping what it means (kind) when resetq knows.
type answer struct {
	text string
	kind error
}

func (a answer) Error() string { return a.text }
func (a answer) Unwrap() error { return a.kind }

func TestCheckCall(t *testing.T) {
	const pool = "eu-west-1_AbC123"
	for _, tt := range []struct {
		name  string
		op    string
		err   error
		level Level
		text  []string // substrings of the message
	}{
		{"user not found: permitted", userpool.OpGlobalSignOut, answer{"UserNotFoundException: User does not exist.", awserr.ErrUserNotFound},
			OK, []string{"cognito-idp:AdminUserGlobalSignOut permitted"}},
		{"success: permitted", userpool.OpGetUser, nil, OK, []string{"cognito-idp:AdminGetUser permitted"}},
		{"denied", userpool.OpGlobalSignOut, &awserr.DeniedError{Action: "cognito-idp:AdminUserGlobalSignOut", Err: answer{"AccessDeniedException: not authorized", nil}},
			Blocking, []string{"cognito-idp:AdminUserGlobalSignOut is denied on " + pool, "AccessDeniedException: not authorized", "grant it"}},
		{"pool missing", userpool.OpResetPassword, answer{"ResourceNotFoundException: User pool does not exist.", awserr.ErrPoolNotFound},
			Blocking, []string{"the user pool " + pool + " does not exist", "ResourceNotFoundException"}},
		{"password refused", userpool.OpSetPassword, answer{"InvalidPasswordException: too short", awserr.ErrPasswordRefused},
			Warning, []string{"cognito-idp:AdminSetUserPassword permitted, but the pool's password policy", "InvalidPasswordException: too short"}},
		{"throttled", userpool.OpCreateUser, answer{"TooManyRequestsException: Rate exceeded", nil},
			Warning, []string{"cognito-idp:AdminCreateUser not proven", "TooManyRequestsException: Rate exceeded", "after the SDK's retries"}},
		{"network", userpool.OpDisableUser, errors.New("dial tcp: connection refused"),
			Warning, []string{"cognito-idp:AdminDisableUser not proven", "connection refused"}},
	} {
		c := CheckCall(pool, tt.op, tt.err)
		if c.Level != tt.level || c.Subject != pool || c.Name != "call "+tt.op {
			t.Errorf("%s: %+v, want level %s, subject %s, name %q", tt.name, c, tt.level, pool, "call "+tt.op)
		}
		for _, s := range tt.text {
			if !strings.Contains(c.Message, s) {
				t.Errorf("%s: message %q lacks %q", tt.name, c.Message, s)
			}
		}
	}
}

// fakeProber answers per pool and operation, and records the calls.
type fakeProber struct {
	answer func(pool, op string) error
	calls  []string
	cancel func() // called on the first call, when set
}

func (f *fakeProber) Probe(_ context.Context, pool, op string) error {
	f.calls = append(f.calls, pool+" "+op)
	if f.cancel != nil {
		f.cancel()
	}
	return f.answer(pool, op)
}

func TestCheckCalls(t *testing.T) {
	notFound := answer{"UserNotFoundException: ", awserr.ErrUserNotFound}
	f := &fakeProber{answer: func(pool, op string) error {
		switch {
		case pool == "us-east-1_gone":
			return answer{"ResourceNotFoundException: ", awserr.ErrPoolNotFound}
		case op == userpool.OpGlobalSignOut:
			return &awserr.DeniedError{Action: "cognito-idp:" + op, Err: errors.New("AccessDeniedException: no")}
		}
		return notFound
	}}
	calls := []string{userpool.OpResetPassword, userpool.OpGlobalSignOut}
	checks, err := CheckCalls(t.Context(), f, []string{"us-east-1_a", "us-east-1_gone", "us-east-1_a"}, calls)
	if err != nil {
		t.Fatal(err)
	}
	// The repeated pool is probed once; the missing pool once, not per call.
	want := []string{"us-east-1_a AdminResetUserPassword", "us-east-1_a AdminUserGlobalSignOut", "us-east-1_gone AdminResetUserPassword"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls %v, want %v", f.calls, want)
	}
	var levels []Level
	for _, c := range checks {
		levels = append(levels, c.Level)
	}
	if !slices.Equal(levels, []Level{OK, Blocking, Blocking}) {
		t.Errorf("levels %v (%+v)", levels, checks)
	}

	ctx, cancel := context.WithCancel(t.Context())
	f = &fakeProber{answer: func(string, string) error { return context.Canceled }, cancel: cancel}
	checks, err = CheckCalls(ctx, f, []string{"us-east-1_a"}, calls)
	if !errors.Is(err, context.Canceled) || len(checks) != 0 || len(f.calls) != 1 {
		t.Errorf("cancelled: %v, %+v, calls %v; want context.Canceled, no check, one call", err, checks, f.calls)
	}
}
