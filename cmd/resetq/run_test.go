package main

import (
	"bytes"
	"context"
	"flag"
	"testing"
)

func TestRegionOfQueueURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, fallback, want string }{
		{"https://sqs.eu-west-1.amazonaws.com/123456789012/q", "us-east-1", "eu-west-1"},
		{"https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "", "cn-north-1"},
		{"http://127.0.0.1:4566/123456789012/q", "us-east-1", "us-east-1"},
		{"https://queue.amazonaws.com/123456789012/q", "ap-south-1", "ap-south-1"},
		{"::", "us-west-2", "us-west-2"},
	}
	for _, tt := range tests {
		if got := regionOfQueueURL(tt.url, tt.fallback); got != tt.want {
			t.Errorf("regionOfQueueURL(%q, %q) = %q, want %q", tt.url, tt.fallback, got, tt.want)
		}
	}
}

func TestEnvTwins(t *testing.T) {
	t.Setenv("RESETQ_MAX_ATTEMPTS", "5")
	t.Setenv("RESETQ_QUEUE_URL", "https://from-env")
	var f workFlags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	f.register(fs)
	if err := parseFlags(fs, []string{"--queue-url", "https://from-flag"}); err != nil {
		t.Fatal(err)
	}
	if f.maxAttempts != 5 {
		t.Errorf("RESETQ_MAX_ATTEMPTS not applied: %d", f.maxAttempts)
	}
	if f.queueURL != "https://from-flag" {
		t.Errorf("the command line should win over the environment: %q", f.queueURL)
	}
	if got := envName("exit-when-idle"); got != "RESETQ_EXIT_WHEN_IDLE" {
		t.Errorf("envName = %q", got)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want int
	}{
		{nil, exitUsage},
		{[]string{"nope"}, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"version"}, exitOK},
		{[]string{"work", "--help"}, exitOK},
		{[]string{"work", "--rate", "-1", "--queue-url", "https://q"}, exitUsage},
		{[]string{"work", "--queue-url", "not a url"}, exitUsage},
		{[]string{"work", "--queue-url", "https://q", "--log-usernames", "maybe"}, exitUsage},
		{[]string{"work", "--queue-url", "https://q", "extra"}, exitUsage},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if got := Run(context.Background(), tt.args, &out, &errOut); got != tt.want {
			t.Errorf("Run(%q) = %d, want %d (stderr %q)", tt.args, got, tt.want, errOut.String())
		}
	}
}
