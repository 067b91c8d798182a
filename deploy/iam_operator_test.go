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
// grants every Cognito read of cognito/users.go and cognito/pools.go and every capacity reading
// of awscheck, and grants "*" only to actions that take no resource.
func TestIAMOperatorPolicyGrantsReportAndPreflight(t *testing.T) {
	granted := accountWideGrants(t, "iam/operator-policy.json")
	want := map[string]bool{"cognito-idp:DescribeUserPool": true}
	// The reads of report (users.go) and of the pool listing and description (pools.go).
	for _, f := range []string{"../cognito/users.go", "../cognito/pools.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`\.((?:Admin|List|Describe)[A-Za-z]+)\(ctx`).FindAllStringSubmatch(string(src), -1) {
			want["cognito-idp:"+m[1]] = true
		}
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

// TestIAMWorkerUsagePolicy: iam/worker-usage-policy.json grants what resetq
// work --usage-metrics reads, and nothing else.
func TestIAMWorkerUsagePolicy(t *testing.T) {
	granted := accountWideGrants(t, "iam/worker-usage-policy.json")
	if len(granted) != 1 || !granted["cloudwatch:GetMetricData"] {
		t.Fatalf("grants %v, want cloudwatch:GetMetricData only", granted)
	}
}

// accountWideGrants reads a policy's allowed actions; only actions of
// accountWide may be granted on "*".
func accountWideGrants(t *testing.T, file string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(file)
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
	return granted
}
