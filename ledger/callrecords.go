package ledger

import (
	"context"
	"fmt"
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
// process's last (a worker's exit), or not written for callsRunning (a
// worker killed). A process still running is another worker beside this
// one, whose calls count as real users' here, as they did before these
// records: without a fleet's Redis each worker's cap is cut from its own
// rate, and a peer's calls taken for its own would let each run at the
// whole fleet's.
const (
	callsPK       = "#calls:" // and the category
	attrRecord    = "record"  // the record's JSON
	attrWrittenAt = "written_at"
	attrLast      = "last" // BOOL: the process's last record
	// callsRetention is how long a record is kept after its last write:
	// longer than a worker looks back (32 minutes).
	callsRetention = time.Hour
	// callsRunning is how long after a record's write its process counts
	// as running: three of a worker's writes (every 5 s), and clocks a few
	// seconds apart.
	callsRunning = 15 * time.Second
	// callsTimeout bounds one save or load, tries included: a worker's
	// exit waits for its last save of each category.
	callsTimeout = 3 * time.Second
)

// CallRecords is the ledger's store of the workers' records of calls in
// one quota category: a ratelimit.RecordStore.
type CallRecords struct {
	l        *Ledger
	category string
}

// CallRecords returns the store of category's records of calls in the
// ledger's table.
func (l *Ledger) CallRecords(category string) *CallRecords {
	return &CallRecords{l: l, category: category}
}

func (c *CallRecords) pk() string { return callsPK + c.category }

// Save replaces process id's record, written at now; last marks the
// process's last.
func (c *CallRecords) Save(id string, record []byte, now time.Time, last bool) error {
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
	out := map[string][]byte{}
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
			last, _ := item[attrLast].(*types.AttributeValueMemberBOOL)
			written := getTime(item, attrWrittenAt)
			stopped := last != nil && last.Value || written.Before(now.Add(-callsRunning))
			// Older records wait for DynamoDB's TTL to remove them (within
			// days): a filter would read them all the same.
			if sk != id && sk != "" && stopped && !written.Before(since) {
				out[sk] = []byte(getS(item, attrRecord))
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}
