package userpool

import (
	"slices"
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
