package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/time/rate"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/enqueue"
	"github.com/resetq/resetq/report"
)

type reportFlags struct {
	pools                listFlag
	from, format, column string
	allUsers             bool
	filter, group        string
	since                string
	records              string
	getRate, listRate    float64
	concurrency          int
	progress             time.Duration
	output               *string
}

func (f *reportFlags) register(fs *flag.FlagSet) {
	poolFlag(fs, &f.pools, "of the user pool, e.g. eu-west-1_AbC123; one pool a run (required, except with --format jsonl, where jobs name their pool)")
	fs.StringVar(&f.from, "from", "", "source: the users of FILE (- for standard input), as resetq enqueue reads it; one AdminGetUser a user")
	fs.StringVar(&f.format, "format", "lines", "format of --from: lines, csv or jsonl (as resetq enqueue)")
	fs.StringVar(&f.column, "column", "username", "CSV column of the usernames")
	fs.BoolVar(&f.allUsers, "all-users", false, "source: every user of --pool (ListUsers, 60 users a call), narrowed by --filter")
	fs.StringVar(&f.filter, "filter", "", `with --all-users: a ListUsers filter, e.g. 'cognito:user_status = "RESET_REQUIRED"' (Cognito's syntax, passed as is)`)
	fs.StringVar(&f.group, "group", "", "source: the users of this group of --pool (ListUsersInGroup, 60 users a call)")
	fs.StringVar(&f.since, "since", "", "the campaign's start, RFC 3339 (required): a CONFIRMED user last modified at or after it has completed the reset")
	fs.StringVar(&f.records, "records", "", "write one record per user to `FILE`: CSV (.csv) or JSON lines (.jsonl, .ndjson, .json): username, status, enabled, last_modified, category, pool (--output is the summary's format)")
	fs.Float64Var(&f.getRate, "get-rate", 60, "AdminGetUser calls per second (--from); the UserRead quota is 120/s per account and Region, shared with resetq work's status checks and your applications")
	fs.Float64Var(&f.listRate, "list-rate", defaultListRate, "ListUsers/ListUsersInGroup calls per second (--all-users, --group); the UserList quota is 30/s, shared")
	fs.IntVar(&f.concurrency, "concurrency", report.DefaultConcurrency, "AdminGetUser calls in flight at once (--from; a listing reads its pages one after another)")
	fs.DurationVar(&f.progress, "progress-interval", defaultProgressInterval, "when stderr is not a terminal, a progress line this often (0: none)")
	f.output = outputFlag(fs)
}

func (f *reportFlags) validate() (time.Time, enqueue.Format, error) {
	sources := 0
	for _, set := range []bool{f.from != "", f.allUsers, f.group != ""} {
		if set {
			sources++
		}
	}
	format, ferr := enqueue.ParseFormat(f.format)
	since, serr := time.Parse(time.RFC3339, f.since)
	switch {
	case sources != 1:
		return since, format, usagef("give exactly one source: --from FILE, --all-users or --group NAME")
	case ferr != nil:
		return since, format, usageError{ferr}
	case f.since == "":
		return since, format, usagef("--since is required: the campaign's start, e.g. 2026-11-29T08:00:00Z")
	case serr != nil:
		return since, format, usagef("--since %q: want RFC 3339, e.g. 2026-11-29T08:00:00Z", f.since)
	case len(f.pools) == 0 && !(f.from != "" && format == enqueue.JSONL):
		return since, format, usagef("--pool is required (except with --from FILE --format jsonl)")
	case f.filter != "" && !f.allUsers:
		return since, format, usagef("--filter goes with --all-users")
	case f.records != "" && report.RecordFormat(f.records) == "":
		return since, format, usagef("--records %q: the name must end in .csv or .jsonl", f.records)
	case !(f.getRate > 0) || math.IsInf(f.getRate, 0):
		return since, format, usagef("--get-rate must be positive, got %v", f.getRate)
	case !(f.listRate > 0) || math.IsInf(f.listRate, 0):
		return since, format, usagef("--list-rate must be positive, got %v", f.listRate)
	case f.concurrency < 1:
		return since, format, usagef("--concurrency must be at least 1, got %d", f.concurrency)
	case f.progress < 0:
		return since, format, usagef("--progress-interval must not be negative")
	}
	if err := checkPools(f.pools, 1, "give one (report each pool on its own)"); err != nil {
		return since, format, err
	}
	return since, format, checkOutput(*f.output)
}

