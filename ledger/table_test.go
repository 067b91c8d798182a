package ledger_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/ledger"
	"github.com/resetq/resetq/retry"
)

var fastBackoff = retry.Curve{Base: time.Millisecond, Max: 4 * time.Millisecond}

func TestEnsureCreates(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	desc, err := b.api.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: &b.cfg.Table})
	if err != nil {
		t.Fatal(err)
	}
	tab := desc.Table
	if tab.TableStatus != types.TableStatusActive {
		t.Errorf("status %s, want ACTIVE", tab.TableStatus)
	}
	if tab.BillingModeSummary == nil || tab.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing %+v, want PAY_PER_REQUEST", tab.BillingModeSummary)
	}
	if len(tab.KeySchema) != 2 || aws.ToString(tab.KeySchema[0].AttributeName) != "pk" || aws.ToString(tab.KeySchema[1].AttributeName) != "sk" {
		t.Errorf("keys %+v, want pk HASH, sk RANGE", tab.KeySchema)
	}
	ttl, err := b.api.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: &b.cfg.Table})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != "expires_at" {
		t.Errorf("TTL %s on %q, want ENABLED on expires_at", d.TimeToLiveStatus, aws.ToString(d.AttributeName))
	}

	// Again, by the same ledger and by a read-only one: nothing to do.
	if err := b.l.Ensure(t.Context()); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	ro, _ := ledger.New(b.api, ledger.Config{Table: b.cfg.Table, ReadOnly: true})
	if err := ro.Ensure(t.Context()); err != nil {
		t.Fatalf("read-only Ensure of an existing table: %v", err)
	}
}

func TestEnsureConcurrent(t *testing.T) {
	t.Parallel()
	api := client(t, endpoint(t), 0)
	table := tableName(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		l, err := ledger.New(api, ledger.Config{Table: table})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[i] = l.Ensure(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Ensure %d: %v", i, err)
		}
	}
}

func TestEnsureReadOnlyMissing(t *testing.T) {
	t.Parallel()
	api := client(t, endpoint(t), 0)
	l, err := ledger.New(api, ledger.Config{Table: tableName(t), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Ensure(t.Context())
	if !errors.Is(err, ledger.ErrNoTable) {
		t.Fatalf("Ensure = %v, want ErrNoTable", err)
	}
	if _, derr := api.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(l.Table())}); derr == nil {
		t.Fatal("a read-only ledger created its table")
	}
}

func TestEnsureForeignTable(t *testing.T) {
	t.Parallel()
	api := client(t, endpoint(t), 0)
	table := tableName(t)
	_, err := api.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            &table,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: str("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: str("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := ledger.New(api, ledger.Config{Table: table})
	if err := l.Ensure(t.Context()); err == nil {
		t.Fatal("Ensure accepted a table with other keys")
	}
}

// TestEnsureLostRaceOverHTTP: a process that finds no table, then loses
// the race to create it (moto answers ResourceInUseException), waits for
// the winner's table and leaves its TTL alone.
func TestEnsureLostRaceOverHTTP(t *testing.T) {
	t.Parallel()
	l, proxy := faulty(t)
	winner := client(t, endpoint(t), 0)
	w, _ := ledger.New(winner, ledger.Config{Table: l.Table()})
	if err := w.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The loser's first look came before the winner's table.
	proxy.AddFault(awsproxy.Fault{Operation: "DescribeTable", ErrorCode: "ResourceNotFoundException", Count: 1})
	var mu sync.Mutex
	calls := map[string][]int{}
	proxy.SetObserver(func(c awsproxy.Call) {
		mu.Lock()
		defer mu.Unlock()
		calls[c.Operation] = append(calls[c.Operation], c.Status)
	})
	if err := l.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := calls["CreateTable"]; len(got) != 1 || got[0] != 400 {
		t.Errorf("CreateTable answered %v, want one 400 (ResourceInUseException)", got)
	}
	if got := calls["UpdateTimeToLive"]; len(got) != 0 {
		t.Errorf("the loser set the TTL: %v", got)
	}
}
