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

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/time/rate"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/enqueue"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/ledger"
	"github.com/resetq/resetq/report"
)

type reportFlags struct {
	pools                listFlag
	from, format, column string
	allUsers             bool
	filter, group        string
	since                string
	ledgerTable          string
	campaign             string
	poolRoles            string
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
	fs.StringVar(&f.since, "since", "", "without --ledger-table, the campaign's start, RFC 3339 (required): a CONFIRMED user last modified at or after it counts as completed (an estimate)")
	ledgerFlag(fs, &f.ledgerTable, "report --campaign from what it did, as evidence, instead of estimating by --since (reads only: DescribeTable, Query)")
	poolRolesFlag(fs, &f.poolRoles)
	fs.StringVar(&f.campaign, "campaign", "", "with --ledger-table, the campaign to report (default: the one enqueued last), as resetq enqueue printed it")
	fs.StringVar(&f.records, "records", "", "write one record per user to `FILE` (mode 0600; a previous one is replaced only once the report is complete): CSV (.csv) or JSON lines (.jsonl, .ndjson, .json): username, status, enabled, last_modified, category, pool, and with --ledger-table detail, reason and each step's time (--output is the summary's format)")
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
	ledgerMode := f.ledgerTable != ""
	switch {
	case sources > 1 || sources == 0 && !ledgerMode:
		return since, format, usagef("give exactly one source: --from FILE, --all-users or --group NAME (or, with --ledger-table, none: the campaign's users)")
	case ferr != nil:
		return since, format, usageError{ferr}
	case !ledgerMode && f.campaign != "":
		return since, format, usagef("--campaign goes with --ledger-table")
	case ledgerMode && f.since != "":
		return since, format, usagef("--since goes without --ledger-table: the ledger says what the campaign did, whatever the dates say")
	case !ledgerMode && f.since == "":
		return since, format, usagef("--since is required: the campaign's start, e.g. 2026-11-29T08:00:00Z (or give --ledger-table and --campaign)")
	case !ledgerMode && serr != nil:
		return since, format, usagef("--since %q: want RFC 3339, e.g. 2026-11-29T08:00:00Z", f.since)
	case len(f.pools) == 0 && sources > 0 && !(f.from != "" && format == enqueue.JSONL):
		return since, format, usagef("--pool is required (except with --from FILE --format jsonl, or --ledger-table without a source)")
	case f.filter != "" && !f.allUsers:
		return since, format, usagef("--filter goes with --all-users")
	case f.records != "" && report.RecordFormat(f.records) == "":
		return since, format, usagef("--records %q: the name must end in .csv or .jsonl", f.records)
	case report.SameFile(f.records, f.from):
		return since, format, usagef("--records %s is the --from file: the report would replace its own source", f.records)
	case !(f.getRate > 0) || math.IsInf(f.getRate, 0):
		return since, format, usagef("--get-rate must be positive, got %v", f.getRate)
	case !(f.listRate > 0) || math.IsInf(f.listRate, 0):
		return since, format, usagef("--list-rate must be positive, got %v", f.listRate)
	case f.concurrency < 1:
		return since, format, usagef("--concurrency must be at least 1, got %d", f.concurrency)
	case f.progress < 0:
		return since, format, usagef("--progress-interval must not be negative")
	}
	if f.campaign != "" {
		if err := enqueue.CheckCampaign(f.campaign); err != nil {
			return since, format, usageError{err}
		}
	}
	if err := checkPools(f.pools, 1, "give one (report each pool on its own)"); err != nil {
		return since, format, err
	}
	return since, format, checkOutput(*f.output)
}

const reportHelp = `Usage: resetq report --ledger-table TABLE [--campaign ID] [--pool ID] [SOURCE]
                     [flags]
       resetq report --since TIME [--pool ID] SOURCE [flags]

Report a campaign: for each user, its status in Cognito, whether it is
enabled, when it was last modified, and a category.

With the campaign's ledger (--ledger-table; --campaign, by default the
one enqueued last), the report is evidence. Its users are the campaign's
rows in the ledger (of --pool only, if given) and, with a SOURCE, the
users of it that have no row. Each is read with AdminGetUser (--get-rate);
the category says what the campaign did and where the user stands now,
the detail column why:
  completed            the campaign reset the user, and it is CONFIRMED now:
                       leaving RESET_REQUIRED takes the code
  pending              the campaign reset the user, RESET_REQUIRED: code not
                       used yet
  reinvited            re-invited by the campaign, not signed in since
  reinvited_signed_in  re-invited by the campaign, signed in since (CONFIRMED)
  disabled             disabled by the campaign (no way to send it a code)
  disabled_before      disabled, not by the campaign
  dead_lettered        its job went to the DLQ; the reason column says why
  enqueued             enqueued, no outcome yet
  not_enqueued         named by SOURCE, never enqueued in the campaign
  not_found            no such user now
  (a user the campaign reset or re-invited, now in another status: that
  status in lower case)
A user the campaign did not reset is never completed, whatever the dates
say: a dead-lettered user on whom an attacker verified an email of their
own is CONFIRMED and changed since, and stays dead_lettered.

Without a ledger the report is an estimate from Cognito's dates (--since):
  completed              CONFIRMED, last modified at or after --since
  not_reset              CONFIRMED, last modified before --since
  pending                RESET_REQUIRED: the code is out, not used yet
  force_change_password  FORCE_CHANGE_PASSWORD: never signed in (re-invite)
  disabled               Enabled false, whatever the status
  not_found              no such user
  any other status, by its name in lower case (e.g. unconfirmed)
UserLastModifiedDate moves with any change to the user (an attribute too),
so completed means "changed since --since", whoever changed it.

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
ledger's rows, then of the source (about 16 bytes a user are kept to skip
duplicates). --output json prints {"counts": {...}, "users": N, "basis":
"ledger" or "estimate", ...}; --records FILE has one record per user. The
file is written aside and renamed over FILE once the report is complete
(a failed run leaves a previous report as it was), mode 0600; in CSV, a
cell starting with =, +, -, @, a tab or a carriage return gets a leading '
so that no spreadsheet runs it. A progress line is shown on a terminal,
and every --progress-interval elsewhere.
Exit codes: 0 every user reported; 1 a runtime failure, or invalid input
lines (the report covers the rest); 2 bad usage (flags, an unreadable file,
--records naming the --from file, no such pool, group, table or campaign,
no permission).
`

