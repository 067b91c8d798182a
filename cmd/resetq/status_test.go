package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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

func TestPoolsFlag(t *testing.T) {
	var p poolsFlag
	for _, v := range []string{"us-east-1_a", "eu-west-1_b, eu-west-1_c", ""} {
		if err := p.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if p.String() != "us-east-1_a,eu-west-1_b,eu-west-1_c" {
		t.Fatalf("%q", p.String())
	}
}
