package main

import (
	"context"
	"flag"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/preflight"
	"github.com/resetq/resetq/userpool"
)

// checkPermissions proves, with each pool's credentials (reach), that each of calls
// (userpool.Op* names, e.g. from userpool.CampaignCalls) is permitted on each pool:
// one call per pool and operation, for a user that cannot exist. It
// returns one check per call made; the error is ctx's when it ends.
func checkPermissions(ctx context.Context, reach *accounts.Resolver, pools []string, calls []string) ([]preflight.Check, error) {
	return preflight.CheckCalls(ctx, cognito.NewPoolsWith(reach), pools, calls)
}

// callOptions is the calls resetq work makes with these values of its
// --status-check, --global-sign-out, --kill-password, --reinvite and
// --unreachable.
func callOptions(statusCheck string, globalSignOut, killPassword, reinvite bool, unreachable string) userpool.CallOptions {
	return userpool.CallOptions{
		StatusCheck:  statusCheck != "off",
		SignOut:      globalSignOut,
		KillPassword: killPassword,
		Reinvite:     reinvite,
		Disable:      unreachable == "disable",
	}
}

// callFlags are preflight's twins of the flags of resetq work that choose
// the campaign's Cognito calls.
type callFlags struct {
	incident, signOut, reinvite, killPassword bool
	unreachable, statusCheck                  string
}

func (f *callFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.incident, "incident", false, "the campaign is an incident (resetq work --incident): probe every incident call, and Cognito's default email for more than 50 users is blocking")
	fs.BoolVar(&f.signOut, "global-sign-out", false, "the campaign signs users out (resetq work --global-sign-out): probe AdminUserGlobalSignOut")
	fs.BoolVar(&f.reinvite, "reinvite", false, "the campaign re-invites users who never signed in (resetq work --reinvite): probe AdminGetUser and AdminCreateUser")
	fs.BoolVar(&f.killPassword, "kill-password", false, "the campaign sets a random password when the code cannot go out (resetq work --kill-password): probe AdminSetUserPassword")
	fs.StringVar(&f.unreachable, "unreachable", "dead-letter", "resetq work's --unreachable: dead-letter, or disable (probe AdminDisableUser)")
	fs.StringVar(&f.statusCheck, "status-check", "all", "resetq work's --status-check: all, redelivered (both probe AdminGetUser) or off")
}

func (f *callFlags) validate() error {
	switch {
	case f.unreachable != "dead-letter" && f.unreachable != "disable":
		return usagef("--unreachable %q: want dead-letter or disable", f.unreachable)
	case f.statusCheck != "all" && f.statusCheck != "redelivered" && f.statusCheck != "off":
		return usagef("--status-check %q: want all, redelivered or off", f.statusCheck)
	}
	return nil
}

// calls lists the campaign's calls: every incident call with --incident.
func (f *callFlags) calls() []string {
	if f.incident {
		return userpool.IncidentCalls()
	}
	return userpool.CampaignCalls(callOptions(f.statusCheck, f.signOut, f.killPassword, f.reinvite, f.unreachable))
}
