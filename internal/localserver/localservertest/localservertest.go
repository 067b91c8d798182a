// Package localservertest holds the test side of the local servers: a test
// that needs a missing server binary is skipped, or fails under CI=true.
// Only tests import it.
package localservertest

import (
	"os"
	"os/exec"
	"testing"
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
