package main

import (
	"bytes"
	"context"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
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

// TestUnknownEnvVar: a RESETQ_* variable that is no command's flag stops
// the command with exit 2, naming it and the setting it was likely meant
// to be, before anything else is checked.
func TestUnknownEnvVar(t *testing.T) {
	tests := []struct {
		name, env string
		args      []string
		want      string
	}{
		{"own flag, no underscores", "RESETQ_GLOBALSIGNOUT", []string{"work"},
			"resetq work: RESETQ_GLOBALSIGNOUT is not a resetq setting (did you mean RESETQ_GLOBAL_SIGN_OUT?)"},
		{"own flag, a letter short", "RESETQ_MAX_ATTEMPT", []string{"work"},
			"resetq work: RESETQ_MAX_ATTEMPT is not a resetq setting (did you mean RESETQ_MAX_ATTEMPTS?)"},
		{"lower case", "RESETQ_queue_url", []string{"status"},
			"resetq status: RESETQ_queue_url is not a resetq setting (did you mean RESETQ_QUEUE_URL?)"},
		{"another command's flag", "RESETQ_USER", []string{"work"},
			"resetq work: RESETQ_USER is not a resetq setting (did you mean RESETQ_USERS?)"},
		{"a subcommand's flag", "RESETQ_MAXRATE", []string{"dlq", "redrive"},
			"resetq dlq: RESETQ_MAXRATE is not a resetq setting (did you mean RESETQ_MAX_RATE?)"},
		{"nothing near", "RESETQ_FROBNICATE", []string{"preflight"},
			"resetq preflight: RESETQ_FROBNICATE is not a resetq setting (see resetq preflight --help)"},
		{"even with --help", "RESETQ_GLOBALSIGNOUT", []string{"work", "--help"},
			"resetq work: RESETQ_GLOBALSIGNOUT is not a resetq setting (did you mean RESETQ_GLOBAL_SIGN_OUT?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.env, "true")
			var out, errOut bytes.Buffer
			code := Run(context.Background(), tt.args, &out, &errOut)
			if code != exitUsage || errOut.String() != tt.want+"\n" {
				t.Errorf("Run(%q) with %s set = %d, stderr %q; want %d, %q", tt.args, tt.env, code, errOut.String(), exitUsage, tt.want)
			}
		})
	}
}

// TestEnvNamesInOneLine: several unknown variables are named in one line, sorted.
func TestEnvNamesInOneLine(t *testing.T) {
	t.Setenv("RESETQ_ZZZZZZZZ", "1")
	t.Setenv("RESETQ_REINVIT", "true")
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"work"}, &out, &errOut)
	want := "resetq work: RESETQ_REINVIT is not a resetq setting (did you mean RESETQ_REINVITE?); " +
		"RESETQ_ZZZZZZZZ is not a resetq setting (see resetq work --help)\n"
	if code != exitUsage || errOut.String() != want {
		t.Errorf("exit %d, stderr %q; want %d, %q", code, errOut.String(), exitUsage, want)
	}
}

