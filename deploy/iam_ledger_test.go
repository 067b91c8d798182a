package deploy

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/resetq/resetq/ledger"
)

// ledgerUse is what one role does with the ledger: the policy file it gets,
// and the ledger's methods its commands call.
type ledgerUse struct {
	file    string
	methods []string
}

// ledgerUses is each role's use of the ledger (docs/ledger.md, "IAM"):
// the worker ensures the table, claims, records, releases, reads the
// counts (its progress line and gauges) and keeps and reads the workers'
// records of their calls; enqueue ensures the table and
// records the users it enqueued; status and report (the operator's) read.
// The table is made by the kit or exists, so no role creates it:
// CreateTable and UpdateTimeToLive are iam/ledger-create-policy.json's
// alone.
var ledgerUses = map[string]ledgerUse{
	"worker":   {"iam/ledger-worker-policy.json", []string{"Ensure", "Claim", "Record", "Release", "Progress", "CallRecords.Save", "CallRecords.Load"}},
	"producer": {"iam/ledger-producer-policy.json", []string{"Ensure", "Enqueued"}},
	"operator": {"iam/ledger-operator-policy.json", []string{"Ensure", "Rows", "Progress", "Campaigns"}},
}

// caseSensitiveCall is the Cognito action behind ledger.ForWorker's
// CaseSensitive (cognito.Pools.CaseSensitive): the worker compares a
// pool's usernames as the pool does.
const caseSensitiveCall = "cognito-idp:DescribeUserPool"

// TestLedgerPoliciesGrantEachUse: each ledger policy grants, on the table
// only, exactly the actions ledger.IAMActionsByMethod gives the methods its
// role calls, none of the create actions; the worker's adds DescribeUserPool
// on the pools (cognito/pools.go's CaseSensitive calls it); the create
// policy is ledger.IAMCreateActions; the roles' own policies grant no
// DynamoDB action, so a deployment without a ledger has none.
func TestLedgerPoliciesGrantEachUse(t *testing.T) {
	t.Parallel()
	for role, use := range ledgerUses {
		var want []string
		for _, m := range use.methods {
			actions, ok := ledger.IAMActionsByMethod[m]
			if !ok {
				t.Fatalf("%s: ledger.IAMActionsByMethod has no method %s", role, m)
			}
			for _, a := range actions {
				want = append(want, a+" on ledger")
			}
		}
		if role == "worker" {
			want = append(want, caseSensitiveCall+" on pools")
		}
		want = slices.Compact(sorted(want))
		got := grants(t, []byte(readFile(t, use.file)), ledgerKind)
		if !slices.Equal(got, want) {
			t.Errorf("%s grants\n  %v\nthe %s's use of the ledger (%v) needs\n  %v", use.file, got, role, use.methods, want)
		}
		for a := range policyGrants(t, use.file) {
			if slices.Contains(ledger.IAMCreateActions, a) {
				t.Errorf("%s grants %s: the table is the kit's, or exists", use.file, a)
			}
		}
	}
	var create []string
	for _, a := range ledger.IAMCreateActions {
		create = append(create, a+" on ledger")
	}
	if got := grants(t, []byte(readFile(t, "iam/ledger-create-policy.json")), ledgerKind); !slices.Equal(got, sorted(create)) {
		t.Errorf("iam/ledger-create-policy.json grants %v, want ledger.IAMCreateActions on the table: %v", got, sorted(create))
	}

	src := readFile(t, "../cognito/pools.go")
	// CaseSensitive and the helper it may hand the call to.
	fn := strings.Join(regexp.MustCompile(`(?s)\nfunc (?:\([^)]*\) )?(?i:caseSensitive)\(.*?\n}\n`).FindAllString(src, -1), "")
	if !strings.Contains(fn, "."+strings.TrimPrefix(caseSensitiveCall, "cognito-idp:")+"(ctx") {
		t.Errorf("cognito/pools.go: CaseSensitive no longer calls %s:\n%s", caseSensitiveCall, fn)
	}

	for _, f := range []string{"iam/worker-policy.json", "iam/producer-policy.json", "iam/operator-policy.json", "iam/worker-usage-policy.json", "iam/worker-incident-policy.json"} {
		if strings.Contains(readFile(t, f), `"dynamodb:`) {
			t.Errorf("%s grants a DynamoDB action: the ledger's actions belong in iam/ledger-*-policy.json", f)
		}
	}
}

