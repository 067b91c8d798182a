package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/redisserver"
	"github.com/resetq/resetq/internal/redisserver/redistest"
	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/usagemetrics"
)

// TestFleetSharedQuota: two workers sharing one Redis limit of --rate
// equal to the proxy's AdminResetUserPassword quota finish a campaign with
// every user reset and nothing dead-lettered; together they stay at the
// quota, so few calls are throttled (without Redis each would pace at the
// quota on its own: twice what it allows). The fleet's minutes in Redis
// count both workers' reset calls, and the status checks (UserRead) are
// paced by a fleet of their own, on keys beside the reset's.
func TestFleetSharedQuota(t *testing.T) {
	t.Parallel()
	redistest.Need(t)
	e := testenv.New(t, "fleet")
	srv, err := redisserver.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	const quota = 8
	pool, users, bodies := e.ConfirmedUsers(e.East, "f", 40)
	e.Proxy.SetQuota("AdminResetUserPassword", quota)
	e.Send("fleet", bodies...)

	args := []string{"--exit-when-idle", "3s", "--rate", strconv.Itoa(quota), "--redis-url", srv.URL, "--fleet-size", "2"}
	a, b := e.Start(args...), e.Start(args...)
	for i, p := range []*testenv.Proc{a, b} {
		if code := p.Wait(t, 3*time.Minute); code != 0 {
			t.Fatalf("worker %d: exit code %d", i, code)
		}
	}
	e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users...)
	if dl := e.DrainDLQ(); len(dl) != 0 {
		t.Fatalf("%d jobs dead-lettered (first: %v)", len(dl), dl[0].Attrs)
	}
	for i, p := range []*testenv.Proc{a, b} {
		logs := p.Logs()
		if !strings.Contains(logs, "pacing by a fleet-wide limit in Redis") {
			t.Errorf("worker %d does not log that it paces by Redis", i)
		}
		if strings.Contains(logs, "redis unreachable") {
			t.Errorf("worker %d fell back to its local share with Redis up", i)
		}
	}
	st := e.Proxy.Stats()
	throttled, forwarded := st.Throttled["AdminResetUserPassword"], st.Forwarded["AdminResetUserPassword"]
	// One reset per delivery. SQS is at-least-once, and moto under two
	// workers' concurrent receives on one queue can hand the same message
	// to both (its receive is not atomic): each worker then resets once.
	extra := redeliveredResets(a.Logs() + b.Logs())
	if extra > 0 {
		t.Logf("moto delivered %d message(s) to both workers at once; each delivery reset its user", extra)
	}
	if forwarded != len(users)+extra {
		t.Errorf("%d resets reached Cognito, want exactly %d (one per user, and %d for messages delivered twice)", forwarded, len(users)+extra, extra)
	}
	// The fleet-wide limit is on Redis's clock, the proxy's window on its
	// own, with the worker's HTTP latency in between: a call can land a
	// little early in the proxy's window now and then. A quarter of the
	// campaign is far above that and far below what two unshared workers
	// at the quota each would see.
	if throttled > len(users)/4 {
		t.Errorf("the proxy throttled %d calls for %d users: the workers did not share the quota", throttled, len(users))
	}
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	scope := moto.Account + "/us-east-1"
	counts, err := admin.HGetAll(ctx, "resetq:calls:"+scope).Result()
	if err != nil {
		t.Fatal(err)
	}
	booked := 0
	for field, v := range counts {
		if n, err := strconv.Atoi(v); err == nil && strings.HasPrefix(field, "c") {
			booked += n
		}
	}
	if booked != throttled+forwarded {
		t.Errorf("the fleet's minutes in Redis count %d reset calls, want the %d that reached Cognito (%v)", booked, throttled+forwarded, counts)
	}
	if n, err := admin.Exists(ctx, "resetq:UserRead:pace:"+scope, "resetq:UserRead:calls:"+scope).Result(); err != nil || n != 2 {
		t.Errorf("EXISTS the status checks' pace and counts = %v, %v: they were not paced by a fleet", n, err)
	}
	t.Logf("two workers at a shared %d/s against a quota of %d/s: %d calls throttled, %d forwarded", quota, quota, throttled, forwarded)
}

