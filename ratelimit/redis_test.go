package ratelimit

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resetq/resetq/internal/redisserver"
	"github.com/resetq/resetq/internal/redisserver/redistest"
)

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want RedisAddr
		err  string
	}{
		{in: "redis://127.0.0.1:6380", want: RedisAddr{Addr: "127.0.0.1:6380"}},
		{in: "redis://cache.internal", want: RedisAddr{Addr: "cache.internal:6379"}},
		{in: "redis://:s3cret@h:1/2", want: RedisAddr{Addr: "h:1", Password: "s3cret", DB: 2}},
		{in: "redis://worker:s3cret@h:1/", want: RedisAddr{Addr: "h:1", Username: "worker", Password: "s3cret"}},
		{in: "redis://[::1]:7000/0", want: RedisAddr{Addr: "[::1]:7000"}},
		{in: "rediss://h:1", want: RedisAddr{Addr: "h:1", TLS: true}},
		{in: "rediss://worker:s3cret@master.x.cache.amazonaws.com", want: RedisAddr{Addr: "master.x.cache.amazonaws.com:6379", Username: "worker", Password: "s3cret", TLS: true}},
		{in: "http://h:1", err: "scheme"},
		{in: "h:6379", err: "scheme"},
		{in: "redis://", err: "no host"},
		{in: "redis://h:0", err: "bad port"},
		{in: "redis://h:99999", err: "bad port"},
		{in: "redis://h:1/x", err: "not a number"},
		{in: "redis://h:1/-1", err: "not a number"},
		{in: "redis://h:1?db=2", err: "not supported"},
		{in: "redis://:s3cret@h:1/x", err: "not a number"},
		{in: "rediss://:s3cret@h:1/x", err: "not a number"},
		// URLs that url.Parse refuses: its error quotes the whole URL.
		{in: "redis://:s3cret@h:1x", err: `invalid port ":1x"`},
		{in: "redis://u:s3cret@h:6379/0\x7f", err: "invalid control character"},
		{in: "redis://u:s3cret@[::1", err: "missing ']'"},
		{in: "redis://:s3cret@h%zz:1", err: "invalid URL escape"},
		{in: ":s3cret@h", err: "missing protocol scheme"},
		{in: "redis://:s3cret%zz@h:1", err: "the password does not parse"},
		{in: "redis://:s3cret ok@h:1", err: "the password does not parse"},
		{in: "redis://:s3cret/x@h:1", err: "the password does not parse"},
		{in: "rediss://u:s3cret/x@h:1", err: "the password does not parse"},
		// Typos that parse, but not as a user and password.
		{in: "redis//:s3cret@h", err: "scheme"},
		{in: "redis:s3cret@h", err: "no host"},
	} {
		got, err := ParseRedisURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRedisURL(%q) = %+v, %v; want error with %q", tc.in, got, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("ParseRedisURL(%q): the error shows the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRedisURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for in, want := range map[string]string{"redis://:s3cret@h:1/2": "redis://h:1/2", "rediss://u:s3cret@h:1": "rediss://h:1/0"} {
		a, _ := ParseRedisURL(in)
		if s := a.String(); s != want {
			t.Errorf("String() = %q, want %q: the address without the password", s, want)
		}
	}
}

func TestRedactPassword(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://h:1":               "redis://h:1",
		"redis://u@h:1":             "redis://u@h:1",
		"redis://u:pw@h:1/2":        "redis://u:xxxxx@h:1/2",
		"redis://:p@w/d@h:1x":       "redis://:xxxxx@h:1x",
		"redis://u:p w%zz@[::1]:1/": "redis://u:xxxxx@[::1]:1/",
		":pw@h":                     ":xxxxx@h",
		"redis:pw@h":                "redis:xxxxx@h",
		"rediss://u:pw@h":           "rediss://u:xxxxx@h",
	} {
		if got := redactPassword(in); got != want {
			t.Errorf("redactPassword(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedisOptions: go-redis sends AUTH with the password alone when the
// user is empty, so a URL with no user or the user "default" works on
// Redis before 6; TLS only for rediss://, checked against RootCAs.
func TestRedisOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url            string
		user, password string
		db             int
		tls            bool
	}{
		{url: "redis://h"},
		{url: "redis://:pw@h", password: "pw"},
		{url: "redis://default:pw@h", password: "pw"},
		{url: "redis://worker:pw@h/3", user: "worker", password: "pw", db: 3},
		{url: "rediss://worker:pw@h", user: "worker", password: "pw", tls: true},
	} {
		o := redisOptions(redisConn{Addr: redisAddr(t, tc.url), Timeout: time.Second})
		if o.Username != tc.user || o.Password != tc.password || o.DB != tc.db || (o.TLSConfig != nil) != tc.tls {
			t.Errorf("%s: user %q password %q db %d TLS %v", tc.url, o.Username, o.Password, o.DB, o.TLSConfig != nil)
		}
		if o.DialTimeout != time.Second || o.ReadTimeout != time.Second || o.WriteTimeout != time.Second || !o.ContextTimeoutEnabled {
			t.Errorf("%s: timeouts %v %v %v, context %v", tc.url, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled)
		}
	}
	if _, err := newRedisClient(redisConn{Addr: redisAddr(t, "redis://h/1"), Cluster: true}); err == nil {
		t.Error("a cluster with database 1 was accepted")
	}
}

func TestLoadRedisCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := LoadRedisCA(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("a missing file was accepted")
	}
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	if _, err := LoadRedisCA(junk); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("junk: %v", err)
	}
}

