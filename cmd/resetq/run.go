package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the work failed at run time
	exitUsage   = 2 // bad flags or configuration
)

// usageError is a mistake in flags or configuration: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

const usage = `resetq resets Amazon Cognito users' passwords in bulk from an SQS queue of jobs.

Usage:
  resetq <command> [flags]

Commands:
  work       consume reset jobs from a queue
  enqueue    put reset jobs on a queue (from a file, a group, or every user of a pool)
  status     show a campaign's queue: backlog, in flight, dead letters, drain rate
  dlq        summarize, list and redrive dead-lettered jobs
  preflight  check a pool and a queue before a campaign
  report     report a campaign from Cognito's state: who completed, is pending, was not reset
  version    print the version

"resetq <command> --help" describes a command's flags.

Every flag has an environment twin: --queue-url is RESETQ_QUEUE_URL.
Exit codes: 0 done, 1 runtime failure, 2 bad usage or configuration.
`

// Run runs one resetq command and returns its exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "work":
		err = runWork(ctx, args[1:], stdout, stderr)
	case "enqueue":
		err = runEnqueue(ctx, args[1:], stdout, stderr)
	case "status":
		err = runStatus(ctx, args[1:], stdout, stderr)
	case "dlq":
		err = runDLQ(ctx, args[1:], stdout, stderr)
	case "preflight":
		err = runPreflight(ctx, args[1:], stdout, stderr)
	case "report":
		err = runReport(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "resetq", version())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "resetq: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "resetq %s: %v\n", args[0], err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "resetq %s: %v\n", args[0], err)
		return exitFailure
	}
}

// version is the module version stamped by the Go toolchain, or "dev".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// newFlagSet is a command's flag set: parse errors are returned, not fatal,
// and messages go to stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// setUsage makes --help print help, then every flag with its environment twin.
func setUsage(fs *flag.FlagSet, help string) {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), help+"\nFlags (each also RESETQ_<FLAG>):\n\n")
		fs.PrintDefaults()
	}
}

// parseFlags applies RESETQ_* environment twins, then the command line, so a
// flag given on the command line wins over its environment variable.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = usagef("%s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %v", fs.Args())
	}
	return nil
}

func envName(flagName string) string {
	return "RESETQ_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newLogger builds the slog logger from --log-format and --log-level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want json or text", format)
}
