package localservertest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/resetq/resetq/internal/localserver/localservertest"
)

const helperEnv = "LOCALSERVERTEST_HELPER"

// TestNeed: a missing binary skips the test, and fails it under CI=true.
func TestNeed(t *testing.T) {
	if os.Getenv(helperEnv) == "1" {
		localservertest.Need(t, "resetq-no-such-binary", "nothing")
		return
	}
	for _, tt := range []struct{ ci, want string }{
		{"", "--- SKIP: TestNeed"},
		{"false", "--- SKIP: TestNeed"},
		{"true", "--- FAIL: TestNeed"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNeed$", "-test.v")
		cmd.Env = append(os.Environ(), helperEnv+"=1", "CI="+tt.ci)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "install it with: nothing") {
			t.Errorf("CI=%q: want %q and the install hint, got:\n%s", tt.ci, tt.want, out)
		}
	}
}

// TestNeedPresent: a binary on PATH neither skips nor fails.
func TestNeedPresent(t *testing.T) {
	localservertest.Need(t, "go", "")
}
