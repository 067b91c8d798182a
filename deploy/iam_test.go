package deploy

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/resetq/resetq/queue"
)

// TestWorkerPolicyGrantsEveryCall checks deploy/iam/worker-policy.json
// against the code: each SQS operation in queue.API (a batch call is
// authorized by its single-message action) and AdminResetUserPassword must
// be allowed, and nothing with a wildcard.
func TestWorkerPolicyGrantsEveryCall(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("iam/worker-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Effect   string
			Action   any
			Resource any
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	granted := map[string]bool{}
	for _, s := range doc.Statement {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range stringList(s.Action) {
			if strings.Contains(a, "*") {
				t.Errorf("wildcard action %q", a)
			}
			granted[a] = true
		}
		for _, r := range stringList(s.Resource) {
			if r == "*" {
				t.Errorf("statement with actions %v on every resource", s.Action)
			}
		}
	}
	// worker.Resetter and worker.StatusReader (the redelivery check).
	want := []string{"cognito-idp:AdminResetUserPassword", "cognito-idp:AdminGetUser"}
	api := reflect.TypeOf((*queue.API)(nil)).Elem()
	for i := range api.NumMethod() {
		want = append(want, "sqs:"+strings.TrimSuffix(api.Method(i).Name, "Batch"))
	}
	for _, a := range want {
		if !granted[a] {
			t.Errorf("the worker calls %s but the policy does not grant it", a)
		}
	}
	if len(granted) != len(want) {
		t.Errorf("the policy grants %d actions, the worker uses %d: least privilege means no extra ones", len(granted), len(want))
	}
}
