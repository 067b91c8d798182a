package main

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/resetq/resetq/internal/moto/mototest"
)

func TestMain(m *testing.M) { mototest.Main(m) }

// TestAttackTellsWhoIsIn checks the judgment part 2's verdict rests on,
// against moto: a killed password is refused (and counted killed), a
// reset user's old password gives no tokens, a password left alone lets
// the attacker in, and only signed-out users' refresh tokens are refused.
func TestAttackTellsWhoIsIn(t *testing.T) {
	ctx := context.Background()
	lp, err := createLeakPool(ctx, mototest.Shared(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	before, err := lp.attack(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.in) != leakedUsers || before.tokens != 0 {
		t.Fatalf("before: in %d, tokens tried %d; want %d in, 0 tokens", len(before.in), before.tokens, leakedUsers)
	}
	api := cip.NewFromConfig(lp.cfg)
	killed, reset := lp.victims[0].name, lp.victims[1].name
	if _, err := api.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: aws.String(lp.id),
		Username: aws.String(killed), Password: aws.String("Random-0ther-Passw0rd!"), Permanent: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{UserPoolId: aws.String(lp.id),
		Username: aws.String(reset)}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{killed, reset} {
		if _, err := api.AdminUserGlobalSignOut(ctx, &cip.AdminUserGlobalSignOutInput{UserPoolId: aws.String(lp.id),
			Username: aws.String(u)}); err != nil {
			t.Fatal(err)
		}
	}

	a, err := lp.attack(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.refused != 2 || a.killed != 1 || a.byCode["NotAuthorizedException"] != 1 || a.byCode[motoChallenge] != 1 {
		t.Errorf("refused %d (%s), killed %d; want 2 (1 NotAuthorizedException, 1 challenge), 1 killed", a.refused, a.codes(), a.killed)
	}
	if len(a.in) != leakedUsers-2 || slices.Contains(a.in, killed) || slices.Contains(a.in, reset) {
		t.Errorf("in as %d users %v; want the %d left alone", len(a.in), a.in, leakedUsers-2)
	}
	if a.tokens != leakedUsers || a.tokensRefused != 2 || len(a.live) != leakedUsers-2 {
		t.Errorf("tokens %d, refused %d, live %d; want %d, 2, %d", a.tokens, a.tokensRefused, len(a.live), leakedUsers, leakedUsers-2)
	}
	if a.statuses["RESET_REQUIRED"] != 1 || a.statuses["CONFIRMED"] != leakedUsers-1 {
		t.Errorf("statuses %s", a.statusText())
	}
	if a.example == "" {
		t.Error("no example refusal")
	}
}

func TestSome(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"a", "b"}, "a, b"},
		{[]string{"a", "b", "c", "d", "e", "f", "g"}, "a, b, c, d, e and 2 more"},
	} {
		if got := some(c.in); got != c.want {
			t.Errorf("some(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
