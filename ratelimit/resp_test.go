package ratelimit

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestReadReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     any
		err      string // substring of the error; "" for none
		rest     string // what must be left unread
	}{
		{name: "simple string", in: "+OK\r\n", want: "OK"},
		{name: "error", in: "-NOSCRIPT No matching script\r\n", want: redisError("NOSCRIPT No matching script")},
		{name: "integer", in: ":1000\r\n", want: int64(1000)},
		{name: "negative integer", in: ":-3\r\n", want: int64(-3)},
		{name: "bulk", in: "$5\r\nhello\r\n", want: "hello"},
		{name: "bulk with CRLF inside", in: "$4\r\na\r\nb\r\n", want: "a\r\nb"},
		{name: "empty bulk", in: "$0\r\n\r\n", want: ""},
		{name: "null bulk", in: "$-1\r\n", want: nil},
		{name: "null array", in: "*-1\r\n", want: nil},
		{name: "empty array", in: "*0\r\n", want: []any{}},
		{name: "GCRA allowed", in: "*2\r\n:1\r\n:0\r\n", want: []any{int64(1), int64(0)}},
		{name: "GCRA wait", in: "*2\r\n:0\r\n:33333\r\n", want: []any{int64(0), int64(33333)}},
		{name: "nested mixed", in: "*3\r\n$1\r\na\r\n*1\r\n-ERR x\r\n$-1\r\n", want: []any{"a", []any{redisError("ERR x")}, nil}},
		{name: "one reply at a time", in: ":1\r\n:2\r\n", want: int64(1), rest: ":2\r\n"},
		{name: "empty input", in: "", err: "EOF"},
		{name: "no CR", in: ":1\n", err: "malformed"},
		{name: "bad integer", in: ":x\r\n", err: "bad integer"},
		{name: "bad bulk length", in: "$x\r\n", err: "bad bulk length"},
		{name: "bulk length below -1", in: "$-2\r\n", err: "bad bulk length"},
		{name: "huge bulk length", in: "$999999999999\r\n", err: "bad bulk length"},
		{name: "short bulk", in: "$5\r\nhel", err: "EOF"},
		{name: "bulk without CRLF", in: "$2\r\nhiXX", err: "not terminated"},
		{name: "bad array length", in: "*x\r\n", err: "bad array length"},
		{name: "short array", in: "*2\r\n:1\r\n", err: "EOF"},
		{name: "unknown type", in: "%1\r\n", err: "unknown reply type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tc.in))
			got, err := readReply(r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("readReply(%q) = %#v, %v; want error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("readReply(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("readReply(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
			if rest, _ := io.ReadAll(r); string(rest) != tc.rest {
				t.Errorf("left %q unread, want %q", rest, tc.rest)
			}
		})
	}
}

// FuzzReadReply: no input makes the decoder panic or hang, and what it
// accepts from a well-formed encoding comes back the same.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "-ERR x\r\n", ":12\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*2\r\n:1\r\n:0\r\n", "*1\r\n*1\r\n$0\r\n\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = readReply(bufio.NewReader(strings.NewReader(in)))
		// A bulk string of in round-trips, whatever bytes it holds.
		enc := appendCommand(nil, in)
		got, err := readReply(bufio.NewReader(strings.NewReader(string(enc))))
		if err != nil || !reflect.DeepEqual(got, []any{in}) {
			t.Fatalf("%q encoded as %q read back as %#v, %v", in, enc, got, err)
		}
	})
}

