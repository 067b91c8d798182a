package moto_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/smithy-go"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		helperStartAndHang() // the child of TestServerDiesWithParent; never returns
	}
	mototest.Main(m)
}

// config returns an SDK configuration for the shared server in region.
func config(t *testing.T, region string) aws.Config {
	t.Helper()
	srv := mototest.Shared(t)
	cfg, err := moto.Config(t.Context(), srv.URL, region)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// uniqueName gives each test its own pools and queues on the shared server.
// newPool creates a user pool with the test's unique name in region.
func newPool(t *testing.T, region string) (aws.Config, string) {
	t.Helper()
	cfg := config(t, region)
	pool, err := moto.CreatePool(t.Context(), cfg, uniqueName(t))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, pool
}

func uniqueName(t *testing.T) string {
	return strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
}

func resetPassword(ctx context.Context, cfg aws.Config, poolID, username string) error {
	_, err := cip.NewFromConfig(cfg).AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{
		UserPoolId: aws.String(poolID),
		Username:   aws.String(username),
	})
	return err
}

// TestAdminResetUserPassword documents moto's AdminResetUserPassword for
// each user state: the error type, message and the status afterwards.
func TestAdminResetUserPassword(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg, pool := newPool(t, "us-east-1")

	tests := []struct {
		state      moto.UserState
		before     string // status before the reset
		wantCode   string // "" = success
		wantMsg    string
		wantStatus string // status after the reset
	}{
		{moto.Confirmed, "CONFIRMED", "", "", "RESET_REQUIRED"},
		{moto.ConfirmedNoContact, "CONFIRMED", "InvalidParameterException",
			"Cannot reset password for the user as there is no registered/verified email or phone_number", "CONFIRMED"},
		{moto.Unconfirmed, "FORCE_CHANGE_PASSWORD", "NotAuthorizedException",
			"User password cannot be reset in the current state.", "FORCE_CHANGE_PASSWORD"},
		{moto.Disabled, "CONFIRMED", "NotAuthorizedException", "User is disabled", "CONFIRMED"},
	}
	for _, tt := range tests {
		t.Run(tt.state.String(), func(t *testing.T) {
			user := "user-" + strings.ToLower(tt.state.String())
			if err := moto.CreateUser(ctx, cfg, pool, user, tt.state); err != nil {
				t.Fatal(err)
			}
			mototest.ExpectStatus(t, cfg, pool, tt.before, user)

			err := resetPassword(ctx, cfg, pool, user)
			assertAPIError(t, err, tt.wantCode, tt.wantMsg)
			mototest.ExpectStatus(t, cfg, pool, tt.wantStatus, user)
		})
	}
}

func TestAdminResetUserPasswordTwice(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg, pool := newPool(t, "us-east-1")
	if err := moto.CreateUser(ctx, cfg, pool, "alice", moto.Confirmed); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := resetPassword(ctx, cfg, pool, "alice"); err != nil {
			t.Fatalf("reset %d: %v", i+1, err)
		}
		mototest.ExpectStatus(t, cfg, pool, "RESET_REQUIRED", "alice")
	}
}

func TestAdminResetUserPasswordMissing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg, pool := newPool(t, "us-east-1")

	err := resetPassword(ctx, cfg, pool, "nobody")
	var notFound *ciptypes.UserNotFoundException
	if !errors.As(err, &notFound) {
		t.Errorf("missing user: got %v, want UserNotFoundException", err)
	}
	assertAPIError(t, err, "UserNotFoundException", "User does not exist.")

	err = resetPassword(ctx, cfg, "us-east-1_doesNotExist0", "nobody")
	var noPool *ciptypes.ResourceNotFoundException
	if !errors.As(err, &noPool) {
		t.Errorf("missing pool: got %v, want ResourceNotFoundException", err)
	}
	assertAPIError(t, err, "ResourceNotFoundException", "User pool us-east-1_doesNotExist0 does not exist.")

	// moto keeps pools per request Region: a client in another Region does
	// not see the pool, whatever the ID's prefix says.
	euCfg := config(t, "eu-west-1")
	err = resetPassword(ctx, euCfg, pool, "nobody")
	if !errors.As(err, &noPool) {
		t.Errorf("pool from another Region: got %v, want ResourceNotFoundException", err)
	}
}

func TestPoolInOtherRegion(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg, pool := newPool(t, "eu-west-1")
	if !strings.HasPrefix(pool, "eu-west-1_") {
		t.Fatalf("pool ID %q lacks the eu-west-1_ prefix", pool)
	}
	if err := moto.CreateUser(ctx, cfg, pool, "bob@example.org", moto.Confirmed); err != nil {
		t.Fatal(err)
	}
	if err := resetPassword(ctx, cfg, pool, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	mototest.ExpectStatus(t, cfg, pool, "RESET_REQUIRED", "bob@example.org")
}

func TestCreateUserUnknownState(t *testing.T) {
	t.Parallel()
	cfg := config(t, "us-east-1")
	err := moto.CreateUser(t.Context(), cfg, "us-east-1_x", "carol", moto.UserState(42))
	if err == nil || !strings.Contains(err.Error(), "UserState(42)") {
		t.Fatalf("got %v, want an unknown-state error", err)
	}
}

// assertAPIError checks err's API error code and message; code "" wants nil.
func assertAPIError(t *testing.T, err error, code, msg string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Errorf("got error %v, want success", err)
		}
		return
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Errorf("got %v, want API error %s", err, code)
		return
	}
	if apiErr.ErrorCode() != code || apiErr.ErrorMessage() != msg {
		t.Errorf("got %s %q, want %s %q", apiErr.ErrorCode(), apiErr.ErrorMessage(), code, msg)
	}
}

// TestStartResetClose runs a server of its own: Env, Reset and Close.
func TestStartResetClose(t *testing.T) {
	mototest.Need(t)
	t.Parallel()
	ctx := t.Context()
	begin := time.Now()
	srv, err := moto.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("moto_server ready in %v at %s", time.Since(begin).Round(time.Millisecond), srv.URL)
	t.Cleanup(func() { srv.Close() })

	wantEnv := []string{
		"AWS_ENDPOINT_URL=" + srv.URL,
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	if env := srv.Env(); !slices.Equal(env, wantEnv) {
		t.Errorf("Env() = %q, want %q", env, wantEnv)
	}

	cfg, err := moto.Config(ctx, srv.URL, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := moto.CreatePool(ctx, cfg, "reset-me")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = cip.NewFromConfig(cfg).DescribeUserPool(ctx, &cip.DescribeUserPoolInput{UserPoolId: aws.String(pool)})
	var noPool *ciptypes.ResourceNotFoundException
	if !errors.As(err, &noPool) {
		t.Errorf("pool after Reset: got %v, want ResourceNotFoundException", err)
	}

	if _, err := os.Stat(srv.LogPath); err != nil {
		t.Errorf("log file: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := http.Get(srv.URL + "/moto-api/data.json"); err == nil {
		t.Error("server still answers after Close")
	}
	if _, err := os.Stat(srv.LogPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log file after Close: %v, want it removed", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := moto.Start(t.Context())
	if !errors.Is(err, moto.ErrNotInstalled) {
		t.Fatalf("got %v, want ErrNotInstalled", err)
	}
	if !strings.Contains(err.Error(), "pip install 'moto[server]'") {
		t.Errorf("error %q does not say what to install", err)
	}
}
