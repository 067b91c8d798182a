package dynamostub_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/internal/bench/dynamostub"
	"github.com/resetq/resetq/ledger"
)

var t0 = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)

// setup serves a stand-in and opens a ledger on it through the real SDK,
// with the table created by Ensure.
func setup(t *testing.T) (*dynamostub.Server, *dynamodb.Client, *ledger.Ledger) {
	t.Helper()
	srv, err := dynamostub.Start(dynamostub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	api := dynamodb.New(dynamodb.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		RetryMaxAttempts: 1,
	})
	l, err := ledger.New(api, ledger.Config{Table: "ledger-test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	return srv, api, l
}

func TestEnsure(t *testing.T) {
	t.Parallel()
	srv, api, l := setup(t)
	if err := l.Ensure(t.Context()); err != nil { // the table exists now
		t.Fatal(err)
	}
	st := srv.Stats()
	if st.Calls["CreateTable"] != 1 || st.Calls["UpdateTimeToLive"] != 1 {
		t.Errorf("calls %v: want one CreateTable and one UpdateTimeToLive", st.Calls)
	}
	ro, err := ledger.New(api, ledger.Config{Table: "no-such-table", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Ensure(t.Context()); !errors.Is(err, ledger.ErrNoTable) {
		t.Errorf("a missing table: got %v, want ErrNoTable", err)
	}
}

func TestClaimProtocol(t *testing.T) {
	t.Parallel()
	_, _, l := setup(t)
	ctx := t.Context()
	k := ledger.Key{Campaign: "c1", Pool: "us-east-1_a", User: "Alice", Fold: true}
	lease := 5 * time.Minute

	steps := []struct {
		name   string
		holder string
		at     time.Duration
		want   ledger.Claim
	}{
		{"free: granted", "job-1", 0, ledger.Claim{Held: true, Holder: "job-1", Until: t0.Add(lease)}},
		{"held by another: refused with the holder", "job-2", time.Minute, ledger.Claim{Holder: "job-1", Until: t0.Add(lease)}},
		{"the holder again: renewed", "job-1", 2 * time.Minute, ledger.Claim{Held: true, Holder: "job-1", Until: t0.Add(2*time.Minute + lease)}},
		{"the lease ended: taken over", "job-3", 8 * time.Minute, ledger.Claim{Held: true, Holder: "job-3", Until: t0.Add(8*time.Minute + lease)}},
	}
	for _, s := range steps {
		got, err := l.Claim(ctx, k, s.holder, lease, t0.Add(s.at))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
	if err := l.Record(ctx, k, ledger.StepReset, t0.Add(9*time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	got, err := l.Claim(ctx, ledger.Key{Campaign: "c1", Pool: "us-east-1_a", User: "ALICE", Fold: true}, "job-4", lease, t0.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if want := (ledger.Claim{Done: true, Outcome: ledger.StepReset}); got != want {
		t.Errorf("after the reset: got %+v, want %+v", got, want)
	}
}

// TestOutcomes runs the writes whose conditions fail on purpose: enqueue
// again (cancelled transactions, rows dropped), a dead letter replaced by
// a reset (the outcome read again), and reads the counts and rows back.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	_, _, l := setup(t)
	ctx := t.Context()
	var keys []ledger.Key
	for i := range 120 {
		keys = append(keys, ledger.Key{Campaign: "c2", Pool: "us-east-1_a", User: fmt.Sprintf("user%03d", i)})
	}
	if n, err := l.Enqueued(ctx, keys, t0); err != nil || n != 120 {
		t.Fatalf("enqueue: %d, %v; want 120", n, err)
	}
	if n, err := l.Enqueued(ctx, append(keys[:10:10], ledger.Key{Campaign: "c2", Pool: "us-east-1_a", User: "late"}), t0.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("enqueue again: %d, %v; want 1 (only the new user)", n, err)
	}
	for _, w := range []struct {
		k      ledger.Key
		step   ledger.Step
		detail string
	}{
		{keys[0], ledger.StepReset, ""},
		{keys[1], ledger.StepDeadLettered, "UserNotFoundException"},
		{keys[2], ledger.StepDeadLettered, "InvalidParameterException"},
		{keys[2], ledger.StepReset, ""}, // a redriven job: the dead letter gives way
		{keys[0], ledger.StepSignedOut, ""},
	} {
		if err := l.Record(ctx, w.k, w.step, t0.Add(time.Minute), w.detail); err != nil {
			t.Fatalf("record %s %s: %v", w.k.User, w.step, err)
		}
	}
	p, err := l.Progress(ctx, "c2")
	if err != nil {
		t.Fatal(err)
	}
	got := p.Total()
	if got.Enqueued != 121 || got.Reset != 2 || got.DeadLetteredTotal() != 1 || got.DeadLettered["UserNotFoundException"] != 1 {
		t.Errorf("progress %+v: want 121 enqueued, 2 reset, 1 dead-lettered (UserNotFoundException)", got)
	}
	rows := 0
	var mu sync.Mutex
	err = l.Rows(ctx, "c2", func(r ledger.Row) error {
		mu.Lock()
		defer mu.Unlock()
		rows++
		if r.User == "user000" && (r.Outcome != ledger.StepReset || r.Steps[ledger.StepSignedOut].IsZero()) {
			t.Errorf("user000: %+v, want reset and signed out", r)
		}
		return nil
	})
	if err != nil || rows != 121 {
		t.Errorf("rows: %d, %v; want 121", rows, err)
	}
}

// TestClaimRace is why the stand-in and not moto: twenty claimers of one
// user at once, one of them wins, every time.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	_, _, l := setup(t)
	for round := range 20 {
		k := ledger.Key{Campaign: "race", Pool: "us-east-1_a", User: fmt.Sprintf("u%d", round)}
		var mu sync.Mutex
		held := 0
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				c, err := l.Claim(t.Context(), k, fmt.Sprintf("job-%d", i), time.Minute, t0)
				if err != nil {
					t.Error(err)
					return
				}
				if c.Held {
					mu.Lock()
					held++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if held != 1 {
			t.Fatalf("round %d: %d claims held, want 1", round, held)
		}
	}
}

// TestRefusals: requests DynamoDB refuses are refused here too, so a
// benchmark cannot pass on a request that would fail on AWS.
func TestRefusals(t *testing.T) {
	t.Parallel()
	_, api, _ := setup(t)
	key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberS{Value: "s"}}
	v := func(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
	for _, c := range []struct {
		name string
		in   dynamodb.UpdateItemInput
		code string
	}{
		{"an unused value", dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET a = :a"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":a": v("x"), ":b": v("y")}}, "ValidationException"},
		{"two actions on one attribute", dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET a = :a REMOVE a"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":a": v("x")}}, "ValidationException"},
		{"a key attribute", dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET pk = :a"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":a": v("x")}}, "ValidationException"},
		{"a missing name", dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET #a = :a"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":a": v("x")}}, "ValidationException"},
		{"a condition that fails", dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET a = :a"),
			ConditionExpression:       aws.String("attribute_exists(a) OR NOT (:a = :a)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":a": v("x")}}, "ConditionalCheckFailedException"},
	} {
		in := c.in
		in.TableName, in.Key = aws.String("ledger-test"), key
		_, err := api.UpdateItem(t.Context(), &in)
		if got := awserr.Code(awserr.From(err)); got != c.code {
			t.Errorf("%s: got %q (%v), want %s", c.name, got, err, c.code)
		}
	}
}
