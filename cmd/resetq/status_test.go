package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/dlq"
	"github.com/resetq/resetq/status"
	"github.com/resetq/resetq/usagemetrics"
)

// TestOpsUsage: flag mistakes of status, dlq and preflight exit 2 before
// any AWS call, and --help exits 0.
func TestOpsUsage(t *testing.T) {
	const q = "http://127.0.0.1:1/123456789012/q"
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status"}, 2, "--queue-url is required"},
		{[]string{"status", "--queue-url", "nope"}, 2, "not a queue URL"},
		{[]string{"status", "--queue-url", q, "--count", "3"}, 2, "--count needs --watch"},
		{[]string{"status", "--queue-url", q, "--watch", "--interval", "0s"}, 2, "--interval must be positive"},
		{[]string{"status", "--queue-url", q, "--output", "xml"}, 2, "want text or json"},
		{[]string{"status", "--help"}, 0, "--watch"},
		{[]string{"status", "--help"}, 0, "--usage-region"},
		{[]string{"status", "--queue-url", q, "--usage-region", "none,us-east-1"}, 2, "--usage-region none turns the usage figures off: give it alone"},
		{[]string{"status", "--queue-url", q, "--usage-region", "us-east-1", "--usage-region", "none"}, 2, "give it alone"},
		{[]string{"status", "--queue-url", q, "--usage-region", "US East"}, 2, `--usage-region "US East": want a Region`},
		{[]string{"dlq"}, 2, "a subcommand is required"},
		{[]string{"dlq", "purge"}, 2, `unknown dlq subcommand "purge"`},
		{[]string{"dlq", "summary"}, 2, "--queue-url or --dlq-url is required"},
		{[]string{"dlq", "list", "--dlq-url", q, "--limit", "-1"}, 2, "--limit must not be negative"},
		{[]string{"dlq", "list", "--help"}, 0, "Usernames are shown in full"},
		{[]string{"dlq", "redrive", "--dlq-url", q}, 2, "--queue-url (the queue the jobs go back to) is required"},
		{[]string{"dlq", "redrive", "--queue-url", q, "--max-rate", "-1"}, 2, "--max-rate"},
		{[]string{"dlq", "summary", "--queue-url", q, "--visibility", "0s"}, 2, "--visibility"},
		{[]string{"dlq", "summary", "--queue-url", q, "--limit", "0"}, 2, "--limit must be between 1 and 100000"},
		{[]string{"dlq", "summary", "--queue-url", q, "--reason", "x"}, 2, "flag provided but not defined"},
		{[]string{"preflight"}, 2, "--pool is required"},
		{[]string{"preflight", "--pool", "us-east-1"}, 2, "not a user pool ID"},
		{[]string{"preflight", "--pool", "us-east-1_abc", "--rate", "0"}, 2, "--rate must be positive"},
		{[]string{"preflight", "--pool", "us-east-1_abc", "--users", "-5"}, 2, "--users must not be negative"},
		{[]string{"preflight", "--help"}, 0, "blocking"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(out.String()+errOut.String(), tt.want) {
			t.Errorf("%v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", tt.args, code, tt.code, tt.want, out.String(), errOut.String())
		}
	}
}

