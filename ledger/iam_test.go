package ledger_test

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/resetq/resetq/ledger"
)

// TestIAMActionsCoverAPI: IAMActions is one action per DynamoDB call of
// ledger.API (a transaction is authorized as its updates, UpdateItem), the
// create actions and every method's are among them, and every method of
// Ledger that takes a context has its actions listed.
func TestIAMActionsCoverAPI(t *testing.T) {
	t.Parallel()
	api := reflect.TypeFor[ledger.API]()
	var want []string
	for i := range api.NumMethod() {
		name := api.Method(i).Name
		if name == "TransactWriteItems" {
			name = "UpdateItem"
		}
		want = append(want, "dynamodb:"+name)
	}
	want = slices.Compact(sorted(want))
	if got := sorted(ledger.IAMActions); !slices.Equal(got, want) {
		t.Errorf("IAMActions = %v, want one per call of ledger.API: %v", got, want)
	}
	for _, a := range ledger.IAMCreateActions {
		if !slices.Contains(ledger.IAMActions, a) {
			t.Errorf("IAMCreateActions holds %s, which is not in IAMActions", a)
		}
	}
	for m, actions := range ledger.IAMActionsByMethod {
		for _, a := range actions {
			if !slices.Contains(ledger.IAMActions, a) || slices.Contains(ledger.IAMCreateActions, a) {
				t.Errorf("IAMActionsByMethod[%s] holds %s: want an action of IAMActions beside the create actions", m, a)
			}
		}
	}
	ctxType := reflect.TypeFor[context.Context]()
	l := reflect.TypeFor[*ledger.Ledger]()
	for i := range l.NumMethod() {
		m := l.Method(i)
		if m.Type.NumIn() > 1 && m.Type.In(1) == ctxType {
			if _, ok := ledger.IAMActionsByMethod[m.Name]; !ok {
				t.Errorf("Ledger.%s takes a context but IAMActionsByMethod does not list its actions", m.Name)
			}
		}
	}
}

// TestIAMActionsByMethod runs each method against moto, through its
// success and its second-look paths (a refused claim, an outcome that
// changes), and checks that the calls it makes need no action beyond its
// IAMActionsByMethod entry; a writer's Ensure of a missing table needs
// IAMCreateActions too, and nothing else.
func TestIAMActionsByMethod(t *testing.T) {
	t.Parallel()
	rec := &recorder{Client: client(t, endpoint(t), 0)}
	l, err := ledger.New(rec, ledger.Config{Table: tableName(t), Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	check := func(method string, want []string, run func() error) {
		t.Helper()
		rec.reset()
		if err := run(); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		for _, a := range rec.actions() {
			if !slices.Contains(want, a) {
				t.Errorf("%s calls DynamoDB with %s, which its actions %v do not hold", method, a, want)
			}
		}
	}
	by := ledger.IAMActionsByMethod
	check("Ensure of a missing table", append(slices.Clone(by["Ensure"]), ledger.IAMCreateActions...), func() error { return l.Ensure(ctx) })
	if got, want := rec.actions(), sorted(append(slices.Clone(by["Ensure"]), ledger.IAMCreateActions...)); !slices.Equal(got, want) {
		t.Errorf("Ensure of a missing table calls %v, want %v", got, want)
	}
	check("Ensure", by["Ensure"], func() error { return l.Ensure(ctx) })
	ro, err := ledger.New(rec, ledger.Config{Table: l.Table(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check("Ensure (read-only)", by["Ensure"], func() error { return ro.Ensure(ctx) })

	alice, bob := key("iam", "alice"), key("iam", "bob")
	check("Enqueued", by["Enqueued"], func() error { _, err := l.Enqueued(ctx, []ledger.Key{alice, bob}, at(0)); return err })
	check("Enqueued again", by["Enqueued"], func() error { _, err := l.Enqueued(ctx, []ledger.Key{alice, bob}, at(time.Second)); return err })
	check("Claim", by["Claim"], func() error { _, err := l.Claim(ctx, alice, "w1", lease, at(time.Minute)); return err })
	check("Claim held elsewhere", by["Claim"], func() error { _, err := l.Claim(ctx, alice, "w2", lease, at(time.Minute)); return err })
	check("Release", by["Release"], func() error { return l.Release(ctx, alice, "w1", at(time.Minute)) })
	check("Record a step", by["Record"], func() error { return l.Record(ctx, alice, ledger.StepSignedOut, at(2*time.Minute), "") })
	check("Record a dead letter", by["Record"], func() error {
		return l.Record(ctx, alice, ledger.StepDeadLettered, at(3*time.Minute), "UserNotFoundException")
	})
	check("Record an outcome after a dead letter", by["Record"], func() error { return l.Record(ctx, alice, ledger.StepReset, at(4*time.Minute), "") })
	check("Claim of a done user", by["Claim"], func() error { _, err := l.Claim(ctx, alice, "w3", lease, at(5*time.Minute)); return err })
	check("Get", by["Get"], func() error { _, _, err := ro.Get(ctx, alice); return err })
	check("Get of a user not enqueued", by["Get"], func() error { _, _, err := ro.Get(ctx, key("iam", "carol")); return err })
	check("Rows", by["Rows"], func() error { return ro.Rows(ctx, "iam", func(ledger.Row) error { return nil }) })
	check("Progress", by["Progress"], func() error { _, err := ro.Progress(ctx, "iam"); return err })
	check("Campaigns", by["Campaigns"], func() error { _, err := ro.Campaigns(ctx); return err })
	calls := l.CallRecords("UserAccountRecovery")
	check("CallRecords.Save", by["CallRecords.Save"], func() error { return calls.Save("w1", []byte("{}"), at(6*time.Minute), true) })
	check("CallRecords.Load", by["CallRecords.Load"], func() error { _, err := calls.Load("w2", at(0), at(7*time.Minute)); return err })
}

// recorder is a DynamoDB client that notes the IAM action of each call.
type recorder struct {
	*dynamodb.Client
	mu   sync.Mutex
	seen map[string]bool
}

func (r *recorder) note(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen["dynamodb:"+call] = true
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = nil
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.seen))
}

func (r *recorder) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, o ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	r.note("DescribeTable")
	return r.Client.DescribeTable(ctx, in, o...)
}

func (r *recorder) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, o ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	r.note("CreateTable")
	return r.Client.CreateTable(ctx, in, o...)
}

func (r *recorder) UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error) {
	r.note("UpdateTimeToLive")
	return r.Client.UpdateTimeToLive(ctx, in, o...)
}

func (r *recorder) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	r.note("UpdateItem")
	return r.Client.UpdateItem(ctx, in, o...)
}

func (r *recorder) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	r.note("GetItem")
	return r.Client.GetItem(ctx, in, o...)
}

// TransactWriteItems is authorized as UpdateItem, each update of it.
func (r *recorder) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	r.note("UpdateItem")
	return r.Client.TransactWriteItems(ctx, in, o...)
}

func (r *recorder) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	r.note("Query")
	return r.Client.Query(ctx, in, o...)
}

func (r *recorder) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	r.note("BatchGetItem")
	return r.Client.BatchGetItem(ctx, in, o...)
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