const reportHelp = `Usage: resetq report --since TIME [--pool ID] SOURCE [--records FILE] [flags]

Report a campaign from Cognito's own state: for each user of SOURCE, its
status, whether it is enabled, when it was last modified, and a category:
  completed              CONFIRMED, last modified at or after --since
  not_reset              CONFIRMED, last modified before --since
  pending                RESET_REQUIRED: the code is out, not used yet
  force_change_password  FORCE_CHANGE_PASSWORD: never signed in (re-invite)
  disabled               Enabled false, whatever the status
  not_found              no such user
  any other status, by its name in lower case (e.g. unconfirmed)
UserLastModifiedDate moves with any change to the user (an attribute too),
so completed means "changed since --since": with a CONFIRMED status after a
reset, that is a new password.

SOURCE is one of (as resetq enqueue):
  --from FILE|-   [--format lines|csv|jsonl] [--column NAME]
      one AdminGetUser per user (UserRead, 120/s a Region; --get-rate,
      default 60/s: 1 million users take about 4.6 hours)
  --all-users     [--filter '...']
  --group NAME
      ListUsers/ListUsersInGroup pages, which carry each user's status:
      60 users a call (UserList, 30/s; --list-rate, default 25/s: up to
      1,500 users/s, 1 million in about 11 minutes, in practice bounded
      by each call's latency, as pages are read one after another)
  A file names users the campaign touched; a listing is far cheaper when the
  campaign was a whole pool or group. With --from, a user named twice (or,
  in a pool whose usernames are not case-sensitive, in another case) is
  reported once.

Memory stays bounded: records are written as they come, in the order of the
source (with --from, about 16 bytes a user are kept to skip duplicates).
--output json prints {"counts": {...}, "users": N, ...}; --records FILE has
one record per user. A progress line is shown on a terminal, and every
--progress-interval elsewhere.
Exit codes: 0 every user reported; 1 a runtime failure, or invalid input
lines (the report covers the rest); 2 bad usage (flags, an unreadable file,
no such pool or group, no permission).
`

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f reportFlags
	fs := newFlagSet("resetq report", stderr)
	f.register(fs)
	setUsage(fs, reportHelp)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	since, format, err := f.validate()
	if err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	total := 0
	if f.from != "" && f.from != "-" {
		file, err := os.Open(f.from)
		if err != nil {
			return usagef("--from: %v", err)
		}
		defer file.Close()
		if total, err = enqueue.CountItems(file, format); err != nil {
			return usagef("--from %s: %v", f.from, err)
		}
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("--from %s: %w", f.from, err)
		}
		in = file
	}
	awsCfg, err := loadConfig(ctx)
	if err != nil {
		return err
	}

	var rw *report.RecordWriter
	var outFile *os.File
	if f.records != "" {
		if outFile, err = os.Create(f.records); err != nil {
			return usagef("--records: %v", err)
		}
		defer outFile.Close()
		if rw, err = report.NewRecordWriter(outFile, report.RecordFormat(f.records)); err != nil {
			return err
		}
	}

	var mu sync.Mutex
	tty := isTerminal(stderr)
	clearLine := ""
	if tty {
		clearLine = "\r\033[K"
	}
	invalidShown := 0
	cfg := report.Config{Since: since, Concurrency: f.concurrency,
		OnInvalid: func(it report.Item) {
			mu.Lock()
			defer mu.Unlock()
			if invalidShown++; invalidShown <= 100 {
				fmt.Fprintf(stderr, "%sinvalid: line %d: %v\n", clearLine, it.Line, it.Err)
			}
		}}
	if rw != nil {
		cfg.Write = rw.Write
	}
	users := cognito.NewUsers(awsCfg)
	var summary report.Summary
	var runErr error
	if f.from != "" {
		cfg.Pacer = rate.NewLimiter(rate.Limit(f.getRate), 1)
		sensitive := caseSensitive(awsCfg, stderr, &mu, clearLine, "reported")
		cfg.Fold = func(ctx context.Context, pool string) bool { return !sensitive(ctx, pool) }
		r, err := report.New(cfg)
		if err != nil {
			return err
		}
		stop := reportProgress(stderr, &mu, r, total, tty, f.progress)
		builder := enqueue.Builder{Pool: f.pools.one()}
		summary, runErr = r.Get(ctx, users, func(ctx context.Context, fn func(report.Item) error) error {
			return enqueue.ReadFile(in, format, f.column, func(it enqueue.Input) error {
				ri := report.Item{Line: it.Line, Err: it.Err}
				if ri.Err == nil {
					_, job, err := builder.Build(it)
					ri.Pool, ri.Username, ri.Err = job.UserPoolID, job.Username, err
				}
				return fn(ri)
			})
		})
		stop()
	} else {
		cfg.Pacer = rate.NewLimiter(rate.Limit(f.listRate), 1)
		r, err := report.New(cfg)
		if err != nil {
			return err
		}
		stop := reportProgress(stderr, &mu, r, 0, tty, f.progress)
		summary, runErr = r.List(ctx, users, f.pools.one(), f.filter, f.group)
		stop()
	}
	if rw != nil {
		if err := rw.Flush(); err != nil && runErr == nil {
			runErr = fmt.Errorf("write --records: %w", err)
		}
		if err := outFile.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("write --records: %w", err)
		}
	}
	var colErr *enqueue.MissingColumnError
	usage := errors.As(runErr, &colErr) || isReadConfigError(runErr)
	if usage && summary.Users == 0 {
		return usageError{runErr}
	}
	if err := writeResult(stdout, *f.output, summary, func(w io.Writer) error {
		return writeReportSummary(w, summary, f.records)
	}); err != nil {
		return err
	}
	switch {
	case usage:
		return usageError{runErr}
	case runErr != nil:
		return runErr
	case summary.Invalid > 0:
		return fmt.Errorf("%d invalid input lines not reported", summary.Invalid)
	}
	return nil
}

