package deploy

import (
	"encoding/json"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/testenv"
)

// targetTemplate is the role of a target account (resetq --pool-roles),
// deployed in each account, as a StackSet across an Organization.
const targetTemplate = "cloudformation/target-account-role.yaml"

// targetAccess is each access parameter of the target template, its
// policy's resource and name, and what it grants: the pools' and "*"
// statements of the deploy/iam files of its callers (their queues and
// tables are the main account's, and the ledger worker's DescribeUserPool
// and the usage read go with the worker's).
var targetAccess = map[string]struct {
	resource, policy string
	files            []string
}{
	"WorkerAccess":   {"WorkerPolicy", "resetq-worker", []string{"iam/worker-policy.json", "iam/ledger-worker-policy.json", "iam/worker-usage-policy.json"}},
	"IncidentAccess": {"IncidentPolicy", "resetq-incident", []string{"iam/worker-incident-policy.json"}},
	"ProducerAccess": {"ProducerPolicy", "resetq-producer", []string{"iam/producer-policy.json"}},
	"OperatorAccess": {"OperatorPolicy", "resetq-operator", []string{"iam/operator-policy.json"}},
}

// TestCloudFormationTargetRoleText: the template's structure. The trust
// policy names the roles of TrustedRoleArns and holds the condition
// sts:ExternalId only when ExternalId is set (empty by default); the pools
// are UserPoolArns, or every pool of the account when it is empty; each
// access parameter switches its policy, the worker's on by default and the
// others off; and nothing is account-specific (no account ID, no
// partition, outside descriptions), so one StackSet serves every account.
func TestCloudFormationTargetRoleText(t *testing.T) {
	t.Parallel()
	tmpl := readFile(t, targetTemplate)
	params := topLevelBlocks(t, tmpl, "Parameters")
	resources := topLevelBlocks(t, tmpl, "Resources")
	outputs := topLevelBlocks(t, tmpl, "Outputs")

	for name, wants := range map[string][]string{
		"TrustedRoleArns": {"Type: CommaDelimitedList"},
		"ExternalId":      {"Type: String", `Default: ""`},
		"RoleName":        {"Type: String", "Default: resetq-target"},
		"UserPoolArns":    {"Type: CommaDelimitedList", `Default: ""`},
	} {
		for _, w := range wants {
			if !strings.Contains(params[name], w) {
				t.Errorf("parameter %s lacks %q:\n%s", name, w, params[name])
			}
		}
	}
	if strings.Contains(params["TrustedRoleArns"], "Default:") {
		t.Error("TrustedRoleArns has a default: whom the role trusts is always given")
	}
	for _, want := range []string{`HasExternalId: !Not [!Equals [!Ref ExternalId, ""]]`, `AllPools: !Equals [!Join ["", !Ref UserPoolArns], ""]`} {
		if !strings.Contains(tmpl, want) {
			t.Errorf("no condition %q", want)
		}
	}

	role := resources["TargetRole"]
	trust := role[strings.Index(role, "AssumeRolePolicyDocument:"):]
	for _, want := range []string{"Type: AWS::IAM::Role", "RoleName: !Ref RoleName"} {
		if !strings.Contains(role, want) {
			t.Errorf("TargetRole lacks %q:\n%s", want, role)
		}
	}
	// The one statement: the roles of the parameter, sts:AssumeRole, and a
	// condition that is the external ID when set and nothing otherwise.
	ifExt := regexp.MustCompile(`Condition: !If\n\s+- HasExternalId\n\s+- StringEquals:\n\s+sts:ExternalId: !Ref ExternalId\n\s+- !Ref AWS::NoValue\n`)
	if strings.Count(trust, "Effect:") != 1 || !strings.Contains(trust, "Effect: Allow") || !strings.Contains(trust, "AWS: !Ref TrustedRoleArns") ||
		!strings.Contains(trust, "Action: sts:AssumeRole\n") || !ifExt.MatchString(trust) {
		t.Errorf("TargetRole's trust policy: want one statement letting TrustedRoleArns sts:AssumeRole, with sts:ExternalId only under HasExternalId:\n%s", trust)
	}
	if n := strings.Count(tmpl, "sts:ExternalId:"); n != 1 {
		t.Errorf("sts:ExternalId is a condition %d times: once, in the trust policy under HasExternalId", n)
	}

	for param, a := range targetAccess {
		def := `Default: "false"`
		if param == "WorkerAccess" {
			def = `Default: "true"`
		}
		if p := params[param]; !strings.Contains(p, def) || !strings.Contains(p, `AllowedValues: ["true", "false"]`) {
			t.Errorf("parameter %s: want true or false, %s:\n%s", param, def, p)
		}
		cond := "With" + strings.TrimSuffix(param, "Access")
		if !strings.Contains(tmpl, cond+`: !Equals [!Ref `+param+`, "true"]`) {
			t.Errorf("no condition %s on %s", cond, param)
		}
		block := resources[a.resource]
		for _, want := range []string{"Type: AWS::IAM::Policy", "Condition: " + cond, "PolicyName: " + a.policy, "Roles: [!Ref TargetRole]"} {
			if !strings.Contains(block, want) {
				t.Errorf("%s lacks %q:\n%s", a.resource, want, block)
			}
		}
		pools := `Resource: !If [AllPools, !Sub "arn:${AWS::Partition}:cognito-idp:*:${AWS::AccountId}:userpool/*", !Ref UserPoolArns]`
		for _, r := range regexp.MustCompile(`(?m)^\s+Resource: .*$`).FindAllString(block, -1) {
			if r = strings.TrimSpace(r); r != pools && r != `Resource: "*"` {
				t.Errorf("%s grants on %s: want the pools (%s) or \"*\" for the reads that take no resource", a.resource, r, pools)
			}
		}
	}
	if len(resources) != len(targetAccess)+1 {
		t.Errorf("resources %v: want the role and one policy per access parameter", slices.Sorted(maps.Keys(resources)))
	}
	if !strings.Contains(tmpl, "Rules:\n  GrantsSomething:") {
		t.Error("no rule refusing a role that grants nothing")
	}
	if o := outputs["RoleArn"]; !strings.Contains(o, "Value: !GetAtt TargetRole.Arn") {
		t.Errorf("output RoleArn: %s", o)
	}

	// Nothing account-specific outside the descriptions and comments.
	if m := regexp.MustCompile(`\b\d{12}\b|arn:aws:|\b[a-z]{2}-[a-z]+-\d\b`).FindAllString(withoutProse(tmpl), -1); len(m) > 0 {
		t.Errorf("%s holds account-specific values outside descriptions: %v", targetTemplate, m)
	}
}

