package deploy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/ledger"
)

const cfnTemplate = "cloudformation/resetq.yaml"

// TestCloudFormationLint: cfn-lint finds nothing in the templates: the
// main stack and the role for each target account.
func TestCloudFormationLint(t *testing.T) {
	t.Parallel()
	needCLI(t, "cfn-lint", "pip install cfn-lint")
	for _, tmpl := range []string{cfnTemplate, targetTemplate} {
		out, err := exec.Command("cfn-lint", tmpl).CombinedOutput()
		if err != nil {
			t.Errorf("cfn-lint %s: %v\n%s", tmpl, err, out)
		}
	}
}

// TestCloudFormationTemplateText checks what moto cannot: the queues ask for
// SSE (moto enables SSE-SQS by default anyway), the alarms (moto has no
// CloudFormation model for AWS::CloudWatch::Alarm) watch the right metric of
// the right queue, and the example parameters file names only real
// parameters and gives every one without a default.
func TestCloudFormationTemplateText(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(cfnTemplate)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := string(raw)
	params := topLevelBlocks(t, tmpl, "Parameters")
	resources := topLevelBlocks(t, tmpl, "Resources")

	for name, wants := range map[string][]string{
		"SourceQueue": {"Type: AWS::SQS::Queue", "SqsManagedSseEnabled: !If [UseKms, !Ref AWS::NoValue, true]",
			"KmsMasterKeyId: !If [UseKms, !Ref KmsKeyArn, !Ref AWS::NoValue]", "deadLetterTargetArn: !GetAtt DeadLetterQueue.Arn"},
		"DeadLetterQueue": {"Type: AWS::SQS::Queue", "SqsManagedSseEnabled: !If [UseKms, !Ref AWS::NoValue, true]",
			"KmsMasterKeyId: !If [UseKms, !Ref KmsKeyArn, !Ref AWS::NoValue]"},
		"DeadLettersAlarm": {"Type: AWS::CloudWatch::Alarm", "Namespace: AWS/SQS", "MetricName: ApproximateNumberOfMessagesVisible",
			"Value: !GetAtt DeadLetterQueue.QueueName", "Threshold: 0\n", "ComparisonOperator: GreaterThanThreshold"},
		"OldestJobAlarm": {"Type: AWS::CloudWatch::Alarm", "Namespace: AWS/SQS", "MetricName: ApproximateAgeOfOldestMessage",
			"Value: !GetAtt SourceQueue.QueueName", "Threshold: !Ref OldestMessageAgeAlarmSeconds", "ComparisonOperator: GreaterThanThreshold"},
	} {
		block, ok := resources[name]
		if !ok {
			t.Errorf("no resource %s", name)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(block, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, block)
			}
		}
	}

	outputs := topLevelBlocks(t, tmpl, "Outputs")
	checkRedisCache(t, tmpl, params, resources, outputs)
	checkLedger(t, tmpl, params, resources, outputs)
	checkTargetRoles(t, tmpl, params, resources, outputs)

	// Each incident option has its policy's output, which the READMEs name
	// (the operator attaches them by it; all of them for --incident).
	for opt := range incidentActions {
		out, ok := incidentOutputs[opt]
		if !ok {
			t.Errorf("%s: no stack output in incidentOutputs", opt)
			continue
		}
		if _, ok := outputs[out]; !ok {
			t.Errorf("%s: the template has no output %s", opt, out)
		}
		for _, f := range []string{"README.md", "iam/README.md"} {
			if !strings.Contains(readFile(t, f), out) {
				t.Errorf("%s does not name %s, the policy of %s", f, out, opt)
			}
		}
	}

	var example []struct{ ParameterKey, ParameterValue string }
	raw, err = os.ReadFile("cloudformation/parameters.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &example); err != nil {
		t.Fatalf("parameters.example.json: %v", err)
	}
	given := map[string]bool{}
	for _, p := range example {
		if _, ok := params[p.ParameterKey]; !ok {
			t.Errorf("parameters.example.json sets %s, which the template does not declare", p.ParameterKey)
		}
		given[p.ParameterKey] = true
	}
	for name, block := range params {
		if !strings.Contains(block, "Default:") && !given[name] {
			t.Errorf("parameter %s has no default and parameters.example.json does not set it", name)
		}
	}
	if given["CreateAlarms"] {
		t.Error("parameters.example.json sets CreateAlarms: it exists only for tests against moto")
	}
}

