package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

// TestReport: a campaign in moto, reported from a file (AdminGetUser) and
// from the whole pool (ListUsers), with exact counts and the per-user file.
// moto 5.2.1 keeps UserLastModifiedDate when a password is set or reset
// (report's unit tests cover that rule against a fake), so here a user who
// set a new password after the reset is not_reset unless something else
// moved the date: "done" also changed an attribute, which moto does date.
func TestReport(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "report")
	ctx := context.Background()
	pool := e.Pool(e.East, map[string]moto.UserState{
		"done": moto.Confirmed, "newpass": moto.Confirmed, "pend1": moto.Confirmed, "pend2": moto.Confirmed,
		"never": moto.Confirmed, "off": moto.Disabled, "invited": moto.Unconfirmed,
	})
	// moto's dates have millisecond precision; --since is after every
	// creation, to the second.
	since := time.Now().UTC().Add(time.Second).Truncate(time.Second)
	for time.Now().Before(since.Add(10 * time.Millisecond)) {
		time.Sleep(10 * time.Millisecond) // moto dates changes by the wall clock
	}
	api := cip.NewFromConfig(e.East)
	for _, u := range []string{"done", "newpass", "pend1", "pend2"} {
		if _, err := api.AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{UserPoolId: &pool, Username: aws.String(u)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"done", "newpass"} {
		if _, err := api.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: &pool, Username: aws.String(u),
			Password: aws.String("New-Passw0rd!"), Permanent: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.AdminUpdateUserAttributes(ctx, &cip.AdminUpdateUserAttributesInput{UserPoolId: &pool, Username: aws.String("done"),
		UserAttributes: []ciptypes.AttributeType{{Name: aws.String("name"), Value: aws.String("Done")}}}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	list := filepath.Join(dir, "users.txt")
	if err := os.WriteFile(list, []byte("done\nnewpass\npend1\npend2\nnever\noff\ninvited\nghost\npend1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"completed": 1, "not_reset": 2, "pending": 2, "disabled": 1, "force_change_password": 1, "not_found": 1}

	out := filepath.Join(dir, "report.csv")
	stdout, stderr, code := opsRun(t, e, "report", "--pool", pool, "--from", list, "--since", since.Format(time.RFC3339), "--records", out, "--output", "json")
	var got struct {
		Counts     map[string]int
		Users      int
		Duplicates int
		Source     string
	}
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("exit %d %v\n%s\n%s", code, err, stdout, stderr)
	}
	if got.Users != 8 || got.Duplicates != 1 || got.Source != "get" || !sameCounts(got.Counts, want) {
		t.Fatalf("%+v, want counts %v", got, want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	wantRows := []string{"username,status,enabled,last_modified,category,pool",
		"done,CONFIRMED,true,", "newpass,CONFIRMED,true,", "pend1,RESET_REQUIRED,true,", "pend2,RESET_REQUIRED,true,",
		"never,CONFIRMED,true,", "off,CONFIRMED,false,", "invited,FORCE_CHANGE_PASSWORD,true,", "ghost,,,,not_found," + pool}
	if len(lines) != len(wantRows) {
		t.Fatalf("%d lines:\n%s", len(lines), b)
	}
	cats := []string{"", "completed", "not_reset", "pending", "pending", "not_reset", "disabled", "force_change_password", "not_found"}
	for i, l := range lines {
		if !strings.HasPrefix(l, wantRows[i]) || i > 0 && !strings.HasSuffix(l, ","+cats[i]+","+pool) {
			t.Errorf("line %d: %q, want %q...%s", i+1, l, wantRows[i], cats[i])
		}
	}

	// The whole pool, by ListUsers pages: the same users but ghost.
	out = filepath.Join(dir, "report.jsonl")
	stdout, stderr, code = opsRun(t, e, "report", "--pool", pool, "--all-users", "--since", since.Format(time.RFC3339), "--records", out, "--output", "json")
	got.Counts = nil
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("exit %d %v\n%s\n%s", code, err, stdout, stderr)
	}
	want["not_found"] = 0
	if got.Users != 7 || got.Source != "list" || !sameCounts(got.Counts, want) {
		t.Fatalf("%+v, want counts %v", got, want)
	}
	b, _ = os.ReadFile(out)
	if n := strings.Count(string(b), "\n"); n != 7 || !strings.Contains(string(b), `{"username":"pend1","status":"RESET_REQUIRED","enabled":true,"last_modified":"`) {
		t.Fatalf("%d records:\n%s", n, b)
	}

	// Usage errors: exit 2.
	for _, args := range [][]string{
		{"report", "--pool", pool, "--all-users"},
		{"report", "--pool", pool, "--all-users", "--since", "yesterday"},
		{"report", "--pool", pool, "--all-users", "--since", since.Format(time.RFC3339), "--records", filepath.Join(dir, "r.txt")},
		{"report", "--pool", "us-east-1_nosuchpool", "--all-users", "--since", since.Format(time.RFC3339)},
		{"report", "--pool", pool, "--from", filepath.Join(dir, "missing"), "--since", since.Format(time.RFC3339)},
	} {
		if _, stderr, code := opsRun(t, e, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
}

// sameCounts compares counts, where a missing key is 0.
func sameCounts(got, want map[string]int) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for k, v := range got {
		if want[k] != v {
			return false
		}
	}
	return true
}
