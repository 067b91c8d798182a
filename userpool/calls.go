package userpool

// The quota categories of the calls a campaign makes: Cognito counts each
// per account and Region, shared with the apps' own calls of it.
const (
	CategoryRecovery = "UserAccountRecovery" // AdminResetUserPassword, AdminSetUserPassword; ForgotPassword, ConfirmForgotPassword
	CategoryRead     = "UserRead"            // AdminGetUser
	CategoryUpdate   = "UserUpdate"          // AdminUserGlobalSignOut, AdminDisableUser; profile updates
	CategoryCreation = "UserCreation"        // AdminCreateUser; sign-ups
)

// The Cognito operations a campaign makes, by their API names.
const (
	OpResetPassword = "AdminResetUserPassword"
	OpGetUser       = "AdminGetUser"
	OpSetPassword   = "AdminSetUserPassword"
	OpGlobalSignOut = "AdminUserGlobalSignOut"
	OpCreateUser    = "AdminCreateUser"
	OpDisableUser   = "AdminDisableUser"
)

// CallOptions says which calls beside AdminResetUserPassword a campaign
// makes. The zero value is a rotation with --status-check=off.
type CallOptions struct {
	StatusCheck  bool // AdminGetUser before the reset (--status-check all or redelivered)
	SignOut      bool // AdminUserGlobalSignOut (--global-sign-out)
	KillPassword bool // AdminSetUserPassword with a random password (--kill-password)
	Reinvite     bool // AdminCreateUser MessageAction=RESEND, after AdminGetUser (--reinvite)
	Disable      bool // AdminDisableUser (--unreachable disable)
}

// IncidentOptions are the calls of an incident campaign: all of them.
func IncidentOptions() CallOptions {
	return CallOptions{StatusCheck: true, SignOut: true, KillPassword: true, Reinvite: true, Disable: true}
}

// CampaignCalls lists the operations a campaign with o makes, the reset
// first, each once.
func CampaignCalls(o CallOptions) []string {
	calls := []string{OpResetPassword}
	add := func(on bool, op string) {
		if on {
			calls = append(calls, op)
		}
	}
	add(o.StatusCheck || o.Reinvite, OpGetUser) // --reinvite reads the status of a user that cannot be reset
	add(o.KillPassword, OpSetPassword)
	add(o.SignOut, OpGlobalSignOut)
	add(o.Reinvite, OpCreateUser)
	add(o.Disable, OpDisableUser)
	return calls
}

// IncidentCalls lists the operations of an incident campaign.
func IncidentCalls() []string { return CampaignCalls(IncidentOptions()) }