// checkRedisCache: the optional ElastiCache Serverless cache of a fleet is
// off by default, and all of it (cache, security group, secret, users,
// outputs) hangs on that one condition; the security group admits 6379 from
// the workers' group and nothing else; the worker's ACL user, whose password
// is the generated secret's, may run every command README.md's "Fleets"
// says the least user needs, and CLUSTER for --redis-cluster, on resetq's
// keys only; the user group holds it and a default user that is off; and
// the outputs give the endpoint and the secret, and a URL with the user.
func checkRedisCache(t *testing.T, tmpl string, params, resources, outputs map[string]string) {
	t.Helper()
	if p := params["CreateRedisCache"]; !strings.Contains(p, `Default: "false"`) {
		t.Errorf("CreateRedisCache is not off by default:\n%s", p)
	}
	if !strings.Contains(tmpl, `WithRedisCache: !Equals [!Ref CreateRedisCache, "true"]`) {
		t.Error("no condition WithRedisCache on CreateRedisCache")
	}
	for name, wants := range map[string][]string{
		"RedisCache": {"Type: AWS::ElastiCache::ServerlessCache", "Engine: !Ref RedisEngine", "SubnetIds: !Ref RedisSubnetIds",
			"- !GetAtt RedisSecurityGroup.GroupId", "UserGroupId: !Ref RedisUserGroup"},
		"RedisSecurityGroup": {"Type: AWS::EC2::SecurityGroup", "VpcId: !Ref RedisVpcId", "IpProtocol: tcp", "FromPort: 6379", "ToPort: 6379",
			"SourceSecurityGroupId: !Ref WorkerSecurityGroupId"},
		"RedisPassword": {"Type: AWS::SecretsManager::Secret", `SecretStringTemplate: '{"username": "resetq"}'`, "GenerateStringKey: password",
			"ExcludePunctuation: true"},
		"RedisWorkerUser":  {"Type: AWS::ElastiCache::User", "UserName: resetq", "Type: password", `{{resolve:secretsmanager:${RedisPassword}:SecretString:password}}`},
		"RedisDefaultUser": {"Type: AWS::ElastiCache::User", "UserName: default", `AccessString: "off `},
		"RedisUserGroup":   {"Type: AWS::ElastiCache::UserGroup", "- !Ref RedisDefaultUser", "- !Ref RedisWorkerUser"},
	} {
		block, ok := resources[name]
		if !ok {
			t.Errorf("no resource %s", name)
			continue
		}
		for _, w := range append(wants, "Condition: WithRedisCache") {
			if !strings.Contains(block, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, block)
			}
		}
	}
	if sg := resources["RedisSecurityGroup"]; strings.Count(sg, "IpProtocol:") != 1 || strings.Contains(sg, "CidrIp") {
		t.Errorf("RedisSecurityGroup admits more than 6379 from the workers' group:\n%s", sg)
	}
	m := regexp.MustCompile(`(?m)^\s+AccessString: "([^"]*)"`).FindStringSubmatch(resources["RedisWorkerUser"])
	if m == nil {
		t.Fatal("RedisWorkerUser has no AccessString")
	}
	granted := strings.Fields(m[1])
	readme := readFile(t, "../README.md")
	least := regexp.MustCompile("least\\s+such a user needs is `on >PASSWORD ([^`]+)`").FindStringSubmatch(readme)
	if least == nil {
		t.Fatal("README.md no longer says what the least ACL user needs (\"The least such a user needs is `on >PASSWORD ...`\")")
	}
	for _, want := range append(strings.Fields(least[1]), "on", "+cluster") {
		if !slices.Contains(granted, want) {
			t.Errorf("RedisWorkerUser's access string %q lacks %s (README.md: %s; +cluster for --redis-cluster)", m[1], want, least[1])
		}
	}
	for _, g := range granted {
		if strings.HasPrefix(g, "~") && g != "~resetq:*" || strings.HasPrefix(g, "+@") || g == "allkeys" {
			t.Errorf("RedisWorkerUser's access string grants %s: only resetq's keys and commands", g)
		}
	}
	for name, want := range map[string]string{
		"RedisEndpoint":    "Value: !GetAtt RedisCache.Endpoint.Address",
		"RedisPort":        "Value: !GetAtt RedisCache.Endpoint.Port",
		"RedisSecretArn":   "Value: !Ref RedisPassword",
		"RedisUrlTemplate": `Value: !Sub "rediss://resetq:PASSWORD@${RedisCache.Endpoint.Address}:${RedisCache.Endpoint.Port}"`,
	} {
		if o := outputs[name]; !strings.Contains(o, want) || !strings.Contains(o, "Condition: WithRedisCache") {
			t.Errorf("output %s: want %q under WithRedisCache:\n%s", name, want, o)
		}
	}
	for name, block := range resources {
		if strings.HasPrefix(name, "Redis") && !strings.Contains(block, "Condition: WithRedisCache") {
			t.Errorf("%s is made without CreateRedisCache", name)
		}
	}
}

