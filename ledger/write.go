package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/resetq/resetq/awserr"
)

// Row attributes beside the key (pk, sk) and the steps' <step>_at.
const (
	attrPK         = "pk"
	attrSK         = "sk"
	attrCampaign   = "campaign"
	attrPool       = "pool"
	attrUser       = "user"     // the username as the pool compares it
	attrUsername   = "username" // as first written
	attrEnqueued   = "enqueued_at"
	attrHolder     = "holder"
	attrLease      = "lease_until"
	attrClaimed    = "claimed_at"
	attrOutcome    = "outcome"
	attrOutcomeAt  = "outcome_at"
	attrReason     = "reason"
	attrUpdated    = "updated_at"
	attrExpires    = "expires_at" // the TTL attribute, epoch seconds
	enqueueChunk   = 50           // rows per enqueue transaction (of 100 items at most)
	iamUpdateItem  = "dynamodb:UpdateItem"
	iamGetItem     = "dynamodb:GetItem"
	iamQuery       = "dynamodb:Query"
	iamBatchGet    = "dynamodb:BatchGetItem"
	iamDescribe    = "dynamodb:DescribeTable"
	iamCreateTable = "dynamodb:CreateTable"
	iamUpdateTTL   = "dynamodb:UpdateTimeToLive"
)

// rowUpdate is an update of k's row that also writes who the row is and
// when it expires.
func (l *Ledger) rowUpdate(k Key, now time.Time) *update {
	u := newUpdate()
	u.set(attrCampaign, str(k.Campaign))
	u.set(attrPool, str(k.Pool))
	u.set(attrUser, str(k.Compared()))
	u.setFirst(attrUsername, str(k.User))
	u.set(attrUpdated, millis(now))
	u.set(attrExpires, num(now.Add(l.cfg.Retention).Unix()))
	return u
}

// counterUpdate is an update of a campaign's counter item.
func (l *Ledger) counterUpdate(campaign string, now time.Time) *update {
	u := newUpdate()
	u.set(attrCampaign, str(campaign))
	u.set(attrUpdated, millis(now))
	u.set(attrExpires, num(now.Add(l.cfg.Retention).Unix()))
	return u
}

func rowKey(k Key) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(k.pk()), attrSK: str(k.sk())}
}

func counterKey(campaign string, shard int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(counterPK(campaign, shard)), attrSK: str(counterSK)}
}

func (l *Ledger) updateItem(key map[string]types.AttributeValue, u *update) *dynamodb.UpdateItemInput {
	return &dynamodb.UpdateItemInput{
		TableName:                 &l.cfg.Table,
		Key:                       key,
		UpdateExpression:          u.expression(),
		ConditionExpression:       u.condition(),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.valueMap(),
	}
}

func (l *Ledger) txUpdate(key map[string]types.AttributeValue, u *update) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                 &l.cfg.Table,
		Key:                       key,
		UpdateExpression:          u.expression(),
		ConditionExpression:       u.condition(),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.valueMap(),
	}}
}

// Enqueued records that enqueue put the users' jobs on the queue at now,
// and counts each user's first enqueue. A user already enqueued keeps its
// first time and every later step, so enqueue can run again. Keys that are
// one row (the same user folded) are written once. It returns how many
// users were enqueued for the first time.
func (l *Ledger) Enqueued(ctx context.Context, keys []Key, now time.Time) (int, error) {
	seen := make(map[[2]string]bool, len(keys))
	uniq := make([]Key, 0, len(keys))
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			return 0, err
		}
		id := [2]string{k.pk(), k.sk()}
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, k)
		}
	}
	for _, k := range uniq {
		if _, noted := l.noted.Load(k.Campaign); !noted {
			if err := l.noteCampaign(ctx, k.Campaign, now); err != nil {
				return 0, err
			}
			l.noted.Store(k.Campaign, true)
		}
	}
	chunks := (len(uniq) + enqueueChunk - 1) / enqueueChunk
	var added atomic.Int64
	err := parallel(ctx, chunks, l.cfg.Concurrency, func(ctx context.Context, i int) error {
		n, err := l.enqueueChunk(ctx, uniq[i*enqueueChunk:min(len(uniq), (i+1)*enqueueChunk)], now)
		added.Add(int64(n))
		return err
	})
	return int(added.Load()), err
}

