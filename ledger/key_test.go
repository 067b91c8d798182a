package ledger

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestKeyLayout pins where a user's row and counter live: FNV-1a of
// "pool\x00user" (checked against an implementation outside Go), so a
// change of hash or shard count, which would lose every table's rows,
// fails here.
func TestKeyLayout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key          Key
		pk, sk       string
		row, counter int
	}{
		{Key{"c1", "us-east-1_AbC", "Alice", true}, "c1#r00", "us-east-1_AbC#alice", 0, 0},
		{Key{"c1", "us-east-1_AbC", "alice", false}, "c1#r00", "us-east-1_AbC#alice", 0, 0},
		{Key{"c1", "us-east-1_AbC", "Alice", false}, "c1#r00", "us-east-1_AbC#Alice", 0, 36},
		{Key{"camp", "eu-west-1_X9", "bob@example.org", true}, "camp#r18", "eu-west-1_X9#bob@example.org", 18, 46},
	}
	for _, tt := range tests {
		k := tt.key
		if k.pk() != tt.pk || k.sk() != tt.sk || k.rowShard() != tt.row || k.counterShard() != tt.counter {
			t.Errorf("%+v: pk %q sk %q shards %d/%d; want %q %q %d/%d", k, k.pk(), k.sk(), k.rowShard(), k.counterShard(), tt.pk, tt.sk, tt.row, tt.counter)
		}
	}
	if got := counterPK("c1", 7); got != "c1#c07" {
		t.Errorf("counterPK = %q", got)
	}
}

// TestShardsSpread: a campaign's users spread over every row shard and
// nearly evenly, so no partition is hot.
func TestShardsSpread(t *testing.T) {
	t.Parallel()
	const users = 32000
	rows := make([]int, RowShards)
	counters := make([]int, CounterShards)
	for i := range users {
		k := Key{Campaign: "c", Pool: fmt.Sprintf("us-east-1_P%d", i%7), User: fmt.Sprintf("user%d@example.org", i)}
		rows[k.rowShard()]++
		counters[k.counterShard()]++
	}
	for name, counts := range map[string][]int{"row": rows, "counter": counters} {
		mean := users / len(counts)
		if lo, hi := slices.Min(counts), slices.Max(counts); lo < mean*8/10 || hi > mean*12/10 {
			t.Errorf("%s shards hold %d to %d users, mean %d", name, lo, hi, mean)
		}
	}
}

func TestKeyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key Key
		ok  bool
	}{
		{Key{"c", "us-east-1_X", "u", false}, true},
		{Key{"c#r01", "us-east-1_X", "a#b:c", false}, true}, // any campaign, any username
		{Key{"", "us-east-1_X", "u", false}, false},
		{Key{"c", "", "u", false}, false},
		{Key{"c", "us-east-1_X", "", false}, false},
		{Key{"c", "us#east", "u", false}, false},
		{Key{"c", "us:east", "u", false}, false},
	}
	for _, tt := range tests {
		if err := tt.key.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: Validate = %v, want ok %v", tt.key, err, tt.ok)
		}
	}
}

func TestSteps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		step                 Step
		valid, outcome, done bool
	}{
		{StepSignedOut, true, false, false},
		{StepPasswordKilled, true, false, false},
		{StepReset, true, true, true},
		{StepReinvited, true, true, true},
		{StepDisabled, true, true, false}, // enabled again, the user needs the code: claimable
		{StepDeadLettered, true, true, false},
		{"enqueued", false, false, false},
		{"", false, false, false},
	}
	for _, tt := range tests {
		if tt.step.Valid() != tt.valid || tt.step.Outcome() != tt.outcome || tt.step.Done() != tt.done {
			t.Errorf("%q: valid %v outcome %v done %v", tt.step, tt.step.Valid(), tt.step.Outcome(), tt.step.Done())
		}
	}
}

func TestTransition(t *testing.T) {
	t.Parallel()
	none := state{}
	dl := func(r string) state { return state{StepDeadLettered, r} }
	reset := state{Outcome: StepReset}
	tests := []struct {
		name   string
		cur    state
		step   Step
		detail string
		next   state
		change bool
	}{
		{"first outcome", none, StepReset, "", reset, true},
		{"first dead letter", none, StepDeadLettered, "a", dl("a"), true},
		{"a step is no outcome", none, StepSignedOut, "", none, false},
		{"a step after the outcome", reset, StepPasswordKilled, "", reset, false},
		{"the same done outcome again", reset, StepReset, "", reset, false},
		{"done is final", reset, StepDisabled, "", reset, false},
		{"done is final, a dead letter too", reset, StepDeadLettered, "a", reset, false},
		{"a redriven dead letter done", dl("a"), StepReinvited, "", state{Outcome: StepReinvited}, true},
		{"the same dead letter again", dl("a"), StepDeadLettered, "a", dl("a"), false},
		{"a dead letter for another reason", dl("a"), StepDeadLettered, "b", dl("b"), true},
	}
	for _, tt := range tests {
		next, change := transition(tt.cur, tt.step, tt.detail)
		if next != tt.next || change != tt.change {
			t.Errorf("%s: transition(%v, %s, %q) = %v, %v; want %v, %v", tt.name, tt.cur, tt.step, tt.detail, next, change, tt.next, tt.change)
		}
	}
}

