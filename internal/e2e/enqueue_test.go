package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

// enqueueResult is one run of `resetq enqueue`.
type enqueueResult struct {
	code           int
	stdout, stderr string
	summary        map[string]any // with --output json
}

// runEnqueue runs `resetq enqueue args...` with env added to the child's.
func runEnqueue(t *testing.T, e *testenv.Env, env []string, stdin string, args ...string) enqueueResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t), append([]string{"enqueue"}, args...)...)
	cmd.Env = e.ChildEnv(env...) // os/exec: the last value of a duplicate key wins
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := enqueueResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run resetq enqueue: %v", err)
	}
	if slices.Contains(args, "json") && r.code != 2 {
		if err := json.Unmarshal(stdout.Bytes(), &r.summary); err != nil {
			t.Fatalf("summary %q: %v\nstderr: %s", r.stdout, err, r.stderr)
		}
	}
	t.Logf("resetq enqueue %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func (r enqueueResult) num(t *testing.T, key string) int {
	t.Helper()
	v, ok := r.summary[key].(float64)
	if !ok && key != "would_enqueue" {
		t.Fatalf("summary has no %q: %v", key, r.summary)
	}
	return int(v)
}

// queued receives every message of queueURL: body -> campaign attribute.
// A body received twice is an error.
func queued(t *testing.T, e *testenv.Env, queueURL string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for {
		r, err := e.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL),
			MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, VisibilityTimeout: 600})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return got
		}
		for _, m := range r.Messages {
			body := aws.ToString(m.Body)
			if _, dup := got[body]; dup {
				t.Errorf("%s is on the queue twice", body)
			}
			got[body] = aws.ToString(m.MessageAttributes["resetq.campaign"].StringValue)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantQueue(t *testing.T, got map[string]string, campaign string, bodies ...string) {
	t.Helper()
	want := map[string]string{}
	for _, b := range bodies {
		want[b] = campaign
	}
	for b, c := range got {
		if w, ok := want[b]; !ok || w != c {
			t.Errorf("unexpected message %s (campaign %q)", b, c)
		}
	}
	for b := range want {
		if _, ok := got[b]; !ok {
			t.Errorf("missing message %s", b)
		}
	}
}

// TestEnqueueCSV: a CSV with quoted fields, bad lines and duplicate names
// puts each valid user on the queue once, with the campaign and the
// client metadata, reports the bad lines by number and exits 1; a CSV
// without the column is a usage error and sends nothing.
func TestEnqueueCSV(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqcsv")
	pool := "us-east-1_CsvPool1"
	csv := writeFile(t, "users.csv", "email,username,team\n"+
		"a@example.com,alice,x\n"+ // 2
		"b@example.com,\"bob@example.com\",\"y, z\"\n"+ // 3
		"c@example.com,carol smith,x\n"+ // 4: a space is not allowed
		"d@example.com\n"+ // 5: no username field
		"e@example.com,alice,x\n"+ // 6: duplicate
		"\n"+
		"f@example.com,\"dave\",x\n"+ // 8
		"g@example.com,,x\n") // 9: empty
	r := runEnqueue(t, e, nil, "", "--queue-url", e.QueueURL, "--pool", pool, "--from", csv, "--format", "csv",
		"--campaign", "camp-csv", "--client-metadata", "reason=incident-7,ticket=OPS-1", "--output", "json")
	if r.code != 1 {
		t.Errorf("exit code %d, want 1 (invalid lines)", r.code)
	}
	if r.num(t, "enqueued") != 3 || r.num(t, "invalid") != 3 || r.num(t, "duplicates") != 1 || r.num(t, "rejected") != 0 {
		t.Errorf("summary %v", r.summary)
	}
	var lines []int
	for _, inv := range r.summary["invalid_lines"].([]any) {
		lines = append(lines, int(inv.(map[string]any)["line"].(float64)))
	}
	if !slices.Equal(lines, []int{4, 5, 9}) {
		t.Errorf("invalid lines %v, want 4 5 9", lines)
	}
	for _, l := range []string{"line 4:", "line 5:", "line 9:"} {
		if !strings.Contains(r.stderr, l) {
			t.Errorf("stderr does not report %s", l)
		}
	}
	meta := `,"ClientMetadata":{"reason":"incident-7","ticket":"OPS-1"}}`
	job := func(u string) string { return `{"UserPoolId":"` + pool + `","Username":"` + u + `"` + meta }
	wantQueue(t, queued(t, e, e.QueueURL), "camp-csv", job("alice"), job("bob@example.com"), job("dave"))

	// A missing column: exit 2, naming the header, nothing sent.
	bad := writeFile(t, "bad.csv", "email,user\na@example.com,alice\n")
	r = runEnqueue(t, e, nil, "", "--queue-url", e.QueueURL, "--pool", pool, "--from", bad, "--format", "csv")
	if r.code != 2 || !strings.Contains(r.stderr, `no column "username"`) || !strings.Contains(r.stderr, `"email", "user"`) {
		t.Errorf("missing column: exit %d, stderr %q", r.code, r.stderr)
	}
	// Usage errors: two sources, no pool, an unreadable file, bad metadata.
	for _, args := range [][]string{
		{"--pool", pool, "--from", bad, "--all-users"},
		{"--from", bad},
		{"--pool", pool, "--from", filepath.Join(t.TempDir(), "nope")},
		{"--pool", pool, "--from", bad, "--client-metadata", "novalue"},
	} {
		if r := runEnqueue(t, e, nil, "", append([]string{"--queue-url", e.QueueURL}, args...)...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2", args, r.code)
		}
	}
	if v, f, d := e.Depth(); v+d != 0 || f != 3 {
		t.Errorf("the usage errors sent messages: %d visible, %d in flight (the 3 received), %d delayed", v, f, d)
	}
}

// TestEnqueueSpreadsheetCSV: a spreadsheet's CSV export (a UTF-8 BOM, a
// quoted header and quoted records, CRLF) enqueues every user.
func TestEnqueueSpreadsheetCSV(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqbom")
	pool := "us-east-1_BomPool1"
	csv := writeFile(t, "export.csv", "\ufeff\"username\",\"email\"\r\n"+
		"\"alice\",\"a@example.com\"\r\n"+
		"\"bob\",\"b@example.com\"\r\n")
	r := runEnqueue(t, e, nil, "", "--queue-url", e.QueueURL, "--pool", pool, "--from", csv, "--format", "csv",
		"--campaign", "camp-bom", "--output", "json")
	if r.code != 0 || r.num(t, "enqueued") != 2 || r.num(t, "invalid") != 0 {
		t.Fatalf("exit %d, summary %v", r.code, r.summary)
	}
	wantQueue(t, queued(t, e, e.QueueURL), "camp-bom", testenv.Job(pool, "alice"), testenv.Job(pool, "bob"))
}

// TestEnqueueCaseInsensitivePool: in a pool whose usernames are not
// case-sensitive, "Alice", "alice" and "ALICE" are one user, enqueued once
// as first named; in a pool without a UsernameConfiguration they are
// three; a pool that cannot be described is warned about and taken as
// case-sensitive. One DescribeUserPool call per pool.
func TestEnqueueCaseInsensitivePool(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqcase")
	out, err := cip.NewFromConfig(e.East).CreateUserPool(t.Context(), &cip.CreateUserPoolInput{
		PoolName:              aws.String("nocase" + fmt.Sprint(time.Now().UnixNano())),
		UsernameConfiguration: &ciptypes.UsernameConfigurationType{CaseSensitive: aws.Bool(false)},
	})
	if err != nil {
		t.Fatal(err)
	}
	insensitive := aws.ToString(out.UserPool.Id)
	sensitive, err := moto.CreatePool(t.Context(), e.East, "case"+fmt.Sprint(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	missing := "us-east-1_NoSuchPool1"
	var in strings.Builder
	for _, p := range []string{insensitive, sensitive, missing} {
		for _, u := range []string{"Alice", "alice", "ALICE", "bob"} {
			fmt.Fprintf(&in, "%s\n", testenv.Job(p, u))
		}
	}
	r := runEnqueue(t, e, nil, in.String(), "--queue-url", e.QueueURL, "--from", "-", "--format", "jsonl",
		"--campaign", "camp-case", "--output", "json")
	if r.code != 0 || r.num(t, "enqueued") != 10 || r.num(t, "duplicates") != 2 {
		t.Errorf("exit %d, summary %v", r.code, r.summary)
	}
	if !strings.Contains(r.stderr, "pool "+insensitive+": usernames are not case-sensitive") ||
		!strings.Contains(r.stderr, "warning: describe user pool "+missing) || strings.Contains(r.stderr, "pool "+sensitive) {
		t.Errorf("stderr %q", r.stderr)
	}
	want := []string{testenv.Job(insensitive, "Alice"), testenv.Job(insensitive, "bob")}
	for _, p := range []string{sensitive, missing} {
		for _, u := range []string{"Alice", "alice", "ALICE", "bob"} {
			want = append(want, testenv.Job(p, u))
		}
	}
	wantQueue(t, queued(t, e, e.QueueURL), "camp-case", want...)
	if n := e.Proxy.Stats().Forwarded["DescribeUserPool"]; n != 3 {
		t.Errorf("%d DescribeUserPool calls, want one per pool", n)
	}
}

// listPool creates a pool in us-east-1 with users a00..a(na-1) and
// b00..b(nb-1), unconfirmed (one call each).
func listPool(t *testing.T, e *testenv.Env, na, nb int) (pool string, names []string) {
	t.Helper()
	pool, err := moto.CreatePool(t.Context(), e.East, "list"+fmt.Sprint(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range na {
		names = append(names, fmt.Sprintf("a%02d", i))
	}
	for i := range nb {
		names = append(names, fmt.Sprintf("b%02d", i))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, u := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := moto.CreateUser(context.Background(), e.East, pool, u, moto.Unconfirmed); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	return pool, names
}

// TestEnqueueAllUsers: a ListUsers walk over several pages with a filter
// enqueues exactly the matching users; with ListUsers throttled to 1 call
// a second, every user is still enqueued exactly once.
func TestEnqueueAllUsers(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqall")
	pool, names := listPool(t, e, 70, 20)
	job := func(u string) string { return testenv.Job(pool, u) }

	r := runEnqueue(t, e, nil, "", "--queue-url", e.QueueURL, "--pool", pool, "--all-users", "--filter", `username ^= "a"`, "--output", "json")
	if r.code != 0 || r.num(t, "enqueued") != 70 || r.num(t, "read") != 70 {
		t.Errorf("exit %d, summary %v", r.code, r.summary)
	}
	campaign, _ := r.summary["campaign"].(string)
	if !strings.HasPrefix(campaign, "c-") || !strings.Contains(r.stderr, campaign) {
		t.Errorf("generated campaign %q not printed: %s", campaign, r.stderr)
	}
	var wantA []string
	for _, u := range names[:70] {
		wantA = append(wantA, job(u))
	}
	wantQueue(t, queued(t, e, e.QueueURL), campaign, wantA...)
	if n := e.Proxy.Stats().Forwarded["ListUsers"]; n < 2 {
		t.Errorf("%d ListUsers calls, want pages", n)
	}

	// Throttled: the walk waits and resumes on the same page.
	q2, _, err := moto.CreateQueues(t.Context(), e.East, "enqall2"+fmt.Sprint(time.Now().UnixNano()), 10, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.Proxy.SetQuota("ListUsers", 1)
	before := e.Proxy.Stats()
	r = runEnqueue(t, e, nil, "", "--queue-url", q2, "--pool", pool, "--all-users", "--campaign", "camp-all", "--output", "json")
	if r.code != 0 || r.num(t, "enqueued") != 90 {
		t.Errorf("exit %d, summary %v", r.code, r.summary)
	}
	if st := e.Proxy.Stats(); st.Throttled["ListUsers"] == before.Throttled["ListUsers"] {
		t.Errorf("no ListUsers call was throttled: %+v", st)
	}
	var all []string
	for _, u := range names {
		all = append(all, job(u))
	}
	wantQueue(t, queued(t, e, q2), "camp-all", all...)
}

// TestEnqueueGroup: --group enqueues the group's members only.
func TestEnqueueGroup(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqgroup")
	pool, names := listPool(t, e, 3, 2)
	c := cip.NewFromConfig(e.East)
	if _, err := c.CreateGroup(t.Context(), &cip.CreateGroupInput{UserPoolId: &pool, GroupName: aws.String("contractors")}); err != nil {
		t.Fatal(err)
	}
	for _, u := range names[3:] {
		if _, err := c.AdminAddUserToGroup(t.Context(), &cip.AdminAddUserToGroupInput{UserPoolId: &pool, Username: aws.String(u), GroupName: aws.String("contractors")}); err != nil {
			t.Fatal(err)
		}
	}
	r := runEnqueue(t, e, nil, "", "--queue-url", e.QueueURL, "--pool", pool, "--group", "contractors", "--campaign", "g", "--output", "json")
	if r.code != 0 || r.num(t, "enqueued") != 2 {
		t.Errorf("exit %d, summary %v", r.code, r.summary)
	}
	wantQueue(t, queued(t, e, e.QueueURL), "g", testenv.Job(pool, "b00"), testenv.Job(pool, "b01"))
	if r := runEnqueue(t, e, nil, "", "--queue-url", e.QueueURL, "--pool", pool, "--group", "nobody"); r.code != 2 {
		t.Errorf("unknown group: exit %d, want 2", r.code)
	}
}

// TestEnqueuePartialFailures: entries SendMessageBatch reports Failed are
// retried and end on the queue; entries that always fail are rejected,
// written to --rejects, and the exit code is 1.
func TestEnqueuePartialFailures(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqfail")
	sqsProxy, err := awsproxy.Start(e.Moto.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqsProxy.Close() })
	env := []string{"AWS_ENDPOINT_URL_SQS=" + sqsProxy.URL}
	pool := "us-east-1_FailPool1"
	var lines, jobs []string
	for i := range 40 {
		u := fmt.Sprintf("user%02d", i)
		lines = append(lines, u)
		jobs = append(jobs, testenv.Job(pool, u))
	}
	file := writeFile(t, "users.txt", strings.Join(lines, "\n"))

	sqsProxy.AddFault(awsproxy.Fault{Operation: "SendMessageBatch", Count: 4, FailEntries: 3})
	r := runEnqueue(t, e, env, "", "--queue-url", e.QueueURL, "--pool", pool, "--from", file, "--campaign", "p1", "--output", "json")
	if r.code != 0 || r.num(t, "enqueued") != 40 || r.num(t, "retried_entries") < 12 || r.num(t, "rejected") != 0 {
		t.Errorf("exit %d, summary %v", r.code, r.summary)
	}
	wantQueue(t, queued(t, e, e.QueueURL), "p1", jobs...)

	// user07 and user33 always fail.
	q2, _, err := moto.CreateQueues(t.Context(), e.East, "enqfail2"+fmt.Sprint(time.Now().UnixNano()), 10, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sqsProxy.ClearFaults()
	for _, u := range []string{"user07", "user33"} {
		sqsProxy.AddFault(awsproxy.Fault{Operation: "SendMessageBatch", BodyContains: u, FailEntries: 1, EntryContains: u})
	}
	rejects := filepath.Join(t.TempDir(), "rejects.jsonl")
	r = runEnqueue(t, e, env, "", "--queue-url", q2, "--pool", pool, "--from", file, "--campaign", "p2",
		"--retries", "2", "--rejects", rejects, "--output", "json", "--progress-interval", "50ms")
	if r.code != 1 || r.num(t, "enqueued") != 38 || r.num(t, "rejected") != 2 {
		t.Errorf("exit %d, summary %v", r.code, r.summary)
	}
	// The retries' backoff takes longer than the progress interval: plain
	// progress lines (stderr is not a terminal), with the file's total.
	if !strings.Contains(r.stderr, "progress: ") || !strings.Contains(r.stderr, "/40 (") {
		t.Errorf("no progress lines in %q", r.stderr)
	}
	b, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	var rejected []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rj struct {
			Line  int
			Job   json.RawMessage
			Error string
		}
		if err := json.Unmarshal([]byte(l), &rj); err != nil {
			t.Fatalf("rejects line %q: %v", l, err)
		}
		if !strings.Contains(rj.Error, "InternalError") {
			t.Errorf("reject %s: error %q", l, rj.Error)
		}
		rejected = append(rejected, string(rj.Job))
	}
	slices.Sort(rejected)
	if want := []string{testenv.Job(pool, "user07"), testenv.Job(pool, "user33")}; !slices.Equal(rejected, want) {
		t.Errorf("rejects %v, want %v", rejected, want)
	}
	var rest []string
	for _, j := range jobs {
		if !slices.Contains(rejected, j) {
			rest = append(rest, j)
		}
	}
	wantQueue(t, queued(t, e, q2), "p2", rest...)
}

// TestEnqueueJSONL: job objects from standard input keep their pools and
// ClientMetadata (over --client-metadata); invalid objects are reported by
// line and not sent.
func TestEnqueueJSONL(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqjsonl")
	in := `{"UserPoolId":"us-east-1_Jsonl1","Username":"alice"}` + "\n" +
		`{"UserPoolId":"eu-west-1_Jsonl2","Username":"bob","ClientMetadata":{"reason":"own"}}` + "\n" +
		`{"UserPoolId":"us-east-1_Jsonl1","Username":"carol","Admin":true}` + "\n" + // 3: unknown field
		"\n" +
		`{"UserPoolId":"us-east-1_Jsonl1","Username":"alice"}` + "\n" + // 5: duplicate
		`{"UserPoolId":"nopool","Username":"dave"}` + "\n" + // 6: bad pool
		`not json` + "\n" // 7
	r := runEnqueue(t, e, nil, in, "--queue-url", e.QueueURL, "--from", "-", "--format", "jsonl",
		"--client-metadata", "reason=bulk,ticket=T1", "--campaign", "j", "--output", "json")
	if r.code != 1 || r.num(t, "enqueued") != 2 || r.num(t, "invalid") != 3 || r.num(t, "duplicates") != 1 {
		t.Errorf("exit %d, summary %v", r.code, r.summary)
	}
	for _, l := range []string{"line 3: unknown field", "line 6: field UserPoolId", "line 7:"} {
		if !strings.Contains(r.stderr, l) {
			t.Errorf("stderr does not report %q", l)
		}
	}
	wantQueue(t, queued(t, e, e.QueueURL), "j",
		`{"UserPoolId":"us-east-1_Jsonl1","Username":"alice","ClientMetadata":{"reason":"bulk","ticket":"T1"}}`,
		`{"UserPoolId":"eu-west-1_Jsonl2","Username":"bob","ClientMetadata":{"reason":"own","ticket":"T1"}}`)
}

// TestEnqueueDryRun: --dry-run prints the jobs and sends nothing.
func TestEnqueueDryRun(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqdry")
	pool := "us-east-1_DryPool1"
	r := runEnqueue(t, e, nil, "alice\nbob\nalice\n", "--queue-url", e.QueueURL, "--pool", pool, "--from", "-", "--dry-run")
	if r.code != 0 {
		t.Errorf("exit %d", r.code)
	}
	if want := testenv.Job(pool, "alice") + "\n" + testenv.Job(pool, "bob") + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "2 jobs would be enqueued") || !strings.Contains(r.stderr, "duplicates:  1") {
		t.Errorf("stderr %q", r.stderr)
	}
	if v, f, d := e.Depth(); v+f+d != 0 {
		t.Errorf("a dry run sent %d messages", v+f+d)
	}
}

// TestEnqueueThenWork: the full loop, from a file of usernames to users
// reset by resetq work.
func TestEnqueueThenWork(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "enqloop")
	pool, users, _ := e.ConfirmedUsers(e.East, "loop", 6)
	file := writeFile(t, "users.txt", strings.Join(users, "\n")+"\n")
	if r := runEnqueue(t, e, nil, "", "--queue-url", e.QueueURL, "--pool", pool, "--from", file); r.code != 0 ||
		!strings.Contains(r.stdout, "enqueued:    6 jobs are on the queue") {
		t.Fatalf("enqueue: exit %d, stdout %q", r.code, r.stdout)
	}
	p := e.Start("--exit-when-idle", "2s")
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("work: exit code %d", code)
	}
	e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users...)
}
