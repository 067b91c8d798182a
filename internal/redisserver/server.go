// Package redisserver starts throwaway redis-servers for tests and
// benchmarks: bound to 127.0.0.1 on a free port, nothing persisted, killed
// by Close; plain (Start), TLS-only with certificates made by openssl
// (StartTLS), a cluster made by redis-cli (StartCluster), or a primary, a
// replica and Sentinels (StartSentinel). It never uses
// a system Redis (Debian's package may run one on 6379).
package redisserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resetq/resetq/internal/localserver"
)

// Binary is the server executable looked up on PATH.
const Binary = "redis-server"

// InstallHint says what to install when Binary is missing.
const InstallHint = "apt-get install redis-server"

// ErrNotInstalled is returned by Start when Binary is not on PATH.
var ErrNotInstalled = errors.New(Binary + " not found on PATH; install it with: " + InstallHint)

const (
	readyTimeout  = 10 * time.Second
	readyInterval = 20 * time.Millisecond
)

// Server is a redis-server on 127.0.0.1. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is redis://127.0.0.1:PORT, for --redis-url.
	URL string
	// Addr is 127.0.0.1:PORT.
	Addr string

	// CAFile is the CA that signed a TLS server's certificate (StartTLS),
	// for --redis-ca-file; empty without TLS.
	CAFile string

	bin  string
	port int
	dir  string   // working folder: the log; no data with persistence off
	args []string // more redis-server arguments
	tls  *tlsFiles

	mu   sync.Mutex
	proc *localserver.Process // nil while stopped
}

// Installed reports whether Binary is on PATH.
func Installed() bool {
	_, err := exec.LookPath(Binary)
	return err == nil
}

// Start runs redis-server on a free 127.0.0.1 port without persistence
// and waits until it answers PING (at most 10 s, or until ctx ends). ctx
// only bounds the start-up: the server runs until Close. args are more
// redis-server arguments, such as "--requirepass", "pw".
func Start(ctx context.Context, args ...string) (*Server, error) {
	return start(ctx, nil, args)
}

func start(ctx context.Context, tf *tlsFiles, args []string) (*Server, error) {
	bin, err := exec.LookPath(Binary)
	if err != nil {
		return nil, ErrNotInstalled
	}
	dir, err := os.MkdirTemp("", "redisserver-")
	if err != nil {
		return nil, fmt.Errorf("redisserver: %w", err)
	}
	s, err := localserver.OnFreePort(ctx, func(port int) (*Server, error) {
		s := &Server{bin: bin, port: port, dir: dir, args: args, tls: tf, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		s.URL = "redis://" + s.Addr
		if tf != nil {
			s.URL, s.CAFile = "rediss://"+s.Addr, tf.ca
		}
		return s, s.Restart(ctx)
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Restart starts the server again on the same port after Close, empty. It
// does nothing if the server is running.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		select {
		case <-s.proc.Exited(): // died by itself: start it again
		default:
			return nil
		}
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("redisserver: %w", err)
	}
	logFile, err := os.Create(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return fmt.Errorf("redisserver: %w", err)
	}
	defer logFile.Close() // the child holds its own copy
	args := []string{"--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port), "--dir", s.dir, "--daemonize", "no", "--logfile", ""}
	if s.tls != nil {
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(s.port), "--tls-cert-file", s.tls.cert,
			"--tls-key-file", s.tls.key, "--tls-ca-cert-file", s.tls.ca, "--tls-auth-clients", "no")
	}
	cmd := exec.Command(s.bin, append(args, s.args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p, err := localserver.Start(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	if err := waitReady(ctx, s.Addr, s.tls, p); err != nil {
		p.Kill()
		return fmt.Errorf("%w; log: %s", err, localserver.LogTail(logFile.Name()))
	}
	s.proc = p
	return nil
}

// Close kills the server, waits for it to exit and removes its working
// folder. Restart starts it again; Close on a stopped server does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.Kill()
	s.proc = nil
	os.RemoveAll(s.dir)
	return err
}

// waitReady sends PING until the server answers +PONG, the process
// exits, ctx ends or readyTimeout passes.
func waitReady(ctx context.Context, addr string, tf *tlsFiles, p *localserver.Process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(readyInterval)
	defer tick.Stop()
	for {
		if ping(addr, tf) == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("redis-server %w: no answer to PING (%v)", localserver.ErrExited, p.Err())
		case <-ctx.Done():
			return fmt.Errorf("wait for redis-server on %s: %w", addr, ctx.Err())
		case <-tick.C:
		}
	}
}

func ping(addr string, tf *tlsFiles) error {
	conn, err := dial(addr, tf)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" && !strings.HasPrefix(line, "-NOAUTH") { // with --requirepass
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
