package main

import (
	"context"
	"errors"
	"flag"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/ledger"
	"github.com/resetq/resetq/status"
)

// ledgerFlag registers --ledger-table, the campaign ledger's DynamoDB table.
func ledgerFlag(fs *flag.FlagSet, table *string, usage string) {
	fs.StringVar(table, "ledger-table", "", "`TABLE` of the campaign ledger in DynamoDB (in AWS_REGION): "+usage)
}

// openLedger opens the ledger in table. A writer creates the table when it
// is missing and the credentials may (on-demand capacity, TTL on); a
// reader (status, report) needs it to exist.
func openLedger(ctx context.Context, cfg aws.Config, table string, writer bool) (*ledger.Ledger, error) {
	l, err := ledger.New(ledger.NewClient(cfg), ledger.Config{Table: table, ReadOnly: !writer})
	if err != nil {
		return nil, usagef("--ledger-table: %v", err)
	}
	err = l.Ensure(ctx)
	var denied *awserr.DeniedError
	switch {
	case errors.Is(err, ledger.ErrNoTable):
		return nil, usagef("--ledger-table %s: no such table (resetq enqueue or work creates it)", table)
	case errors.As(err, &denied):
		return nil, usagef("--ledger-table %s: %v", table, err)
	case err != nil:
		return nil, err
	}
	return l, nil
}

// campaignCounts are the ledger's counts of a campaign as status shows them.
func campaignCounts(p ledger.Progress) map[string]status.Counts {
	out := make(map[string]status.Counts, len(p))
	for pool, c := range p {
		out[pool] = status.Counts{Enqueued: c.Enqueued, Reset: c.Reset, Reinvited: c.Reinvited, Disabled: c.Disabled, DeadLettered: c.DeadLettered}
	}
	return out
}

// lastCampaign is the campaign enqueued last in l.
func lastCampaign(ctx context.Context, l *ledger.Ledger) (string, error) {
	cs, err := l.Campaigns(ctx)
	var denied *awserr.DeniedError
	switch {
	case errors.As(err, &denied):
		return "", usageError{err}
	case err != nil:
		return "", err
	}
	if len(cs) == 0 {
		return "", usagef("--ledger-table %s: no campaign enqueued yet; name one with --campaign", l.Table())
	}
	return cs[0].Name, nil
}
