package ratelimit

// A minimal Redis client: RESP2 over one TCP connection, enough for the
// fleet limiter (AUTH, SELECT, EVALSHA, EVAL). It is written on the
// standard library so resetq needs no Redis module for one Lua script.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RedisAddr is a parsed --redis-url.
type RedisAddr struct {
	Addr     string // host:port
	Username string // for AUTH username password (Redis 6 ACLs); empty or "default" sends AUTH password
	Password string
	DB       int
}

// String is the address with the database, never the password.
func (a RedisAddr) String() string { return fmt.Sprintf("redis://%s/%d", a.Addr, a.DB) }

// ParseRedisURL parses redis://[[user]:password@]host[:port][/db]. The port
// defaults to 6379 and the database to 0. TLS (rediss://) is not supported.
func ParseRedisURL(raw string) (RedisAddr, error) {
	shown := redactPassword(raw) // url.Parse's errors quote the whole URL
	u, err := url.Parse(raw)
	if err != nil {
		if _, err := url.Parse(shown); err != nil {
			return RedisAddr{}, fmt.Errorf("redis URL: %w", err)
		}
		return RedisAddr{}, fmt.Errorf("redis URL %s: the password does not parse (percent-encode %%, @, /, ?, # and spaces in it)", shown)
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		return RedisAddr{}, fmt.Errorf("redis URL %s: TLS is not supported, use redis://", shown)
	default:
		return RedisAddr{}, fmt.Errorf("redis URL %s: scheme %q, want redis://", shown, u.Scheme)
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
	a := RedisAddr{Addr: net.JoinHostPort(u.Hostname(), port)}
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

// redisError is an error reply (-ERR ..., -NOSCRIPT ...): Redis answered,
// the connection is fine.
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

// readReply reads one RESP2 reply: an int64 (:), a string (+ or $), nil
// ($-1 or *-1), a redisError (-), or a []any (*) of those.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("redis: malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return redisError(body), nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: bad integer reply %q", body)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > 512<<20 {
			return nil, fmt.Errorf("redis: bad bulk length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return nil, errors.New("redis: bulk string not terminated by CRLF")
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > 1<<20 {
			return nil, fmt.Errorf("redis: bad array length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return arr, nil
	}
	return nil, fmt.Errorf("redis: unknown reply type %q", kind)
}

// appendCommand appends args as a RESP array of bulk strings.
func appendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// respClient sends commands over one connection, one at a time. It dials
// on first use and again after any I/O or protocol error (an error reply
// keeps the connection). Safe for concurrent use.
type respClient struct {
	addr    RedisAddr
	timeout time.Duration // for the dial, and for each command's write+read

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
}

// do runs one command and returns its reply. A Redis error reply is
// returned as a redisError error.
func (c *respClient) do(ctx context.Context, args ...string) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.conn == nil {
		if err := c.dial(ctx); err != nil {
			return nil, err
		}
	}
	v, err := c.roundTrip(ctx, args)
	if err != nil {
		c.closeLocked()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if e, ok := v.(redisError); ok {
		return nil, e
	}
	return v, nil
}

func (c *respClient) roundTrip(ctx context.Context, args []string) (any, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// A context that ends mid-command cuts the wait short.
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.buf = appendCommand(c.buf[:0], args...)
	if _, err := c.conn.Write(c.buf); err != nil {
		return nil, fmt.Errorf("redis %s: %w", c.addr.Addr, err)
	}
	v, err := readReply(c.r)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", c.addr.Addr, err)
	}
	return v, nil
}

// dial connects, then authenticates and selects the database the URL names.
func (c *respClient) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, "tcp", c.addr.Addr)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	c.conn, c.r = conn, bufio.NewReader(conn)
	for _, cmd := range setupCommands(c.addr) {
		v, err := c.roundTrip(ctx, cmd)
		if err == nil {
			if e, ok := v.(redisError); ok {
				err = fmt.Errorf("redis %s: %s: %w", c.addr.Addr, cmd[0], e)
			}
		}
		if err != nil {
			c.closeLocked()
			return err
		}
	}
	return nil
}

// setupCommands are the commands a new connection sends first: AUTH, then
// SELECT. AUTH names the user only for a real ACL user, not for none or
// "default": Redis before 6 knows only AUTH password.
func setupCommands(a RedisAddr) [][]string {
	var setup [][]string
	switch {
	case a.Username != "" && a.Username != "default":
		setup = append(setup, []string{"AUTH", a.Username, a.Password})
	case a.Password != "":
		setup = append(setup, []string{"AUTH", a.Password})
	}
	if a.DB != 0 {
		setup = append(setup, []string{"SELECT", strconv.Itoa(a.DB)})
	}
	return setup
}

func (c *respClient) closeLocked() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

// Close closes the connection, if any. The client dials again on next use.
func (c *respClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
	return nil
}