func TestListFlag(t *testing.T) {
	var p listFlag
	for _, v := range []string{"us-east-1_a", "eu-west-1_b, eu-west-1_c", ""} {
		if err := p.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if p.String() != "us-east-1_a,eu-west-1_b,eu-west-1_c" {
		t.Fatalf("%q", p.String())
	}
}

// TestCell: values that could end a cell or a row are quoted, others not.
func TestCell(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com": "alice@example.com",
		"INC 7":             "INC 7",
		"Ünïcode-名前":        "Ünïcode-名前",
		"":                  "",
		"a\nb":              `"a\nb"`,
		"a\tb":              `"a\tb"`,
		"a\rb":              `"a\rb"`,
		"\x1b[31mred":       `"\x1b[31mred"`,
		"rtl\u202eevil":     `"rtl\u202eevil"`,
		"line\u2028sep":     `"line\u2028sep"`,
		"nb\u00a0sp":        `"nb\u00a0sp"`,
		"bad\xffutf8":       `"bad\xffutf8"`,
		`"quoted"`:          `"\"quoted\""`,
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestDLQTablesEscape: a newline or tab in a campaign, pool, username,
// reason or error cannot add rows or columns to summary and list.
func TestDLQTablesEscape(t *testing.T) {
	const forged = "c\nFORGED  1  invalid_job\tx"
	jobs := []dlq.Job{{MessageID: "m1", JobID: "m1", Records: 1, Pool: "us-east-1_a\nb", Username: "eve\n m9  us-east-1_x  admin",
		Campaign: forged, Reason: "r\tr", Error: "e\r\ne", Body: "x\ny"}}
	var out bytes.Buffer
	if err := printJobs(&out, jobs, dlq.Scan{Read: 1}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || strings.Count(lines[1], `"`) != 12 || strings.Contains(out.String(), "\t") {
		t.Fatalf("list: %d lines:\n%s", len(lines), out.String())
	}
	out.Reset()
	s := dlq.Summary{Total: 1, Counts: []dlq.Count{{Reason: "r\nFORGED", Campaign: forged, Jobs: 1, Messages: 1}}, Scan: dlq.Scan{Read: 1}}
	if err := printSummary(&out, "http://q", s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "\nFORGED") || strings.Count(out.String(), "\n") != 6 {
		t.Fatalf("summary:\n%s", out.String())
	}
}

// TestPrintStatusUsage: the usage lines of status, and of --watch only when
// a Region's figures change.
func TestPrintStatusUsage(t *testing.T) {
	m := time.Date(2026, 11, 29, 12, 6, 0, 0, time.UTC)
	ok := status.LatestUsage("us-east-1", usagemetrics.RecoveryCategory, []usagemetrics.Minute{{At: m, Calls: 1200, Throttles: 7}}, nil)
	denied := status.LatestUsage("eu-west-1", usagemetrics.RecoveryCategory, nil, &awserr.DeniedError{Action: "cloudwatch:GetMetricData", Err: errors.New("no")})
	r := statusResult{Time: m.Add(5 * time.Minute), QueueURL: "q", Visible: 3, Usage: []status.Usage{ok, denied}}

	var out bytes.Buffer
	if err := printStatus(&out, "text", false, r, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"usage      us-east-1  UserAccountRecovery AWS/Usage (everyone's: real users' and every resetq's together) in the minute of 12:06 UTC: 1200 calls/min, 7 throttled/min\n",
		"usage      eu-west-1  UserAccountRecovery usage not read: permission cloudwatch:GetMetricData missing",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}

	out.Reset()
	if err := printStatus(&out, "json", false, r, nil); err != nil {
		t.Fatal(err)
	}
	var j struct {
		Usage []struct {
			Region, Whose, State string
			Calls                *float64 `json:"calls_per_minute"`
			Throttles            *float64 `json:"throttles_per_minute"`
			Action               string   `json:"missing_permission"`
		}
	}
	if err := json.Unmarshal(out.Bytes(), &j); err != nil || len(j.Usage) != 2 || *j.Usage[0].Calls != 1200 || *j.Usage[0].Throttles != 7 ||
		j.Usage[0].Whose != "everyone" || j.Usage[1].State != "denied" || j.Usage[1].Action != "cloudwatch:GetMetricData" || j.Usage[1].Calls != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}

	printed := map[string]string{}
	d := status.DrainRate(nil)
	r.Drain = &d
	out.Reset()
	for range 2 {
		if err := printStatus(&out, "text", true, r, printed); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(out.String(), "usage us-east-1"); n != 1 {
		t.Fatalf("%d usage lines of us-east-1 for two unchanged samples:\n%s", n, out.String())
	}
	r.Usage[0] = status.LatestUsage("us-east-1", usagemetrics.RecoveryCategory, []usagemetrics.Minute{{At: m.Add(time.Minute), Calls: 1800}}, nil)
	if err := printStatus(&out, "text", true, r, printed); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "12:11:00  usage us-east-1  UserAccountRecovery AWS/Usage (everyone's: real users' and every resetq's together) in the minute of 12:07 UTC: 1800 calls/min, 0 throttled/min") ||
		strings.Count(out.String(), "usage eu-west-1") != 1 {
		t.Fatalf("after a new minute:\n%s", out.String())
	}
}
