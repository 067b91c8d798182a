// Package mototest holds the test helpers for moto: Need, a moto_server
// shared by the tests of one binary, and ExpectStatus. Only tests import it;
// the launcher itself, for tests and the demo alike, is moto.Start.
package mototest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/resetq/resetq/internal/localserver/localservertest"
	"github.com/resetq/resetq/internal/moto"
)

// Need skips the test when moto_server is not on PATH, saying what to
// install. When the environment variable CI is "true" a missing server fails
// the test instead, so CI cannot silently skip the integration tests.
func Need(t testing.TB) {
	t.Helper()
	localservertest.Need(t, moto.Binary, moto.InstallHint)
}

// shared is the server of this test binary, started on first use.
var shared struct {
	once sync.Once
	srv  *moto.Server
	err  error
}

// Shared returns the test binary's moto server, starting it on first use.
// It calls Need first and fails the test if the server cannot start. Tests
// share its state: use unique pool and queue names rather than Reset, which
// would disturb tests running in parallel. Close it from TestMain with Main.
func Shared(t testing.TB) *moto.Server {
	t.Helper()
	Need(t)
	shared.once.Do(func() {
		shared.srv, shared.err = moto.Start(context.Background())
	})
	if shared.err != nil {
		t.Fatalf("start shared moto_server: %v", shared.err)
	}
	return shared.srv
}

// Main runs the tests, closes the shared server if one was started and exits
// with the tests' status. Use it as:
//
//	func TestMain(m *testing.M) { mototest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := CloseShared(); err != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// CloseShared stops the server Shared started, if any. Main calls it; a
// TestMain that needs more cleanup calls it itself.
func CloseShared() error {
	if shared.srv == nil {
		return nil
	}
	err := shared.srv.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "moto: close shared server: %v\n", err)
	}
	return err
}

// ExpectStatus fails the test (without stopping it) for each user of pool
// whose Cognito status is not want, e.g. "RESET_REQUIRED"; it stops the
// test if a status cannot be read.
func ExpectStatus(t testing.TB, cfg aws.Config, pool, want string, users ...string) {
	t.Helper()
	for _, u := range users {
		got, err := moto.UserStatus(t.Context(), cfg, pool, u)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("status of %s = %s, want %s", u, got, want)
		}
	}
}
