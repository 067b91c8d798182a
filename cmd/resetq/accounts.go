package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/job"
)

// poolRolesFlag registers --pool-roles, the pools in other AWS accounts
// and the roles that reach them.
func poolRolesFlag(fs *flag.FlagSet, path *string) {
	fs.StringVar(path, "pool-roles", "", "`FILE` of pools in other AWS accounts, one a line: POOL_ID ROLE_ARN [external-id=ID] (# comments, blank lines skipped). "+
		"Their calls use credentials from sts:AssumeRole into the role (session resetq-CAMPAIGN, renewed before expiry); every other pool uses the default credentials")
}

// openAccounts reads --pool-roles (a line that cannot be read is a usage
// error naming it: exit 2) and, when learn is set or there are roles,
// reads the default credentials' account (one sts:GetCallerIdentity), so
// that every pool is paced and shown by its account. Without that account
// the default credentials' pools are keyed by Region alone, with a warning.
// warn receives the warning: a logger's in work, a line on stderr
// elsewhere (stderrWarn).
func openAccounts(ctx context.Context, cfg aws.Config, path string, learn bool, warn func(msg string, args ...any)) (*accounts.Resolver, error) {
	var roles accounts.Roles
	if path != "" {
		var err error
		if roles, err = accounts.LoadRoles(path); err != nil {
			return nil, usagef("--pool-roles: %v", err)
		}
	}
	r := accounts.New(cfg, roles)
	if learn || len(roles) > 0 {
		if err := r.LearnDefaultAccount(ctx); err != nil {
			warn("the default credentials' account is unknown: their pools are paced and shown by Region alone (account \"\")", "error", err)
		}
	}
	return r, nil
}

// stderrWarn is a warn for openAccounts that prints "warning: MSG (k=v ...)" on w.
func stderrWarn(w io.Writer) func(msg string, args ...any) {
	return func(msg string, args ...any) {
		var b strings.Builder
		slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
				return slog.Attr{}
			}
			return a
		}})).Warn(msg, args...)
		fmt.Fprintf(w, "warning: %s", b.String())
	}
}

// scopeLabels are the account and region labels of a quota scope's key
// (job.Scope.Key).
func scopeLabels(key string) []string {
	s := job.ParseScope(key)
	return []string{s.Account, s.Region}
}
