package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/ops"
)

// checkPermissions proves, with awsCfg's credentials, that each of calls
// (ops.Op* names, e.g. from ops.CampaignCalls) is permitted on each pool:
// one call per pool and operation, for a user that cannot exist. It
// returns one check per call made; the error is ctx's when it ends.
func checkPermissions(ctx context.Context, awsCfg aws.Config, pools []string, calls []string) ([]ops.Check, error) {
	return ops.CheckCalls(ctx, cognito.NewPools(awsCfg), pools, calls)
}

// callOptions is the calls resetq work makes with these values of its
// --status-check, --global-sign-out, --kill-password, --reinvite and
// --unreachable.
func callOptions(statusCheck string, globalSignOut, killPassword, reinvite bool, unreachable string) ops.CallOptions {
	return ops.CallOptions{
		StatusCheck:  statusCheck != "off",
		SignOut:      globalSignOut,
		KillPassword: killPassword,
		Reinvite:     reinvite,
		Disable:      unreachable == "disable",
	}
}
