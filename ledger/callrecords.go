package ledger

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The workers' records of their own calls per minute (ratelimit.CallRecord):
// one item per process and quota category, under a partition key no
// campaign's row or counter can have (theirs are CAMPAIGN#rNN, #cNN), so
// that a worker restarted on another machine (a pod rescheduled, a rolling
// update) takes its predecessor's calls for resetq's, not real users'.
//
// Only the records of processes that stopped count: one marked as its
// process's last (a worker stopping or exiting), or one this reader has
// seen unchanged for callsRunning on its own clock (a worker killed;
// writers' clocks may be off), or written callsLongAgo before the reader's
// now. A process still running is another worker beside this one, whose
// calls count as real users' here, as they did before these records:
// without a fleet's Redis each worker's cap is cut from its own rate, and
// a peer's calls taken for its own would let each run at the whole
// fleet's.
const (
	callsPK       = "#calls:" // and the category
	attrRecord    = "record"  // the record's JSON
	attrWrittenAt = "written_at"
	attrLast      = "last" // BOOL: the process's last record
	// callsRetention is how long a record is kept after its last write:
	// longer than a worker looks back (32 minutes).
	callsRetention = time.Hour
	// callsRunning is how long a reader must see a record unchanged to
	// take its process for stopped: three of a worker's writes (every 5 s).
	callsRunning = 15 * time.Second
	// callsLongAgo is how old a record must be, on the reader's clock, to
	// be a stopped process's at first sight: farther than clocks are apart.
	callsLongAgo = 5 * time.Minute
	// callsMaxItem is the largest record kept: DynamoDB's items hold 400
	// KB (a record takes about 100 bytes an account-Region and minute).
	callsMaxItem = 350 << 10
	// callsTimeout bounds one save or load, tries included: a worker's
	// exit waits for its last save of each category.
	callsTimeout = 3 * time.Second
)

// CallRecords is the ledger's store of the workers' records of calls in
// one quota category: a ratelimit.RecordStore.
type CallRecords struct {
	l        *Ledger
	category string

	mu   sync.Mutex
	seen map[string]seenRecord // by process: what this reader saw of its record
}

// seenRecord is a record's write as a reader first saw it.
type seenRecord struct {
	written time.Time // its written_at
	at      time.Time // the reader's now when it first saw that write
}

// CallRecords returns the store of category's records of calls in the
// ledger's table.
func (l *Ledger) CallRecords(category string) *CallRecords {
	return &CallRecords{l: l, category: category, seen: map[string]seenRecord{}}
}

func (c *CallRecords) pk() string { return callsPK + c.category }

// Save replaces process id's record, written at now; last marks the
// process's last.
func (c *CallRecords) Save(id string, record []byte, now time.Time, last bool) error {
	if len(record) > callsMaxItem {
		return fmt.Errorf("call record in %s: %d bytes, over the %d an item may hold here (about 100 bytes an account-Region and minute): kept in --state-dir only", c.l.cfg.Table, len(record), callsMaxItem)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callsTimeout)
	defer cancel()
	u := newUpdate()
	u.set(attrRecord, str(string(record)))
	u.set(attrWrittenAt, millis(now))
	u.set(attrLast, &types.AttributeValueMemberBOOL{Value: last})
	u.set(attrExpires, num(now.Add(callsRetention).Unix()))
	key := map[string]types.AttributeValue{attrPK: str(c.pk()), attrSK: str(id)}
	err := c.l.try(ctx, func(ctx context.Context) error {
		_, err := c.l.api.UpdateItem(ctx, c.l.updateItem(key, u))
		return err
	})
	if err != nil {
		return fmt.Errorf("call record in %s: %w", c.l.cfg.Table, c.l.fail(iamUpdateItem, err))
	}
	return nil
}

// Load returns the records of the processes but id that wrote since since
// and stopped by now, by process.
func (c *CallRecords) Load(id string, since, now time.Time) (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callsTimeout)
	defer cancel()
	in := &dynamodb.QueryInput{
		TableName:                 &c.l.cfg.Table,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(c.pk())},
	}
	out, listed := map[string][]byte{}, map[string]bool{}
	for {
		var page *dynamodb.QueryOutput
		err := c.l.try(ctx, func(ctx context.Context) error {
			var err error
			page, err = c.l.api.Query(ctx, in)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("call records in %s: %w", c.l.cfg.Table, c.l.fail(iamQuery, err))
		}
		for _, item := range page.Items {
			sk := getS(item, attrSK)
			listed[sk] = true
			last, _ := item[attrLast].(*types.AttributeValueMemberBOOL)
			written := getTime(item, attrWrittenAt)
			// Older records wait for DynamoDB's TTL to remove them (within
			// days): a filter would read them all the same.
			if sk != id && sk != "" && !written.Before(since) && (last != nil && last.Value || c.stale(sk, written, now)) {
				out[sk] = []byte(getS(item, attrRecord))
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			c.forget(listed)
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// stale reports whether process id's record, written at written, belongs
// to a stopped process as this reader sees it at now: unchanged for
// callsRunning since the reader first saw that write, or written
// callsLongAgo before now. A writer's clock ahead or behind the reader's
// cannot make a running process look stopped.
func (c *CallRecords) stale(id string, written, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.seen[id]
	if !ok || !s.written.Equal(written) || now.Before(s.at) {
		s = seenRecord{written: written, at: now}
		c.seen[id] = s
	}
	return now.Sub(s.at) >= callsRunning || written.Before(now.Add(-callsLongAgo))
}

// forget drops what the reader saw of records the table no longer lists
// (expired), after a load that listed them all.
func (c *CallRecords) forget(listed map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.seen {
		if !listed[id] {
			delete(c.seen, id)
		}
	}
}
