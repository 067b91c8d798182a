package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/resetq/resetq/userpool"
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

// TestIAMOperatorPolicyReadOnly: iam/operator-policy.json grants reads only
// (Get*, List*, Describe*, AdminGetUser), so none of the write calls that
// preflight's call probes make (userpool.IncidentCalls); iam/README.md says
// where those come from instead: the worker's role, or --probe-calls=false.
func TestIAMOperatorPolicyReadOnly(t *testing.T) {
	granted := accountWideGrants(t, "iam/operator-policy.json")
	read := regexp.MustCompile(`^[a-z-]+:(Get|List|Describe|AdminGet)[A-Za-z]*$`)
	for a := range granted {
		if !read.MatchString(a) {
			t.Errorf("operator-policy.json grants %s, which is no read: the operator's policy stays read-only", a)
		}
	}
	probed := 0
	for _, op := range userpool.IncidentCalls() {
		if a := "cognito-idp:" + op; !granted[a] {
			probed++
		} else if !read.MatchString(a) {
			t.Errorf("operator-policy.json grants %s, a write preflight probes", a)
		}
	}
	if probed == 0 {
		t.Fatalf("userpool.IncidentCalls() %v: every probed call is a read?", userpool.IncidentCalls())
	}
	readme := readFile(t, "iam/README.md")
	for _, want := range []string{"--probe-calls=false", "worker's role", "operator-policy.json"} {
		if !strings.Contains(readme, want) {
			t.Errorf("iam/README.md does not say %q: whose credentials preflight's call probes need", want)
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
