package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/resetq/resetq/job"
)

// renamed is a flag kept under its old name for old command lines and
// environments: the old name sets the new flag, is left out of the help,
// and says so in one line when used.
type renamed struct{ set, old, new string }

// renames are the flags that changed name, per flag set: one name for the
// campaign's pools on every command, and no --out beside --output.
var renames = []renamed{
	{"resetq work", "allowed-pools", "pool"},
	{"resetq report", "out", "records"},
}

// ownTwin is the environment variable of a flag whose meaning is the
// command's own (--concurrency is jobs in flight for work, SendMessageBatch
// calls for enqueue), so that one variable never feeds two meanings. The
// name the commands shared (RESETQ_CONCURRENCY) is still read when the
// command's own is unset, with a line saying so.
type ownTwin struct{ set, flag, env string }

// ownTwins are the flags whose variable names the command; every other
// flag's variable is RESETQ_ and its name, the same on every command.
var ownTwins = []ownTwin{
	{"resetq enqueue", "concurrency", "RESETQ_ENQUEUE_CONCURRENCY"},
	{"resetq report", "concurrency", "RESETQ_REPORT_CONCURRENCY"},
	{"resetq dlq summary", "limit", "RESETQ_DLQ_SUMMARY_LIMIT"},
	{"resetq dlq list", "limit", "RESETQ_DLQ_LIST_LIMIT"},
	{"resetq dlq redrive", "limit", "RESETQ_DLQ_REDRIVE_LIMIT"},
}

// addRenamed registers fs's old flag names, each sharing its new flag's value.
func addRenamed(fs *flag.FlagSet) {
	for _, r := range renames {
		if nf := fs.Lookup(r.new); r.set == fs.Name() && nf != nil && fs.Lookup(r.old) == nil {
			fs.Var(nf.Value, r.old, deprecatedPrefix+"use --"+r.new)
		}
	}
}

// newName is the new name of fs's flag name if it is an old one.
func newName(fs *flag.FlagSet, name string) (string, bool) {
	for _, r := range renames {
		if r.set == fs.Name() && r.old == name {
			return r.new, true
		}
	}
	return "", false
}

// twin is the environment variable of fs's flag name.
func twin(fs *flag.FlagSet, name string) string {
	for _, o := range ownTwins {
		if o.set == fs.Name() && o.flag == name {
			return o.env
		}
	}
	return envName(name)
}

// oldTwins are the variables still read for fs's flag name when its twin
// is unset, each with a deprecation line: the shared name of an own twin,
// and the twin of each old name of the flag.
func oldTwins(fs *flag.FlagSet, name string) []string {
	var old []string
	if t := twin(fs, name); t != envName(name) {
		old = append(old, envName(name))
	}
	for _, r := range renames {
		if r.set == fs.Name() && r.new == name {
			old = append(old, envName(r.old))
		}
	}
	return old
}

// twins are the variables of fs's flags, and the old ones still read.
func twins(fs *flag.FlagSet) (current, old []string) {
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := newName(fs, f.Name); !ok {
			current = append(current, twin(fs, f.Name))
			old = append(old, oldTwins(fs, f.Name)...)
		}
	})
	return current, old
}

// applyEnv sets each flag of fs not given on the command line from its
// variable, else from an old variable of it, and returns a deprecation
// line for each old variable used. A flag given under its old name on the
// command line counts as given.
func applyEnv(fs *flag.FlagSet, environ func(string) (string, bool)) ([]string, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		name := f.Name
		if n, ok := newName(fs, name); ok {
			name = n
		}
		given[name] = true
	})
	var notes []string
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if _, old := newName(fs, f.Name); old || given[f.Name] || err != nil {
			return
		}
		for i, name := range append([]string{twin(fs, f.Name)}, oldTwins(fs, f.Name)...) {
			v, ok := environ(name)
			if !ok {
				continue
			}
			if e := fs.Set(f.Name, v); e != nil {
				err = usagef("%s=%q: %v", name, v, e)
				return
			}
			if i > 0 {
				notes = append(notes, oldTwinNote(fs, f.Name, name))
			}
			return
		}
	})
	return notes, err
}

// oldTwinNote is the deprecation line for old, an old variable of fs's flag name.
func oldTwinNote(fs *flag.FlagSet, name, old string) string {
	now := twin(fs, name)
	if old == envName(name) {
		return fmt.Sprintf("%s: %s is deprecated here: use %s (each command's --%s has a variable of its own)", fs.Name(), old, now, name)
	}
	return fmt.Sprintf("%s: %s is deprecated: use %s", fs.Name(), old, now)
}

// listFlag is a repeatable flag whose values may also be comma-separated,
// as its environment variable gives them: --pool a --pool b, or --pool a,b.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// one is the only value of l, or "" when l has none (or several).
func (l listFlag) one() string {
	if len(l) == 1 {
		return l[0]
	}
	return ""
}

// poolFlag registers --pool, the campaign's user pools, parsed the same on
// every command: repeatable, or comma-separated. usage follows "ID".
func poolFlag(fs *flag.FlagSet, pools *listFlag, usage string) {
	fs.Var(pools, "pool", "`ID` "+usage)
}

// checkPools is a usage error unless every pool is a user pool ID and
// there are at most most of them (0: any number).
func checkPools(pools []string, most int, why string) error {
	for _, id := range pools {
		if err := job.ValidatePoolID(id); err != nil {
			return usagef("--pool %q is not a user pool ID of the form <region>_<id>", id)
		}
	}
	if most > 0 && len(pools) > most {
		return usagef("--pool: %d pools given; %s", len(pools), why)
	}
	return nil
}

// helpWidth is the width the help's flag usages are wrapped to.
const helpWidth = 80

// printFlags writes fs's flags as the help shows them, like pflag and the
// AWS CLI: --name TYPE (a bool has none), then the usage with the default
// and the environment variable; deprecated flags are left out.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, deprecatedPrefix) {
			return
		}
		typ, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if typ != "" {
			head += " " + typ
		}
		var tail []string
		if def := helpDefault(f, typ); def != "" {
			tail = append(tail, "default "+def)
		}
		tail = append(tail, "env "+twin(fs, f.Name))
		fmt.Fprintln(w, head)
		for _, line := range wrap(usage, "("+strings.Join(tail, ", ")+")", helpWidth-6) {
			fmt.Fprintln(w, "      "+line)
		}
	})
}

// helpDefault is f's default as the help shows it: "" for a zero value,
// quoted for a string.
func helpDefault(f *flag.Flag, typ string) string {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return ""
	}
	if typ == "string" {
		return fmt.Sprintf("%q", f.DefValue)
	}
	return f.DefValue
}

// wrap breaks text into lines of at most width bytes at spaces (a longer
// word gets a line of its own), then adds tail, never broken.
func wrap(text, tail string, width int) []string {
	var lines []string
	line := ""
	for _, word := range append(strings.Fields(text), tail) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	return append(lines, line)
}

// visibleFlags are the names of fs's flags the help shows.
func visibleFlags(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.HasPrefix(f.Usage, deprecatedPrefix) {
			names = append(names, f.Name)
		}
	})
	return slices.Sorted(slices.Values(names))
}