// checkLedger: the ledger is off by default; with Ledger=create the stack
// makes a table with what moto's model of it ignores (TTL on expires_at,
// point-in-time recovery, SSE) and keeps it when the stack goes; the
// ledger policies and outputs exist with any ledger, made here or not, and
// the READMEs name the policies' outputs.
func checkLedger(t *testing.T, tmpl string, params, resources, outputs map[string]string) {
	t.Helper()
	if p := params["Ledger"]; !strings.Contains(p, "Default: none") || !strings.Contains(p, "AllowedValues: [none, create, existing]") {
		t.Errorf("Ledger is not none, create or existing, none by default:\n%s", p)
	}
	for _, want := range []string{"WithLedger: !Not [!Equals [!Ref Ledger, none]]", "CreateLedger: !Equals [!Ref Ledger, create]"} {
		if !strings.Contains(tmpl, want) {
			t.Errorf("no condition %q", want)
		}
	}
	table := resources["LedgerTable"]
	for _, want := range []string{"Type: AWS::DynamoDB::Table", "Condition: CreateLedger", "DeletionPolicy: Retain", "UpdateReplacePolicy: Retain",
		"TableName: !Ref LedgerTableName", "BillingMode: PAY_PER_REQUEST", "TimeToLiveSpecification:\n        AttributeName: expires_at\n        Enabled: true",
		"PointInTimeRecoverySpecification:\n        PointInTimeRecoveryEnabled: true", "DeletionProtectionEnabled: true", "SSESpecification:\n        SSEEnabled: true"} {
		if !strings.Contains(table, want) {
			t.Errorf("LedgerTable lacks %q:\n%s", want, table)
		}
	}
	for name, block := range resources {
		if strings.HasPrefix(name, "Ledger") && name != "LedgerTable" && !strings.Contains(block, "Condition: WithLedger") {
			t.Errorf("%s is made without a ledger", name)
		}
	}
	for out := range ledgerPolicies {
		if o := outputs[out]; !strings.Contains(o, "Condition: WithLedger") {
			t.Errorf("output %s: want it under WithLedger:\n%s", out, o)
		}
		for _, f := range []string{"README.md", "iam/README.md"} {
			if !strings.Contains(readFile(t, f), out) {
				t.Errorf("%s does not name %s", f, out)
			}
		}
	}
}

// topLevelBlocks splits a top-level section of the template (two-space
// indented keys) into the text of each key.
func topLevelBlocks(t *testing.T, tmpl, section string) map[string]string {
	t.Helper()
	start := regexp.MustCompile(`(?m)^` + section + `:\n`).FindStringIndex(tmpl)
	if start == nil {
		t.Fatalf("no %s section", section)
	}
	body := tmpl[start[1]:]
	if end := regexp.MustCompile(`(?m)^\S`).FindStringIndex(body); end != nil {
		body = body[:end[0]]
	}
	out := map[string]string{}
	keys := regexp.MustCompile(`(?m)^  ([A-Za-z0-9]+):\s*$`).FindAllStringSubmatchIndex(body, -1)
	for i, k := range keys {
		end := len(body)
		if i+1 < len(keys) {
			end = keys[i+1][0]
		}
		out[body[k[2]:k[3]]] = body[k[1]:end]
	}
	return out
}

