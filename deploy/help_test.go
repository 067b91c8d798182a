package deploy

import (
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/resetq/resetq/internal/testenv"
)

// helpFlag is one flag as `resetq <command> --help` shows it:
//
//	--rate float
//	    AdminResetUserPassword calls per second per Region; ...
//	    (default 24, env RESETQ_RATE)
type helpFlag struct {
	Type    string // "" for a bool
	Usage   string // in one line, the default and the variable left out
	Default string // as shown: 24, 30s, "json"; "" for a zero value
	Env     string // its environment twin
}

var (
	helpEntry = regexp.MustCompile(`(?m)^  --([a-z][a-z0-9-]*)(?: (\S+))?\n((?:      .*\n)+)`)
	helpTail  = regexp.MustCompile(`\s*\((?:default (.+?), )?env (RESETQ_[A-Z0-9_]+)\)$`)
)

// parseHelp reads the flags of a command's help.
func parseHelp(help string) map[string]helpFlag {
	flags := map[string]helpFlag{}
	for _, m := range helpEntry.FindAllStringSubmatch(help, -1) {
		usage := strings.Join(strings.Fields(m[3]), " ")
		f := helpFlag{Type: m[2]}
		if t := helpTail.FindStringSubmatchIndex(usage); t != nil {
			if t[2] >= 0 {
				f.Default = usage[t[2]:t[3]]
			}
			f.Env = usage[t[4]:t[5]]
			usage = usage[:t[0]]
		}
		f.Usage = usage
		flags[m[1]] = f
	}
	return flags
}

var helps sync.Map // command -> map[string]helpFlag

// commandHelp is the flags of the built binary's `resetq <command> --help`.
func commandHelp(t *testing.T, command string) map[string]helpFlag {
	t.Helper()
	if h, ok := helps.Load(command); ok {
		return h.(map[string]helpFlag)
	}
	out, _ := exec.Command(testenv.Binary(t), command, "--help").CombinedOutput()
	flags := parseHelp(string(out))
	if f := flags["queue-url"]; f.Env != "RESETQ_QUEUE_URL" {
		t.Fatalf("could not read the flags of `resetq %s --help`: %s", command, out)
	}
	helps.Store(command, flags)
	return flags
}

// envNames is the environment twin of every flag of help.
func envNames(help map[string]helpFlag) map[string]bool {
	names := map[string]bool{}
	for _, f := range help {
		names[f.Env] = true
	}
	return names
}

// flagOf is the flag of help whose twin is env.
func flagOf(help map[string]helpFlag, env string) (string, helpFlag, bool) {
	for name, f := range help {
		if f.Env == env {
			return name, f, true
		}
	}
	return "", helpFlag{}, false
}

// TestParseHelp: the help reader finds a flag's type, usage, default and
// variable, for a bool and a wrapped usage too.
func TestParseHelp(t *testing.T) {
	t.Parallel()
	help := "Usage: resetq work\n\nFlags:\n" +
		"  --concurrency int\n      jobs in flight at once\n      (default 16, env RESETQ_CONCURRENCY)\n" +
		"  --incident\n      an incident: turns on --global-sign-out (env RESETQ_INCIDENT)\n" +
		"  --log-format string\n      log format: json or text (default \"json\", env RESETQ_LOG_FORMAT)\n"
	got := parseHelp(help)
	want := map[string]helpFlag{
		"concurrency": {"int", "jobs in flight at once", "16", "RESETQ_CONCURRENCY"},
		"incident":    {"", "an incident: turns on --global-sign-out", "", "RESETQ_INCIDENT"},
		"log-format":  {"string", "log format: json or text", `"json"`, "RESETQ_LOG_FORMAT"},
	}
	if len(got) != len(want) {
		t.Fatalf("parseHelp = %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("--%s = %+v, want %+v", k, got[k], w)
		}
	}
}