// isReadConfigError is a Cognito error every read would get: no such pool
// or group, a bad filter, no permission, bad credentials.
func isReadConfigError(err error) bool {
	switch awserr.Code(err) {
	case "ResourceNotFoundException", "InvalidParameterException", "NotAuthorizedException",
		"AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId":
		return true
	}
	return false
}

func writeReportSummary(w io.Writer, s report.Summary, outFile string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "since:\t%s\n", s.Since.Format(time.RFC3339))
	fmt.Fprintf(tw, "users:\t%d\n", s.Users)
	keys := slices.Clone(report.Categories)
	var other []string
	for k := range s.Counts {
		if !slices.Contains(keys, k) {
			other = append(other, k)
		}
	}
	sort.Strings(other)
	for _, k := range append(keys, other...) {
		pct := 0.0
		if s.Users > 0 {
			pct = 100 * float64(s.Counts[k]) / float64(s.Users)
		}
		fmt.Fprintf(tw, "  %s\t%d\t(%.1f%%)\n", k, s.Counts[k], pct)
	}
	if s.Duplicates > 0 {
		fmt.Fprintf(tw, "duplicates:\t%d\t(reported once)\n", s.Duplicates)
	}
	if s.Invalid > 0 {
		fmt.Fprintf(tw, "invalid:\t%d\t(not reported)\n", s.Invalid)
	}
	how := "ListUsers pages"
	if s.Source == "get" {
		how = "AdminGetUser calls"
	}
	fmt.Fprintf(tw, "read:\t%d %s in %.1fs\n", s.Calls, how, s.Elapsed)
	if outFile != "" {
		fmt.Fprintf(tw, "per user:\t%s\n", outFile)
	}
	return tw.Flush()
}

// reportProgress shows how many users are reported until stop is called.
func reportProgress(w io.Writer, mu *sync.Mutex, r *report.Reporter, total int, tty bool, interval time.Duration) (stop func()) {
	start := time.Now()
	return showProgress(w, mu, tty, interval, func() string {
		n := r.Progress()
		line := fmt.Sprintf("report: %d", n)
		if total > 0 {
			line += fmt.Sprintf("/%d (%.0f%%)", total, 100*float64(n)/float64(total))
		}
		return line + fmt.Sprintf(" users, %.0f/s", float64(n)/time.Since(start).Seconds())
	})
}
