package ops

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCampaignCalls(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    CallOptions
		want []string
	}{
		{"rotation, status check off", CallOptions{}, []string{OpResetPassword}},
		{"rotation", CallOptions{StatusCheck: true}, []string{OpResetPassword, OpGetUser}},
		{"reinvite reads the status even without the check", CallOptions{Reinvite: true}, []string{OpResetPassword, OpGetUser, OpCreateUser}},
		{"sign-out", CallOptions{StatusCheck: true, SignOut: true}, []string{OpResetPassword, OpGetUser, OpGlobalSignOut}},
		{"kill password", CallOptions{KillPassword: true}, []string{OpResetPassword, OpSetPassword}},
		{"disable", CallOptions{Disable: true}, []string{OpResetPassword, OpDisableUser}},
		{"incident", IncidentOptions(), []string{OpResetPassword, OpGetUser, OpSetPassword, OpGlobalSignOut, OpCreateUser, OpDisableUser}},
	} {
		if got := CampaignCalls(tt.o); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := IncidentCalls(); len(got) != 6 {
		t.Errorf("IncidentCalls() = %v, want the 6 operations", got)
	}
}

func TestCheckCall(t *testing.T) {
	const pool = "eu-west-1_AbC123"
	for _, tt := range []struct {
		name  string
		op    string
		err   error
		level Level
		text  []string // substrings of the message
	}{
		{"user not found: permitted", OpGlobalSignOut, &CallError{Code: "UserNotFoundException", Message: "User does not exist.", Kind: ErrUserNotFound},
			OK, []string{"cognito-idp:AdminUserGlobalSignOut permitted"}},
		{"success: permitted", OpGetUser, nil, OK, []string{"cognito-idp:AdminGetUser permitted"}},
		{"denied", OpGlobalSignOut, &DeniedError{Action: "cognito-idp:AdminUserGlobalSignOut", Err: &CallError{Code: "AccessDeniedException", Message: "not authorized"}},
			Blocking, []string{"cognito-idp:AdminUserGlobalSignOut is denied on " + pool, "AccessDeniedException: not authorized", "grant it"}},
		{"pool missing", OpResetPassword, &CallError{Code: "ResourceNotFoundException", Message: "User pool does not exist.", Kind: ErrPoolNotFound},
			Blocking, []string{"the user pool " + pool + " does not exist", "ResourceNotFoundException"}},
		{"password refused", OpSetPassword, &CallError{Code: "InvalidPasswordException", Message: "too short", Kind: ErrPasswordRefused},
			Warning, []string{"cognito-idp:AdminSetUserPassword permitted, but the pool's password policy", "InvalidPasswordException: too short"}},
		{"throttled", OpCreateUser, &CallError{Code: "TooManyRequestsException", Message: "Rate exceeded"},
			Warning, []string{"cognito-idp:AdminCreateUser not proven", "TooManyRequestsException: Rate exceeded", "after the SDK's retries"}},
		{"network", OpDisableUser, errors.New("dial tcp: connection refused"),
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
	notFound := &CallError{Code: "UserNotFoundException", Kind: ErrUserNotFound}
	f := &fakeProber{answer: func(pool, op string) error {
		switch {
		case pool == "us-east-1_gone":
			return &CallError{Code: "ResourceNotFoundException", Kind: ErrPoolNotFound}
		case op == OpGlobalSignOut:
			return &DeniedError{Action: "cognito-idp:" + op, Err: errors.New("AccessDeniedException: no")}
		}
		return notFound
	}}
	calls := []string{OpResetPassword, OpGlobalSignOut}
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