// TestCloudFormationStackRunsWorker creates the stack in moto, with the
// ledger's table, checks the queues, the table and the policies it made (the
// incident options' and the ledger's too), then runs the real worker on the
// stack's queue and table: confirmed users end RESET_REQUIRED, and a job for
// a missing user lands in the stack's DLQ, found through the RedrivePolicy
// (no --dlq-url); the ledger counts both.
//
// The stack is created with CreateAlarms=false: moto (5.2) has no
// CloudFormation model for AWS::CloudWatch::Alarm, skips such resources with
// a warning and still reports CREATE_COMPLETE. TestCloudFormationLint and
// TestCloudFormationTemplateText cover the alarms instead.
func TestCloudFormationStackRunsWorker(t *testing.T) {
	t.Parallel()
	needCLI(t, "aws", "pip install awscli")
	e := testenv.New(t, "cfn")
	pool, users, bodies := e.ConfirmedUsers(e.East, "cf", 4)
	poolARN := "arn:aws:cognito-idp:us-east-1:123456789012:userpool/" + pool

	m := &motoCLI{t: t, e: e}
	ledgerTable := "resetq-cfn-ledger-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	out := m.createStack("ParameterKey=UserPoolArns,ParameterValue="+poolARN,
		"ParameterKey=Ledger,ParameterValue=create", "ParameterKey=LedgerTableName,ParameterValue="+ledgerTable)
	if out["LedgerTable"] != ledgerTable {
		t.Errorf("output LedgerTable %q, want %s", out["LedgerTable"], ledgerTable)
	}
	checkLedgerTable(t, m, ledgerTable, out["LedgerTableArn"])
	if _, ok := out["QueueKeyPolicyArn"]; ok {
		t.Error("QueueKeyPolicyArn output without KmsKeyArn")
	}
	for k := range out {
		if strings.HasPrefix(k, "Redis") {
			t.Errorf("output %s without CreateRedisCache", k)
		}
	}

	// The queues: retention, visibility, encryption, redrive. (moto, like SQS
	// today, enables SSE-SQS on new queues by default, so SqsManagedSseEnabled
	// shows the queue is encrypted more than that the template asked for it;
	// TestCloudFormationTemplateText checks the property.)
	attrs := m.queueAttributes
	src, dlq := attrs(out["QueueUrl"]), attrs(out["DeadLetterQueueUrl"])
	for _, c := range []struct{ what, got, want string }{
		{"source MessageRetentionPeriod", src["MessageRetentionPeriod"], "345600"},
		{"DLQ MessageRetentionPeriod", dlq["MessageRetentionPeriod"], "1209600"},
		{"source VisibilityTimeout", src["VisibilityTimeout"], "120"},
		{"source SqsManagedSseEnabled", src["SqsManagedSseEnabled"], "true"},
		{"DLQ SqsManagedSseEnabled", dlq["SqsManagedSseEnabled"], "true"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	var redrive struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     any    `json:"maxReceiveCount"` // a number or a string, depending on who wrote it
	}
	if err := json.Unmarshal([]byte(src["RedrivePolicy"]), &redrive); err != nil {
		t.Fatalf("RedrivePolicy %q: %v", src["RedrivePolicy"], err)
	}
	if mrc, _ := strconv.Atoi(strings.Trim(jsonString(redrive.MaxReceiveCount), `"`)); redrive.DeadLetterTargetArn != out["DeadLetterQueueArn"] || mrc < 10 {
		t.Errorf("RedrivePolicy %s: want the stack's DLQ %s and maxReceiveCount >= 10", src["RedrivePolicy"], out["DeadLetterQueueArn"])
	}

	// The managed policies grant what deploy/iam/*.json grant, on the stack's
	// queues and the given pools.
	kinds := map[string]string{out["QueueArn"]: "queue", out["DeadLetterQueueArn"]: "dlq", poolARN: "pools", "*": "all", out["LedgerTableArn"]: "ledger"}
	for policyOutput, file := range map[string]string{"WorkerPolicyArn": "iam/worker-policy.json", "ProducerPolicyArn": "iam/producer-policy.json",
		"WorkerUsagePolicyArn": "iam/worker-usage-policy.json", "OperatorPolicyArn": "iam/operator-policy.json",
		"LedgerWorkerPolicyArn": "iam/ledger-worker-policy.json", "LedgerProducerPolicyArn": "iam/ledger-producer-policy.json",
		"LedgerOperatorPolicyArn": "iam/ledger-operator-policy.json"} {
		got := grants(t, m.policyDocument(out[policyOutput]), func(r string) string {
			if k, ok := kinds[r]; ok {
				return k
			}
			return "unexpected resource " + r
		})
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want := grants(t, raw, func(r string) string {
			switch {
			case r == "*":
				return "all"
			case strings.Contains(r, "${DeadLetterQueueName}"), strings.HasSuffix(r, "${QueueName}-dlq"):
				return "dlq"
			case strings.Contains(r, "${QueueName}"):
				return "queue"
			case strings.Contains(r, ":userpool/"):
				return "pools"
			case strings.HasSuffix(r, ":table/${LedgerTable}"):
				return "ledger"
			}
			return "unexpected resource " + r
		})
		if !slices.Equal(got, want) {
			t.Errorf("%s grants\n  %v\n%s grants\n  %v", policyOutput, got, file, want)
		}
	}

	// Incident mode: one policy per option, each exactly that option's
	// statement of iam/worker-incident-policy.json, on the given pools.
	var incident []string
	for opt, ia := range incidentActions {
		doc := m.policyDocument(out[incidentOutputs[opt]])
		got := grants(t, doc, func(r string) string {
			if r == poolARN {
				return "pools"
			}
			return "unexpected resource " + r
		})
		if want := []string{ia.action + " on pools"}; !slices.Equal(got, want) {
			t.Errorf("%s (%s) grants %v, want %v", incidentOutputs[opt], opt, got, want)
		}
		if !strings.Contains(string(doc), `"`+ia.sid+`"`) {
			t.Errorf("%s: no statement %s, the Sid of iam/worker-incident-policy.json: %s", incidentOutputs[opt], ia.sid, doc)
		}
		incident = append(incident, got...)
	}
	raw, err := os.ReadFile("iam/worker-incident-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(incident)
	if want := grants(t, raw, func(string) string { return "pools" }); !slices.Equal(incident, want) {
		t.Errorf("the incident policies grant %v together, iam/worker-incident-policy.json %v", incident, want)
	}

	// The worker on the stack's queue.
	stackQ := *e
	stackQ.QueueURL, stackQ.DLQURL = out["QueueUrl"], out["DeadLetterQueueUrl"]
	stackQ.Send("cfn", append(bodies, testenv.Job(pool, "ghost"))...)
	p := e.Start("--queue-url", out["QueueUrl"], "--exit-when-idle", "2s", // the flag wins over RESETQ_QUEUE_URL
		"--ledger-table", out["LedgerTable"])
	if code := p.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users...)
	// The stack's table is the ledger's: the worker used it as it is, and
	// recorded each user's outcome there.
	l, err := ledger.New(ledger.NewClient(e.East), ledger.Config{Table: out["LedgerTable"], ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ensure(t.Context()); err != nil {
		t.Fatalf("the stack's ledger table: %v", err)
	}
	prog, err := l.Progress(t.Context(), "cfn")
	if err != nil {
		t.Fatal(err)
	}
	if c := prog.Total(); c.Reset != int64(len(users)) || c.DeadLetteredTotal() != 1 {
		t.Errorf("the stack's ledger counts %+v for campaign cfn, want %d reset and 1 dead-lettered", c, len(users))
	}
	dl := stackQ.DrainDLQ()
	if len(dl) != 1 || !strings.Contains(dl[0].Body, `"ghost"`) || dl[0].Attrs["resetq.reason"] != "UserNotFoundException" {
		t.Errorf("stack DLQ holds %+v, want the ghost job with reason UserNotFoundException", dl)
	}
	if v, f, d := stackQ.Depth(); v+f+d != 0 {
		t.Errorf("stack queue not empty: %d visible, %d in flight, %d delayed", v, f, d)
	}
	if dl := e.DrainDLQ(); len(dl) != 0 {
		t.Errorf("%d messages in the bench's own DLQ: the worker used RESETQ_QUEUE_URL's queue", len(dl))
	}
}

// incidentOutputs is the stack output of each incident option's policy.
var incidentOutputs = map[string]string{
	"--kill-password":       "KillPasswordPolicyArn",
	"--global-sign-out":     "GlobalSignOutPolicyArn",
	"--reinvite":            "ReinvitePolicyArn",
	"--unreachable disable": "DisableUnreachablePolicyArn",
}

// motoCLI runs the AWS CLI against the bench's moto_server.
type motoCLI struct {
	t *testing.T
	e *testenv.Env
}

func (m *motoCLI) run(args ...string) []byte {
	m.t.Helper()
	cmd := exec.Command("aws", append([]string{"--endpoint-url", m.e.Moto.URL, "--region", "us-east-1", "--output", "json"}, args...)...)
	cmd.Env = m.e.ChildEnv("AWS_DEFAULT_REGION=us-east-1")
	out, err := cmd.Output()
	if err != nil {
		m.t.Fatalf("aws %s: %v\n%s%s", strings.Join(args, " "), err, out, exitStderr(err))
	}
	return out
}

// createStack creates a stack of the template with a fresh QueueName,
// CreateAlarms=false and params, waits for CREATE_COMPLETE, deletes it at
// cleanup, and returns its outputs.
func (m *motoCLI) createStack(params ...string) map[string]string {
	m.t.Helper()
	t := m.t
	name := "resetq-cfn-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	out := m.createStackOf(cfnTemplate, name, append([]string{"ParameterKey=QueueName,ParameterValue=" + name,
		"ParameterKey=CreateAlarms,ParameterValue=false"}, params...)...)
	for _, k := range []string{"QueueUrl", "QueueArn", "DeadLetterQueueUrl", "DeadLetterQueueArn", "WorkerPolicyArn", "ProducerPolicyArn",
		"KillPasswordPolicyArn", "GlobalSignOutPolicyArn", "ReinvitePolicyArn", "DisableUnreachablePolicyArn", "WorkerUsagePolicyArn", "OperatorPolicyArn"} {
		if out[k] == "" {
			t.Fatalf("no output %s in %v", k, out)
		}
	}
	return out
}

