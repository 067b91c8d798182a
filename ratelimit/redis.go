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
	Addr     string // host:port
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

// ParseRedisURL parses redis[s]://[[user]:password@]host[:port][/db]. The
// port defaults to 6379 and the database to 0; rediss:// is TLS.
func ParseRedisURL(raw string) (RedisAddr, error) {
	shown := redactPassword(raw) // url.Parse's errors quote the whole URL
	u, err := url.Parse(raw)
	if err != nil {
		if _, err := url.Parse(shown); err != nil {
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
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return RedisAddr{}, fmt.Errorf("redis URL %s: bad port %q", shown, port)
	}
	a.Addr = net.JoinHostPort(u.Hostname(), port)
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

// redisConn is how a Fleet reaches Redis: a server or a cluster.
type redisConn struct {
	Addr    RedisAddr
	Cluster bool
	RootCAs *x509.CertPool // nil: the system roots
	Timeout time.Duration  // dial, read and write
}

// newRedisClient returns a pooled client for c; it dials on first use.
func newRedisClient(c redisConn) (redis.UniversalClient, error) {
	if c.Cluster && c.Addr.DB != 0 {
		return nil, errors.New("redis: a cluster has only database 0")
	}
	o := redisOptions(c)
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
