package deploy

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/resetq/resetq/queue"
	"github.com/resetq/resetq/userpool"
)

// policyGrants reads an IAM policy file: its allowed actions, each with the
// Sid of its statement. A wildcard action or a statement on every resource
// is an error.
func policyGrants(t *testing.T, file string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Sid      string
			Effect   string
			Action   any
			Resource any
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	granted := map[string]string{}
	for _, s := range doc.Statement {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range stringList(s.Action) {
			if strings.Contains(a, "*") {
				t.Errorf("%s: wildcard action %q", file, a)
			}
			granted[a] = s.Sid
		}
		for _, r := range stringList(s.Resource) {
			if r == "*" {
				t.Errorf("%s: statement with actions %v on every resource", file, s.Action)
			}
		}
	}
	return granted
}

// TestWorkerPolicyGrantsEveryCall checks deploy/iam/worker-policy.json
// against the code: each SQS operation in queue.API (a batch call is
// authorized by its single-message action), AdminResetUserPassword and
// AdminGetUser must be allowed, and nothing with a wildcard.
func TestWorkerPolicyGrantsEveryCall(t *testing.T) {
	t.Parallel()
	granted := policyGrants(t, "iam/worker-policy.json")
	// worker.Resetter and worker.StatusReader (the status check).
	want := []string{"cognito-idp:AdminResetUserPassword", "cognito-idp:AdminGetUser"}
	api := reflect.TypeOf((*queue.API)(nil)).Elem()
	for i := range api.NumMethod() {
		want = append(want, "sqs:"+strings.TrimSuffix(api.Method(i).Name, "Batch"))
	}
	for _, a := range want {
		if !hasKey(granted, a) {
			t.Errorf("the worker calls %s but the policy does not grant it", a)
		}
	}
	if len(granted) != len(want) {
		t.Errorf("the policy grants %d actions, the worker uses %d: least privilege means no extra ones", len(granted), len(want))
	}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// incidentActions is the action each incident-mode option of `resetq work`
// needs, and the Sid of its statement in iam/worker-incident-policy.json
// (also the statement's Sid in the CloudFormation WorkerPolicy).
var incidentActions = map[string]struct{ action, sid string }{
	"--kill-password":       {"cognito-idp:AdminSetUserPassword", "KillPasswordForKillPassword"},
	"--global-sign-out":     {"cognito-idp:AdminUserGlobalSignOut", "GlobalSignOutForGlobalSignOut"},
	"--reinvite":            {"cognito-idp:AdminCreateUser", "ReinviteForReinvite"},
	"--unreachable disable": {"cognito-idp:AdminDisableUser", "DisableForUnreachableDisable"},
}

// TestIncidentPolicyGrantsEachOption: iam/worker-incident-policy.json has
// one statement per incident option, with exactly that option's action;
// together with worker-policy.json it grants every Cognito call the cognito
// adapter makes, and the two files share none; iam/README.md names each
// option with its action and statement.
func TestIncidentPolicyGrantsEachOption(t *testing.T) {
	t.Parallel()
	base := policyGrants(t, "iam/worker-policy.json")
	incident := policyGrants(t, "iam/worker-incident-policy.json")
	var want []string
	for opt, ia := range incidentActions {
		want = append(want, ia.action)
		if sid, ok := incident[ia.action]; !ok || sid != ia.sid {
			t.Errorf("%s: worker-incident-policy.json grants %s in statement %q, want statement %q", opt, ia.action, sid, ia.sid)
		}
		if hasKey(base, ia.action) {
			t.Errorf("worker-policy.json grants %s, which only %s needs: it belongs in worker-incident-policy.json", ia.action, opt)
		}
	}
	if got := slices.Sorted(maps.Keys(incident)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("worker-incident-policy.json grants %v, want exactly %v", got, slices.Sorted(slices.Values(want)))
	}
	sids := map[string]int{}
	for _, sid := range incident {
		sids[sid]++
	}
	for sid, n := range sids {
		if n != 1 {
			t.Errorf("statement %s grants %d actions: one option, one statement, one action", sid, n)
		}
	}

	// Every Cognito call of the adapter is granted by one of the two files.
	src, err := os.ReadFile("../cognito/cognito.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]bool{}
	for _, m := range regexp.MustCompile(`\)\.(Admin[A-Za-z]+)\(ctx`).FindAllStringSubmatch(string(src), -1) {
		calls["cognito-idp:"+m[1]] = true
	}
	if len(calls) < 5 {
		t.Fatalf("found %d Cognito calls in cognito/cognito.go: %v", len(calls), calls)
	}
	for c := range calls {
		if !hasKey(base, c) && !hasKey(incident, c) {
			t.Errorf("cognito/cognito.go calls %s, which neither worker policy grants", c)
		}
	}
	for _, g := range []map[string]string{base, incident} {
		for a := range g {
			if strings.HasPrefix(a, "cognito-idp:") && !calls[a] {
				t.Errorf("a worker policy grants %s, which cognito/cognito.go never calls", a)
			}
		}
	}

	readme, err := os.ReadFile("iam/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for opt, ia := range incidentActions {
		row := regexp.MustCompile("(?m)^\\|[^\\n]*`" + regexp.QuoteMeta(opt) + "`[^\\n]*`" + regexp.QuoteMeta(ia.action) + "`[^\\n]*`" + ia.sid + "`")
		if !row.Match(readme) {
			t.Errorf("iam/README.md has no table row naming %s, %s and %s", opt, ia.action, ia.sid)
		}
	}
	// --incident (and a job enqueued with it) needs every statement: the
	// row whose first cell starts with it names each Sid.
	row := regexp.MustCompile("(?m)^\\| `--incident`[^\\n]*$").Find(readme)
	for opt, ia := range incidentActions {
		if !strings.Contains(string(row), "`"+ia.sid+"`") {
			t.Errorf("iam/README.md's row for --incident does not name %s (the statement of %s): %q", ia.sid, opt, row)
		}
	}
}

// incidentCallOptions is each incident option of `resetq work` as the
// userpool's campaign options, which say the calls it makes (and which
// preflight and `resetq work --incident` probe).
var incidentCallOptions = map[string]userpool.CallOptions{
	"--kill-password":       {KillPassword: true},
	"--global-sign-out":     {SignOut: true},
	"--reinvite":            {Reinvite: true},
	"--unreachable disable": {Disable: true},
}

// TestIncidentPolicyMatchesCampaignCalls checks incidentActions against the
// code's own list of calls (userpool.CampaignCalls, what preflight and `resetq
// work --incident` probe at start): each option adds, beyond what
// worker-policy.json grants, exactly its action; and every call of an
// incident (userpool.IncidentCalls) is granted by worker-policy.json or
// worker-incident-policy.json, so the start-up probes of a worker with both
// pass.
func TestIncidentPolicyMatchesCampaignCalls(t *testing.T) {
	t.Parallel()
	base := policyGrants(t, "iam/worker-policy.json")
	incident := policyGrants(t, "iam/worker-incident-policy.json")
	if len(incidentCallOptions) != len(incidentActions) {
		t.Fatalf("incidentCallOptions has %d options, incidentActions %d", len(incidentCallOptions), len(incidentActions))
	}
	for opt, o := range incidentCallOptions {
		var extra []string
		for _, c := range userpool.CampaignCalls(o) {
			if a := "cognito-idp:" + c; !hasKey(base, a) {
				extra = append(extra, a)
			}
		}
		if want := []string{incidentActions[opt].action}; !slices.Equal(extra, want) {
			t.Errorf("%s: the campaign's calls beyond worker-policy.json are %v, incidentActions says %v", opt, extra, want)
		}
	}
	var all []string
	for _, c := range userpool.IncidentCalls() {
		a := "cognito-idp:" + c
		all = append(all, a)
		if !hasKey(base, a) && !hasKey(incident, a) {
			t.Errorf("resetq work --incident probes and makes %s, which neither worker policy grants", a)
		}
	}
	for _, ia := range incidentActions {
		if !slices.Contains(all, ia.action) {
			t.Errorf("worker-incident-policy.json grants %s, which an incident (userpool.IncidentCalls: %v) never makes", ia.action, all)
		}
	}
}
