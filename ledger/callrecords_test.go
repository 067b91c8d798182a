package ledger_test

import (
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestCallRecords: the workers' records of their calls go through the
// table (moto). A process reads the records of its category written since
// the time it gives, never its own, and only of processes that stopped:
// one whose record says it is its last (stopping or exited), one this
// reader has seen unchanged for 15 s on its own clock (killed), or one
// written 5 minutes before the reader's now. A process still writing is a
// worker beside it, whatever the writers' clocks say. A write replaces the
// process's record and sets its expiry an hour on; a record over what an
// item holds is refused; the campaigns' index does not see them.
func TestCallRecords(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	rec, read := b.l.CallRecords("UserAccountRecovery"), b.l.CallRecords("UserRead")
	now := at(time.Hour)
	for _, s := range []struct {
		store interface {
			Save(string, []byte, time.Time, bool) error
		}
		id, record string
		at         time.Time
		last       bool
	}{
		{rec, "running", `{"old":1}`, now.Add(-time.Minute), false},
		{rec, "running", `{"new":1}`, now.Add(-2 * time.Second), false},          // replaces its record
		{rec, "clock-behind", `{"behind":1}`, now.Add(-40 * time.Second), false}, // running, its clock 40 s behind
		{rec, "exited", `{"exited":1}`, now.Add(-2 * time.Second), true},
		{rec, "killed", `{"killed":1}`, now.Add(-10 * time.Minute), false},
		{rec, "long-gone", `{"gone":1}`, now.Add(-40 * time.Minute), true}, // before since
		{read, "other-category", `{"read":1}`, now.Add(-time.Hour), true},
	} {
		if err := s.store.Save(s.id, []byte(s.record), s.at, s.last); err != nil {
			t.Fatal(err)
		}
	}
	since := now.Add(-32 * time.Minute)
	got, err := rec.Load("me", since, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"exited": []byte(`{"exited":1}`), "killed": []byte(`{"killed":1}`)}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("loads %q, want the exited and the killed processes' records", got)
	}
	// The running process writes every few seconds; the one whose clock is
	// behind stops (as if killed).
	if err := rec.Save("running", []byte(`{"newer":1}`), now.Add(3*time.Second), false); err != nil {
		t.Fatal(err)
	}
	if got, _ = rec.Load("me", since, now.Add(10*time.Second)); !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("loads %q 10 s later, want still the exited and the killed processes' records", got)
	}
	if err := rec.Save("running", []byte(`{"newest":1}`), now.Add(20*time.Second), false); err != nil {
		t.Fatal(err)
	}
	got, _ = rec.Load("me", since, now.Add(25*time.Second))
	want["clock-behind"] = []byte(`{"behind":1}`)
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("loads %q 25 s later, want the silent process's record too, not the one still writing", got)
	}
	if got, _ := rec.Load("killed", since, now.Add(time.Minute)); slices.Contains(slices.Collect(maps.Keys(got)), "killed") {
		t.Errorf("a process loads its own record: %q", got)
	}
	item, err := b.api.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(b.cfg.Table),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "#calls:UserAccountRecovery"}, "sk": &types.AttributeValueMemberS{Value: "running"}}})
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := item.Item["expires_at"].(*types.AttributeValueMemberN)
	if exp == nil || exp.Value != strconv.FormatInt(now.Add(20*time.Second+time.Hour).Unix(), 10) {
		t.Errorf("the item %v: want expires_at an hour after its last write", item.Item)
	}
	if err := rec.Save("big", make([]byte, 400<<10), now, false); err == nil {
		t.Error("a record of 400 KB was saved: DynamoDB refuses an item that size")
	}
	if cs, err := b.l.Campaigns(t.Context()); err != nil || len(cs) != 0 {
		t.Errorf("campaigns %v, %v: want none (the records are not campaigns)", cs, err)
	}
}