// adminClient is a plain go-redis client for a test to look at Redis.
func adminClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	c := redis.NewClient(redisOptions(redisConn{Addr: redisAddr(t, url), Timeout: 5 * time.Second}))
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClientAuthRequirepass: a real redis-server with requirepass accepts
// the URL forms of a password without an ACL user, also when it does not
// know HELLO (as Redis before 6, where go-redis falls back to AUTH
// password); a wrong password is refused without showing it.
func TestClientAuthRequirepass(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	ctx := context.Background()
	admin := adminClient(t, srv.URL)
	if err := admin.ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"redis://:s3cret@" + srv.Addr + "/1", "redis://default:s3cret@" + srv.Addr + "/1"} {
		c := adminClient(t, url)
		if v, err := c.Ping(ctx).Result(); err != nil || v != "PONG" {
			t.Errorf("%s: PING = %v, %v", redactPassword(url), v, err)
		}
	}
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, "redis://:wrong@"+srv.Addr), Rate: 100})
	if _, err := f.reserve(ctx, f.region("k")); err == nil || !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("a wrong password: %v, want WRONGPASS without the password", err)
	}
}

// TestClientAuthNoHello: against a server without HELLO (Redis before 6),
// a URL with the user "default" authenticates with AUTH password.
func TestClientAuthNoHello(t *testing.T) {
	t.Parallel()
	srv := startRedis(t, "--requirepass", "s3cret", "--rename-command", "HELLO", "")
	for _, url := range []string{"redis://:s3cret@" + srv.Addr, "redis://default:s3cret@" + srv.Addr} {
		f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, url), Rate: 100})
		if _, err := f.reserve(context.Background(), f.region("test-nohello")); err != nil {
			t.Errorf("%s: %v", redactPassword(url), err)
		}
	}
}

// fakeRedis is a TCP server that reads RESP commands and answers each
// with reply(command name); a reply "" leaves the command unanswered.
type fakeRedis struct {
	ln       net.Listener
	received chan string
}

func startFakeRedis(t *testing.T, reply func(cmd string) string) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{ln: ln, received: make(chan string, 100)}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); close(done) })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				go func() { <-done; conn.Close() }()
				r := bufio.NewReader(conn)
				for {
					cmd, err := readCommand(r)
					if err != nil {
						return
					}
					select {
					case f.received <- cmd:
					default:
					}
					if out := reply(cmd); out != "" {
						conn.Write([]byte(out))
					}
				}
			}()
		}
	}()
	return f
}

