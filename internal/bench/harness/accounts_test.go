package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/cognitostub"
	"github.com/resetq/resetq/job"
)

// These tests check scenario 7's plumbing, not its figures.

// TestAccountRegions: the default credentials' account first, then role
// accounts each in two Regions; the roles file reads as resetq reads it
// and puts each pool in its account.
func TestAccountRegions(t *testing.T) {
	t.Parallel()
	scopes := accountRegions(4)
	want := []string{"123456789012/us-east-1", "100000000001/us-east-1", "100000000001/eu-west-1", "100000000002/us-east-1"}
	var got []string
	for _, s := range scopes {
		got = append(got, s.key())
		if j := (job.Job{UserPoolID: s.Pool}); j.Region() != s.Region || job.ValidatePoolID(s.Pool) != nil {
			t.Errorf("pool %s: Region %s, want a valid pool in %s", s.Pool, j.Region(), s.Region)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("account-Regions %v, want %v", got, want)
	}
	roles, err := accounts.ParseRoles(strings.NewReader(rolesFile(scopes)), "pool-roles")
	if err != nil {
		t.Fatal(err)
	}
	if len(roles) != 3 {
		t.Errorf("roles %v: want the 3 pools not in the default account", roles)
	}
	for _, s := range scopes[1:] {
		if roles[s.Pool].Account != s.Account {
			t.Errorf("pool %s: role %+v, want account %s", s.Pool, roles[s.Pool], s.Account)
		}
	}
	if _, ok := roles[scopes[0].Pool]; ok {
		t.Errorf("the default credentials' pool has a role")
	}
	if n := len(accountRegions(30)); n != 30 {
		t.Errorf("accountRegions(30): %d", n)
	}
}

// TestAccountsBody: the jobs go to each account-Region in turn, each user
// once.
func TestAccountsBody(t *testing.T) {
	t.Parallel()
	scopes := accountRegions(3)
	body := accountsBody(scopes)
	seen := map[string]bool{}
	for i := range 9 {
		j, err := job.ParseJob([]byte(body(i)))
		if err != nil {
			t.Fatal(err)
		}
		if j.UserPoolID != scopes[i%3].Pool {
			t.Errorf("job %d in %s, want %s", i, j.UserPoolID, scopes[i%3].Pool)
		}
		seen[j.UserPoolID+"/"+j.Username] = true
	}
	if len(seen) != 9 {
		t.Errorf("%d distinct users in 9 jobs", len(seen))
	}
}

// TestAccountFigures: each account-Region's rate and throttles from the
// stand-in's counts; resets in another account-Region than the pool's
// are an error; the verdict checks the total and each account-Region.
func TestAccountFigures(t *testing.T) {
	t.Parallel()
	scopes := accountRegions(2)
	at := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	counts := map[string]cognitostub.ScopeStats{
		scopes[0].key(): {Calls: 31, Throttles: 1, Resets: 30, FirstReset: at, LastReset: at.Add(1 * time.Second)},
		scopes[1].key(): {Calls: 30, Resets: 30, FirstReset: at, LastReset: at.Add(29 * time.Second / 30)},
	}
	r := &row{RateShare: 0.96}
	r.accountFigures(scopes, counts, 30)
	if r.Error != "" || len(r.ScopeFigures) != 2 {
		t.Fatalf("row %+v: want two account-Regions, no error", r)
	}
	if f := r.ScopeFigures[0]; f.Rate != 29 || f.Throttles != 1 || !strings.HasPrefix(f.Target, "missed: throttled 3.23%") {
		t.Errorf("first: %+v, want 29/s, 1 throttle of 31 and the target missed", f)
	}
	if r.LowestScope != scopes[0].key() || r.WorstScope != scopes[0].key() || r.ScopeFigures[1].Target != "met" {
		t.Errorf("lowest %s, worst %s, second %q", r.LowestScope, r.WorstScope, r.ScopeFigures[1].Target)
	}
	r.judge(judgeAccounts)
	if !strings.Contains(r.Target, "123456789012/us-east-1 throttled 3.23%") || strings.Contains(r.Target, "rate") {
		t.Errorf("target %q: want the first account-Region's throttles, the rate met", r.Target)
	}

	counts["999999999999/us-east-1"] = cognitostub.ScopeStats{Calls: 1, Resets: 1}
	counts[scopes[1].key()] = cognitostub.ScopeStats{Calls: 29, Resets: 29}
	wrong := &row{}
	wrong.accountFigures(scopes, counts, 30)
	if !strings.Contains(wrong.Error, "100000000001/us-east-1: 29 resets of 30") || !strings.Contains(wrong.Error, "999999999999/us-east-1: calls") {
		t.Errorf("error %q: want the short account-Region and the stray one", wrong.Error)
	}
}

// TestLastFlag: the label names the --concurrency resetq runs with, which
// -resetq-args may replace.
func TestLastFlag(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--concurrency", "64"}, "64"},
		{[]string{"--concurrency", "64", "--rate", "3", "--concurrency", "128"}, "128"},
		{[]string{"--concurrency", "64", "--concurrency=96"}, "96"},
		{[]string{"--rate", "30"}, ""},
		{[]string{"--concurrency"}, ""},
	} {
		if got := lastFlag(c.args, "--concurrency"); got != c.want {
			t.Errorf("lastFlag(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "4242 (node main) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 11 0 123 0 0"
	f, ok := parseStat(line)
	if !ok || f.comm != "node main" || f.ppid != 17 || f.cpu != 3*time.Second {
		t.Errorf("parseStat: %+v %v, want node main, ppid 17, 3s", f, ok)
	}
	if _, ok := parseStat("4242 node S"); ok {
		t.Error("no parentheses: parsed")
	}
	c := parseCPUStat("cpu  100 0 50 800 50 0 0 0 7 7")
	if c.total != 1000 || c.idle != 850 {
		t.Errorf("parseCPUStat: %+v, want total 1000 (guests left out), idle 850", c)
	}
	if got := (cpuStat{total: 1200, idle: 950}).busySince(c); got != 0.5 {
		t.Errorf("busy %v, want 0.5", got)
	}
}

// TestProfilesRunAccounts: each profile that runs scenario 7 says how.
func TestProfilesRunAccounts(t *testing.T) {
	t.Parallel()
	for name, p := range profiles {
		if !slices.Contains(p.scenarios, "7") {
			continue
		}
		if p.accountsShipped < 2 || p.accountsJobs <= 0 || !slices.IsSorted(p.accountsSteps) {
			t.Errorf("profile %s runs scenario 7 with %d account-Regions, %d jobs each, steps %v", name, p.accountsShipped, p.accountsJobs, p.accountsSteps)
		}
	}
}

// TestProcessEnvSTS: every resetq process calls the stand-in's STS, never
// AWS's.
func TestProcessEnvSTS(t *testing.T) {
	t.Parallel()
	w := &world{dir: t.TempDir(), proxy: &awsproxy.Server{URL: "http://sqs"}, stub: &cognitostub.Server{URL: "http://stub"}}
	if !slices.Contains(w.processEnv(), "AWS_ENDPOINT_URL_STS=http://stub") {
		t.Errorf("env %v: want AWS_ENDPOINT_URL_STS at the stand-in", w.processEnv())
	}
}