func TestCounterAttr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		pool, bucket string
		ok           bool
	}{
		{counterAttr("us-east-1_X", bucketEnqueued), "us-east-1_X", "enqueued", true},
		{counterAttr("us-east-1_X", state{StepDeadLettered, "a:b"}.bucket()), "us-east-1_X", "dead_lettered:a:b", true},
		{counterAttr("us-east-1_X", state{Outcome: StepReset}.bucket()), "us-east-1_X", "reset", true},
		{"expires_at", "", "", false},
		{"n:us-east-1_X", "", "", false},
		{"n::reset", "", "", false},
		{"n:us-east-1_X:", "", "", false},
	}
	for _, tt := range tests {
		pool, bucket, ok := parseCounterAttr(tt.name)
		if pool != tt.pool || bucket != tt.bucket || ok != tt.ok {
			t.Errorf("parseCounterAttr(%q) = %q, %q, %v; want %q, %q, %v", tt.name, pool, bucket, ok, tt.pool, tt.bucket, tt.ok)
		}
	}
}

// TestProgressSums: counter attributes of many items add up per pool; a
// dead letter moved to another reason leaves no empty reason behind.
func TestProgressSums(t *testing.T) {
	t.Parallel()
	p := Progress{}
	for _, a := range []struct {
		name string
		n    int64
	}{
		{"n:A:enqueued", 3}, {"n:A:enqueued", 2}, {"n:B:enqueued", 4},
		{"n:A:reset", 2}, {"n:A:reinvited", 1}, {"n:B:disabled", 1},
		{"n:A:dead_lettered:x", 1}, {"n:A:dead_lettered:x", -1}, {"n:A:dead_lettered:y", 1},
		{"n:B:dead_lettered:x", 2}, {"n:B:unknown", 7}, {"campaign", 1},
	} {
		p.addAttr(a.name, a.n)
	}
	want := Progress{
		"A": {Enqueued: 5, Reset: 2, Reinvited: 1, DeadLettered: map[string]int64{"y": 1}},
		"B": {Enqueued: 4, Disabled: 1, DeadLettered: map[string]int64{"x": 2}},
	}
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Fatalf("progress %v, want %v", p, want)
	}
	tot := p.Total()
	if tot.Enqueued != 9 || tot.Done() != 4 || tot.DeadLetteredTotal() != 3 || tot.Left() != 2 || tot.DeadLettered["x"] != 2 {
		t.Errorf("total %+v: done %d, dead-lettered %d, left %d", tot, tot.Done(), tot.DeadLetteredTotal(), tot.Left())
	}
	if len(p["A"].DeadLettered) != 1 {
		t.Error("Total changed a pool's counts")
	}
	if left := (Counts{Enqueued: 1, Reset: 2}).Left(); left != 0 {
		t.Errorf("Left = %d for more ended than enqueued, want 0", left)
	}
}

// TestUpdateExpression: every name and value goes through a placeholder,
// the clauses in SET, ADD, REMOVE order.
func TestUpdateExpression(t *testing.T) {
	t.Parallel()
	u := newUpdate()
	u.set("user", str("alice"))
	u.setFirst("reset_at", num(5))
	u.add("n:us-east-1_X:reset", 1)
	u.del("holder", "lease_until")
	u.cond = "attribute_not_exists(" + u.n("outcome") + ")"
	want := "SET #a0 = :v0, #a1 = if_not_exists(#a1, :v1) ADD #a2 :v2 REMOVE #a3, #a4"
	if got := *u.expression(); got != want {
		t.Errorf("expression %q, want %q", got, want)
	}
	names := slices.Sorted(maps.Values(u.names))
	if strings.Join(names, ",") != "holder,lease_until,n:us-east-1_X:reset,outcome,reset_at,user" {
		t.Errorf("names %v", names)
	}
	if len(u.valueMap()) != 3 || *u.condition() != "attribute_not_exists(#a5)" {
		t.Errorf("values %v, condition %q", u.valueMap(), *u.condition())
	}
	if e := newUpdate(); e.valueMap() != nil || e.condition() != nil {
		t.Error("an empty update sends empty maps")
	}
}