// readCommand reads one RESP array of bulk strings and returns its first
// element, upper-cased.
func readCommand(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || n < 1 {
		return "", errors.New("not an array")
	}
	var name string
	for i := range n {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil || size < 0 {
			return "", errors.New("not a bulk string")
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		if i == 0 {
			name = strings.ToUpper(string(buf[:size]))
		}
	}
	return name, nil
}

// TestClientTimeout: a server that never answers costs a call about its
// timeout (one try and one retry), not more.
func TestClientTimeout(t *testing.T) {
	t.Parallel()
	f := startFakeRedis(t, func(string) string { return "" })
	fl := newTestFleet(t, FleetConfig{Redis: RedisAddr{Addr: f.ln.Addr().String()}, Rate: 100, Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := fl.reserve(context.Background(), fl.region("k"))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v with a 100ms timeout", took)
	}
}

// TestClientCanceledMidCommand: a Wait whose context is canceled while
// Redis does not answer ends with the context's error, within the command
// timeout (go-redis reads with a deadline, not the context), and is not a
// Redis failure.
func TestClientCanceledMidCommand(t *testing.T) {
	t.Parallel()
	f := startFakeRedis(t, func(cmd string) string {
		if cmd == "HELLO" {
			return "-ERR unknown command 'HELLO'\r\n"
		}
		return "" // EVALSHA: never answered
	})
	var fb fallbackLog
	fl := newTestFleet(t, FleetConfig{Redis: RedisAddr{Addr: f.ln.Addr().String()}, Rate: 100, Timeout: time.Second, OnFallback: fb.record})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fl.Wait(ctx, "us-east-1") }()
	for cmd := range f.received {
		if cmd == "EVALSHA" {
			break
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not end with its context")
	}
	if got := fb.get(); len(got) != 0 {
		t.Errorf("OnFallback calls %v after a canceled wait", got)
	}
}

// workerACL is the least an ACL user needs for the fleet limiter: the
// script, and the commands it runs, on the prefix's keys.
var workerACL = []any{"on", ">s3cret", "~test:*", "+evalsha", "+eval", "+get", "+set", "+time", "+hmget", "+hset", "+pexpire", "+watch", "+unwatch", "+multi", "+exec", "+discard"}

// TestFleetACLUser: an ACL user with only the fleet's commands and keys
// reaches Redis (AUTH user password); a wrong password is refused without
// showing it, and a key outside the user's pattern is refused.
func TestFleetACLUser(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	ctx := context.Background()
	if err := adminClient(t, srv.URL).Do(ctx, append([]any{"ACL", "SETUSER", "worker"}, workerACL...)...).Err(); err != nil {
		t.Fatal(err)
	}
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, "redis://worker:s3cret@"+srv.Addr), KeyPrefix: "test", Rate: 100,
		Pace: Config{HarmBudget: 0.005}})
	if err := f.Wait(ctx, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	// The usage minutes: read and written with the same commands.
	f.Observe("us-east-1", []Usage{{Minute: time.Now().Truncate(time.Minute).Add(-3 * time.Minute), Calls: 600}})
	if f.inFallback() {
		t.Error("the ACL user's Observe failed")
	}
	if n, err := adminClient(t, srv.URL).Exists(ctx, "test:usage:us-east-1").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS test:usage:us-east-1 = %v, %v: the usage state was not written", n, err)
	}
	if _, err := f.reserve(ctx, f.region("eu-west-1")); err != nil {
		t.Errorf("the ACL user: %v", err)
	}
	if _, err := f.reserve(ctx, &fleetRegion{keys: []string{"other:ratelimit:r", "other:pace:r", "other:calls:r", "other:usage:r"}, rate: 100}); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("a key outside ~test:*: %v, want NOPERM", err)
	}
	wrong := newTestFleet(t, FleetConfig{Redis: redisAddr(t, "redis://worker:wr0ng@"+srv.Addr), Rate: 100})
	if _, err := wrong.reserve(ctx, wrong.region("test-k")); err == nil || !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "wr0ng") {
		t.Errorf("a wrong password: %v, want WRONGPASS without the password", err)
	}
}