// enqueueChunk writes keys' rows and their counts in one transaction,
// dropping the rows already enqueued until the rest is written.
func (l *Ledger) enqueueChunk(ctx context.Context, keys []Key, now time.Time) (int, error) {
	for len(keys) > 0 {
		items := l.enqueueItems(keys, now)
		err := l.try(ctx, func(ctx context.Context) error {
			_, err := l.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
			return err
		})
		if err == nil {
			return len(keys), nil
		}
		failed := conditionFailed(err)
		if failed == nil {
			return 0, l.fail(iamUpdateItem, err)
		}
		rest := keys[:0:0]
		for i, k := range keys {
			if !failed[i] {
				rest = append(rest, k)
			}
		}
		if len(rest) == len(keys) { // only a counter failed: not ours to drop
			return 0, l.fail(iamUpdateItem, err)
		}
		keys = rest
	}
	return 0, nil
}

// enqueueItems are the transaction's rows (in keys' order) and one counter
// update per campaign, in the shard of the campaign's first key.
func (l *Ledger) enqueueItems(keys []Key, now time.Time) []types.TransactWriteItem {
	items := make([]types.TransactWriteItem, 0, len(keys)+1)
	type tally struct {
		shard int
		pools map[string]int64
	}
	var order []string
	counts := map[string]*tally{}
	for _, k := range keys {
		u := l.rowUpdate(k, now)
		u.set(attrEnqueued, millis(now))
		u.cond = "attribute_not_exists(" + u.n(attrEnqueued) + ")"
		items = append(items, l.txUpdate(rowKey(k), u))
		t := counts[k.Campaign]
		if t == nil {
			t = &tally{shard: k.counterShard(), pools: map[string]int64{}}
			counts[k.Campaign] = t
			order = append(order, k.Campaign)
		}
		t.pools[k.Pool]++
	}
	for _, c := range order {
		u := l.counterUpdate(c, now)
		for pool, n := range counts[c].pools {
			u.add(counterAttr(pool, bucketEnqueued), n)
		}
		items = append(items, l.txUpdate(counterKey(c, counts[c].shard), u))
	}
	return items
}

// Claim is the answer to a claim: either the caller holds the user until
// Until, or someone else does, or the user is done.
type Claim struct {
	Held    bool      // the caller holds the claim, until Until
	Holder  string    // who holds the claim; "" when no one does
	Until   time.Time // the end of Holder's lease
	Done    bool      // the user is finished for the campaign: no claim is granted
	Outcome Step      // the finished outcome, when Done
}

// Claim takes the user for holder until now+lease, before the first call
// that sends a code or an invitation. It is granted when no one holds the
// user, when the holder's lease has ended (the holder died), or when
// holder already holds it (the lease is renewed); never for a done user.
// A user whose last outcome is a dead letter can be claimed again (a
// redriven job).
func (l *Ledger) Claim(ctx context.Context, k Key, holder string, lease time.Duration, now time.Time) (Claim, error) {
	return l.claim(ctx, k, holder, "", lease, now)
}

// TakeOver is Claim that is also granted while from holds the user, in
// its lease: the caller knows from's claim is dead (the worker's later
// delivery of the same message). It is a compare-and-set on the holder:
// of two callers taking over from the same holder, one gets the claim.
func (l *Ledger) TakeOver(ctx context.Context, k Key, from, holder string, lease time.Duration, now time.Time) (Claim, error) {
	if from == "" {
		return Claim{}, errors.New("ledger: a takeover needs the holder it takes over from")
	}
	return l.claim(ctx, k, holder, from, lease, now)
}

func (l *Ledger) claim(ctx context.Context, k Key, holder, from string, lease time.Duration, now time.Time) (Claim, error) {
	if err := k.Validate(); err != nil {
		return Claim{}, err
	}
	if holder == "" || lease <= 0 {
		return Claim{}, errors.New("ledger: a claim needs a holder and a positive lease")
	}
	until := now.Add(lease)
	u := l.rowUpdate(k, now)
	u.set(attrHolder, str(holder))
	u.set(attrLease, millis(until))
	u.set(attrClaimed, millis(now))
	out, h, lu := u.n(attrOutcome), u.n(attrHolder), u.n(attrLease)
	free := fmt.Sprintf("attribute_not_exists(%s) OR %s = %s OR %s <= %s", h, h, u.v(str(holder)), lu, u.v(millis(now)))
	if from != "" {
		free += fmt.Sprintf(" OR %s = %s", h, u.v(str(from)))
	}
	u.cond = fmt.Sprintf("(attribute_not_exists(%s) OR %s = %s OR %s = %s) AND (%s)",
		out, out, u.v(str(string(StepDeadLettered))), out, u.v(str(string(StepDisabled))), free)
	in := l.updateItem(rowKey(k), u)
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	err := l.try(ctx, func(ctx context.Context) error {
		_, err := l.api.UpdateItem(ctx, in)
		return err
	})
	if err == nil {
		return l.confirm(ctx, k, holder, until)
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return Claim{}, l.fail(iamUpdateItem, err)
	}
	item := ccf.Item
	if item == nil { // an emulator that does not return it
		if item, err = l.getRow(ctx, k); err != nil {
			return Claim{}, err
		}
	}
	return refused(decodeRow(item)), nil
}

