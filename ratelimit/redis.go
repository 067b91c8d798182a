package ratelimit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisAddr is a parsed --redis-url.
type RedisAddr struct {
	Addr     string // host:port; for Sentinels, a comma-separated list
	Username string // a Redis 6 ACL user; empty or "default" sends AUTH password
	Password string
	DB       int
	TLS      bool // rediss://
}

// String is the URL without the password.
func (a RedisAddr) String() string {
	scheme := "redis"
	if a.TLS {
		scheme = "rediss"
	}
	return fmt.Sprintf("%s://%s/%d", scheme, a.Addr, a.DB)
}

// Addrs are the host:port pairs of Addr.
func (a RedisAddr) Addrs() []string { return strings.Split(a.Addr, ",") }

// ParseRedisURL parses redis[s]://[[user]:password@]host[:port][/db]. The
// port defaults to 6379 and the database to 0; rediss:// is TLS.
func ParseRedisURL(raw string) (RedisAddr, error) { return parseRedisURL(raw, "6379", false) }

// ParseSentinelURL is ParseRedisURL for Redis Sentinels: the host may be
// a comma-separated list of them (host[:port],host[:port]), each port
// defaulting to 26379.
func ParseSentinelURL(raw string) (RedisAddr, error) { return parseRedisURL(raw, "26379", true) }