// createStackOf creates the stack name of the template file with params
// (--capabilities CAPABILITY_NAMED_IAM: a template may name its roles),
// waits for CREATE_COMPLETE, deletes it at cleanup, and returns its outputs.
func (m *motoCLI) createStackOf(template, name string, params ...string) map[string]string {
	m.t.Helper()
	t := m.t
	needCLI(t, "aws", "pip install awscli")
	tmplPath, err := filepath.Abs(template)
	if err != nil {
		t.Fatal(err)
	}
	m.run(append([]string{"cloudformation", "create-stack", "--stack-name", name, "--template-body", "file://" + tmplPath,
		"--capabilities", "CAPABILITY_NAMED_IAM", "--parameters"}, params...)...)
	t.Cleanup(func() { m.run("cloudformation", "delete-stack", "--stack-name", name) })

	var stack struct {
		Stacks []struct {
			StackStatus, StackStatusReason string
			Outputs                        []struct{ OutputKey, OutputValue string }
		}
	}
	testenv.Eventually(t, time.Minute, "the stack to be created", func() bool {
		if err := json.Unmarshal(m.run("cloudformation", "describe-stacks", "--stack-name", name), &stack); err != nil || len(stack.Stacks) != 1 {
			t.Fatalf("describe-stacks: %v %+v", err, stack)
		}
		st := stack.Stacks[0].StackStatus
		if strings.Contains(st, "FAILED") || strings.Contains(st, "ROLLBACK") {
			t.Fatalf("stack %s: %s", st, stack.Stacks[0].StackStatusReason)
		}
		return st == "CREATE_COMPLETE"
	})
	out := map[string]string{}
	for _, o := range stack.Stacks[0].Outputs {
		out[o.OutputKey] = o.OutputValue
	}
	return out
}

