package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
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

Every flag has an environment twin, named in the help: --queue-url is
RESETQ_QUEUE_URL on every command; a flag whose meaning is the command's own
has a variable of its own (--concurrency of enqueue: RESETQ_ENQUEUE_CONCURRENCY).
The command line wins over the environment.
Exit codes: 0 done, 1 runtime failure, 2 bad usage or configuration.
`

// Run runs one resetq command and returns its exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, "resetq", version())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd, ok := lookupCommand(args[0])
	if !ok {
		fmt.Fprintf(stderr, "resetq: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
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

// command is one resetq command. Its run function must register and parse
// its flags before anything else: allTwins runs it to learn them.
type command struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	subs []string // subcommands with flags of their own, each run as run(ctx, [sub], ...)
}

// dlqCommands are the subcommands of resetq dlq (runDLQ dispatches them).
var dlqCommands = []string{"summary", "list", "redrive"}

// commands are resetq's commands that take flags (a function, not a
// variable: the run functions reach back to it through parseFlags).
func commands() []command {
	return []command{
		{name: "work", run: runWork},
		{name: "enqueue", run: runEnqueue},
		{name: "status", run: runStatus},
		{name: "dlq", run: runDLQ, subs: dlqCommands},
		{name: "preflight", run: runPreflight},
		{name: "report", run: runReport},
	}
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
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
		fmt.Fprint(fs.Output(), help+"\nFlags:\n")
		printFlags(fs.Output(), fs)
	}
}

// deprecatedPrefix starts the usage of a flag kept only for old command
// lines: it works, warns when set, and is not shown in the help.
const deprecatedPrefix = "deprecated: "

// warnDeprecated writes one line for each deprecated flag that was set.
func warnDeprecated(fs *flag.FlagSet, w io.Writer) {
	fs.Visit(func(f *flag.Flag) {
		if use, ok := strings.CutPrefix(f.Usage, deprecatedPrefix); ok {
			fmt.Fprintf(w, "%s: --%s is deprecated: %s\n", fs.Name(), f.Name, use)
		}
	})
}

// parseFlags parses the command line, then sets each flag not given there
// from its RESETQ_* environment twin, so the command line wins (a
// repeatable flag too: its values are not added to the variable's). A
// RESETQ_* variable that is no command's twin is refused: a misspelt
// setting (RESETQ_GLOBALSIGNOUT) must not leave a campaign without it.
// Old flag names (renames) work, each with one line on stderr.
func parseFlags(fs *flag.FlagSet, args []string) error {
	addRenamed(fs)
	if c, ok := fs.Output().(*flagCollector); ok {
		c.add(fs)
		return flag.ErrHelp
	}
	if err := checkEnvNames(fs, os.Environ()); err != nil {
		return err
	}
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %v", fs.Args())
	}
	notes, err := applyEnv(fs, os.LookupEnv)
	if err != nil {
		return err
	}
	warnDeprecated(fs, fs.Output())
	for _, n := range notes {
		fmt.Fprintln(fs.Output(), n)
	}
	return nil
}

// parseArgs parses the command line with the flag package's own messages
// silenced: on a mistake it prints the error and the whole help (some 80
// lines that bury the error); here the mistake is one line, and the help
// comes only when asked for.
func parseArgs(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		printHelp(fs)
		return err
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return usagef("%s", parseErrorText(err, fs.Name(), names))
}

// printHelp prints fs's help as the flag package would on -h.
func printHelp(fs *flag.FlagSet) {
	if fs.Usage != nil {
		fs.Usage()
		return
	}
	fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
	fs.PrintDefaults()
}

// harnessVars are the RESETQ_* variables that are no flag's twin and still
// not a mistake: the fault suite's settings (internal/chaos, make chaos)
// and the pacing simulation's (ratelimit/world_test.go). A shell that
// replays a chaos seed also runs the tests that run resetq, which reads
// none of them. The only such list; a test keeps it in step with the
// variables the repository reads.
var harnessVars = []string{"RESETQ_CHAOS", "RESETQ_CHAOS_REPORT", "RESETQ_CHAOS_SEED", "RESETQ_SIM_JITTER", "RESETQ_SIM_ROWS", "RESETQ_SIM_SEEDS"}

// serviceLink reports a variable Kubernetes sets in every pod of a
// namespace with a Service named resetq (service links): RESETQ_SERVICE_HOST,
// RESETQ_SERVICE_PORT[_NAME], RESETQ_PORT and RESETQ_PORT_<port>_<proto>[_...].
// They are no setting, and no flag's twin can look like one.
func serviceLink(name string) bool {
	rest := strings.TrimPrefix(name, envPrefix)
	return rest == "SERVICE_HOST" || rest == "SERVICE_PORT" || strings.HasPrefix(rest, "SERVICE_PORT_") ||
		rest == "PORT" || (strings.HasPrefix(rest, "PORT_") && len(rest) > 5 && rest[5] >= '0' && rest[5] <= '9')
}

// checkEnvNames refuses every RESETQ_* variable of environ that is neither
// the twin of a flag of some command (one ConfigMap serves several
// commands: RESETQ_USERS of preflight is fine for work), nor an old name
// still read, nor in harnessVars. The likely meant name is a current one.
func checkEnvNames(fs *flag.FlagSet, environ []string) error {
	own, ownOld := twins(fs)
	all := allTwins()
	var errs []error
	for _, kv := range slices.Sorted(slices.Values(environ)) {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || slices.Contains(all, name) || slices.Contains(own, name) ||
			slices.Contains(ownOld, name) || slices.Contains(allOldTwins(), name) || slices.Contains(harnessVars, name) || serviceLink(name) {
			continue
		}
		errs = append(errs, unknownEnvError(name, own, all, fs.Name()))
	}
	if len(errs) == 0 {
		return nil
	}
	return usageError{joinLine(errs)}
}

// joinLine is errs in one line, separated by "; ".
func joinLine(errs []error) error {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// flagCollector is the stderr of a dry run of a command: parseFlags, seeing
// it as a flag set's output, records the set and stops the command there,
// before it reads the environment or does anything.
type flagCollector struct {
	sets map[string]*flag.FlagSet // flag set name ("resetq dlq list") -> the set
}

func (c *flagCollector) Write(p []byte) (int, error) { return len(p), nil }

func (c *flagCollector) add(fs *flag.FlagSet) { c.sets[fs.Name()] = fs }

// collectFlags is the flags the help shows of every command and subcommand.
func collectFlags() map[string][]string {
	names := map[string][]string{}
	for name, fs := range collectSets() {
		names[name] = visibleFlags(fs)
	}
	return names
}

// collectSets runs every command and subcommand up to its flag parsing,
// with a flagCollector for stderr, and returns the flag set of each. The
// commands' own registration code is the only list of flags.
func collectSets() map[string]*flag.FlagSet {
	c := &flagCollector{sets: map[string]*flag.FlagSet{}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing should run past parseFlags; if something did, it is cancelled
	for _, cmd := range commands() {
		if len(cmd.subs) == 0 {
			cmd.run(ctx, nil, io.Discard, c)
		}
		for _, sub := range cmd.subs {
			cmd.run(ctx, []string{sub}, io.Discard, c)
		}
	}
	return c.sets
}

var (
	twinsOnce           sync.Once
	allTwin, allOldTwin []string
)

// allTwins is the environment twin of every flag of every command, sorted.
func allTwins() []string {
	twinsOnce.Do(collectTwins)
	return allTwin
}

// allOldTwins are the old variables still read, sorted.
func allOldTwins() []string {
	twinsOnce.Do(collectTwins)
	return allOldTwin
}

func collectTwins() {
	current, old := map[string]bool{}, map[string]bool{}
	for _, fs := range collectSets() {
		c, o := twins(fs)
		for _, n := range c {
			current[n] = true
		}
		for _, n := range o {
			old[n] = true
		}
	}
	allTwin, allOldTwin = slices.Sorted(maps.Keys(current)), slices.Sorted(maps.Keys(old))
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
