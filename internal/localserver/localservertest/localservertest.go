// Package localservertest holds the test side of the local servers: a test
// that needs a missing server binary is skipped, or fails under CI=true.
// Only tests import it.
package localservertest

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Need skips the test when binary is not on PATH, saying what to install
// (installHint). When the environment variable CI is "true" a missing
// binary fails the test instead, so CI cannot silently skip the tests that
// need it.
func Need(t testing.TB, binary, installHint string) {
	t.Helper()
	if _, err := exec.LookPath(binary); err == nil {
		return
	}
	msg := binary + " is not on PATH; install it with: " + installHint
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing server is an error)")
	}
	t.Skip(msg + " (skipping; with CI=true this fails)")
}

// StopAtCleanup waits for the started cmd in the background and, when t
// ends, stops it: SIGTERM, then SIGKILL after grace; a failed test gets
// log (the process's output) in its own log, under name. The channel
// closes when the process has exited.
func StopAtCleanup(t testing.TB, cmd *exec.Cmd, grace time.Duration, name string, log fmt.Stringer) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})
	return done
}
