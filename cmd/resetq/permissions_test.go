package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/resetq/resetq/ops"
)

// TestCallFlags: resetq work's flags name the calls preflight probes.
func TestCallFlags(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		flags callFlags
		want  []string
	}{
		{callFlags{statusCheck: "all", unreachable: "dead-letter"}, []string{ops.OpResetPassword, ops.OpGetUser}},
		{callFlags{statusCheck: "redelivered", unreachable: "dead-letter"}, []string{ops.OpResetPassword, ops.OpGetUser}},
		{callFlags{statusCheck: "off", unreachable: "dead-letter"}, []string{ops.OpResetPassword}},
		{callFlags{statusCheck: "off", signOut: true, killPassword: true, unreachable: "disable"},
			[]string{ops.OpResetPassword, ops.OpSetPassword, ops.OpGlobalSignOut, ops.OpDisableUser}},
		{callFlags{statusCheck: "off", reinvite: true, unreachable: "dead-letter"}, []string{ops.OpResetPassword, ops.OpGetUser, ops.OpCreateUser}},
		{callFlags{incident: true, statusCheck: "off", unreachable: "dead-letter"}, ops.IncidentCalls()},
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