// TestLedgerIAMDocumented: docs/ledger.md's IAM table lists exactly
// ledger.IAMActions, and iam/README.md names each ledger policy file with
// its statements.
func TestLedgerIAMDocumented(t *testing.T) {
	t.Parallel()
	doc := readFile(t, "../docs/ledger.md")
	rows := regexp.MustCompile("(?m)^\\| `(dynamodb:[A-Za-z]+)` \\|").FindAllStringSubmatch(doc, -1)
	var listed []string
	for _, r := range rows {
		listed = append(listed, r[1])
	}
	if got, want := sorted(listed), sorted(ledger.IAMActions); !slices.Equal(got, want) {
		t.Errorf("docs/ledger.md's IAM table lists %v, ledger.IAMActions is %v", got, want)
	}
	readme := readFile(t, "iam/README.md")
	files := []string{"iam/ledger-create-policy.json"}
	for _, use := range ledgerUses {
		files = append(files, use.file)
	}
	for _, f := range files {
		if !strings.Contains(readme, "`"+strings.TrimPrefix(f, "iam/")+"`") {
			t.Errorf("iam/README.md does not name %s", f)
		}
		for _, sid := range slices.Compact(slices.Sorted(maps.Values(policyGrants(t, f)))) {
			if !strings.Contains(readme, "`"+sid+"`") {
				t.Errorf("iam/README.md does not name %s's statement %s", f, sid)
			}
		}
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestLedgerWorkerQueriesOnlyCallRecords: the worker's Query (the workers'
// records of their calls, ledger.CallRecords) is granted on the "#calls:"
// partition keys only, in the JSON policy and in the stack, so a worker
// cannot list the campaigns' rows (pools and usernames).
func TestLedgerWorkerQueriesOnlyCallRecords(t *testing.T) {
	t.Parallel()
	queries := 0
	for _, st := range leadingKeys(t, "iam/ledger-worker-policy.json") {
		if !slices.Contains(st.actions, "dynamodb:Query") {
			continue
		}
		queries++
		if got := st.keys["ForAllValues:StringLike"]; len(st.actions) != 1 || !slices.Equal(got, []string{"#calls:*"}) {
			t.Errorf("iam/ledger-worker-policy.json grants %v with the leading keys %q, want Query alone on \"#calls:*\"", st.actions, got)
		}
	}
	if queries != 1 {
		t.Errorf("iam/ledger-worker-policy.json: %d statements grant dynamodb:Query, want 1", queries)
	}
	if block := stackStatement(t, "LedgerReadsTheWorkersRecordsOfCalls"); !strings.Contains(block, "- dynamodb:Query\n") ||
		strings.Count(block, "- dynamodb:") != 1 || !strings.Contains(block, callsCondition("ForAllValues:StringLike")) {
		t.Errorf("cloudformation/resetq.yaml: LedgerReadsTheWorkersRecordsOfCalls is\n%s\nwant Query alone, on \"#calls:*\"", block)
	}
}

// TestLedgerProducerWritesNoCallRecords: the producer's writes are kept
// off the "#calls:" partition keys, in the JSON policy and in the stack: a
// record of calls there is what a worker takes for resetq's own, and a
// forged one would hide real users' calls from it (docs/ledger.md).
func TestLedgerProducerWritesNoCallRecords(t *testing.T) {
	t.Parallel()
	for _, st := range leadingKeys(t, "iam/ledger-producer-policy.json") {
		if got := st.keys["ForAllValues:StringNotLike"]; slices.Contains(st.actions, "dynamodb:UpdateItem") && !slices.Equal(got, []string{"#calls:*"}) {
			t.Errorf("iam/ledger-producer-policy.json grants %v off the leading keys %q, want off \"#calls:*\"", st.actions, got)
		}
	}
	if block := stackStatement(t, "LedgerRecordEnqueuedUsers"); !strings.Contains(block, callsCondition("ForAllValues:StringNotLike")) {
		t.Errorf("cloudformation/resetq.yaml: LedgerRecordEnqueuedUsers is\n%s\nwant it off \"#calls:*\"", block)
	}
}

// keyedStatement is a policy statement's actions and, by condition
// operator, the dynamodb:LeadingKeys it names.
type keyedStatement struct {
	actions []string
	keys    map[string][]string
}

// leadingKeys reads the statements of the policy file.
func leadingKeys(t *testing.T, file string) []keyedStatement {
	t.Helper()
	var doc struct {
		Statement []struct {
			Action    []string
			Condition map[string]map[string][]string
		}
	}
	if err := json.Unmarshal([]byte(readFile(t, file)), &doc); err != nil {
		t.Fatal(err)
	}
	var out []keyedStatement
	for _, st := range doc.Statement {
		keys := map[string][]string{}
		for op, c := range st.Condition {
			keys[op] = c["dynamodb:LeadingKeys"]
		}
		out = append(out, keyedStatement{st.Action, keys})
	}
	return out
}

// stackStatement is the stack's policy statement sid, up to the next
// statement or the end of its policy ("" if none).
func stackStatement(t *testing.T, sid string) string {
	t.Helper()
	stack := readFile(t, "cloudformation/resetq.yaml")
	head := "- Sid: " + sid + "\n"
	i := strings.Index(stack, head)
	if i < 0 {
		return ""
	}
	block := stack[i+len(head):]
	if j := regexp.MustCompile(`\n\s*- Sid: |\n  \S`).FindStringIndex(block); j != nil {
		block = block[:j[0]+1]
	}
	return block
}

// callsCondition is the stack's YAML of a condition op on the "#calls:"
// partition keys.
func callsCondition(op string) string {
	return "            Condition:\n              " + op + ":\n                dynamodb:LeadingKeys:\n                  - \"#calls:*\"\n"
}