// reportRun is what one report reads and writes, once the flags are valid.
type reportRun struct {
	f        *reportFlags
	since    time.Time
	format   enqueue.Format
	in       io.Reader // --from's users
	total    int       // --from's lines, for the progress line; 0: unknown
	awsCfg   aws.Config
	reach    *accounts.Resolver // each pool's credentials (--pool-roles)
	ledger   *ledger.Ledger     // nil: an estimate
	stderr   io.Writer
	mu       sync.Mutex // stderr's lines
	tty      bool
	clear    string // the escape that clears a progress line
	invalids int
}

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
	run := &reportRun{f: &f, since: since, format: format, in: os.Stdin, stderr: stderr, tty: isTerminal(stderr)}
	if run.tty {
		run.clear = "\r\033[K"
	}
	if f.from != "" && f.from != "-" {
		file, err := os.Open(f.from)
		if err != nil {
			return usagef("--from: %v", err)
		}
		defer file.Close()
		if run.total, err = enqueue.CountItems(file, format); err != nil {
			return usagef("--from %s: %v", f.from, err)
		}
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("--from %s: %w", f.from, err)
		}
		run.in = file
	}
	if run.awsCfg, err = loadConfig(ctx); err != nil {
		return err
	}
	if run.reach, err = openAccounts(ctx, run.awsCfg, f.poolRoles, false, stderrWarn(stderr)); err != nil {
		return err
	}
	if f.ledgerTable != "" {
		if run.ledger, err = openLedger(ctx, run.awsCfg, f.ledgerTable, false); err != nil {
			return err
		}
		if f.campaign == "" {
			if f.campaign, err = lastCampaign(ctx, run.ledger); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "campaign %s (the one enqueued last)\n", cell(f.campaign))
		}
	}

	var out *report.File
	var rw *report.RecordWriter
	if f.records != "" {
		if out, err = report.CreateFile(f.records); err != nil {
			return usagef("--records: %v", err)
		}
		defer out.Abort() // a failed run leaves a previous report as it was
		if rw, err = report.NewRecordWriter(out, report.RecordFormat(f.records), run.ledger != nil); err != nil {
			return err
		}
	}
	summary, runErr := run.report(ctx, rw)
	if run.ledger != nil && runErr == nil && summary.Rows == 0 {
		return run.noRows()
	}
	if rw != nil && runErr == nil {
		if err := rw.Flush(); err != nil {
			runErr = fmt.Errorf("write --records: %w", err)
		} else if err := out.Commit(); err != nil {
			runErr = fmt.Errorf("write --records: %w", err)
		}
	}
	var colErr *enqueue.MissingColumnError
	var denied *awserr.DeniedError
	usage := errors.As(runErr, &colErr) || errors.As(runErr, &denied) || isReadConfigError(runErr)
	if usage && summary.Users == 0 {
		return usageError{runErr}
	}
	result := reportResult{Summary: summary}
	if run.ledger != nil {
		result.Table = f.ledgerTable
	}
	if err := writeResult(stdout, *f.output, result, func(w io.Writer) error {
		return writeReportSummary(w, result, f.records)
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

// noRows is the usage error of a campaign the ledger has no row of: a
// mistyped ID, most likely, whose report would say nothing.
func (run *reportRun) noRows() error {
	where := ""
	if len(run.f.pools) > 0 {
		where = " of --pool " + run.f.pools.one()
	}
	return usagef("--campaign %s: no rows%s in ledger table %s (resetq enqueue printed the campaign's ID)", run.f.campaign, where, run.f.ledgerTable)
}

// reportResult is the summary as --output json prints it.
type reportResult struct {
	report.Summary
	Table string `json:"ledger_table,omitempty"`
}

// report runs the report, writing records to rw (nil: none).
func (run *reportRun) report(ctx context.Context, rw *report.RecordWriter) (report.Summary, error) {
	f := run.f
	cfg := report.Config{Since: run.since, Concurrency: f.concurrency,
		Pacer:     rate.NewLimiter(rate.Limit(f.getRate), 1),
		ListPacer: rate.NewLimiter(rate.Limit(f.listRate), 1),
		OnInvalid: run.invalid}
	if rw != nil {
		cfg.Write = rw.Write
	}
	sourced := f.from != "" || f.allUsers || f.group != ""
	if f.from != "" || run.ledger != nil && sourced {
		sensitive := caseSensitive(run.reach, run.stderr, &run.mu, run.clear, "reported")
		cfg.Fold = func(ctx context.Context, pool string) bool { return !sensitive(ctx, pool) }
	}
	r, err := report.New(cfg)
	if err != nil {
		return report.Summary{}, err
	}
	users := cognito.NewUsersWith(run.reach)
	ctx = job.WithCampaign(ctx, f.campaign) // names the role sessions
	total := run.total
	if run.ledger != nil {
		total = 0 // the ledger's rows come first, uncounted
	}
	stop := reportProgress(run.stderr, &run.mu, r, total, run.tty, f.progress)
	defer stop()
	var src func(context.Context, func(report.Item) error) error
	switch {
	case f.from != "":
		src = run.fileSource()
	case sourced && run.ledger != nil:
		src = r.Listing(users, f.pools.one(), f.filter, f.group)
	case sourced:
		return r.List(ctx, users, f.pools.one(), f.filter, f.group)
	}
	if run.ledger == nil {
		return r.Get(ctx, users, src)
	}
	return r.Campaign(ctx, users, f.campaign, ledgerTrails(run.ledger, f.campaign, f.pools.one()), src)
}

// invalid shows an invalid input line (the first 100).
func (run *reportRun) invalid(it report.Item) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.invalids++; run.invalids <= 100 {
		fmt.Fprintf(run.stderr, "%sinvalid: line %d: %v\n", run.clear, it.Line, it.Err)
	}
}

// fileSource is the users of --from, each with its pool.
func (run *reportRun) fileSource() func(context.Context, func(report.Item) error) error {
	builder := enqueue.Builder{Pool: run.f.pools.one()}
	return func(ctx context.Context, fn func(report.Item) error) error {
		return enqueue.ReadFile(run.in, run.format, run.f.column, func(it enqueue.Input) error {
			ri := report.Item{Line: it.Line, Err: it.Err}
			if ri.Err == nil {
				_, job, err := builder.Build(it)
				ri.Pool, ri.Username, ri.Err = job.UserPoolID, job.Username, err
			}
			return fn(ri)
		})
	}
}

// ledgerTrails reads the campaign's rows (of pool only, unless "").
func ledgerTrails(l *ledger.Ledger, campaign, pool string) func(context.Context, func(report.Trail) error) error {
	return func(ctx context.Context, fn func(report.Trail) error) error {
		return l.Rows(ctx, campaign, func(row ledger.Row) error {
			if pool != "" && row.Pool != pool {
				return nil
			}
			return fn(trailOf(row))
		})
	}
}

// trailOf is a ledger row as the report reads it.
func trailOf(row ledger.Row) report.Trail {
	t := report.Trail{Pool: row.Pool, User: row.User, Username: row.Username, Enqueued: row.EnqueuedAt, Reason: row.Reason}
	if len(row.Steps) > 0 {
		t.Steps = make(map[string]time.Time, len(row.Steps))
		for step, at := range row.Steps {
			t.Steps[string(step)] = at
		}
	}
	return t
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

func writeReportSummary(w io.Writer, res reportResult, outFile string) error {
	s := res.Summary
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	keys := slices.Clone(report.Categories)
	if s.Basis == report.BasisLedger {
		keys = slices.Clone(report.CampaignCategories)
		fmt.Fprintf(tw, "basis:\tledger %s, campaign %s: what the campaign did, and each user's state now\n", cell(res.Table), cell(s.Campaign))
	} else {
		fmt.Fprintf(tw, "basis:\testimate: CONFIRMED and last modified since --since counts as completed, whoever changed the user (--ledger-table gives evidence)\n")
		fmt.Fprintf(tw, "since:\t%s\n", s.Since.Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "users:\t%d\n", s.Users)
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
	if s.Basis == report.BasisLedger {
		fmt.Fprintf(tw, "ledger rows:\t%d\n", s.Rows)
		if s.InLedger > 0 {
			fmt.Fprintf(tw, "source users with a row:\t%d\t(reported from their row)\n", s.InLedger)
		}
	}
	if s.Duplicates > 0 {
		fmt.Fprintf(tw, "duplicates:\t%d\t(reported once)\n", s.Duplicates)
	}
	if s.Invalid > 0 {
		fmt.Fprintf(tw, "invalid:\t%d\t(not reported)\n", s.Invalid)
	}
	how := "ListUsers pages"
	switch s.Source {
	case "get":
		how = "AdminGetUser calls"
	case "ledger":
		how = "Cognito calls (AdminGetUser, and ListUsers pages for a listing)"
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
