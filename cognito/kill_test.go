package cognito_test

import (
	"testing"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
	"github.com/resetq/resetq/job"
)

// TestKillPassword against moto: a permanent kill leaves a confirmed user
// CONFIRMED with the old password dead (so its later reset works); a
// temporary one leaves an invited user FORCE_CHANGE_PASSWORD with the old
// temporary password dead (so its later re-invitation works). The random
// password satisfies moto's default policy. ReadUser sees each state.
func TestKillPassword(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, cfg := newPool(t, "us-east-1", map[string]moto.UserState{"alice": moto.Confirmed, "nocontact": moto.ConfirmedNoContact})
	client, err := moto.CreateAppClient(ctx, cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	const temp = "Temp-Passw0rd!"
	if err := moto.CreateInvited(ctx, cfg, pool, "invited", temp); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, mototest.Shared(t).URL)
	for _, tt := range []struct {
		user, password, status string
		permanent              bool
	}{{"alice", moto.Password, "CONFIRMED", true}, {"invited", temp, "FORCE_CHANGE_PASSWORD", false}} {
		j := job.Job{UserPoolID: pool, Username: tt.user}
		if _, _, err := moto.SignIn(ctx, cfg, pool, client, tt.user, tt.password); err != nil {
			t.Fatalf("%s signs in before the kill: %v", tt.user, err)
		}
		if err := c.KillPassword(ctx, j, tt.permanent); err != nil {
			t.Fatalf("kill %s: %v", tt.user, err)
		}
		if tok, ch, err := moto.SignIn(ctx, cfg, pool, client, tt.user, tt.password); err == nil {
			t.Errorf("%s: the old password still signs in after the kill (token %v, challenge %q)", tt.user, tok != "", ch)
		}
		u, err := c.ReadUser(ctx, j)
		if err != nil || u.Status != tt.status || !u.Enabled || !u.Reachable || u.Username != tt.user || u.LastModified.IsZero() {
			t.Errorf("%s after the kill: %+v %v, want %s, enabled, reachable", tt.user, u, err, tt.status)
		}
	}
	if err := c.ResetUserPassword(ctx, job.Job{UserPoolID: pool, Username: "alice"}); err != nil {
		t.Fatalf("the reset after a permanent kill: %v", err)
	}
	if u, err := c.ReadUser(ctx, job.Job{UserPoolID: pool, Username: "nocontact"}); err != nil || u.Reachable {
		t.Errorf("nocontact: %+v %v, want not reachable", u, err)
	}
}
