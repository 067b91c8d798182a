package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/worker"
)

// DefaultLease is how long a worker's claim holds a user: longer than a
// job's pacing wait, its call and its record, so no other job sends a code
// meanwhile; a claim whose holder died ends with it.
const DefaultLease = 5 * time.Minute

// ForWorker is the ledger as the worker uses it (worker.Ledger): claims
// with Lease, and usernames compared as each pool compares them.
type ForWorker struct {
	Ledger *Ledger
	Lease  time.Duration // default DefaultLease
	// CaseSensitive reports whether a pool's usernames are case-sensitive
	// (cognito.Pools.CaseSensitive, DescribeUserPool). Required: a claim
	// waits until it answers, since a name compared the wrong way makes
	// two users one (one left without a code) or one user two (two codes).
	CaseSensitive func(ctx context.Context, pool string) (bool, error)

	mu   sync.Mutex
	fold map[string]bool // by pool, once known
}

var _ worker.Ledger = (*ForWorker)(nil)

// Claim claims u for holder, taking it over from from if that is not ""
// (see Ledger.Claim and Ledger.TakeOver).
func (f *ForWorker) Claim(ctx context.Context, u worker.LedgerUser, holder, from string, now time.Time) (worker.Claim, error) {
	lease := f.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	k, err := f.key(ctx, u)
	if err != nil {
		return worker.Claim{}, err
	}
	c, err := f.Ledger.claim(ctx, k, holder, from, lease, now)
	if err != nil {
		return worker.Claim{}, forWorker(err)
	}
	return worker.Claim{Held: c.Held, Holder: c.Holder, Until: c.Until, Done: c.Done, Outcome: string(c.Outcome)}, nil
}

// Record records a step done for u (see Ledger.Record).
func (f *ForWorker) Record(ctx context.Context, u worker.LedgerUser, step, detail string, now time.Time) error {
	k, err := f.key(ctx, u)
	if err != nil {
		return err
	}
	return forWorker(f.Ledger.Record(ctx, k, Step(step), now, detail))
}

// Release gives up holder's claim on u (see Ledger.Release).
func (f *ForWorker) Release(ctx context.Context, u worker.LedgerUser, holder string, now time.Time) error {
	k, err := f.key(ctx, u)
	if err != nil {
		return err
	}
	return forWorker(f.Ledger.Release(ctx, k, holder, now))
}

// forWorker marks the errors that are the ledger's, not a job's
// (worker.ErrLedgerUnavailable): the worker then waits behind the
// ledger's circuit instead of failing the job.
func forWorker(err error) error {
	var denied *awserr.DeniedError
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrThrottled) || errors.Is(err, ErrNoTable) || errors.As(err, &denied) {
		return fmt.Errorf("%w: %w", worker.ErrLedgerUnavailable, err)
	}
	return err
}

// Row reads u's row (see Ledger.Get).
func (f *ForWorker) Row(ctx context.Context, u worker.LedgerUser) (Row, bool, error) {
	k, err := f.key(ctx, u)
	if err != nil {
		return Row{}, false, err
	}
	return f.Ledger.Get(ctx, k)
}

func (f *ForWorker) key(ctx context.Context, u worker.LedgerUser) (Key, error) {
	// The campaign names the role session of a pool in another account.
	fold, err := f.folds(job.WithCampaign(ctx, u.Campaign), u.Pool)
	return Key{Campaign: u.Campaign, Pool: u.Pool, User: u.Username, Fold: fold}, err
}

// folds reports whether pool compares usernames case-insensitively, asked
// once per pool; a failed question is asked again next time.
func (f *ForWorker) folds(ctx context.Context, pool string) (bool, error) {
	f.mu.Lock()
	fold, known := f.fold[pool]
	f.mu.Unlock()
	if known {
		return fold, nil
	}
	sensitive, err := f.CaseSensitive(ctx, pool)
	if err != nil {
		return false, fmt.Errorf("ledger: whether pool %s compares usernames in any case: %w", pool, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fold == nil {
		f.fold = map[string]bool{}
	}
	f.fold[pool] = !sensitive
	return !sensitive, nil
}