func (m *motoCLI) queueAttributes(url string) map[string]string {
	m.t.Helper()
	r, err := m.e.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		m.t.Fatalf("GetQueueAttributes %s: %v", url, err)
	}
	return r.Attributes
}

// policyDocument is the default version's document of a managed policy.
func (m *motoCLI) policyDocument(arn string) []byte {
	m.t.Helper()
	var p struct {
		Policy struct{ DefaultVersionId string }
	}
	if err := json.Unmarshal(m.run("iam", "get-policy", "--policy-arn", arn), &p); err != nil {
		m.t.Fatal(err)
	}
	var pv struct {
		PolicyVersion struct{ Document json.RawMessage }
	}
	if err := json.Unmarshal(m.run("iam", "get-policy-version", "--policy-arn", arn, "--version-id", p.Policy.DefaultVersionId), &pv); err != nil {
		m.t.Fatal(err)
	}
	return pv.PolicyVersion.Document
}

// TestCloudFormationStackKMS: with KmsKeyArn both queues use the key, and
// QueueKeyPolicy grants exactly kms:GenerateDataKey and kms:Decrypt on it.
func TestCloudFormationStackKMS(t *testing.T) {
	t.Parallel()
	needCLI(t, "aws", "pip install awscli")
	e := testenv.New(t, "cfnkms")
	m := &motoCLI{t: t, e: e}
	var key struct{ KeyMetadata struct{ Arn string } }
	if err := json.Unmarshal(m.run("kms", "create-key", "--description", "resetq test"), &key); err != nil || key.KeyMetadata.Arn == "" {
		t.Fatalf("kms create-key: %v %+v", err, key)
	}
	out := m.createStack("ParameterKey=UserPoolArns,ParameterValue=arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_x",
		"ParameterKey=KmsKeyArn,ParameterValue="+key.KeyMetadata.Arn)
	for _, q := range []string{"QueueUrl", "DeadLetterQueueUrl"} {
		if got := m.queueAttributes(out[q])["KmsMasterKeyId"]; got != key.KeyMetadata.Arn {
			t.Errorf("%s KmsMasterKeyId %q, want %s", q, got, key.KeyMetadata.Arn)
		}
	}
	if out["QueueKeyPolicyArn"] == "" {
		t.Fatalf("no QueueKeyPolicyArn output with KmsKeyArn: %v", out)
	}
	got := grants(t, m.policyDocument(out["QueueKeyPolicyArn"]), func(r string) string {
		if r == key.KeyMetadata.Arn {
			return "key"
		}
		return "unexpected resource " + r
	})
	if want := []string{"kms:Decrypt on key", "kms:GenerateDataKey on key"}; !slices.Equal(got, want) {
		t.Errorf("QueueKeyPolicy grants %v, want %v", got, want)
	}
	// Without Ledger (none, the default): no table, no ledger policy; without
	// TargetRoleArns (empty, the default) no policy to assume roles.
	for k := range out {
		if strings.HasPrefix(k, "Ledger") {
			t.Errorf("output %s without Ledger", k)
		}
	}
	if _, ok := out["AssumeTargetRolesPolicyArn"]; ok {
		t.Error("AssumeTargetRolesPolicyArn output without TargetRoleArns")
	}
}