// withoutProse is a template without its comments and descriptions (one
// line, or folded over the lines indented below).
func withoutProse(tmpl string) string {
	var out []string
	desc := regexp.MustCompile(`^(\s*)(Description|AssertDescription):(.*)$`)
	inFold := -1 // the indent of the folded description being skipped
	for _, line := range strings.Split(tmpl, "\n") {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if inFold >= 0 && (strings.TrimSpace(line) == "" || indent > inFold) {
			continue
		}
		inFold = -1
		if m := desc.FindStringSubmatch(line); m != nil {
			if strings.TrimSpace(m[3]) == ">-" || strings.TrimSpace(m[3]) == ">" {
				inFold = len(m[1])
			}
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// checkTargetRoles: the main stack's TargetRoleArns is empty by default, and
// the policy to assume them, with its output, exists only when it is set;
// the READMEs name the output.
func checkTargetRoles(t *testing.T, tmpl string, params, resources, outputs map[string]string) {
	t.Helper()
	if p := params["TargetRoleArns"]; !strings.Contains(p, "Type: CommaDelimitedList") || !strings.Contains(p, `Default: ""`) {
		t.Errorf("TargetRoleArns is not an empty list by default:\n%s", p)
	}
	if !strings.Contains(tmpl, `WithTargetRoles: !Not [!Equals [!Join ["", !Ref TargetRoleArns], ""]]`) {
		t.Error("no condition WithTargetRoles on TargetRoleArns")
	}
	pol := resources["AssumeTargetRolesPolicy"]
	for _, want := range []string{"Type: AWS::IAM::ManagedPolicy", "Condition: WithTargetRoles", "- sts:AssumeRole\n", "Resource: !Ref TargetRoleArns"} {
		if !strings.Contains(pol, want) {
			t.Errorf("AssumeTargetRolesPolicy lacks %q:\n%s", want, pol)
		}
	}
	if o := outputs["AssumeTargetRolesPolicyArn"]; !strings.Contains(o, "Condition: WithTargetRoles") {
		t.Errorf("output AssumeTargetRolesPolicyArn: want it under WithTargetRoles:\n%s", o)
	}
	for name, block := range resources {
		if strings.Contains(block, "sts:") && name != "AssumeTargetRolesPolicy" {
			t.Errorf("%s grants an STS action: only AssumeTargetRolesPolicy may", name)
		}
	}
	for _, f := range []string{"README.md", "iam/README.md"} {
		if !strings.Contains(readFile(t, f), "AssumeTargetRolesPolicyArn") {
			t.Errorf("%s does not name AssumeTargetRolesPolicyArn", f)
		}
	}
}

// TestCloudFormationTargetRoleStack creates the target account's role in
// moto twice: with the defaults, the role trusts exactly TrustedRoleArns
// with no condition and grants the worker's actions on every pool of the
// account; with ExternalId, UserPoolArns and every access, the trust holds
// the condition sts:ExternalId and each access's policy grants what its
// deploy/iam files grant on the pools and on "*".
func TestCloudFormationTargetRoleStack(t *testing.T) {
	t.Parallel()
	needCLI(t, "aws", "pip install awscli")
	e := testenv.New(t, "cfntarget")
	m := &motoCLI{t: t, e: e}
	trusted := []string{"arn:aws:iam::999988887777:role/resetq-worker", "arn:aws:iam::999988887777:role/resetq-operator"}
	poolARN := "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbC123"
	allPools := "arn:aws:cognito-idp:*:123456789012:userpool/*"
	kind := func(pools string) func(string) string {
		return func(r string) string {
			switch r {
			case pools:
				return "pools"
			case "*":
				return "all"
			}
			return "unexpected resource " + r
		}
	}

	for _, c := range []struct {
		name, externalID, pools string
		access                  []string
	}{
		{name: "defaults", pools: allPools, access: []string{"WorkerAccess"}},
		{name: "everything", externalID: "resetq-campaigns", pools: poolARN, access: []string{"WorkerAccess", "IncidentAccess", "ProducerAccess", "OperatorAccess"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &motoCLI{t: t, e: m.e}
			roleName := "resetq-target-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			params := []string{"ParameterKey=TrustedRoleArns,ParameterValue=" + strings.Join(trusted, `\,`), "ParameterKey=RoleName,ParameterValue=" + roleName}
			if c.externalID != "" {
				params = append(params, "ParameterKey=ExternalId,ParameterValue="+c.externalID)
			}
			if c.pools != allPools {
				params = append(params, "ParameterKey=UserPoolArns,ParameterValue="+c.pools)
			}
			for _, a := range c.access {
				if a != "WorkerAccess" {
					params = append(params, "ParameterKey="+a+",ParameterValue=true")
				}
			}
			out := m.createStackOf(targetTemplate, roleName, params...)
			roleARN := "arn:aws:iam::123456789012:role/" + roleName
			line := "POOL_ID " + roleARN
			if c.externalID != "" {
				line += " external-id=" + c.externalID
			}
			if out["RoleArn"] != roleARN || out["PoolRolesLine"] != line {
				t.Errorf("outputs RoleArn %q, PoolRolesLine %q; want %s, %q", out["RoleArn"], out["PoolRolesLine"], roleARN, line)
			}

			var role struct {
				Role struct{ AssumeRolePolicyDocument json.RawMessage }
			}
			if err := json.Unmarshal(m.run("iam", "get-role", "--role-name", roleName), &role); err != nil {
				t.Fatal(err)
			}
			var trust struct {
				Statement []struct {
					Effect    string
					Principal struct{ AWS any }
					Action    any
					Condition map[string]map[string]any
				}
			}
			if err := json.Unmarshal(policyJSON(t, role.Role.AssumeRolePolicyDocument), &trust); err != nil {
				t.Fatal(err)
			}
			if len(trust.Statement) != 1 {
				t.Fatalf("trust policy %s: want one statement", role.Role.AssumeRolePolicyDocument)
			}
			st := trust.Statement[0]
			if got := slices.Sorted(slices.Values(stringList(st.Principal.AWS))); st.Effect != "Allow" || !slices.Equal(got, slices.Sorted(slices.Values(trusted))) ||
				!slices.Equal(stringList(st.Action), []string{"sts:AssumeRole"}) {
				t.Errorf("trust statement %+v: want %v allowed sts:AssumeRole", st, trusted)
			}
			var wantCond map[string]map[string]any
			if c.externalID != "" {
				wantCond = map[string]map[string]any{"StringEquals": {"sts:ExternalId": c.externalID}}
			}
			if jsonString(st.Condition) != jsonString(wantCond) {
				t.Errorf("trust condition %s, want %s", jsonString(st.Condition), jsonString(wantCond))
			}

			var names struct{ PolicyNames []string }
			if err := json.Unmarshal(m.run("iam", "list-role-policies", "--role-name", roleName), &names); err != nil {
				t.Fatal(err)
			}
			var wantNames []string
			for _, a := range c.access {
				wantNames = append(wantNames, targetAccess[a].policy)
			}
			if slices.Sort(names.PolicyNames); !slices.Equal(names.PolicyNames, slices.Sorted(slices.Values(wantNames))) {
				t.Errorf("role policies %v, want %v", names.PolicyNames, wantNames)
			}
			for _, a := range c.access {
				ta := targetAccess[a]
				var rp struct{ PolicyDocument json.RawMessage }
				if err := json.Unmarshal(m.run("iam", "get-role-policy", "--role-name", roleName, "--policy-name", ta.policy), &rp); err != nil {
					t.Fatal(err)
				}
				got := grants(t, policyJSON(t, rp.PolicyDocument), kind(c.pools))
				var want []string
				for _, f := range ta.files {
					for _, g := range grants(t, []byte(readFile(t, f)), iamKind) {
						if strings.HasSuffix(g, " on pools") || strings.HasSuffix(g, " on all") {
							want = append(want, g)
						}
					}
				}
				slices.Sort(want)
				if want = slices.Compact(want); !slices.Equal(got, want) {
					t.Errorf("%s (%s) grants\n  %v\n%v grant on the pools and \"*\"\n  %v", ta.policy, a, got, ta.files, want)
				}
			}
		})
	}
}

// iamKind names the resources of the deploy/iam files.
func iamKind(r string) string {
	switch {
	case r == "*":
		return "all"
	case strings.Contains(r, ":userpool/"):
		return "pools"
	case strings.HasPrefix(r, "arn:aws:sqs:"):
		return "queue"
	case strings.HasPrefix(r, "arn:aws:dynamodb:"):
		return "ledger"
	case strings.HasPrefix(r, "arn:aws:iam::"):
		return "role"
	}
	return "unexpected resource " + r
}

// policyJSON is a policy document as IAM returns it: JSON, or JSON
// URL-encoded in a string.
func policyJSON(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return raw
	}
	if u, err := url.QueryUnescape(s); err == nil {
		s = u
	}
	return []byte(s)
}

// TestCloudFormationStackTargetRoles: with TargetRoleArns the main stack
// makes AssumeTargetRolesPolicy, which grants exactly what
// iam/worker-assume-role-policy.json grants, on those roles only.
func TestCloudFormationStackTargetRoles(t *testing.T) {
	t.Parallel()
	needCLI(t, "aws", "pip install awscli")
	e := testenv.New(t, "cfnroles")
	m := &motoCLI{t: t, e: e}
	targets := []string{"arn:aws:iam::111122223333:role/resetq-target", "arn:aws:iam::444455556666:role/resetq-target"}
	out := m.createStack("ParameterKey=UserPoolArns,ParameterValue=arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_x",
		"ParameterKey=TargetRoleArns,ParameterValue="+strings.Join(targets, `\,`))
	if out["AssumeTargetRolesPolicyArn"] == "" {
		t.Fatalf("no AssumeTargetRolesPolicyArn output with TargetRoleArns: %v", out)
	}
	doc := m.policyDocument(out["AssumeTargetRolesPolicyArn"])
	got := grants(t, doc, func(r string) string {
		if slices.Contains(targets, r) {
			return "role"
		}
		return "unexpected resource " + r
	})
	if want := grants(t, []byte(readFile(t, "iam/worker-assume-role-policy.json")), iamKind); !slices.Equal(got, want) {
		t.Errorf("AssumeTargetRolesPolicy grants %v, iam/worker-assume-role-policy.json %v", got, want)
	}
	var d struct{ Statement []struct{ Resource any } }
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	var res []string
	for _, s := range d.Statement {
		res = append(res, stringList(s.Resource)...)
	}
	if slices.Sort(res); !slices.Equal(res, targets) {
		t.Errorf("AssumeTargetRolesPolicy is on %v, want exactly %v", res, targets)
	}
}
