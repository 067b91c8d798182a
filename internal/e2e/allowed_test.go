package e2e

import (
	"testing"
	"time"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

// TestWorkAllowedPools: with --pool, a job naming another pool
// (a real pool with a real, resettable user) is dead-lettered as
// pool_not_allowed and never reaches Cognito.
func TestWorkAllowedPools(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "allowed")
	allowed := e.Pool(e.East, map[string]moto.UserState{"alice": moto.Confirmed})
	other := e.Pool(e.East, map[string]moto.UserState{"bob": moto.Confirmed})
	e.Send("allowed", testenv.Job(allowed, "alice"), testenv.Job(other, "bob"))

	p := e.Start("--exit-when-idle", "2s", "--pool", allowed, "--allow-any-pool=false")
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if s := e.Status(e.East, allowed, "alice"); s != "RESET_REQUIRED" {
		t.Errorf("alice (allowed pool) is %s", s)
	}
	if s := e.Status(e.East, other, "bob"); s != "CONFIRMED" {
		t.Errorf("bob (pool not allowed) is %s: he must not have been reset", s)
	}
	if n := e.Proxy.Stats().Forwarded["AdminResetUserPassword"]; n != 1 {
		t.Errorf("%d resets reached Cognito, want 1", n)
	}
	dl := e.DrainDLQ()
	if len(dl) != 1 || dl[0].Attrs["resetq.reason"] != "pool_not_allowed" {
		t.Fatalf("dead letters %+v, want one pool_not_allowed", dl)
	}
}