// TestOtherCommandsTwinsAccepted: one environment serves every command, so
// the twin of another command's flag, and the fault suite's settings, are
// no mistake.
func TestOtherCommandsTwinsAccepted(t *testing.T) {
	for _, kv := range [][2]string{
		{"RESETQ_USERS", "200000"},               // preflight
		{"RESETQ_SINCE", "2026-01-01T00:00:00Z"}, // report
		{"RESETQ_WATCH", "true"},                 // status
		{"RESETQ_MAX_RATE", "5"},                 // dlq redrive
		{"RESETQ_ALL_USERS", "true"},             // enqueue, report
		{"RESETQ_CHAOS_SEED", "42"},              // internal/chaos
	} {
		t.Setenv(kv[0], kv[1])
	}
	var out, errOut bytes.Buffer
	if code := Run(context.Background(), []string{"work"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "--queue-url is required") {
		t.Errorf("work: exit %d, stderr %q; want the missing --queue-url, not an environment error", code, errOut.String())
	}
	errOut.Reset()
	if code := Run(context.Background(), []string{"status", "--help"}, &out, &errOut); code != exitOK {
		t.Errorf("status --help: exit %d, stderr %q", code, errOut.String())
	}
}

// TestFlagParseErrors: a command-line mistake is one line on stderr, with
// the flag spelt --name and the nearest real flag; no help dump.
func TestFlagParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"work", "--global-signout"}, "resetq work: flag provided but not defined: --global-signout (did you mean --global-sign-out?)"},
		{[]string{"work", "-queue_url", "https://q"}, "resetq work: flag provided but not defined: --queue_url (did you mean --queue-url?)"},
		{[]string{"enqueue", "--dryrun"}, "resetq enqueue: flag provided but not defined: --dryrun (did you mean --dry-run?)"},
		{[]string{"status", "--frobnicate"}, "resetq status: flag provided but not defined: --frobnicate (see resetq status --help)"},
		{[]string{"dlq", "summary", "--reason", "x"}, "resetq dlq: flag provided but not defined: --reason (see resetq dlq summary --help)"},
		{[]string{"work", "--rate", "abc"}, `resetq work: invalid value "abc" for flag --rate: parse error`},
		{[]string{"status", "--watch=maybe"}, `resetq status: invalid boolean value "maybe" for --watch: parse error`},
		{[]string{"work", "--rate"}, "resetq work: flag needs an argument: --rate"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), tt.args, &out, &errOut)
		if code != exitUsage || errOut.String() != tt.want+"\n" || out.Len() > 0 {
			t.Errorf("Run(%q) = %d, stdout %q, stderr %q; want %d and one line %q", tt.args, code, out.String(), errOut.String(), exitUsage, tt.want)
		}
	}
}

// TestHelp: -h and --help still print the command's whole help and exit 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"work", "--help"}, "\n  --global-sign-out\n"},
		{[]string{"work", "-h"}, "\n  --pool ID\n"},
		{[]string{"enqueue", "-help"}, "\n  --dry-run\n"},
		{[]string{"enqueue", "--help"}, "(default 8, env RESETQ_ENQUEUE_CONCURRENCY)"},
		{[]string{"dlq", "redrive", "--help"}, "\n  --max-rate float\n"},
		{[]string{"report", "--help"}, "\n  --since string\n"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), tt.args, &out, &errOut)
		if code != exitOK || !strings.Contains(errOut.String(), "\nFlags:\n") || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("Run(%q) = %d, stderr %q; want %d and the help with %s", tt.args, code, errOut.String(), exitOK, tt.want)
		}
	}
}

// TestCollectFlags: the dry run reaches the flags of every command and dlq
// subcommand, so no command's twins are refused.
func TestCollectFlags(t *testing.T) {
	t.Parallel()
	sets := collectFlags()
	for _, cmd := range commands() {
		names := []string{"resetq " + cmd.name}
		if len(cmd.subs) > 0 {
			names = nil
			for _, sub := range cmd.subs {
				names = append(names, "resetq "+cmd.name+" "+sub)
			}
		}
		for _, n := range names {
			if len(sets[n]) == 0 {
				t.Errorf("no flags collected for %q (collected: %v)", n, sets)
			}
		}
	}
	for _, twin := range []string{"RESETQ_GLOBAL_SIGN_OUT", "RESETQ_USERS", "RESETQ_SINCE", "RESETQ_MAX_RATE", "RESETQ_WATCH", "RESETQ_OUTPUT", "RESETQ_FILTER"} {
		if !slices.Contains(allTwins(), twin) {
			t.Errorf("allTwins() lacks %s", twin)
		}
	}
}

// TestDLQCommands: the subcommands whose flags are collected are the ones
// resetq dlq's help names.
func TestDLQCommands(t *testing.T) {
	t.Parallel()
	if want := "<" + strings.Join(dlqCommands, "|") + ">"; !strings.Contains(dlqUsage, want) {
		t.Errorf("dlqUsage does not name %s:\n%s", want, dlqUsage)
	}
}

