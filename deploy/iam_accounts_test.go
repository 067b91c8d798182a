package deploy

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestIAMAssumeRolePolicy: iam/worker-assume-role-policy.json grants
// sts:AssumeRole and nothing else, on roles named one by one (no wildcard
// action, no "*").
func TestIAMAssumeRolePolicy(t *testing.T) {
	t.Parallel()
	granted := policyGrants(t, "iam/worker-assume-role-policy.json")
	if len(granted) != 1 || !hasKey(granted, "sts:AssumeRole") {
		t.Errorf("grants %v, want sts:AssumeRole only", granted)
	}
	for _, g := range grants(t, []byte(readFile(t, "iam/worker-assume-role-policy.json")), iamKind) {
		if g != "sts:AssumeRole on role" {
			t.Errorf("grants %s: want sts:AssumeRole on the target roles' ARNs", g)
		}
	}
}

// TestIAMTargetRoleTrustPolicy: iam/target-role-trust-policy.json lets
// roles (by ARN, never an account's root or "*") sts:AssumeRole, with the
// condition sts:ExternalId as its only condition, in the statement of the
// same Sid as the target account's template; iam/README.md says how to set
// up both sides and the StackSet, and what CloudTrail shows.
func TestIAMTargetRoleTrustPolicy(t *testing.T) {
	t.Parallel()
	var doc struct {
		Statement []struct {
			Sid, Effect string
			Principal   map[string]any
			Action      any
			Condition   map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(readFile(t, "iam/target-role-trust-policy.json")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Statement) != 1 {
		t.Fatalf("%d statements, want 1", len(doc.Statement))
	}
	s := doc.Statement[0]
	principals := stringList(s.Principal["AWS"])
	if s.Effect != "Allow" || len(s.Principal) != 1 || len(principals) == 0 || !slices.Equal(stringList(s.Action), []string{"sts:AssumeRole"}) {
		t.Errorf("statement %+v: want roles allowed sts:AssumeRole", s)
	}
	for _, p := range principals {
		if !regexp.MustCompile(`^arn:aws:iam::[^:]+:role/\S+$`).MatchString(p) {
			t.Errorf("principal %s: want a role's ARN, not an account or *", p)
		}
	}
	if len(s.Condition) != 1 || len(s.Condition["StringEquals"]) != 1 || s.Condition["StringEquals"]["sts:ExternalId"] == nil {
		t.Errorf("condition %v: want StringEquals sts:ExternalId only", s.Condition)
	}
	if !strings.Contains(topLevelBlocks(t, readFile(t, targetTemplate), "Resources")["TargetRole"], "- Sid: "+s.Sid+"\n") {
		t.Errorf("the target template's trust statement is not %s, the Sid of iam/target-role-trust-policy.json", s.Sid)
	}

	readme := readFile(t, "iam/README.md")
	for _, want := range []string{"worker-assume-role-policy.json", "target-role-trust-policy.json", "target-account-role.yaml", "sts:ExternalId",
		"external-id=", "aws cloudformation create-stack-set", "--permission-model SERVICE_MANAGED", "--auto-deployment",
		"aws cloudformation create-stack-instances", "--deployment-targets OrganizationalUnitIds=", "CAPABILITY_NAMED_IAM",
		"resetq-<campaign>", "CloudTrail", "assume_role_denied", "AssumeTargetRolesPolicyArn"} {
		if !strings.Contains(readme, want) {
			t.Errorf("iam/README.md does not say %q", want)
		}
	}
	// Each access parameter of the target template is in the README's table.
	for param := range targetAccess {
		if !regexp.MustCompile("(?m)^\\s*\\| `" + param + "`").MatchString(readme) {
			t.Errorf("iam/README.md's table of the target role has no row for %s", param)
		}
	}
}