// refused is the answer to a claim r's row refuses: done, or held.
func refused(r Row) Claim {
	if r.Outcome.Done() {
		return Claim{Done: true, Outcome: r.Outcome}
	}
	return Claim{Holder: r.Holder, Until: r.LeaseUntil}
}

// confirm reads back a claim just granted: DynamoDB's conditional writes
// are atomic, an emulator's may not be (moto checks and writes in two
// steps, so two concurrent claimers can both pass the check). The claim
// holds only if a strongly consistent read names holder; it costs one
// read unit a claim.
func (l *Ledger) confirm(ctx context.Context, k Key, holder string, until time.Time) (Claim, error) {
	item, err := l.getRow(ctx, k)
	if err != nil {
		return Claim{}, err
	}
	r := decodeRow(item)
	if r.Holder != holder || r.Outcome.Done() {
		return refused(r), nil
	}
	return Claim{Held: true, Holder: holder, Until: until.UTC()}, nil
}

// Release gives up holder's claim on the user (a job sent back without an
// outcome), so another copy need not wait for the lease. A claim someone
// else holds is left alone.
func (l *Ledger) Release(ctx context.Context, k Key, holder string, now time.Time) error {
	if err := k.Validate(); err != nil {
		return err
	}
	u := newUpdate()
	u.set(attrUpdated, millis(now))
	u.del(attrHolder, attrLease)
	u.cond = u.n(attrHolder) + " = " + u.v(str(holder))
	err := l.try(ctx, func(ctx context.Context) error {
		_, err := l.api.UpdateItem(ctx, l.updateItem(rowKey(k), u))
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return l.fail(iamUpdateItem, err)
	}
	return nil
}

// Record records that step was done to the user at now; for a dead letter,
// detail is its reason (a code such as UserNotFoundException: it names a
// counter, so it must come from a small set). A step keeps its first time.
//
// An outcome (reset, re-invited, disabled, dead-lettered) moves the
// counters, in one transaction with the row; it leaves the claim alone
// (a job's record must not end another job's claim: the holder releases
// its own, see Release). The first done outcome is final; a dead letter gives way to a done outcome
// or to a later dead letter with another reason, which then counts instead.
func (l *Ledger) Record(ctx context.Context, k Key, step Step, now time.Time, detail string) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if !step.Valid() {
		return fmt.Errorf("ledger: %w %q", errStep, step)
	}
	if step == StepDeadLettered && detail == "" {
		return errors.New("ledger: a dead letter needs its reason")
	}
	if !step.Outcome() {
		return l.recordStep(ctx, k, step, now, state{}, detail)
	}
	cur := state{} // most rows have no outcome yet: try that first, read only if wrong
	for range l.cfg.MaxAttempts {
		next, change := transition(cur, step, detail)
		if !change {
			return l.recordStep(ctx, k, step, now, cur, detail)
		}
		err := l.changeOutcome(ctx, k, step, now, cur, next)
		if failed := conditionFailed(err); failed == nil || !failed[0] {
			if err != nil {
				return l.fail(iamUpdateItem, err)
			}
			return nil
		}
		if cur, err = l.readState(ctx, k); err != nil {
			return err
		}
	}
	return &kindError{ErrThrottled, fmt.Errorf("ledger table %s: the outcome of %s/%s kept changing under %s", l.cfg.Table, k.Pool, k.User, step)}
}

// recordStep writes step's first time without changing the outcome; a
// dead letter's reason is kept when the user is done (a done user's outcome does not change).
func (l *Ledger) recordStep(ctx context.Context, k Key, step Step, now time.Time, cur state, detail string) error {
	u := l.rowUpdate(k, now)
	u.setFirst(step.attr(), millis(now))
	if step == StepDeadLettered && cur.Outcome.Done() {
		u.set(attrReason, str(detail))
	}
	err := l.try(ctx, func(ctx context.Context) error {
		_, err := l.api.UpdateItem(ctx, l.updateItem(rowKey(k), u))
		return err
	})
	if err != nil {
		return l.fail(iamUpdateItem, err)
	}
	return nil
}