// TestHarnessVars: harnessVars are exactly the RESETQ_* variables the rest
// of the repository reads that are not flag twins.
func TestHarnessVars(t *testing.T) {
	t.Parallel()
	read := regexp.MustCompile(`(?:Getenv|LookupEnv)\("(RESETQ_[A-Z0-9_]+)"\)`)
	found := map[string]bool{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || path == filepath.Join("..", "..", "cmd", "resetq")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range read.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(allTwins(), m[1]) {
				found[m[1]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for n := range found {
		got = append(got, n)
	}
	slices.Sort(got)
	if !slices.Equal(got, harnessVars) {
		t.Errorf("RESETQ_* variables read that are no flag's twin: %v; harnessVars: %v", got, harnessVars)
	}
}

func TestClosest(t *testing.T) {
	t.Parallel()
	flags := []string{"queue-url", "dlq-url", "rate", "max-rate", "global-sign-out", "reinvite", "reinvite-rate"}
	tests := []struct {
		name, want string
		near       bool
	}{
		{"global-signout", "global-sign-out", true},
		{"GLOBAL-SIGN-OUT", "global-sign-out", true},
		{"queueurl", "queue-url", true},
		{"rat", "rate", true},
		{"reinvte", "reinvite", true},
		{"max_rate", "max-rate", true},
		{"frobnicate", "", false},
		{"users", "", false},
	}
	for _, tt := range tests {
		got, near := closest(tt.name, flags, "-")
		if near != tt.near || (near && got != tt.want) {
			t.Errorf("closest(%q) = %q, %v; want %q, %v", tt.name, got, near, tt.want, tt.near)
		}
	}
	if d := levenshtein("KITTEN", "SITTING"); d != 3 {
		t.Errorf("levenshtein(KITTEN, SITTING) = %d, want 3", d)
	}
	if _, near := closest("x", nil, "-"); near {
		t.Error("closest with no candidates is near")
	}
	// The command's own flags come first, even when another's is nearer.
	if got, near := nearest("abcd", []string{"abxy"}, []string{"abcx"}, "-"); got != "abxy" || !near {
		t.Errorf("nearest = %q, %v; want the command's own abxy", got, near)
	}
	if got, near := nearest("abcd", []string{"wxyz"}, []string{"abcx"}, "-"); got != "abcx" || !near {
		t.Errorf("nearest = %q, %v; want another command's abcx", got, near)
	}
}

// TestServiceLinksAccepted: the variables Kubernetes puts in every pod of
// a namespace with a Service named resetq are no setting and no mistake:
// a pod that keeps service links on still starts.
func TestServiceLinksAccepted(t *testing.T) {
	for _, name := range []string{"RESETQ_SERVICE_HOST", "RESETQ_SERVICE_PORT", "RESETQ_SERVICE_PORT_METRICS",
		"RESETQ_PORT", "RESETQ_PORT_9464_TCP", "RESETQ_PORT_9464_TCP_ADDR", "RESETQ_PORT_9464_TCP_PROTO"} {
		if !serviceLink(name) {
			t.Errorf("%s is Kubernetes's, not a mistake", name)
		}
	}
	for _, name := range []string{"RESETQ_PORTS", "RESETQ_PORT_X", "RESETQ_SERVICE", "RESETQ_GLOBALSIGNOUT"} {
		if serviceLink(name) {
			t.Errorf("%s taken for a service link", name)
		}
	}
	t.Setenv("RESETQ_PORT", "tcp://10.0.0.1:9464")
	t.Setenv("RESETQ_PORT_9464_TCP_ADDR", "10.0.0.1")
	var out, errOut bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, &out, &errOut); code != exitOK {
		t.Fatalf("version with service links set: exit %d, %s", code, errOut.String())
	}
	if code := Run(context.Background(), []string{"work"}, &out, &errOut); code != exitUsage || strings.Contains(errOut.String(), "RESETQ_PORT") {
		t.Fatalf("work with service links set: exit %d, %q; want only the missing --queue-url", code, errOut.String())
	}
}

// TestDeprecatedFlags: a deprecated flag is left out of the help, still
// works, and says so in one line when set.
func TestDeprecatedFlags(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := Run(context.Background(), []string{"work", "--help"}, &out, &errOut); code != exitOK || strings.Contains(errOut.String(), "redelivery-check") {
		t.Fatalf("work --help = %d, and shows the deprecated --redelivery-check:\n%s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "(default 24, env RESETQ_RATE)") {
		t.Fatalf("the help lost the flags' defaults:\n%s", errOut.String())
	}
	errOut.Reset()
	code := Run(context.Background(), []string{"work", "--redelivery-check=false"}, &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "--redelivery-check is deprecated: false is --status-check=off") {
		t.Fatalf("work --redelivery-check=false = %d, stderr %q: want the deprecation line (then the missing --queue-url)", code, errOut.String())
	}
}

// TestHelpFormat: each flag is --name TYPE (a bool has none), then its
// usage wrapped and indented, ending with its default and variable.
func TestHelpFormat(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("resetq enqueue", flag.ContinueOnError)
	fs.Bool("dry-run", false, "send nothing")
	fs.Bool("usage-metrics", true, "read the usage")
	fs.Int("concurrency", 8, "SendMessageBatch calls in flight at once")
	fs.String("log-format", "json", "log format: json or text")
	fs.Duration("progress-interval", 5*time.Second, "a progress line this often (0: none)")
	fs.String("records", "", "write one record per user to `FILE`: "+strings.Repeat("word ", 14)+"end")
	fs.Bool("old", false, deprecatedPrefix+"use --dry-run")
	var b bytes.Buffer
	printFlags(&b, fs)
	want := `  --concurrency int
      SendMessageBatch calls in flight at once
      (default 8, env RESETQ_ENQUEUE_CONCURRENCY)
  --dry-run
      send nothing (env RESETQ_DRY_RUN)
  --log-format string
      log format: json or text (default "json", env RESETQ_LOG_FORMAT)
  --progress-interval duration
      a progress line this often (0: none)
      (default 5s, env RESETQ_PROGRESS_INTERVAL)
  --records FILE
      write one record per user to FILE: word word word word word word word word
      word word word word word word end (env RESETQ_RECORDS)
  --usage-metrics
      read the usage (default true, env RESETQ_USAGE_METRICS)
`
	if b.String() != want {
		t.Errorf("help:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestRenames: each old flag name and each old variable still sets the
// flag, with one deprecation line on stderr; a new name given too wins,
// and then the old variable says nothing; the help shows no old name.
func TestRenames(t *testing.T) {
	tests := []struct {
		name       string
		args       []string // the command, then its flags
		env        []string // NAME=value
		flag, want string   // the flag's value after parsing
		line       string   // the deprecation line, "" for none
	}{
		{"old flag", []string{"work", "--allowed-pools", "us-east-1_A,us-east-1_B"}, nil, "pool", "us-east-1_A,us-east-1_B",
			"resetq work: --allowed-pools is deprecated: use --pool"},
		{"old variable", []string{"work"}, []string{"RESETQ_ALLOWED_POOLS=us-east-1_A"}, "pool", "us-east-1_A",
			"resetq work: RESETQ_ALLOWED_POOLS is deprecated: use RESETQ_POOL"},
		{"new variable wins", []string{"work"}, []string{"RESETQ_ALLOWED_POOLS=us-east-1_A", "RESETQ_POOL=us-east-1_B"}, "pool", "us-east-1_B", ""},
		{"old flag wins over the variable", []string{"work", "--allowed-pools", "us-east-1_A"}, []string{"RESETQ_POOL=us-east-1_B"}, "pool", "us-east-1_A",
			"resetq work: --allowed-pools is deprecated: use --pool"},
		{"old report flag", []string{"report", "--out", "r.csv"}, nil, "records", "r.csv",
			"resetq report: --out is deprecated: use --records"},
		{"old report variable", []string{"report"}, []string{"RESETQ_OUT=r.jsonl"}, "records", "r.jsonl",
			"resetq report: RESETQ_OUT is deprecated: use RESETQ_RECORDS"},
		{"shared concurrency, enqueue", []string{"enqueue"}, []string{"RESETQ_CONCURRENCY=3"}, "concurrency", "3",
			"resetq enqueue: RESETQ_CONCURRENCY is deprecated here: use RESETQ_ENQUEUE_CONCURRENCY (each command's --concurrency has a variable of its own)"},
		{"own concurrency wins", []string{"enqueue"}, []string{"RESETQ_CONCURRENCY=3", "RESETQ_ENQUEUE_CONCURRENCY=4"}, "concurrency", "4", ""},
		{"shared concurrency, report", []string{"report"}, []string{"RESETQ_CONCURRENCY=3"}, "concurrency", "3",
			"resetq report: RESETQ_CONCURRENCY is deprecated here: use RESETQ_REPORT_CONCURRENCY (each command's --concurrency has a variable of its own)"},
		{"work keeps RESETQ_CONCURRENCY", []string{"work"}, []string{"RESETQ_CONCURRENCY=3", "RESETQ_ENQUEUE_CONCURRENCY=4"}, "concurrency", "3", ""},
		{"shared limit, summary", []string{"dlq", "summary"}, []string{"RESETQ_LIMIT=7"}, "limit", "7",
			"resetq dlq summary: RESETQ_LIMIT is deprecated here: use RESETQ_DLQ_SUMMARY_LIMIT (each command's --limit has a variable of its own)"},
		{"shared limit, list", []string{"dlq", "list"}, []string{"RESETQ_LIMIT=7"}, "limit", "7",
			"resetq dlq list: RESETQ_LIMIT is deprecated here: use RESETQ_DLQ_LIST_LIMIT (each command's --limit has a variable of its own)"},
		{"shared limit, redrive", []string{"dlq", "redrive"}, []string{"RESETQ_LIMIT=7"}, "limit", "7",
			"resetq dlq redrive: RESETQ_LIMIT is deprecated here: use RESETQ_DLQ_REDRIVE_LIMIT (each command's --limit has a variable of its own)"},
		{"command line wins over a list's variable", []string{"preflight", "--pool", "us-east-1_B"}, []string{"RESETQ_POOL=us-east-1_A"}, "pool", "us-east-1_B", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kv := range tt.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			set, args := "resetq "+tt.args[0], tt.args[1:]
			if tt.args[0] == "dlq" {
				set, args = set+" "+tt.args[1], tt.args[2:]
			}
			fs := collectSets()[set]
			var errOut bytes.Buffer
			fs.SetOutput(&errOut)
			if err := parseFlags(fs, args); err != nil {
				t.Fatalf("parse %v with %v: %v", tt.args, tt.env, err)
			}
			if got := fs.Lookup(tt.flag).Value.String(); got != tt.want {
				t.Errorf("--%s = %q, want %q", tt.flag, got, tt.want)
			}
			want := ""
			if tt.line != "" {
				want = tt.line + "\n"
			}
			if errOut.String() != want {
				t.Errorf("stderr %q, want %q", errOut.String(), want)
			}
		})
	}
	for _, r := range renames {
		var out, errOut bytes.Buffer
		args := append(strings.Fields(strings.TrimPrefix(r.set, "resetq ")), "--help")
		if code := Run(context.Background(), args, &out, &errOut); code != exitOK || strings.Contains(errOut.String(), "--"+r.old+" ") || strings.Contains(errOut.String(), "--"+r.old+"\n") {
			t.Errorf("%v = %d, and shows the old --%s:\n%s", args, code, r.old, errOut.String())
		}
	}
}

// TestRenameTables: renames and ownTwins name real flags of real commands,
// and every old variable is still accepted by every command.
func TestRenameTables(t *testing.T) {
	t.Parallel()
	sets := collectSets()
	for _, r := range renames {
		if fs := sets[r.set]; fs == nil || fs.Lookup(r.new) == nil || fs.Lookup(r.old) == nil || slices.Contains(visibleFlags(fs), r.old) {
			t.Errorf("rename %+v: no such command or flag, or the old name is shown", r)
		}
	}
	for _, o := range ownTwins {
		if fs := sets[o.set]; fs == nil || fs.Lookup(o.flag) == nil {
			t.Errorf("own twin %+v: no such command or flag", o)
		}
		if !slices.Contains(allTwins(), o.env) || !slices.Contains(allOldTwins(), envName(o.flag)) {
			t.Errorf("own twin %+v: %s not a twin, or %s not still read", o, o.env, envName(o.flag))
		}
	}
}

// TestSharedTwinsShareDefaults: a variable that several commands read has
// one meaning, so one default; a flag whose default differs per command
// has a variable of its own per command (ownTwins).
func TestSharedTwinsShareDefaults(t *testing.T) {
	t.Parallel()
	defaults := map[string]map[string][]string{} // variable -> default -> commands
	for name, fs := range collectSets() {
		fs.VisitAll(func(f *flag.Flag) {
			if _, old := newName(fs, f.Name); old {
				return
			}
			v := twin(fs, f.Name)
			if defaults[v] == nil {
				defaults[v] = map[string][]string{}
			}
			defaults[v][f.DefValue] = append(defaults[v][f.DefValue], name)
		})
	}
	for v, by := range defaults {
		if len(by) > 1 {
			t.Errorf("%s has a default per command: %v", v, by)
		}
	}
}