func TestAppendCommand(t *testing.T) {
	t.Parallel()
	got := string(appendCommand(nil, "EVALSHA", "abc", "1", "k", ""))
	want := "*5\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n1\r\n$1\r\nk\r\n$0\r\n\r\n"
	if got != want {
		t.Errorf("appendCommand = %q, want %q", got, want)
	}
}

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
		{in: "rediss://h:1", err: "TLS is not supported"},
		{in: "http://h:1", err: "scheme"},
		{in: "h:6379", err: "scheme"},
		{in: "redis://", err: "no host"},
		{in: "redis://h:0", err: "bad port"},
		{in: "redis://h:99999", err: "bad port"},
		{in: "redis://h:1/x", err: "not a number"},
		{in: "redis://h:1/-1", err: "not a number"},
		{in: "redis://h:1?db=2", err: "not supported"},
		{in: "redis://:s3cret@h:1/x", err: "not a number"},
		// URLs that url.Parse refuses: its error quotes the whole URL.
		{in: "redis://:s3cret@h:1x", err: `invalid port ":1x"`},
		{in: "redis://u:s3cret@h:6379/0\x7f", err: "invalid control character"},
		{in: "redis://u:s3cret@[::1", err: "missing ']'"},
		{in: "redis://:s3cret@h%zz:1", err: "invalid URL escape"},
		{in: ":s3cret@h", err: "missing protocol scheme"},
		{in: "redis://:s3cret%zz@h:1", err: "the password does not parse"},
		{in: "redis://:s3cret ok@h:1", err: "the password does not parse"},
		{in: "redis://:s3cret/x@h:1", err: "the password does not parse"},
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
	a, _ := ParseRedisURL("redis://:s3cret@h:1/2")
	if s := a.String(); strings.Contains(s, "s3cret") || s != "redis://h:1/2" {
		t.Errorf("String() = %q: want the address without the password", s)
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
	} {
		if got := redactPassword(in); got != want {
			t.Errorf("redactPassword(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSetupCommands: AUTH names the user only for a real ACL user, so a
// URL with no user or the user "default" works on Redis before 6, which
// knows only AUTH password.
func TestSetupCommands(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want [][]string
	}{
		{"redis://h", nil},
		{"redis://:pw@h", [][]string{{"AUTH", "pw"}}},
		{"redis://default:pw@h", [][]string{{"AUTH", "pw"}}},
		{"redis://worker:pw@h", [][]string{{"AUTH", "worker", "pw"}}},
		{"redis://:pw@h/3", [][]string{{"AUTH", "pw"}, {"SELECT", "3"}}},
		{"redis://h/3", [][]string{{"SELECT", "3"}}},
	} {
		a, err := ParseRedisURL(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := setupCommands(a); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: setup %q, want %q", tc.url, got, tc.want)
		}
	}
}

// fakeRedis is a TCP server that reads one command at a time and answers
// with reply(command); it can drop its connection.
type fakeRedis struct {
	ln    net.Listener
	cmds  chan []string
	reply func(cmd []string) string
}

func startFakeRedis(t *testing.T, reply func([]string) string) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{ln: ln, cmds: make(chan []string, 100), reply: reply}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(conn)
		}
	}()
	return f
}

func (f *fakeRedis) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		v, err := readReply(r)
		if err != nil {
			return
		}
		var cmd []string
		for _, a := range v.([]any) {
			cmd = append(cmd, a.(string))
		}
		f.cmds <- cmd
		out := f.reply(cmd)
		if out == "" { // drop the connection
			return
		}
		if _, err := conn.Write([]byte(out)); err != nil {
			return
		}
	}
}

// TestClientAuthSelectReconnect: the client authenticates and selects the
// URL's database on each new connection, keeps the connection after an
// error reply, and dials again after the connection broke.
func TestClientAuthSelectReconnect(t *testing.T) {
	t.Parallel()
	f := startFakeRedis(t, func(cmd []string) string {
		switch cmd[0] {
		case "AUTH", "SELECT":
			return "+OK\r\n"
		case "DROP":
			return ""
		case "BAD":
			return "-ERR unknown command\r\n"
		}
		return ":7\r\n"
	})
	c := &respClient{addr: RedisAddr{Addr: f.ln.Addr().String(), Password: "pw", DB: 3}, timeout: 2 * time.Second}
	defer c.Close()
	ctx := context.Background()
	next := func() []string {
		t.Helper()
		select {
		case cmd := <-f.cmds:
			return cmd
		case <-time.After(5 * time.Second):
			t.Fatal("the fake server got no command")
			return nil
		}
	}
	expect := func(want ...string) {
		t.Helper()
		if got := next(); !reflect.DeepEqual(got, want) {
			t.Fatalf("server got %q, want %q", got, want)
		}
	}

	if v, err := c.do(ctx, "GET", "k"); err != nil || v != int64(7) {
		t.Fatalf("GET = %v, %v", v, err)
	}
	expect("AUTH", "pw")
	expect("SELECT", "3")
	expect("GET", "k")

	var re redisError
	if _, err := c.do(ctx, "BAD"); !errors.As(err, &re) {
		t.Fatalf("BAD: %v, want a redisError", err)
	}
	expect("BAD")
	if _, err := c.do(ctx, "GET", "k"); err != nil {
		t.Fatal(err)
	}
	expect("GET", "k") // same connection: no AUTH again

	if _, err := c.do(ctx, "DROP"); err == nil || errors.As(err, &re) {
		t.Fatalf("DROP: %v, want an I/O error", err)
	}
	expect("DROP")
	if v, err := c.do(ctx, "GET", "k"); err != nil || v != int64(7) {
		t.Fatalf("GET after a dropped connection = %v, %v", v, err)
	}
	expect("AUTH", "pw")
	expect("SELECT", "3")
	expect("GET", "k")
}