// parseRedisURL is ParseRedisURL with defaultPort, and a list of hosts if
// sentinels.
func parseRedisURL(raw, defaultPort string, sentinels bool) (RedisAddr, error) {
	shown := redactPassword(raw) // url.Parse's errors quote the whole URL
	var list []string
	if sentinels {
		raw, list = cutHosts(raw) // url.Parse takes one host
	}
	u, err := url.Parse(raw)
	if err != nil {
		if _, err := url.Parse(redactPassword(raw)); err != nil {
			return RedisAddr{}, fmt.Errorf("redis URL: %w", err)
		}
		return RedisAddr{}, fmt.Errorf("redis URL %s: the password does not parse (percent-encode %%, @, /, ?, # and spaces in it)", shown)
	}
	var a RedisAddr
	switch u.Scheme {
	case "redis":
	case "rediss":
		a.TLS = true
	default:
		return RedisAddr{}, fmt.Errorf("redis URL %s: scheme %q, want redis:// or rediss://", shown, u.Scheme)
	}
	if u.Hostname() == "" {
		return RedisAddr{}, fmt.Errorf("redis URL %s: no host", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return RedisAddr{}, fmt.Errorf("redis URL %s: query and fragment are not supported", shown)
	}
	hosts := [][2]string{{u.Hostname(), u.Port()}}
	if strings.Contains(u.Host, ",") {
		return RedisAddr{}, fmt.Errorf("redis URL %s: more than one host (a list of hosts names Sentinels)", shown)
	}
	if list != nil {
		hosts = hosts[:0]
		for _, h := range list {
			hosts = append(hosts, splitHost(h))
		}
	}
	addrs := make([]string, 0, len(hosts))
	for _, hp := range hosts {
		host, port := hp[0], hp[1]
		if host == "" {
			return RedisAddr{}, fmt.Errorf("redis URL %s: no host", shown)
		}
		if port == "" {
			port = defaultPort
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return RedisAddr{}, fmt.Errorf("redis URL %s: bad port %q", shown, port)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	a.Addr = strings.Join(addrs, ",")
	if u.User != nil {
		a.Username = u.User.Username()
		a.Password, _ = u.User.Password()
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if a.DB, err = strconv.Atoi(db); err != nil || a.DB < 0 {
			return RedisAddr{}, fmt.Errorf("redis URL %s: database %q is not a number", shown, db)
		}
	}
	return a, nil
}

// cutHosts returns raw with a comma-separated list of hosts cut to its
// first, and the list; raw and nil without a list.
func cutHosts(raw string) (string, []string) {
	i := strings.Index(raw, "//")
	if i < 0 {
		return raw, nil
	}
	start, end := i+2, len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	if at := strings.LastIndex(raw[start:end], "@"); at >= 0 {
		start += at + 1
	}
	if !strings.Contains(raw[start:end], ",") {
		return raw, nil
	}
	list := strings.Split(raw[start:end], ",")
	return raw[:start] + list[0] + raw[end:], list
}

// splitHost splits one host[:port] of a list; an IPv6 host is in brackets.
func splitHost(h string) [2]string {
	host, port := h, ""
	if i := strings.LastIndex(h, ":"); i >= 0 && !strings.HasSuffix(h, "]") {
		host, port = h[:i], h[i+1:]
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return [2]string{host, port}
}

// redactPassword replaces the password of a URL that may not parse with
// "xxxxx": what follows the first colon of the userinfo, which ends at the
// last @ after the scheme (a password may hold a raw / ? # or @).
func redactPassword(raw string) string {
	start := 0
	if i := strings.Index(raw, "//"); i >= 0 {
		start = i + 2
	}
	at := strings.LastIndex(raw[start:], "@")
	if at < 0 {
		return raw
	}
	colon := strings.Index(raw[start:start+at], ":")
	if colon < 0 {
		return raw
	}
	return raw[:start+colon+1] + "xxxxx" + raw[start+at:]
}

// LoadRedisCA reads the PEM certificates of --redis-ca-file into a pool
// for FleetConfig.RootCAs.
func LoadRedisCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("redis CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("redis CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// go-redis logs each failed dial; the Fleet already logs each switch to
// and from the local share, with the error, so these go to debug.
func init() { redis.SetLogger(debugLogger{}) }

// debugLogger sends go-redis's log lines to slog.Default at debug level.
type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// redisConn is how a Fleet reaches Redis: a server, a cluster, or the
// primary that Sentinels name.
type redisConn struct {
	Addr           RedisAddr
	Cluster        bool
	SentinelMaster string         // Addr lists Sentinels that know the primary by this name
	RootCAs        *x509.CertPool // nil: the system roots
	Timeout        time.Duration  // dial, read and write
}

// newRedisClient returns a pooled client for c; it dials on first use.
func newRedisClient(c redisConn) (redis.UniversalClient, error) {
	switch {
	case c.Cluster && c.Addr.DB != 0:
		return nil, errors.New("redis: a cluster has only database 0")
	case c.Cluster && c.SentinelMaster != "":
		return nil, errors.New("redis: a cluster is not reached through Sentinel")
	case c.SentinelMaster == "" && strings.Contains(c.Addr.Addr, ","):
		return nil, errors.New("redis: a list of hosts names Sentinels, and needs the master's name")
	}
	o := redisOptions(c)
	if c.SentinelMaster != "" {
		return newFailoverClient(c.SentinelMaster, c.Addr.Addrs(), o), nil
	}
	if !c.Cluster {
		return redis.NewClient(o), nil
	}
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, Protocol: o.Protocol,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		ContextTimeoutEnabled: true, MaxRetries: o.MaxRetries, DialerRetries: o.DialerRetries, TLSConfig: o.TLSConfig,
		DisableIdentity: true, MaintNotificationsConfig: o.MaintNotificationsConfig,
	}), nil
}

// newFailoverClient asks the Sentinels at addrs for master's primary and
// reaches it with o's settings. The Sentinels get the password as the
// default user's: one without a password takes any (HELLO AUTH default),
// so one URL fits Sentinels with the servers' password or none.
func newFailoverClient(master string, addrs []string, o *redis.Options) *redis.Client {
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: master, SentinelAddrs: addrs, SentinelPassword: o.Password,
		Username: o.Username, Password: o.Password, DB: o.DB, Protocol: o.Protocol,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		ContextTimeoutEnabled: true, MaxRetries: o.MaxRetries, DialerRetries: o.DialerRetries, TLSConfig: o.TLSConfig,
		DisableIdentity: true,
	})
}

// redisOptions are go-redis's options for c. A URL with no user or the
// user "default" authenticates with the password alone, which every
// Redis takes (before 6 there are no users); another user is an ACL user.
func redisOptions(c redisConn) *redis.Options {
	o := &redis.Options{
		Addr: c.Addr.Addr, Username: c.Addr.Username, Password: c.Addr.Password, DB: c.Addr.DB,
		// RESP2: every Redis speaks it, and the script's reply is an integer either way.
		Protocol:    2,
		DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
		ContextTimeoutEnabled: true,
		// One dial, and one retry on a fresh connection (a pooled one may
		// have died with a restarted Redis): more would multiply a dead
		// Redis's timeouts.
		MaxRetries:               1,
		DialerRetries:            1,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if o.Username == "default" {
		o.Username = ""
	}
	if c.Addr.TLS {
		// No ServerName: each dial checks the name it dials, which in a
		// cluster is each node's.
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.RootCAs}
	}
	return o
}