// TestCloudFormationStackLedgerExisting: with Ledger=existing the stack
// makes no table and grants the ledger's actions on the named one, the
// same as with create: only the table's origin differs.
func TestCloudFormationStackLedgerExisting(t *testing.T) {
	t.Parallel()
	needCLI(t, "aws", "pip install awscli")
	e := testenv.New(t, "cfnledger")
	m := &motoCLI{t: t, e: e}
	table := "resetq-existing-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	poolARN := "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_x"
	out := m.createStack("ParameterKey=UserPoolArns,ParameterValue="+poolARN,
		"ParameterKey=Ledger,ParameterValue=existing", "ParameterKey=LedgerTableName,ParameterValue="+table)
	arn := "arn:aws:dynamodb:us-east-1:123456789012:table/" + table
	if out["LedgerTable"] != table || out["LedgerTableArn"] != arn {
		t.Errorf("outputs LedgerTable %q, LedgerTableArn %q; want %s, %s", out["LedgerTable"], out["LedgerTableArn"], table, arn)
	}
	var tables struct{ TableNames []string }
	if err := json.Unmarshal(m.run("dynamodb", "list-tables"), &tables); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(tables.TableNames, table) {
		t.Errorf("Ledger=existing made the table %s", table)
	}
	for p, file := range ledgerPolicies {
		got := grants(t, m.policyDocument(out[p]), func(r string) string {
			switch r {
			case arn:
				return "ledger"
			case poolARN:
				return "pools"
			}
			return "unexpected resource " + r
		})
		if want := grants(t, []byte(readFile(t, file)), ledgerKind); !slices.Equal(got, want) {
			t.Errorf("%s grants %v, %s %v", p, got, file, want)
		}
	}
}

