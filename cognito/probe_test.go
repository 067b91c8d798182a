package cognito_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
	"github.com/resetq/resetq/userpool"
)

// userCount is the number of users in pool.
func userCount(t *testing.T, cfg aws.Config, pool string) int {
	t.Helper()
	out, err := cip.NewFromConfig(cfg).ListUsers(t.Context(), &cip.ListUsersInput{UserPoolId: aws.String(pool)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Users)
}

// TestProbeMoto probes every incident call on a moto pool: each answers
// UserNotFoundException, and no user is created, changed or disabled. A
// pool that does not exist answers ErrPoolNotFound.
func TestProbeMoto(t *testing.T) {
	t.Parallel()
	pool, cfg := newPool(t, "eu-west-1", map[string]moto.UserState{"alice": moto.Confirmed, "bob": moto.Unconfirmed})
	p := cognito.NewPools(config(t, mototest.Shared(t).URL, "us-east-1"))
	for _, op := range userpool.IncidentCalls() {
		if err := p.Probe(t.Context(), pool, op); !errors.Is(err, awserr.ErrUserNotFound) {
			t.Errorf("%s: %v, want awserr.ErrUserNotFound", op, err)
		}
		if err := p.Probe(t.Context(), "eu-west-1_doesNotExist0", op); !errors.Is(err, awserr.ErrPoolNotFound) {
			t.Errorf("%s on a missing pool: %v, want awserr.ErrPoolNotFound", op, err)
		}
	}
	if n := userCount(t, cfg, pool); n != 2 {
		t.Errorf("%d users after the probes, want 2", n)
	}
	mototest.ExpectStatus(t, cfg, pool, "CONFIRMED", "alice")
	mototest.ExpectStatus(t, cfg, pool, "FORCE_CHANGE_PASSWORD", "bob")
	if err := p.Probe(t.Context(), pool, "AdminDeleteUser"); err == nil || !strings.Contains(err.Error(), "no probe") {
		t.Errorf("unknown operation: %v", err)
	}
}

// TestProbeAnswers injects Cognito's other answers through the proxy: a
// denial names the IAM action, a refused password is told apart, and a
// throttle comes back with its code once the SDK's retries are spent.
func TestProbeAnswers(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, "us-east-1", nil)
	for _, tt := range []struct {
		op, code string
		check    func(error) bool
		calls    int // requests the proxy saw (the SDK's retries)
	}{
		{userpool.OpGlobalSignOut, "AccessDeniedException", func(err error) bool {
			var d *awserr.DeniedError
			return errors.As(err, &d) && d.Action == "cognito-idp:AdminUserGlobalSignOut" && strings.Contains(d.Err.Error(), "AccessDeniedException: injected")
		}, 1},
		{userpool.OpSetPassword, "InvalidPasswordException", func(err error) bool { return errors.Is(err, awserr.ErrPasswordRefused) }, 1},
		{userpool.OpCreateUser, "TooManyRequestsException", func(err error) bool {
			return awserr.Code(err) == "TooManyRequestsException" && strings.HasPrefix(err.Error(), "TooManyRequestsException: ") &&
				!errors.Is(err, awserr.ErrUserNotFound) && !errors.Is(err, awserr.ErrPoolNotFound) && !errors.Is(err, awserr.ErrPasswordRefused)
		}, 3},
	} {
		t.Run(tt.op, func(t *testing.T) {
			proxy := startProxy(t)
			proxy.AddFault(awsproxy.Fault{Operation: tt.op, ErrorCode: tt.code, Message: "injected"})
			err := cognito.NewPools(retryingConfig(t, proxy.URL)).Probe(t.Context(), pool, tt.op)
			if !tt.check(err) {
				t.Errorf("%v (%T): not the translation of %s", err, err, tt.code)
			}
			if n := proxy.Stats().Faulted[tt.op]; n != tt.calls {
				t.Errorf("%d requests, want %d", n, tt.calls)
			}
		})
	}
}

// TestProbeUsername: every probe names a resetq-preflight- user.
func TestProbeUsername(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, "us-east-1", nil)
	proxy := startProxy(t)
	for range 2 {
		proxy.AddFault(awsproxy.Fault{Operation: userpool.OpGetUser, BodyContains: `"Username":"` + cognito.ProbeUserPrefix, ErrorCode: "UserNotFoundException", Count: 1})
		if err := cognito.NewPools(config(t, proxy.URL, "us-east-1")).Probe(t.Context(), pool, userpool.OpGetUser); !errors.Is(err, awserr.ErrUserNotFound) {
			t.Fatal(err)
		}
	}
	if n := proxy.Stats().Faulted[userpool.OpGetUser]; n != 2 {
		t.Fatalf("%d probes named a %s user, want 2", n, cognito.ProbeUserPrefix)
	}
}

func TestRandomPassword(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		pw, err := cognito.RandomPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != cognito.RandomPasswordLength || seen[pw] {
			t.Fatalf("%q: length %d (want %d), or seen before", pw, len(pw), cognito.RandomPasswordLength)
		}
		seen[pw] = true
		var up, low, dig, sym bool
		for _, r := range pw {
			switch {
			case unicode.IsUpper(r):
				up = true
			case unicode.IsLower(r):
				low = true
			case unicode.IsDigit(r):
				dig = true
			case strings.ContainsRune(`^$*.[]{}()?"!@#%&/\,><':;|_~`+"`"+`=+-`, r):
				sym = true
			default:
				t.Fatalf("%q: %q is not one of Cognito's password characters", pw, r)
			}
		}
		if !up || !low || !dig || !sym {
			t.Fatalf("%q lacks a class: upper %v lower %v digit %v symbol %v", pw, up, low, dig, sym)
		}
	}
}