// TestClientAuthRedis5: against a server that knows only AUTH password,
// as Redis before 6, a URL with no user or the user "default" connects; a
// real ACL user gets Redis 5's error.
func TestClientAuthRedis5(t *testing.T) {
	t.Parallel()
	f := startFakeRedis(t, func(cmd []string) string {
		switch {
		case cmd[0] == "AUTH" && len(cmd) != 2:
			return "-ERR wrong number of arguments for 'auth' command\r\n"
		case cmd[0] == "AUTH" && cmd[1] != "pw":
			return "-ERR invalid password\r\n"
		}
		return "+OK\r\n"
	})
	for _, user := range []string{"", "default"} {
		a := redisAddr(t, "redis://"+user+":pw@"+f.ln.Addr().String())
		c := &respClient{addr: a, timeout: 2 * time.Second}
		if v, err := c.do(context.Background(), "PING"); err != nil || v != "OK" {
			t.Errorf("user %q: PING = %v, %v", user, v, err)
		}
		c.Close()
	}
	c := &respClient{addr: redisAddr(t, "redis://worker:pw@"+f.ln.Addr().String()), timeout: 2 * time.Second}
	defer c.Close()
	if _, err := c.do(context.Background(), "PING"); err == nil || !strings.Contains(err.Error(), "wrong number of arguments") {
		t.Errorf("user worker: %v, want Redis 5's error for AUTH user pass", err)
	}
}

// TestClientAuthRequirepass: a real redis-server with requirepass accepts
// the URL forms of a password without an ACL user.
func TestClientAuthRequirepass(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	admin := &respClient{addr: redisAddr(t, srv.URL), timeout: 5 * time.Second}
	defer admin.Close()
	ctx := context.Background()
	if _, err := admin.do(ctx, "CONFIG", "SET", "requirepass", "s3cret"); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"redis://:s3cret@" + srv.Addr + "/1", "redis://default:s3cret@" + srv.Addr + "/1"} {
		c := &respClient{addr: redisAddr(t, url), timeout: 5 * time.Second}
		if v, err := c.do(ctx, "PING"); err != nil || v != "PONG" {
			t.Errorf("%s: PING = %v, %v", strings.Replace(url, "s3cret", "xxxxx", 1), v, err)
		}
		c.Close()
	}
	c := &respClient{addr: redisAddr(t, "redis://:wrong@"+srv.Addr), timeout: 5 * time.Second}
	defer c.Close()
	if _, err := c.do(ctx, "PING"); err == nil {
		t.Error("a wrong password was accepted")
	}
}

// TestClientAuthRefused: a refused AUTH is an error of the call, and the
// password is not in it.
func TestClientAuthRefused(t *testing.T) {
	t.Parallel()
	f := startFakeRedis(t, func([]string) string { return "-WRONGPASS invalid username-password pair\r\n" })
	c := &respClient{addr: RedisAddr{Addr: f.ln.Addr().String(), Username: "u", Password: "s3cret"}, timeout: 2 * time.Second}
	defer c.Close()
	_, err := c.do(context.Background(), "GET", "k")
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v, want WRONGPASS without the password", err)
	}
}

// TestClientTimeout: a server that never answers costs the call its
// timeout, not more.
func TestClientTimeout(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	f := startFakeRedis(t, func([]string) string { <-block; return "" })
	c := &respClient{addr: RedisAddr{Addr: f.ln.Addr().String()}, timeout: 100 * time.Millisecond}
	defer c.Close()
	start := time.Now()
	_, err := c.do(context.Background(), "GET", "k")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v with a 100ms timeout", took)
	}
}

// TestClientCanceledMidCommand: a context canceled while the client waits
// for a reply ends the call at once with the context's error, and the
// next call dials a fresh connection.
func TestClientCanceledMidCommand(t *testing.T) {
	t.Parallel()
	received := make(chan struct{}, 1)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	f := startFakeRedis(t, func(cmd []string) string {
		if cmd[0] == "SLOW" {
			received <- struct{}{}
			<-block
			return ""
		}
		return "+OK\r\n"
	})
	c := &respClient{addr: RedisAddr{Addr: f.ln.Addr().String()}, timeout: time.Minute}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.do(ctx, "SLOW"); done <- err }()
	<-received
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not end with its context")
	}
	if v, err := c.do(context.Background(), "PING"); err != nil || v != "OK" {
		t.Fatalf("next call = %v, %v", v, err)
	}
}
