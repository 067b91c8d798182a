// Package ledger keeps a campaign's memory in Amazon DynamoDB: one row per
// (campaign, pool, user) with the time of every step, a claim that lets
// one worker of a fleet send a user's code, and counters that say how far
// the campaign is without reading every row. docs/ledger.md describes the
// table, the claim protocol, the IAM actions and the cost.
//
// Methods that write take the time to record as now; nothing here reads
// the wall clock except Config.Clock's timers between retries.
package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/resetq/resetq/clock"
	"github.com/resetq/resetq/retry"
)

// API is the part of the DynamoDB client the ledger uses.
type API interface {
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Config is a ledger's table and how it is used.
type Config struct {
	// Table is the DynamoDB table's name (--ledger-table). Required.
	Table string
	// ReadOnly: Ensure never creates the table (status, report); a
	// missing table is ErrNoTable.
	ReadOnly bool
	// Retention is how long rows and counters are kept after their last
	// write (the TTL attribute expires_at); default DefaultRetention.
	Retention time.Duration
	// Concurrency bounds the calls one Enqueued or Rows makes at once;
	// default DefaultConcurrency.
	Concurrency int
	// MaxAttempts bounds the tries of a write that DynamoDB throttled or
	// that met another transaction on the same item, and of the rounds of
	// a batch read's unprocessed keys; the SDK's own retries come on top.
	// Default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the wait between those tries; default 50ms doubling to 2s.
	Backoff retry.Curve
	// CreateTimeout bounds Ensure's wait for a new table to become ACTIVE;
	// default DefaultCreateTimeout.
	CreateTimeout time.Duration
	// Clock serves the timers between tries and polls; default clock.Real.
	Clock clock.Clock
	// Rand draws the backoff's jitter in [0,1); default math/rand.
	Rand func() float64
}

// Defaults of Config's zero fields.
const (
	DefaultRetention     = 400 * 24 * time.Hour
	DefaultConcurrency   = 8
	DefaultMaxAttempts   = 6
	DefaultCreateTimeout = 5 * time.Minute
)

// tableName is DynamoDB's rule for table names.
var tableName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// Validate checks c; it fills in nothing (see withDefaults).
func (c Config) Validate() error {
	switch {
	case !tableName.MatchString(c.Table):
		return fmt.Errorf("ledger table %q: a name of 3-255 letters, digits, '_', '-' or '.'", c.Table)
	case c.Retention < 0, c.Concurrency < 0, c.MaxAttempts < 0, c.CreateTimeout < 0, c.Backoff.Base < 0, c.Backoff.Max < 0:
		return errors.New("ledger: Retention, Concurrency, MaxAttempts, CreateTimeout and Backoff must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	c.Retention = cmp.Or(c.Retention, DefaultRetention)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultMaxAttempts)
	c.Backoff.Base = cmp.Or(c.Backoff.Base, 50*time.Millisecond)
	c.Backoff.Max = cmp.Or(c.Backoff.Max, 2*time.Second)
	c.CreateTimeout = cmp.Or(c.CreateTimeout, DefaultCreateTimeout)
	c.Clock = cmp.Or[clock.Clock](c.Clock, clock.Real{})
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

// Ledger is one campaign table. It is safe for concurrent use.
type Ledger struct {
	api   API
	cfg   Config
	noted sync.Map // campaigns this process put in the index
}

// New returns the ledger in cfg.Table, reached through api. Call Ensure
// before the first write.
func New(api API, cfg Config) (*Ledger, error) {
	if api == nil {
		return nil, errors.New("ledger: no DynamoDB client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Ledger{api: api, cfg: cfg.withDefaults()}, nil
}

// Table is the table's name.
func (l *Ledger) Table() string { return l.cfg.Table }

// backoff waits before try number attempt (1-based) of a retried call.
func (l *Ledger) backoff(ctx context.Context, attempt int) error {
	return clock.Sleep(ctx, l.cfg.Clock, l.cfg.Backoff.Delay(attempt, l.cfg.Rand()))
}

// NewClient is the DynamoDB client of the SDK configuration cfg (its
// Region, or AWS_ENDPOINT_URL_DYNAMODB's endpoint).
func NewClient(cfg aws.Config) *dynamodb.Client { return dynamodb.NewFromConfig(cfg) }
