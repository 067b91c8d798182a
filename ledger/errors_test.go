package ledger_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/ledger"
)

// faulty is a ledger on its own table, reached through a fault proxy in
// front of moto, with the SDK's retries off (the ledger's own remain).
func faulty(t *testing.T) (*ledger.Ledger, *awsproxy.Server) {
	t.Helper()
	proxy, err := awsproxy.Start(endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	l, err := ledger.New(client(t, proxy.URL, 1), ledger.Config{Table: tableName(t), Backoff: fastBackoff, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	return l, proxy
}

// TestErrorsOverHTTP: DynamoDB's answers, as the SDK reads them off the
// wire, become errors a caller tells apart without the SDK.
func TestErrorsOverHTTP(t *testing.T) {
	t.Parallel()
	k := ledger.Key{Campaign: "c1", Pool: "us-east-1_Err", User: "alice"}
	tests := []struct {
		name   string
		fault  awsproxy.Fault
		call   func(context.Context, *ledger.Ledger) error
		is     error  // errors.Is
		code   string // awserr.Code
		action string // the denied IAM action
		tries  int    // calls the fault answered
	}{
		{
			name:  "claim throttled",
			fault: awsproxy.Fault{Operation: "UpdateItem", ErrorCode: "ProvisionedThroughputExceededException"},
			call: func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.Claim(ctx, k, "w1", lease, at(0))
				return err
			},
			is: ledger.ErrThrottled, code: "ProvisionedThroughputExceededException", tries: 3,
		},
		{
			name:  "outcome throttled",
			fault: awsproxy.Fault{Operation: "TransactWriteItems", ErrorCode: "ThrottlingException"},
			call: func(ctx context.Context, l *ledger.Ledger) error {
				return l.Record(ctx, k, ledger.StepReset, at(0), "")
			},
			is: ledger.ErrThrottled, code: "ThrottlingException", tries: 3,
		},
		{
			name:  "rows throttled",
			fault: awsproxy.Fault{Operation: "Query", ErrorCode: "RequestLimitExceeded"},
			call: func(ctx context.Context, l *ledger.Ledger) error {
				return l.Rows(ctx, "c1", func(ledger.Row) error { return nil })
			},
			is: ledger.ErrThrottled, code: "RequestLimitExceeded",
		},
		{
			name:  "throttled twice, then written",
			fault: awsproxy.Fault{Operation: "UpdateItem", ErrorCode: "ThrottlingException", Count: 2},
			call: func(ctx context.Context, l *ledger.Ledger) error {
				return l.Record(ctx, k, ledger.StepSignedOut, at(0), "")
			},
			tries: 2,
		},
		{
			name:  "step denied",
			fault: awsproxy.Fault{Operation: "UpdateItem", ErrorCode: "AccessDeniedException", Message: "not authorized to perform: dynamodb:UpdateItem"},
			call: func(ctx context.Context, l *ledger.Ledger) error {
				return l.Record(ctx, k, ledger.StepSignedOut, at(0), "")
			},
			code: "AccessDeniedException", action: "dynamodb:UpdateItem", tries: 1,
		},
		{
			name:  "progress denied",
			fault: awsproxy.Fault{Operation: "BatchGetItem", ErrorCode: "AccessDeniedException"},
			call: func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.Progress(ctx, "c1")
				return err
			},
			code: "AccessDeniedException", action: "dynamodb:BatchGetItem", tries: 1,
		},
		{
			name:  "server error",
			fault: awsproxy.Fault{Operation: "GetItem", ErrorCode: "InternalServerError", Status: 500},
			call: func(ctx context.Context, l *ledger.Ledger) error {
				// A second outcome reads the first.
				if err := l.Record(ctx, k, ledger.StepDeadLettered, at(0), "a"); err != nil {
					return err
				}
				return l.Record(ctx, k, ledger.StepDeadLettered, at(0), "b")
			},
			is: ledger.ErrUnavailable, code: "InternalServerError", tries: 1,
		},
		{
			name:  "connection reset",
			fault: awsproxy.Fault{Operation: "UpdateItem", ResetConnection: true},
			call: func(ctx context.Context, l *ledger.Ledger) error {
				return l.Release(ctx, k, "w1", at(0))
			},
			is: ledger.ErrUnavailable, tries: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, proxy := faulty(t)
			if err := l.Ensure(t.Context()); err != nil {
				t.Fatal(err)
			}
			id := proxy.AddFault(tt.fault)
			err := tt.call(t.Context(), l)
			checkErr(t, err, tt.is, tt.code, tt.action, l.Table())
			if tt.tries > 0 && proxy.Affected(id) != tt.tries {
				t.Errorf("the fault answered %d calls, want %d", proxy.Affected(id), tt.tries)
			}
		})
	}
}