// changeOutcome moves the row from cur to next and the counters with it,
// on condition that the row is still in cur.
func (l *Ledger) changeOutcome(ctx context.Context, k Key, step Step, now time.Time, cur, next state) error {
	row := l.rowUpdate(k, now)
	row.setFirst(step.attr(), millis(now))
	row.set(attrOutcome, str(string(next.Outcome)))
	row.set(attrOutcomeAt, millis(now))
	if next.Outcome == StepDeadLettered {
		row.set(attrReason, str(next.Reason))
	}
	out := row.n(attrOutcome)
	if cur.Outcome == "" {
		row.cond = "attribute_not_exists(" + out + ")"
	} else if cur.Reason == "" { // a disable: no reason written
		row.cond = out + " = " + row.v(str(string(cur.Outcome))) + " AND attribute_not_exists(" + row.n(attrReason) + ")"
	} else {
		row.cond = out + " = " + row.v(str(string(cur.Outcome))) + " AND " + row.n(attrReason) + " = " + row.v(str(cur.Reason))
	}
	counter := l.counterUpdate(k.Campaign, now)
	counter.add(counterAttr(k.Pool, next.bucket()), 1)
	if cur.Outcome != "" {
		counter.add(counterAttr(k.Pool, cur.bucket()), -1)
	}
	items := []types.TransactWriteItem{l.txUpdate(rowKey(k), row), l.txUpdate(counterKey(k.Campaign, k.counterShard()), counter)}
	return l.try(ctx, func(ctx context.Context) error {
		_, err := l.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		return err
	})
}

// readState is the row's outcome, read consistently.
func (l *Ledger) readState(ctx context.Context, k Key) (state, error) {
	item, err := l.getRow(ctx, k)
	if err != nil {
		return state{}, err
	}
	return state{Outcome: Step(getS(item, attrOutcome)), Reason: getS(item, attrReason)}, nil
}

// Get reads k's row, consistently; found is false when the user has none.
func (l *Ledger) Get(ctx context.Context, k Key) (r Row, found bool, err error) {
	if err := k.Validate(); err != nil {
		return Row{}, false, err
	}
	item, err := l.getRow(ctx, k)
	if err != nil || len(item) == 0 {
		return Row{}, false, err
	}
	return decodeRow(item), true, nil
}

func (l *Ledger) getRow(ctx context.Context, k Key) (map[string]types.AttributeValue, error) {
	var out *dynamodb.GetItemOutput
	err := l.try(ctx, func(ctx context.Context) error {
		var err error
		out, err = l.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &l.cfg.Table, Key: rowKey(k), ConsistentRead: aws.Bool(true)})
		return err
	})
	if err != nil {
		return nil, l.fail(iamGetItem, err)
	}
	return out.Item, nil
}

// try calls f until it succeeds, fails for a reason other than throttling
// or a conflicting transaction, or has been tried MaxAttempts times.
func (l *Ledger) try(ctx context.Context, f func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil || !retryable(err) || attempt >= l.cfg.MaxAttempts {
			return err
		}
		if werr := l.backoff(ctx, attempt); werr != nil {
			return errors.Join(werr, err)
		}
	}
}

// retryable reports a call refused for now: throttled, or an item busy
// with another transaction.
func retryable(err error) bool {
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		busy := false
		for _, r := range tce.CancellationReasons {
			switch code := aws.ToString(r.Code); {
			case code == "" || code == "None":
			case code == "TransactionConflict" || code == "ThrottlingError" || code == "ProvisionedThroughputExceeded" || throttleCode(code):
				busy = true
			default:
				return false
			}
		}
		return busy
	}
	code := awserr.Code(awserr.From(err))
	return throttleCode(code) || code == "TransactionConflictException"
}

// conditionFailed is, for a transaction cancelled because conditions
// failed, which of its items failed theirs; nil for any other error.
func conditionFailed(err error) map[int]bool {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil
	}
	var failed map[int]bool
	for i, r := range tce.CancellationReasons {
		if aws.ToString(r.Code) == "ConditionalCheckFailed" {
			if failed == nil {
				failed = map[int]bool{}
			}
			failed[i] = true
		}
	}
	return failed
}
