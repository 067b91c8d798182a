package ledger

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Row is what the ledger knows of one user in one campaign.
type Row struct {
	Campaign   string
	Pool       string
	User       string             // the username as the pool compares it (the row's identity)
	Username   string             // the username as first written
	EnqueuedAt time.Time          // the first enqueue; zero if never enqueued through the ledger
	Steps      map[Step]time.Time // each step's first time
	Outcome    Step               // the last outcome (see Record); "" for none yet
	OutcomeAt  time.Time          // when Outcome was recorded
	Reason     string             // the last dead letter's reason
	Holder     string             // who holds the claim; "" for no one
	LeaseUntil time.Time          // the end of Holder's lease
	ClaimedAt  time.Time          // Holder's last claim
}

// Done reports whether the user is finished for the campaign.
func (r Row) Done() bool { return r.Outcome.Done() }

func decodeRow(item map[string]types.AttributeValue) Row {
	r := Row{
		Campaign:   getS(item, attrCampaign),
		Pool:       getS(item, attrPool),
		User:       getS(item, attrUser),
		Username:   getS(item, attrUsername),
		EnqueuedAt: getTime(item, attrEnqueued),
		Outcome:    Step(getS(item, attrOutcome)),
		OutcomeAt:  getTime(item, attrOutcomeAt),
		Reason:     getS(item, attrReason),
		Holder:     getS(item, attrHolder),
		LeaseUntil: getTime(item, attrLease),
		ClaimedAt:  getTime(item, attrClaimed),
	}
	for _, s := range Steps {
		if t := getTime(item, s.attr()); !t.IsZero() {
			if r.Steps == nil {
				r.Steps = map[Step]time.Time{}
			}
			r.Steps[s] = t
		}
	}
	return r
}

// Rows calls fn with every row of the campaign, one call at a time, in no
// set order; it stops at fn's first error and returns it. The shards are
// read in parallel (Config.Concurrency), each page by page, consistently.
func (l *Ledger) Rows(ctx context.Context, campaign string, fn func(Row) error) error {
	var mu sync.Mutex
	return parallel(ctx, RowShards, l.cfg.Concurrency, func(ctx context.Context, shard int) error {
		in := &dynamodb.QueryInput{
			TableName:                 &l.cfg.Table,
			KeyConditionExpression:    aws.String("#pk = :pk"),
			ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(rowPK(campaign, shard))},
			ConsistentRead:            aws.Bool(true),
		}
		for {
			var out *dynamodb.QueryOutput
			err := l.try(ctx, func(ctx context.Context) error {
				var err error
				out, err = l.api.Query(ctx, in)
				return err
			})
			if err != nil {
				return l.fail(iamQuery, err)
			}
			if err := each(ctx, &mu, out.Items, fn); err != nil {
				return err
			}
			if len(out.LastEvaluatedKey) == 0 {
				return nil
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	})
}

// each calls fn with the rows of items under mu, until ctx ends.
func each(ctx context.Context, mu *sync.Mutex, items []map[string]types.AttributeValue, fn func(Row) error) error {
	mu.Lock()
	defer mu.Unlock()
	for _, item := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(decodeRow(item)); err != nil {
			return err
		}
	}
	return nil
}

// Progress is the campaign's counts per pool, from its CounterShards
// counter items (one BatchGetItem, and one more per round of keys
// DynamoDB left unprocessed), read consistently.
func (l *Ledger) Progress(ctx context.Context, campaign string) (Progress, error) {
	keys := make([]map[string]types.AttributeValue, CounterShards)
	for i := range keys {
		keys[i] = counterKey(campaign, i)
	}
	p := Progress{}
	req := map[string]types.KeysAndAttributes{l.cfg.Table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	for round := 1; ; round++ {
		var out *dynamodb.BatchGetItemOutput
		err := l.try(ctx, func(ctx context.Context) error {
			var err error
			out, err = l.api.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			return err
		})
		if err != nil {
			return nil, l.fail(iamBatchGet, err)
		}
		for _, item := range out.Responses[l.cfg.Table] {
			for name := range item {
				if n, ok := getN(item, name); ok {
					p.addAttr(name, n)
				}
			}
		}
		if len(out.UnprocessedKeys[l.cfg.Table].Keys) == 0 {
			return p, nil
		}
		if round >= l.cfg.MaxAttempts {
			return nil, &kindError{ErrThrottled, fmt.Errorf("ledger table %s: %s: %d counter items still unprocessed after %d rounds",
				l.cfg.Table, iamBatchGet, len(out.UnprocessedKeys[l.cfg.Table].Keys), round)}
		}
		if err := l.backoff(ctx, round); err != nil {
			return nil, err
		}
		req = map[string]types.KeysAndAttributes{l.cfg.Table: {Keys: out.UnprocessedKeys[l.cfg.Table].Keys, ConsistentRead: aws.Bool(true)}}
	}
}

// parallel calls f(ctx, i) for i in [0, n), at most limit at once, and
// returns the first error (cancelling the calls still running) or the
// context's.
func parallel(ctx context.Context, n, limit int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, max(1, limit)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}
