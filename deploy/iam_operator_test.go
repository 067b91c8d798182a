package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"
)

// accountWide are the actions that take no resource ARN: only they may be
// granted on "*".
var accountWide = []string{"ses:GetSendQuota", "sns:GetSMSAttributes", "servicequotas:GetServiceQuota", "cloudwatch:GetMetricData"}

// TestIAMOperatorPolicyGrantsReportAndPreflight: iam/operator-policy.json
// grants every Cognito read of cognito/users.go and every capacity reading
// of awscheck, and grants "*" only to actions that take no resource.
func TestIAMOperatorPolicyGrantsReportAndPreflight(t *testing.T) {
	raw, err := os.ReadFile("iam/operator-policy.json")
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
		actions := stringList(s.Action)
		for _, a := range actions {
			granted[a] = true
		}
		if slices.Contains(stringList(s.Resource), "*") {
			for _, a := range actions {
				if !slices.Contains(accountWide, a) {
					t.Errorf("%s is granted on every resource", a)
				}
			}
		}
	}
	want := map[string]bool{"cognito-idp:DescribeUserPool": true}
	users, err := os.ReadFile("../cognito/users.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\)\.((?:Admin|List)[A-Za-z]+)\(ctx`).FindAllStringSubmatch(string(users), -1) {
		want["cognito-idp:"+m[1]] = true
	}
	checks, err := os.ReadFile("../awscheck/awscheck.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`classify\("([a-z]+:[A-Za-z]+)"`).FindAllStringSubmatch(string(checks), -1) {
		want[m[1]] = true
	}
	if len(want) < 8 {
		t.Fatalf("found %d calls: %v", len(want), want)
	}
	for a := range want {
		if !granted[a] {
			t.Errorf("operator-policy.json does not grant %s", a)
		}
	}
}
