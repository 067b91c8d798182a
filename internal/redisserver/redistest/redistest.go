// Package redistest holds the test helpers for redisserver: a test that
// needs a missing tool is skipped, or fails under CI=true. Only tests
// import it; the launchers are redisserver.Start, StartTLS, StartCluster and
// StartSentinel.
package redistest

import (
	"testing"

	"github.com/resetq/resetq/internal/localserver/localservertest"
	"github.com/resetq/resetq/internal/redisserver"
)

// Need skips the test when redis-server is missing, saying what to
// install; with CI=true it fails the test instead, so CI cannot silently
// skip the tests that need it.
func Need(t testing.TB) {
	t.Helper()
	localservertest.Need(t, redisserver.Binary, redisserver.InstallHint)
}

// NeedTLS is Need for StartTLS, which also needs openssl.
func NeedTLS(t testing.TB) {
	t.Helper()
	Need(t)
	localservertest.Need(t, redisserver.OpenSSL, redisserver.OpenSSLInstallHint)
}

// NeedCluster is Need for StartCluster, which also needs redis-cli.
func NeedCluster(t testing.TB) {
	t.Helper()
	Need(t)
	localservertest.Need(t, redisserver.CLI, redisserver.InstallHint)
}

// NeedSentinel is Need for StartSentinel, which also needs redis-cli.
func NeedSentinel(t testing.TB) {
	t.Helper()
	NeedCluster(t)
}
