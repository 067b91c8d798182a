package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/ledger"
	"github.com/resetq/resetq/report"
)

// TestReportUsage: report's flag mistakes exit 2 before any AWS call, and
// --records naming the --from file, however spelt, leaves it untouched.
func TestReportUsage(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	const users = "alice\nbob\n"
	if err := os.WriteFile("users.csv", []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("users.csv", "link.csv"); err != nil {
		t.Fatal(err)
	}
	const pool, since = "us-east-1_abc", "2026-11-29T08:00:00Z"
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--pool", pool, "--from", "users.csv", "--since", since, "--records", "users.csv"}, 2, "--records users.csv is the --from file"},
		{[]string{"--pool", pool, "--from", "users.csv", "--since", since, "--records", "./sub/../users.csv"}, 2, "is the --from file"},
		{[]string{"--pool", pool, "--from", filepath.Join(dir, "users.csv"), "--since", since, "--records", "users.csv"}, 2, "is the --from file"},
		{[]string{"--pool", pool, "--from", "link.csv", "--since", since, "--records", "users.csv"}, 2, "is the --from file"},
		{[]string{"--pool", pool, "--from", "users.csv", "--since", since, "--out", "users.csv"}, 2, "is the --from file"},
		{[]string{"--pool", pool, "--all-users"}, 2, "--since is required"},
		{[]string{"--pool", pool}, 2, "give exactly one source"},
		{[]string{"--pool", pool, "--all-users", "--since", since, "--campaign", "c-1"}, 2, "--campaign goes with --ledger-table"},
		{[]string{"--ledger-table", "resetq-ledger", "--campaign", "c-1", "--since", since}, 2, "--since goes without --ledger-table"},
		{[]string{"--ledger-table", "resetq-ledger", "--campaign", "c-1", "--all-users"}, 2, "--pool is required"},
		{[]string{"--ledger-table", "resetq-ledger", "--campaign", "c-1", "--all-users", "--group", "g", "--pool", pool}, 2, "give exactly one source"},
		{[]string{"--ledger-table", "resetq-ledger", "--campaign", "c\x01", "--pool", pool}, 2, "control character"},
		{[]string{"--ledger-table", "resetq-ledger", "--campaign", "c-1", "--pool", pool, "--pool", "us-east-1_def"}, 2, "give one"},
		{[]string{"--help"}, 0, "reinvited_signed_in"},
		{[]string{"--help"}, 0, "[--campaign ID]"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), append([]string{"report"}, tt.args...), &out, &errOut)
		if code != tt.code || !strings.Contains(out.String()+errOut.String(), tt.want) {
			t.Errorf("%q: exit %d, want %d with %q\nstdout: %s\nstderr: %s", tt.args, code, tt.code, tt.want, out.String(), errOut.String())
		}
	}
	if b, err := os.ReadFile("users.csv"); err != nil || string(b) != users {
		t.Errorf("--from file: %q %v", b, err)
	}
}

// TestTrailOf: a ledger row reaches the report whole.
func TestTrailOf(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	row := ledger.Row{Campaign: "c", Pool: "p", User: "alice", Username: "Alice", EnqueuedAt: at, Reason: "NoVerifiedContact",
		Steps: map[ledger.Step]time.Time{ledger.StepSignedOut: at.Add(time.Second), ledger.StepDeadLettered: at.Add(time.Minute)}}
	got := trailOf(row)
	if got.Pool != "p" || got.User != "alice" || got.Username != "Alice" || !got.Enqueued.Equal(at) || got.Reason != "NoVerifiedContact" ||
		len(got.Steps) != 2 || !got.Steps["signed_out"].Equal(at.Add(time.Second)) || !got.Steps[report.StepDeadLettered].Equal(at.Add(time.Minute)) {
		t.Errorf("%+v", got)
	}
	if c, _ := report.CategorizeCampaign(&got, nil); c != report.CategoryNotFound {
		t.Errorf("category %s", c)
	}
	for _, s := range ledger.Steps {
		if !strings.Contains(strings.Join(report.CampaignSteps, " "), string(s)) {
			t.Errorf("the ledger's step %s is no column of the report", s)
		}
	}
}
