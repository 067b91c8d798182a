package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/resetq/resetq/userpool"
)

// TestCallFlags: resetq work's flags name the calls preflight probes.
func TestCallFlags(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		flags callFlags
		want  []string
	}{
		{callFlags{statusCheck: "all", unreachable: "dead-letter"}, []string{userpool.OpResetPassword, userpool.OpGetUser}},
		{callFlags{statusCheck: "redelivered", unreachable: "dead-letter"}, []string{userpool.OpResetPassword, userpool.OpGetUser}},
		{callFlags{statusCheck: "off", unreachable: "dead-letter"}, []string{userpool.OpResetPassword}},
		{callFlags{statusCheck: "off", signOut: true, killPassword: true, unreachable: "disable"},
			[]string{userpool.OpResetPassword, userpool.OpSetPassword, userpool.OpGlobalSignOut, userpool.OpDisableUser}},
		{callFlags{statusCheck: "off", reinvite: true, unreachable: "dead-letter"}, []string{userpool.OpResetPassword, userpool.OpGetUser, userpool.OpCreateUser}},
		{callFlags{incident: true, statusCheck: "off", unreachable: "dead-letter"}, userpool.IncidentCalls()},
	} {
		if got := tt.flags.calls(); !slices.Equal(got, tt.want) {
			t.Errorf("%+v: %v, want %v", tt.flags, got, tt.want)
		}
	}
}

// TestPreflightCallFlags: the values resetq work refuses, preflight
// refuses too, before any AWS call.
func TestPreflightCallFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--unreachable", "delete"},
		{"--status-check", "sometimes"},
	} {
		var out, errOut bytes.Buffer
		args = append([]string{"preflight", "--pool", "us-east-1_AbC123"}, args...)
		if got := Run(context.Background(), args, &out, &errOut); got != exitUsage || !strings.Contains(errOut.String(), args[3]) {
			t.Errorf("Run(%q) = %d, stderr %q; want %d naming %s", args, got, errOut.String(), exitUsage, args[3])
		}
	}
}