// TestFleetTLS: a rediss:// URL reaches a TLS-only server whose CA is
// given (--redis-ca-file), here with an ACL user as on ElastiCache; the
// system roots do not know a test CA, and redis:// does not speak TLS, so
// both fail, and the fleet falls back to its local share.
func TestFleetTLS(t *testing.T) {
	t.Parallel()
	redistest.NeedTLS(t)
	ctx := context.Background()
	srv, err := redisserver.StartTLS(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	roots, err := LoadRedisCA(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(redisOptions(redisConn{Addr: redisAddr(t, srv.URL), RootCAs: roots, Timeout: 5 * time.Second}))
	defer admin.Close()
	if err := admin.Do(ctx, append([]any{"ACL", "SETUSER", "worker"}, workerACL...)...).Err(); err != nil {
		t.Fatal(err)
	}
	url := "rediss://worker:s3cret@" + srv.Addr
	if !strings.HasPrefix(srv.URL, "rediss://") {
		t.Fatalf("URL %q", srv.URL)
	}
	var fb fallbackLog
	f := newTestFleet(t, FleetConfig{Redis: redisAddr(t, url), RootCAs: roots, KeyPrefix: "test", Rate: 100, OnFallback: fb.record})
	for range 3 {
		if err := f.Wait(ctx, "us-east-1"); err != nil {
			t.Fatal(err)
		}
	}
	if got := fb.get(); len(got) != 0 {
		t.Errorf("OnFallback calls %v over TLS", got)
	}
	if n, err := admin.Exists(ctx, "test:ratelimit:us-east-1").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS the Region's key = %v, %v: the calls did not go through Redis", n, err)
	}

	system := newTestFleet(t, FleetConfig{Redis: redisAddr(t, url), Rate: 100})
	if _, err := system.reserve(ctx, system.region("test-k")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("the system roots: %v, want a certificate error", err)
	}
	plain := newTestFleet(t, FleetConfig{Redis: redisAddr(t, "redis://worker:s3cret@"+srv.Addr), Rate: 100, Timeout: time.Second})
	if _, err := plain.reserve(ctx, plain.region("test-k")); err == nil {
		t.Error("redis:// to a TLS-only server worked")
	}
}

// TestFleetCluster: through a three-node Redis Cluster, each Region's key
// is hash-tagged (one slot per Region), Regions land on different nodes
// and the client follows them from any seed node; two replicas seeded
// with different nodes share one limit.
func TestFleetCluster(t *testing.T) {
	t.Parallel()
	redistest.NeedCluster(t)
	ctx := context.Background()
	c, err := redisserver.StartCluster(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	const rate = 20.0
	var fb fallbackLog
	pacers := []*Fleet{
		newTestFleet(t, FleetConfig{Redis: redisAddr(t, c.Nodes[0].URL), Cluster: true, KeyPrefix: "test", Rate: rate, OnFallback: fb.record,
			Pace: Config{HarmBudget: 0.005}}),
		newTestFleet(t, FleetConfig{Redis: redisAddr(t, c.Nodes[2].URL), Cluster: true, KeyPrefix: "test", Rate: rate, OnFallback: fb.record,
			Pace: Config{HarmBudget: 0.005}}),
	}
	if k := pacers[0].Key("us-east-1"); k != "test:{us-east-1}:ratelimit" {
		t.Errorf("key %q, want test:{us-east-1}:ratelimit", k)
	}
	regions := []string{"us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1", "sa-east-1"}
	for _, p := range pacers {
		for _, r := range regions {
			if err := p.Wait(ctx, r); err != nil {
				t.Fatalf("%s: %v", r, err)
			}
		}
	}
	// Each Region's key is on the node that owns its slot; the Regions
	// above are spread over more than one node.
	nodes := map[string]bool{}
	for _, r := range regions {
		for _, n := range c.Nodes {
			cl := adminClient(t, n.URL)
			if v, err := cl.Do(ctx, "EXISTS", "test:{"+r+"}:ratelimit").Int(); err == nil && v == 1 {
				nodes[n.Addr] = true
			}
		}
	}
	if len(nodes) < 2 {
		t.Errorf("the Regions' keys are on %d node(s), want them spread: %v", len(nodes), nodes)
	}

	n, elapsed := paceFor(ctx, 1500*time.Millisecond, pacers, "us-east-1")
	// The Region's last slot before the run was booked up to an interval ahead.
	if limit := int64(rate*elapsed) + 1; n > limit || n == 0 {
		t.Errorf("%d calls admitted in %.2fs through the cluster, want 1 to rate*seconds+1 = %d", n, elapsed, limit)
	}
	// The usage minutes' transaction runs on the node of the Region's slot.
	for _, r := range regions {
		pacers[1].Observe(r, []Usage{{Minute: time.Now().Truncate(time.Minute).Add(-3 * time.Minute), Calls: 600}})
	}
	if got := fb.get(); len(got) != 0 {
		t.Errorf("OnFallback calls %v with the cluster up", got)
	}
}

// BenchmarkFleetReserve: one ask of the GCRA script through go-redis
// against a local redis-server, what each paced call costs on top of the
// wait.
func BenchmarkFleetReserve(b *testing.B) {
	redistest.Need(b)
	srv, err := redisserver.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	a, err := ParseRedisURL(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	f, err := NewFleet(FleetConfig{Redis: a, Rate: 1e6, Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.reserve(ctx, f.region("bench-ratelimit-us-east-1")); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFleetSentinel: through Redis Sentinel (a list whose first Sentinel
// is down), a fleet paces on the primary with the URL's password, which
// the Sentinel, that has none, takes too; when the primary dies, the
// Sentinel promotes the replica and the fleet, after at most a spell on
// its local share, books its slots there, and no Wait hangs.
func TestFleetSentinel(t *testing.T) {
	t.Parallel()
	redistest.NeedSentinel(t)
	ctx := context.Background()
	s, err := redisserver.StartSentinel(ctx, "resetq", "s3cret", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	addr, err := ParseSentinelURL("redis://:s3cret@" + dead + "," + s.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRedisURL("redis://:s3cret@" + dead + "," + s.Addrs[0]); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("ParseRedisURL of a list: %v, want an error without the password", err)
	}
	const rate = 20.0
	var fb fallbackLog
	f := newTestFleet(t, FleetConfig{Redis: addr, SentinelMaster: "resetq", KeyPrefix: "test", Rate: rate,
		Timeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond, OnFallback: fb.record})

	// (1) The fleet paces through the Sentinel, on the primary.
	n, elapsed := paceFor(ctx, 1500*time.Millisecond, []*Fleet{f}, "us-east-1")
	if limit := int64(rate*elapsed) + 1; n > limit || n == 0 {
		t.Errorf("%d calls admitted in %.2fs through the Sentinel, want 1 to rate*seconds+1 = %d", n, elapsed, limit)
	}
	if got := fb.get(); len(got) != 0 {
		t.Fatalf("OnFallback calls %v with the primary up", got)
	}
	if n, err := adminClient(t, "redis://:s3cret@"+s.Primary.Addr).Exists(ctx, "test:ratelimit:us-east-1").Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS the Region's key on the primary = %v, %v", n, err)
	}

	// (2) The primary dies while four callers wait; the Sentinel promotes
	// the replica and the fleet books its slots there.
	run, cancel := context.WithCancel(ctx)
	defer cancel()
	var during atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for f.Wait(run, "us-east-1") == nil {
				during.Add(1)
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	if err := s.Primary.Close(); err != nil {
		t.Fatal(err)
	}
	failover, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	if err := s.WaitPrimary(failover, s.Replica.Addr); err != nil {
		t.Fatal(err)
	}
	promoted := adminClient(t, "redis://:s3cret@"+s.Replica.Addr)
	for {
		if err := f.Wait(failover, "eu-west-1"); err != nil {
			t.Fatalf("a Wait after the failover: %v", err)
		}
		if n, err := promoted.Exists(ctx, "test:ratelimit:eu-west-1").Result(); err == nil && n == 1 {
			break
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the callers did not return after their context ended")
	}
	if during.Load() == 0 {
		t.Error("no call admitted while the primary failed over")
	}
	if got := fb.get(); len(got) > 0 && got[len(got)-1] {
		t.Errorf("OnFallback calls %v: still on the local share after the failover", got)
	}
	t.Logf("admitted %d during the failover; OnFallback %v", during.Load(), fb.get())
}

// TestParseSentinelURL: a list of Sentinels, each port defaulting to
// 26379; each host and port is checked; errors hide the password. A list
// is refused without Sentinel, by ParseRedisURL and by NewFleet.
func TestParseSentinelURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want RedisAddr
		err  string
	}{
		{in: "redis://s1", want: RedisAddr{Addr: "s1:26379"}},
		{in: "redis://:s3cret@s1:26380,s2/1", want: RedisAddr{Addr: "s1:26380,s2:26379", Password: "s3cret", DB: 1}},
		{in: "redis://[::1]:7000,[::2]", want: RedisAddr{Addr: "[::1]:7000,[::2]:26379"}},
		{in: "rediss://u:s3cret@s1:1,s2:2", want: RedisAddr{Addr: "s1:1,s2:2", Username: "u", Password: "s3cret", TLS: true}},
		{in: "redis://:s3cret@s1:1,,s2:2", err: "no host"},
		{in: "redis://:s3cret@s1:x,s2:2", err: "invalid port"},
		{in: "redis://:s3cret@s1:1,s2:x", err: "bad port"},
		{in: "redis://:s3cret@s1:0,s2:2", err: "bad port"},
		{in: "redis://:s3cret@s1,s2/x", err: "not a number"},
	} {
		got, err := ParseSentinelURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("ParseSentinelURL(%q) = %+v, %v; want error with %q, without the password", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSentinelURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseRedisURL("redis://:s3cret@s1,s2"); err == nil || !strings.Contains(err.Error(), "Sentinels") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("ParseRedisURL of a list: %v", err)
	}
	list := redisAddr(t, "redis://s1")
	list.Addr = "s1:26379,s2:26379"
	if _, err := NewFleet(FleetConfig{Redis: list, Rate: 1}); err == nil {
		t.Error("a list of hosts without SentinelMaster was accepted")
	}
	if _, err := NewFleet(FleetConfig{Redis: list, Rate: 1, SentinelMaster: "m", Cluster: true}); err == nil {
		t.Error("Sentinel with Cluster was accepted")
	}
}