// TestFleetRedisDown: a worker whose Redis is not there still finishes
// its jobs, at its local share, says so in its log and shows
// resetq_ratelimit_fallback 1 on /metrics.
func TestFleetRedisDown(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "fleetdown")
	pool, users, bodies := e.ConfirmedUsers(e.East, "d", 10)
	e.Send("fleetdown", bodies...)
	dead := "redis://" + testenv.FreeAddr(t) // nothing listens there

	p := e.Start("--exit-when-idle", "3s", "--rate", "10", "--fleet-size", "2", "--redis-url", dead)
	testenv.Eventually(t, 2*time.Minute, "resetq_ratelimit_fallback to be 1", func() bool {
		return p.Metric(t, "resetq_ratelimit_fallback") == 1
	})
	if code := p.Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users...)
	if dl := e.DrainDLQ(); len(dl) != 0 {
		t.Fatalf("%d jobs dead-lettered (first: %v)", len(dl), dl[0].Attrs)
	}
	// One warning per switch of each category's fleet: the reset's, and
	// the status checks' (on by default).
	warned := map[string]int{}
	for _, line := range strings.Split(p.Logs(), "\n") {
		if strings.Contains(line, "redis unreachable, pacing at local share") {
			_, category, _ := strings.Cut(line, "category=")
			category, _, _ = strings.Cut(category, " ")
			warned[category]++
			if category == usagemetrics.RecoveryCategory && !strings.Contains(line, "share=5") {
				t.Errorf("the reset's fallback warning does not give the local share 10/2 = 5: %s", line)
			}
		}
	}
	if warned[usagemetrics.RecoveryCategory] != 1 || warned[usagemetrics.ReadCategory] != 1 || len(warned) != 2 {
		t.Errorf("fallback warnings by category %v, want exactly one for the reset and one for the status checks", warned)
	}
}

// TestFleetFlags: bad fleet flags are usage errors (exit 2) before any
// AWS call, and their env twins are read.
func TestFleetFlags(t *testing.T) {
	t.Parallel()
	bin := testenv.Binary(t)
	base := []string{"work", "--queue-url", "https://sqs.us-east-1.amazonaws.com/123456789012/q", "--allow-any-pool"}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{args: []string{"--fleet-size", "0", "--redis-url", "redis://127.0.0.1:1"}, want: "--fleet-size must be at least 1"},
		{args: []string{"--fleet-size", "3"}, want: "--fleet-size only applies with --redis-url"},
		{args: []string{"--redis-url", "http://127.0.0.1:1"}, want: "want redis://"},
		{args: []string{"--redis-url", "redis://:s3cret@127.0.0.1:1/x"}, want: "not a number"},
		{args: []string{"--redis-url", "redis://127.0.0.1:1", "--redis-key-prefix", ""}, want: "--redis-key-prefix"},
		{args: []string{"--redis-ca-file", "ca.pem"}, want: "only apply with --redis-url"},
		{args: []string{"--redis-url", "redis://127.0.0.1:1", "--redis-ca-file", "ca.pem"}, want: "only applies to a rediss://"},
		{env: "RESETQ_REDIS_CLUSTER=true", want: "only apply with --redis-url"},
		{args: []string{"--redis-url", "rediss://127.0.0.1:1/2", "--redis-cluster"}, want: "a Redis Cluster has only database 0"},
		{env: "RESETQ_FLEET_SIZE=2", want: "--fleet-size only applies with --redis-url"},
		{args: []string{"--redis-sentinel-master", "mymaster"}, want: "only apply with --redis-url"},
		{args: []string{"--redis-url", "redis://127.0.0.1:26379", "--redis-cluster", "--redis-sentinel-master", "mymaster"}, want: "contradict each other"},
		{args: []string{"--redis-url", "redis://127.0.0.1:26379", "--redis-sentinel-master", " mymaster"}, want: "without surrounding spaces"},
		{args: []string{"--redis-url", "redis://:s3cret@127.0.0.1:1,127.0.0.2:1"}, want: "more than one host"},
		{args: []string{"--harm-budget", "0.5"}, want: "--harm-budget must be from 0 to 0.1"},
		{env: "RESETQ_HARM_BUDGET=-1", want: "--harm-budget must be from 0 to 0.1"},
	} {
		cmd := exec.Command(bin, append(base, tc.args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v %s: %v\n%s\nwant exit 2 with %q", tc.args, tc.env, err, out, tc.want)
		}
		if strings.Contains(string(out), "s3cret") {
			t.Errorf("%v: the output shows the Redis password:\n%s", tc.args, out)
		}
	}
}

// redeliveredResets counts, in workers' logs, the resets beyond the first
// of each message: deliveries of one message ID that each ended in a
// reset.
func redeliveredResets(logs string) int {
	seen := map[string]int{}
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, `msg="job done"`) || !strings.Contains(line, " outcome=reset ") {
			continue
		}
		for f := range strings.FieldsSeq(line) {
			if id, ok := strings.CutPrefix(f, "message_id="); ok {
				seen[id]++
			}
		}
	}
	extra := 0
	for _, n := range seen {
		extra += n - 1
	}
	return extra
}