// checkErr checks what a caller reads from err; all zero: no error.
func checkErr(t *testing.T, err, is error, code, action, table string) {
	t.Helper()
	if is == nil && code == "" && action == "" {
		if err != nil {
			t.Fatalf("err = %v, want none", err)
		}
		return
	}
	if err == nil {
		t.Fatal("no error")
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("err = %v, want Is %v", err, is)
	}
	if got := awserr.Code(err); got != code {
		t.Errorf("awserr.Code = %q, want %q (err %v)", got, code, err)
	}
	var denied *awserr.DeniedError
	if action != "" && (!errors.As(err, &denied) || denied.Action != action) {
		t.Errorf("err = %v, want denied %s", err, action)
	}
	if !strings.Contains(err.Error(), table) {
		t.Errorf("err %q does not name the table %s", err, table)
	}
}

// TestEnsureDenied: a role that may not describe or create the table is
// told which action it lacks on which table.
func TestEnsureDenied(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"DescribeTable", "CreateTable", "UpdateTimeToLive"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			l, proxy := faulty(t)
			proxy.AddFault(awsproxy.Fault{Operation: op, ErrorCode: "AccessDeniedException", Message: "User: arn:aws:iam::123456789012:user/x is not authorized to perform: dynamodb:" + op})
			err := l.Ensure(t.Context())
			checkErr(t, err, nil, "AccessDeniedException", "dynamodb:"+op, l.Table())
			if !strings.Contains(err.Error(), "dynamodb:"+op) {
				t.Errorf("err %q does not name dynamodb:%s", err, op)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	l, err := ledger.New(client(t, "http://"+addr, 1), ledger.Config{Table: "resetq-ledger"})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Ensure(t.Context())
	checkErr(t, err, ledger.ErrUnavailable, "", "", "resetq-ledger")
	if errors.Is(err, ledger.ErrNoTable) {
		t.Errorf("an unreachable endpoint reads as a missing table: %v", err)
	}
}

// fakeLedger is a ledger over api with instant retries.
func fakeLedger(t *testing.T, api *fakeAPI, cfg ledger.Config) *ledger.Ledger {
	t.Helper()
	cfg.Table = "resetq-ledger"
	cfg.Backoff = fastBackoff
	l, err := ledger.New(api, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func cancelled(reasons ...string) error {
	var rs []types.CancellationReason
	for _, r := range reasons {
		rs = append(rs, types.CancellationReason{Code: aws.String(r)})
	}
	return &types.TransactionCanceledException{Message: aws.String("Transaction cancelled"), CancellationReasons: rs}
}

// TestTransactionConflicts: a transaction that met another on the counter
// item is tried again; one that keeps meeting them ends ErrThrottled.
func TestTransactionConflicts(t *testing.T) {
	t.Parallel()
	k := ledger.Key{Campaign: "c1", Pool: "us-east-1_Tx", User: "alice"}
	for _, tt := range []struct {
		name      string
		conflicts int
		want      error
	}{
		{"two conflicts", 2, nil},
		{"always", 1 << 30, ledger.ErrThrottled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			api := &fakeAPI{transactWrite: func(in *dynamodb.TransactWriteItemsInput) (*dynamodb.TransactWriteItemsOutput, error) {
				if calls.Add(1) <= int64(tt.conflicts) {
					reasons := make([]string, len(in.TransactItems))
					for i := range reasons {
						reasons[i] = "None"
					}
					reasons[len(reasons)-1] = "TransactionConflict" // the counter
					return nil, cancelled(reasons...)
				}
				return &dynamodb.TransactWriteItemsOutput{}, nil
			}}
			l := fakeLedger(t, api, ledger.Config{MaxAttempts: 4})
			if _, err := l.Enqueued(t.Context(), []ledger.Key{k}, at(0)); !errors.Is(err, tt.want) {
				t.Errorf("Enqueued = %v, want %v", err, tt.want)
			}
			calls.Store(0)
			if err := l.Record(t.Context(), k, ledger.StepReset, at(0), ""); !errors.Is(err, tt.want) {
				t.Errorf("Record = %v, want %v", err, tt.want)
			}
			if tt.want != nil && calls.Load() != 4 {
				t.Errorf("%d tries, want MaxAttempts 4", calls.Load())
			}
		})
	}
}

// TestProgressUnprocessed: counter items DynamoDB left unprocessed are
// asked for again, and counted once.
func TestProgressUnprocessed(t *testing.T) {
	t.Parallel()
	var rounds int
	api := &fakeAPI{batchGetItem: func(in *dynamodb.BatchGetItemInput) (*dynamodb.BatchGetItemOutput, error) {
		rounds++
		keys := in.RequestItems["resetq-ledger"].Keys
		if !aws.ToBool(in.RequestItems["resetq-ledger"].ConsistentRead) {
			t.Error("counters read without ConsistentRead")
		}
		out := &dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{}}
		half := keys
		if rounds == 1 {
			if len(keys) != ledger.CounterShards {
				t.Errorf("first round asks for %d items, want %d", len(keys), ledger.CounterShards)
			}
			half = keys[:len(keys)/2]
			out.UnprocessedKeys = map[string]types.KeysAndAttributes{"resetq-ledger": {Keys: keys[len(keys)/2:]}}
		}
		for range half {
			out.Responses["resetq-ledger"] = append(out.Responses["resetq-ledger"], map[string]types.AttributeValue{
				"n:us-east-1_A:enqueued":               &types.AttributeValueMemberN{Value: "2"},
				"n:us-east-1_A:reset":                  &types.AttributeValueMemberN{Value: "1"},
				"n:us-east-1_A:dead_lettered:a:b":      &types.AttributeValueMemberN{Value: "1"},
				"n:us-east-1_B:dead_lettered:Whatever": &types.AttributeValueMemberN{Value: "0"},
				"expires_at":                           &types.AttributeValueMemberN{Value: "99"},
				"campaign":                             &types.AttributeValueMemberS{Value: "c1"},
			})
		}
		return out, nil
	}}
	p, err := fakeLedger(t, api, ledger.Config{}).Progress(t.Context(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	n := int64(ledger.CounterShards)
	if a := p["us-east-1_A"]; rounds != 2 || a.Enqueued != 2*n || a.Reset != n || a.DeadLettered["a:b"] != n || len(p["us-east-1_B"].DeadLettered) != 0 {
		t.Fatalf("after %d rounds: %+v", rounds, p)
	}
}

// TestRowsPages: every page of every shard is read, and fn is called one
// row at a time.
func TestRowsPages(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	api := &fakeAPI{query: func(in *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) {
		calls.Add(1)
		pk := in.ExpressionAttributeValues[":pk"].(*types.AttributeValueMemberS).Value
		row := map[string]types.AttributeValue{"campaign": &types.AttributeValueMemberS{Value: "c1"}, "user": &types.AttributeValueMemberS{Value: pk}}
		if in.ExclusiveStartKey == nil {
			return &dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{row}, LastEvaluatedKey: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}}, nil
		}
		return &dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{row}}, nil
	}}
	var inside, n atomic.Int64
	err := fakeLedger(t, api, ledger.Config{Concurrency: 4}).Rows(t.Context(), "c1", func(ledger.Row) error {
		if inside.Add(1) != 1 {
			t.Error("fn called concurrently")
		}
		n.Add(1)
		inside.Add(-1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 2*ledger.RowShards || calls.Load() != 2*ledger.RowShards {
		t.Fatalf("%d rows in %d queries, want %d in %d", n.Load(), calls.Load(), 2*ledger.RowShards, 2*ledger.RowShards)
	}

	stop := errors.New("stop")
	if err := fakeLedger(t, api, ledger.Config{}).Rows(t.Context(), "c1", func(ledger.Row) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Rows = %v, want fn's error", err)
	}
}

// TestEnsureLostRace: when another process creates the table first, Ensure
// waits for it to be ACTIVE and leaves its TTL to the creator.
func TestEnsureLostRace(t *testing.T) {
	t.Parallel()
	var describes atomic.Int64
	api := &fakeAPI{
		describeTable: func(*dynamodb.DescribeTableInput) (*dynamodb.DescribeTableOutput, error) {
			switch describes.Add(1) {
			case 1:
				return nil, &types.ResourceNotFoundException{Message: aws.String("Requested resource not found")}
			case 2, 3:
				return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{TableStatus: types.TableStatusCreating}}, nil
			}
			return &dynamodb.DescribeTableOutput{Table: ledgerTable(types.TableStatusActive)}, nil
		},
		createTable: func(*dynamodb.CreateTableInput) (*dynamodb.CreateTableOutput, error) {
			return nil, &types.ResourceInUseException{Message: aws.String("Table already exists")}
		},
	}
	clk := newPollClock()
	err := fakeLedger(t, api, ledger.Config{Clock: clk}).Ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if describes.Load() != 4 {
		t.Errorf("%d DescribeTable calls, want 4 (missing, creating twice, active)", describes.Load())
	}
}

// TestEnsureCreateTimeout: a table that stays CREATING fails Ensure after
// CreateTimeout.
func TestEnsureCreateTimeout(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{describeTable: func(*dynamodb.DescribeTableInput) (*dynamodb.DescribeTableOutput, error) {
		return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{TableStatus: types.TableStatusCreating}}, nil
	}}
	err := fakeLedger(t, api, ledger.Config{Clock: newPollClock(), CreateTimeout: time.Minute}).Ensure(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not ACTIVE after 1m0s") {
		t.Fatalf("Ensure = %v, want not ACTIVE after 1m0s", err)
	}
}

func ledgerTable(status types.TableStatus) *types.TableDescription {
	return &types.TableDescription{
		TableStatus: status,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
	}
}
