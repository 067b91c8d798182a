package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/preflight"
)

// stsGate is a proxy in front of moto's STS that refuses AssumeRole into
// the denied roles (AccessDenied, as a wrong trust policy does) and notes
// each AssumeRole's role, session name and external ID.
type stsGate struct {
	denied map[string]bool
	next   http.Handler

	mu      sync.Mutex
	assumed []url.Values
}

func newSTSGate(t *testing.T, motoURL string, denied ...string) (*stsGate, string) {
	target, err := url.Parse(motoURL)
	if err != nil {
		t.Fatal(err)
	}
	g := &stsGate{denied: map[string]bool{}, next: httputil.NewSingleHostReverseProxy(target)}
	for _, d := range denied {
		g.denied[d] = true
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv.URL
}

func (g *stsGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	if form.Get("Action") == "AssumeRole" {
		g.mu.Lock()
		g.assumed = append(g.assumed, form)
		g.mu.Unlock()
		if g.denied[form.Get("RoleArn")] {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole on resource: `+
				form.Get("RoleArn")+`</Message></Error><RequestId>gate</RequestId></ErrorResponse>`)
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

func (g *stsGate) calls() []url.Values {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.assumed)
}

const (
	roleB      = "arn:aws:iam::222222222222:role/resetq-target"
	roleC      = "arn:aws:iam::333333333333:role/resetq-target"
	roleX      = "arn:aws:iam::444444444444:role/resetq-target" // not in the roles file
	roleDenied = "arn:aws:iam::555555555555:role/resetq-target"
)

// inAccount is an SDK config whose credentials act in role's account
// (moto's AssumeRole), for the test's own setup and checks.
func inAccount(t *testing.T, e *testenv.Env, role string) aws.Config {
	t.Helper()
	account := strings.Split(role, ":")[4]
	r := accounts.New(e.East, accounts.Roles{"us-east-1_setup": {ARN: role, Account: account}})
	return r.Pool("us-east-1_setup", "setup").Config
}

// TestAccountsOneQueue: one queue with pools in three accounts, two of
// them reached only through --pool-roles. Every user is reset in its own
// account; a pool the file does not name is never reached with a role's
// credentials (the default ones do not see it: dead-lettered); a role
// that cannot be assumed holds its account's jobs only, which end
// assume_role_denied after --max-deferral, naming the role.
func TestAccountsOneQueue(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "accounts")
	gate, gateURL := newSTSGate(t, e.Moto.URL, roleDenied)
	e.ExtraEnv = []string{"AWS_ENDPOINT_URL_STS=" + gateURL}

	cfgB, cfgC, cfgX, cfgD := inAccount(t, e, roleB), inAccount(t, e, roleC), inAccount(t, e, roleX), inAccount(t, e, roleDenied)
	poolA := e.Pool(e.East, map[string]moto.UserState{"a1": moto.Confirmed, "a2": moto.Confirmed})
	poolB := e.Pool(cfgB, map[string]moto.UserState{"b1": moto.Confirmed, "b2": moto.Confirmed})
	poolC := e.Pool(cfgC, map[string]moto.UserState{"c1": moto.Confirmed, "c2": moto.Confirmed})
	poolX := e.Pool(cfgX, map[string]moto.UserState{"x1": moto.Confirmed})
	poolD := e.Pool(cfgD, map[string]moto.UserState{"d1": moto.Confirmed})

	roles := filepath.Join(t.TempDir(), "pool-roles.txt")
	if err := os.WriteFile(roles, []byte("# the campaign's other accounts\n"+
		poolB+" "+roleB+"\n\n"+
		poolC+"  "+roleC+"  external-id=ext-c   # a third party's account\n"+
		poolD+" "+roleDenied+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Send("acct-1", testenv.Job(poolA, "a1"), testenv.Job(poolB, "b1"), testenv.Job(poolC, "c1"), testenv.Job(poolX, "x1"),
		testenv.Job(poolD, "d1"), testenv.Job(poolA, "a2"), testenv.Job(poolB, "b2"), testenv.Job(poolC, "c2"))

	p := e.Start("--pool-roles", roles, "--exit-when-idle", "3s", "--circuit-cooldown", "1s", "--max-deferral", "6s", "--concurrency", "4")
	for _, acct := range []string{moto.Account, "222222222222", "333333333333"} {
		testenv.Eventually(t, time.Minute, "a limiter of account "+acct, func() bool {
			return p.Metric(t, `resetq_ratelimit_limit{account="`+acct+`",region="us-east-1"}`) > 0
		})
	}
	testenv.Eventually(t, time.Minute, "the denied account's circuit to open", func() bool {
		return p.Metric(t, `resetq_circuit_open{account="555555555555",region="us-east-1"}`) == 1
	})
	if code := p.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	e.ExpectStatus(e.East, poolA, "RESET_REQUIRED", "a1", "a2")
	e.ExpectStatus(cfgB, poolB, "RESET_REQUIRED", "b1", "b2")
	e.ExpectStatus(cfgC, poolC, "RESET_REQUIRED", "c1", "c2")
	e.ExpectStatus(cfgX, poolX, "CONFIRMED", "x1")
	e.ExpectStatus(cfgD, poolD, "CONFIRMED", "d1")

	dl := e.DrainDLQ()
	reasons := map[string]string{}
	for _, d := range dl {
		switch {
		case strings.Contains(d.Body, poolX):
			reasons["x1"] = d.Attrs["resetq.reason"]
		case strings.Contains(d.Body, poolD):
			reasons["d1"] = d.Attrs["resetq.reason"]
			if !strings.Contains(d.Attrs["resetq.error"], roleDenied) {
				t.Errorf("d1's resetq.error does not name the role: %q", d.Attrs["resetq.error"])
			}
		default:
			t.Errorf("unexpected dead letter %q: %v", d.Body, d.Attrs)
		}
	}
	if reasons["x1"] != "ResourceNotFoundException" || reasons["d1"] != "assume_role_denied" || len(dl) != 2 {
		t.Errorf("dead letters %v (%d), want x1 ResourceNotFoundException and d1 assume_role_denied", reasons, len(dl))
	}

	// The roles assumed: only the file's, with the campaign in the session
	// name of the jobs' calls ("resetq" for the account's usage reads) and
	// C's external ID; never the role of a pool not in the file.
	seen := map[string]bool{}
	for _, c := range gate.calls() {
		role := c.Get("RoleArn")
		switch c.Get("RoleSessionName") {
		case "resetq-acct-1":
			seen[role] = true
		case "resetq":
		default:
			t.Errorf("session name %q for %s, want resetq-acct-1 (or resetq)", c.Get("RoleSessionName"), role)
		}
		if want := map[bool]string{true: "ext-c"}[role == roleC]; c.Get("ExternalId") != want {
			t.Errorf("external ID %q for %s, want %q", c.Get("ExternalId"), role, want)
		}
	}
	if !seen[roleB] || !seen[roleC] || !seen[roleDenied] || seen[roleX] {
		t.Errorf("roles assumed for the campaign's calls: %v", seen)
	}
}

// TestAccountsPreflight: preflight --pool-roles probes the file's pools
// with their roles and reads capacity per account and Region, with the
// campaign's duration from the slowest account-Region.
func TestAccountsPreflight(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "accountspre")
	cfgB := inAccount(t, e, roleB)
	poolA := e.Pool(e.East, map[string]moto.UserState{"a1": moto.Confirmed})
	users := map[string]moto.UserState{}
	for _, u := range []string{"b1", "b2", "b3"} {
		users[u] = moto.Confirmed
	}
	poolB := e.Pool(cfgB, users)
	roles := filepath.Join(t.TempDir(), "roles.txt")
	if err := os.WriteFile(roles, []byte(poolB+" "+roleB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"AWS_ENDPOINT_URL=" + e.Moto.URL, "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + e.Moto.URL}
	stdout, stderr, code := preflightRun(t, e, env, "preflight", "--pool", poolA, "--pool-roles", roles, "--users", "4000", "--output", "json")
	r := preflightJSON(t, stdout, stderr)
	for _, key := range []string{
		poolB + " describe pool", // absent: describe failed, and it would be blocking
		moto.Account + "/us-east-1 recovery quota",
		"222222222222/us-east-1 recovery quota",
		"222222222222/us-east-1 real users' use",
		"campaign duration",
	} {
		if _, ok := r.Checks[key]; !ok && key != poolB+" describe pool" {
			t.Errorf("no check %q (exit %d)\n%s\n%s", key, code, stdout, stderr)
		} else if ok && key == poolB+" describe pool" {
			t.Errorf("the role's pool was not described: %+v", r.Checks[key])
		}
	}
	if d := r.Checks["campaign duration"].Message; !strings.Contains(d, "set by the slowest, 222222222222/us-east-1 (3000 users") {
		t.Errorf("duration: %q, want the slowest to be account 222222222222's 3 of 4 pool users' share", d)
	}
	for key, c := range r.Checks {
		if strings.HasPrefix(key, poolB+" ") && c.Level == preflight.Blocking {
			t.Errorf("blocking for the role's pool: %s: %s", key, c.Message)
		}
	}
}

// TestAccountsBadRolesFile: a roles file that cannot be read stops each
// command with exit code 2 and the file's line.
func TestAccountsBadRolesFile(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "accountsbad")
	roles := filepath.Join(t.TempDir(), "roles.txt")
	if err := os.WriteFile(roles, []byte("# ok\nus-east-1_AbC arn:aws:iam::222222222222:role/r\nus-east-1_Def arn:aws:iam::2222:role/r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"work", "--queue-url", e.QueueURL, "--pool-roles", roles},
		{"preflight", "--pool-roles", roles},
		{"enqueue", "--queue-url", e.QueueURL, "--pool", "us-east-1_AbC", "--pool-roles", roles, "--from", roles},
		{"status", "--queue-url", e.QueueURL, "--pool-roles", roles, "--usage-region", "none"},
	} {
		_, stderr, code := preflightRun(t, e, nil, args...)
		if code != 2 || !strings.Contains(stderr, roles+":3:") {
			t.Errorf("resetq %s: exit %d, want 2 naming line 3\n%s", args[0], code, stderr)
		}
	}
}