// ledgerPolicies is the stack output of each ledger policy, and its file.
var ledgerPolicies = map[string]string{
	"LedgerWorkerPolicyArn":   "iam/ledger-worker-policy.json",
	"LedgerProducerPolicyArn": "iam/ledger-producer-policy.json",
	"LedgerOperatorPolicyArn": "iam/ledger-operator-policy.json",
}

// ledgerKind names the resources of the ledger policies' files.
func ledgerKind(r string) string {
	switch {
	case strings.HasSuffix(r, ":table/${LedgerTable}"):
		return "ledger"
	case strings.Contains(r, ":userpool/"):
		return "pools"
	}
	return "unexpected resource " + r
}

// checkLedgerTable: the table the stack made is the ledger's
// (docs/ledger.md: pk HASH and sk RANGE, both strings; on-demand) with
// deletion protection, and the output's ARN is its ARN. moto's
// CloudFormation model ignores TTL, point-in-time recovery and SSE:
// TestCloudFormationTemplateText checks those in the template.
func checkLedgerTable(t *testing.T, m *motoCLI, table, arn string) {
	t.Helper()
	var d struct {
		Table struct {
			TableArn                  string
			KeySchema                 []struct{ AttributeName, KeyType string }
			AttributeDefinitions      []struct{ AttributeName, AttributeType string }
			BillingModeSummary        struct{ BillingMode string }
			DeletionProtectionEnabled bool
		}
	}
	if err := json.Unmarshal(m.run("dynamodb", "describe-table", "--table-name", table), &d); err != nil {
		t.Fatal(err)
	}
	tab := d.Table
	var keys []string
	for _, k := range tab.KeySchema {
		for _, a := range tab.AttributeDefinitions {
			if a.AttributeName == k.AttributeName {
				keys = append(keys, k.AttributeName+" "+k.KeyType+" "+a.AttributeType)
			}
		}
	}
	if want := []string{"pk HASH S", "sk RANGE S"}; !slices.Equal(keys, want) {
		t.Errorf("ledger table keys %v, want %v", keys, want)
	}
	if tab.TableArn != arn {
		t.Errorf("ledger table ARN %s, output LedgerTableArn %s", tab.TableArn, arn)
	}
	if tab.BillingModeSummary.BillingMode != "PAY_PER_REQUEST" {
		t.Errorf("ledger table billing %q, want PAY_PER_REQUEST", tab.BillingModeSummary.BillingMode)
	}
	if !tab.DeletionProtectionEnabled {
		t.Error("ledger table without deletion protection")
	}
}

// grants lists a policy document's allowed "action on kind" pairs, sorted,
// with kind(resource) naming each resource.
func grants(t *testing.T, doc []byte, kind func(string) string) []string {
	t.Helper()
	var d struct {
		Statement []struct {
			Effect           string
			Action, Resource any
		}
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("policy document %s: %v", doc, err)
	}
	var out []string
	for _, s := range d.Statement {
		if s.Effect != "Allow" {
			t.Errorf("statement with effect %q", s.Effect)
			continue
		}
		for _, a := range stringList(s.Action) {
			for _, r := range stringList(s.Resource) {
				out = append(out, a+" on "+kind(r))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// needCLI skips the test when a command-line tool is missing, or fails it
// when CI=true (CI installs every tool).
func needCLI(t *testing.T, name, hint string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not on PATH (%s); with CI=true a missing tool is an error", name, hint)
	}
	t.Skipf("%s is not on PATH; install it (%s) to run this test; with CI=true it fails", name, hint)
}
