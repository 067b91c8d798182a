// Package localserver holds what the launchers of local test servers
// (internal/moto, internal/redisserver, internal/fauxqs) have in common:
// picking a free loopback port, and running the server process so that it
// can be killed with any children and, on Linux, dies with the test binary
// even when that is killed without cleaning up. It does not import testing:
// the demo and the bench harness link it. Tests skip or fail on a missing
// binary through localservertest.
//
// How each server is started, and how to tell that it is ready, stays in
// its own package.
package localserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process can take it before the server binds it, so callers retry
// on another port when the server exits early (OnFreePort).
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// StartAttempts is how many ports OnFreePort tries.
const StartAttempts = 3

// ErrExited marks a server that exited before it was ready, as one does
// when another process took its port between FreePort and its bind.
var ErrExited = errors.New("exited before it was ready")

// OnFreePort calls start with a free port, and again with another while
// start's error wraps ErrExited and ctx has not ended, StartAttempts times
// at most. It returns start's last error.
func OnFreePort[T any](ctx context.Context, start func(port int) (T, error)) (T, error) {
	var zero T
	var err error
	for range StartAttempts {
		port, perr := FreePort()
		if perr != nil {
			return zero, perr
		}
		var v T
		if v, err = start(port); err == nil {
			return v, nil
		}
		if ctx.Err() != nil || !errors.Is(err, ErrExited) {
			break
		}
	}
	return zero, err
}

// Process is a server process started by Start.
type Process struct {
	Cmd *exec.Cmd

	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // set before exited is closed
}

// Start starts cmd in its own process group (so Kill also kills any
// children) and, on Linux, asks the kernel to SIGKILL it when the test
// binary dies. It overwrites cmd.SysProcAttr.
//
// The parent-death signal fires when the thread that forked the child
// exits, not when the process does, so cmd is started from a goroutine
// locked to its OS thread that stays alive until the process has exited.
func Start(cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = sysProcAttr()
	p := &Process{Cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns, the Go runtime
		// terminates the thread, which is fine once the child is gone.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is what waiting for the process returned. Read it only after Exited
// is closed.
func (p *Process) Err() error { return p.waitErr }

// Kill kills the process group and waits for the process to exit. A
// process that has already exited is not an error.
func (p *Process) Kill() error {
	if err := killGroup(p.Cmd.Process); err != nil {
		select {
		case <-p.exited: // already gone
		default:
			return fmt.Errorf("kill %s: %w", filepath.Base(p.Cmd.Path), err)
		}
	}
	<-p.exited
	return nil
}

// LogTail returns the end of the log file at path, trimmed, for error
// messages; "" if it cannot be read.
func LogTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const tailBytes = 2000
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	return strings.TrimSpace(string(b))
}

// servingMetrics matches the line where `resetq work` says where it serves
// /metrics ("serving metrics", text or JSON log).
var servingMetrics = regexp.MustCompile(`serving metrics.*?addr"?[=:]"?([0-9.]+:[0-9]+)`)

// MetricsAddr finds in a resetq log where it serves /metrics. Started with
// --metrics-addr 127.0.0.1:0, resetq binds a port the kernel picks and logs
// it: unlike FreePort, nothing can take the port between picking and binding.
func MetricsAddr(log []byte) (string, bool) {
	m := servingMetrics.FindSubmatch(log)
	if m == nil {
		return "", false
	}
	return string(m[1]), true
}
