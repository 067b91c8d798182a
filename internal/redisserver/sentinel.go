package redisserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/resetq/resetq/internal/localserver"
)

// Sentinel is a primary, its replica, and Redis Sentinels that watch
// them, all on 127.0.0.1. A Sentinel declares the primary down after 1 s
// without an answer and fails over to the replica on its own (quorum 1).
type Sentinel struct {
	// Primary is the primary at start; Replica replicates it.
	Primary, Replica *Server
	// Master is the name the Sentinels know the primary by.
	Master string
	// Addrs are the Sentinels' host:port.
	Addrs []string
	// URL is redis://[:PASSWORD@]S1,S2,..., for --redis-url with
	// --redis-sentinel-master.
	URL string

	cli   string
	procs []*localserver.Process
	dirs  []string
}

// StartSentinel starts a primary and a replica (Start; with a password
// both require it) and n Sentinels that monitor them as master (they
// need no password themselves), and waits until the replica is in sync
// and each Sentinel sees the replica and the other Sentinels.
func StartSentinel(ctx context.Context, master, password string, n int) (*Sentinel, error) {
	cli, err := exec.LookPath(CLI)
	if err != nil {
		return nil, fmt.Errorf("%s not found on PATH; install it with: %s", CLI, InstallHint)
	}
	// No 5 s wait before a full sync (Redis 7's diskless default).
	args := []string{"--repl-diskless-sync-delay", "0"}
	if password != "" {
		args = append(args, "--requirepass", password, "--masterauth", password)
	}
	s := &Sentinel{Master: master, cli: cli}
	if s.Primary, err = Start(ctx, args...); err != nil {
		return nil, err
	}
	if s.Replica, err = Start(ctx, append(args, "--replicaof", "127.0.0.1", strconv.Itoa(s.Primary.port))...); err != nil {
		s.Close()
		return nil, err
	}
	for range n {
		if err := s.startOne(ctx, password); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.URL = "redis://" + strings.Join(s.Addrs, ",")
	if password != "" {
		s.URL = "redis://:" + password + "@" + strings.Join(s.Addrs, ",")
	}
	if err := s.waitReady(ctx, password, n); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// startOne starts one Sentinel on a free port, trying another port if
// the one picked was taken meanwhile.
func (s *Sentinel) startOne(ctx context.Context, password string) error {
	dir, err := os.MkdirTemp("", "redissentinel-")
	if err != nil {
		return fmt.Errorf("redisserver: %w", err)
	}
	s.dirs = append(s.dirs, dir)
	_, err = localserver.OnFreePort(ctx, func(port int) (struct{}, error) {
		p, err := s.run(ctx, dir, port, password)
		if err == nil {
			s.procs, s.Addrs = append(s.procs, p), append(s.Addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		}
		return struct{}{}, err
	})
	return err
}

// run writes a Sentinel's config (it rewrites the file as it learns) and
// starts it, waiting until it answers PING.
func (s *Sentinel) run(ctx context.Context, dir string, port int, password string) (*localserver.Process, error) {
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %q\nlogfile \"\"\ndaemonize no\n"+
		"sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %[3]s 1000\nsentinel failover-timeout %[3]s 5000\n",
		port, dir, s.Master, s.Primary.port)
	if password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", s.Master, password)
	}
	confFile := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("redisserver: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "sentinel.log"))
	if err != nil {
		return nil, fmt.Errorf("redisserver: %w", err)
	}
	defer logFile.Close() // the child holds its own copy
	cmd := exec.Command(s.Primary.bin, confFile, "--sentinel")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p, err := localserver.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s --sentinel: %w", s.Primary.bin, err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitReady(ctx, addr, nil, p); err != nil {
		p.Kill()
		return nil, fmt.Errorf("sentinel: %w; log: %s", err, localserver.LogTail(logFile.Name()))
	}
	return p, nil
}

// waitReady waits until the replica's link to the primary is up and each
// Sentinel says the master is ok with one replica and n-1 other Sentinels.
func (s *Sentinel) waitReady(ctx context.Context, password string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*readyTimeout)
	defer cancel()
	auth := []string{}
	if password != "" {
		auth = []string{"--no-auth-warning", "-a", password}
	}
	if err := s.poll(ctx, append(auth, "-p", strconv.Itoa(s.Replica.port), "info", "replication"), "master_link_status:up"); err != nil {
		return fmt.Errorf("wait for the replica's sync: %w", err)
	}
	want := fmt.Sprintf("name=%s,status=ok,address=%s,slaves=1,sentinels=%d", s.Master, s.Primary.Addr, n)
	for _, a := range s.Addrs {
		_, port, _ := net.SplitHostPort(a)
		if err := s.poll(ctx, []string{"-p", port, "info", "sentinel"}, want); err != nil {
			return fmt.Errorf("wait for sentinel %s: %w", a, err)
		}
	}
	return nil
}

// WaitPrimary waits until every Sentinel names addr as the master's
// address, at most until ctx ends.
func (s *Sentinel) WaitPrimary(ctx context.Context, addr string) error {
	host, port, _ := net.SplitHostPort(addr)
	for _, a := range s.Addrs {
		_, sp, _ := net.SplitHostPort(a)
		if err := s.poll(ctx, []string{"-p", sp, "sentinel", "get-master-addr-by-name", s.Master}, host+"\n"+port+"\n"); err != nil {
			return fmt.Errorf("wait for sentinel %s to name %s: %w", a, addr, err)
		}
	}
	return nil
}

// poll runs redis-cli -h 127.0.0.1 args every 50 ms until its output
// holds want or ctx ends.
func (s *Sentinel) poll(ctx context.Context, args []string, want string) error {
	for {
		out, err := exec.CommandContext(ctx, s.cli, append([]string{"-h", "127.0.0.1"}, args...)...).Output()
		if err == nil && strings.Contains(string(out), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (want %q, last answer %q, %v)", ctx.Err(), want, out, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close kills the Sentinels, the primary and the replica, and removes
// the Sentinels' folders.
func (s *Sentinel) Close() error {
	var first error
	for _, p := range s.procs {
		if err := p.Kill(); err != nil && first == nil {
			first = err
		}
	}
	s.procs = nil
	for _, d := range s.dirs {
		os.RemoveAll(d)
	}
	for _, srv := range []*Server{s.Primary, s.Replica} {
		if srv == nil {
			continue
		}
		if err := srv.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
