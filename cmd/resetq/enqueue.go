package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/enqueue"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/ledger"
	"github.com/resetq/resetq/queue"
	"github.com/resetq/resetq/ratelimit"
)

type enqueueFlags struct {
	queueURL             string
	pools                listFlag
	from, format, column string
	allUsers             bool
	filter, group        string
	metadata, campaign   string
	poolRoles            string
	concurrency, retries int
	listRate             float64
	rejects              string
	signingKeyFile       string
	globalSignOut        bool
	incident             bool
	dryRun               bool
	output               *string
	progress             time.Duration
	ledgerTable          string
}

func (f *enqueueFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.queueURL, "queue-url", "", "URL of the SQS queue of reset jobs (required)")
	poolFlag(fs, &f.pools, "of the user pool, e.g. eu-west-1_AbC123; one pool a run (required, except with --format jsonl, where jobs name their pool; if given there, every job must name it)")
	fs.StringVar(&f.from, "from", "", "source: read jobs from FILE (- for standard input)")
	fs.StringVar(&f.format, "format", "lines", "format of --from: lines (one username a line), csv (a header, then records) or jsonl (one job object a line)")
	fs.StringVar(&f.column, "column", "username", "CSV column of the usernames")
	fs.BoolVar(&f.allUsers, "all-users", false, "source: every user of --pool (ListUsers), narrowed by --filter")
	fs.StringVar(&f.filter, "filter", "", `with --all-users: a ListUsers filter, e.g. 'email ^= "a"' (Cognito's syntax, passed as is)`)
	fs.StringVar(&f.group, "group", "", "source: the users of this group of --pool (ListUsersInGroup)")
	fs.StringVar(&f.metadata, "client-metadata", "", "k=v,k2=v2: ClientMetadata added to every job (a JSONL job's own keys win)")
	fs.StringVar(&f.campaign, "campaign", "", "campaign ID, the resetq.campaign attribute of every message (default: generated, c-<UTC time>-<random>, and printed)")
	fs.IntVar(&f.concurrency, "concurrency", enqueue.DefaultConcurrency, "SendMessageBatch calls in flight at once (up to 10 jobs a call)")
	fs.IntVar(&f.retries, "retries", enqueue.DefaultRetries, "times a failed entry or call is tried again, with backoff, before the job is rejected")
	fs.Float64Var(&f.listRate, "list-rate", defaultListRate, "ListUsers/ListUsersInGroup calls per second; the UserList quota is 30/s per account and Region, shared")
	fs.StringVar(&f.rejects, "rejects", "", `write jobs that could not be enqueued to this file, one a line: {"line":N,"job":{...},"error":"..."}`)
	fs.StringVar(&f.signingKeyFile, "signing-key-file", "", "sign every job (resetq.signature attribute) with the first key of this file, for workers run with --signing-key-file")
	fs.BoolVar(&f.globalSignOut, "global-sign-out", false, "ask for every job's user's sessions to be ended once the password is dead (the resetq.global-sign-out attribute, covered by the signature); --incident asks for it and more")
	fs.BoolVar(&f.incident, "incident", false, "an incident: ask for everything it needs for every job's user (the resetq.incident attribute, covered by the signature): the password killed at once when the code must wait, the sessions ended after it, a new invitation for users who never signed in, and users who cannot get a code disabled; any resetq work honours it, whatever its flags. Use with --signing-key-file")
	fs.BoolVar(&f.dryRun, "dry-run", false, "read, validate and count, send nothing; with --output text the jobs that would be sent are printed, one JSON a line, and the summary goes to stderr")
	fs.DurationVar(&f.progress, "progress-interval", defaultProgressInterval, "when stderr is not a terminal, a progress line this often (0: none)")
	ledgerFlag(fs, &f.ledgerTable, "record each user enqueued, per campaign and pool, for resetq status and report (created when missing)")
	poolRolesFlag(fs, &f.poolRoles)
	f.output = outputFlag(fs)
}

func (f *enqueueFlags) validate() error {
	sources := 0
	for _, set := range []bool{f.from != "", f.allUsers, f.group != ""} {
		if set {
			sources++
		}
	}
	format, err := enqueue.ParseFormat(f.format)
	switch {
	case f.queueURL == "":
		return usagef("--queue-url is required")
	case sources != 1:
		return usagef("give exactly one source: --from FILE, --all-users or --group NAME")
	case err != nil:
		return usageError{err}
	case len(f.pools) == 0 && !(f.from != "" && format == enqueue.JSONL):
		return usagef("--pool is required (except with --from FILE --format jsonl)")
	case f.filter != "" && !f.allUsers:
		return usagef("--filter goes with --all-users")
	case f.column == "":
		return usagef("--column must not be empty")
	case f.concurrency < 1:
		return usagef("--concurrency must be at least 1, got %d", f.concurrency)
	case f.retries < 0:
		return usagef("--retries must not be negative, got %d", f.retries)
	case !(f.listRate > 0):
		return usagef("--list-rate must be positive, got %v", f.listRate)
	case f.progress < 0:
		return usagef("--progress-interval must not be negative")
	}
	if err := checkPools(f.pools, 1, "give one (enqueue each pool on its own)"); err != nil {
		return err
	}
	if f.campaign != "" {
		if err := enqueue.CheckCampaign(f.campaign); err != nil {
			return usageError{err}
		}
	}
	if err := checkOutput(*f.output); err != nil {
		return err
	}
	return checkQueueURLs(f.queueURL)
}

const enqueueHelp = `Usage: resetq enqueue --queue-url URL [--pool ID] SOURCE [flags]

Put AdminResetUserPassword jobs on the queue of resetq work. SOURCE is one of:
  --from FILE|-   [--format lines|csv|jsonl] [--column NAME]
  --all-users     [--filter 'email ^= "a"']
  --group NAME

Input: lines has one username a line (surrounding white space trimmed, blank
lines skipped, no comments: "#" may begin a username); csv has a header line;
jsonl has one job object a line ({"UserPoolId":..,"Username":..,
"ClientMetadata":{..}}), and --client-metadata is added to each job's own
ClientMetadata, whose keys win. --pool, when given with jsonl, must be the pool
of every job.

Every job is checked with the worker's own validator. Invalid input lines are
reported with their line numbers and not sent; a user named twice is sent once
(the first occurrence). In a pool whose usernames are not case-sensitive
(DescribeUserPool, one call per pool of a file), names that differ only in case
are one user. A leading UTF-8 byte order mark is skipped.
Failed entries are retried; jobs that still fail are rejected: listed, and
written to --rejects FILE (feed them back with: jq -c .job FILE > retry.jsonl;
resetq enqueue --from retry.jsonl --format jsonl ...).

The summary says exactly how many jobs are on the queue (entries SQS accepted).
Delivery is at least once: a call that failed in transit may have been stored
before it was retried, so a job can (rarely) be on the queue twice.
Exit codes: 0 every valid job enqueued and no invalid input; 1 some input was
invalid, some job was rejected, or the run failed; 2 bad usage (flags, a missing
CSV column, an unreadable file, no such pool, group or queue).
`

func runEnqueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f enqueueFlags
	fs := newFlagSet("resetq enqueue", stderr)
	f.register(fs)
	setUsage(fs, enqueueHelp)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	format, _ := enqueue.ParseFormat(f.format)
	meta, err := enqueue.ParseMetadata(f.metadata)
	if err != nil {
		return usageError{err}
	}
	campaign := f.campaign
	if campaign == "" {
		campaign = enqueue.NewCampaign(time.Now())
	}
	var signingKey []byte
	if f.signingKeyFile != "" {
		keys, err := job.ReadKeyFile(f.signingKeyFile)
		if err != nil {
			return usageError{err}
		}
		signingKey = keys[0]
	}
	if f.incident {
		fmt.Fprintln(stderr, "resetq enqueue: --incident: every job asks for the password killed at once when its code must wait, the sessions ended after it, a new invitation for users who never signed in, and the unreachable disabled (resetq.incident=true)")
		if signingKey == nil {
			fmt.Fprintln(stderr, "resetq enqueue: WARNING: --incident without --signing-key-file: the jobs are not signed, so a worker that checks signatures refuses them and one that does not cannot tell them from anyone else's")
		}
	}

	// The source, opened before anything is sent so that an unreadable
	// file is a usage error.
	var src enqueue.Source
	total := 0
	if f.from != "" {
		var r io.Reader = os.Stdin
		if f.from != "-" {
			file, err := os.Open(f.from)
			if err != nil {
				return usagef("--from: %v", err)
			}
			defer file.Close()
			if st, err := file.Stat(); err == nil && st.Mode().IsRegular() {
				if total, err = enqueue.CountItems(file, format); err != nil {
					return usagef("--from %s: %v", f.from, err)
				}
				if _, err := file.Seek(0, io.SeekStart); err != nil {
					return fmt.Errorf("--from %s: %w", f.from, err)
				}
			}
			r = file
		}
		src = func(_ context.Context, fn func(enqueue.Input) error) error {
			return enqueue.ReadFile(r, format, f.column, fn)
		}
	}

	awsCfg, sqsClient, err := loadAWS(ctx, f.queueURL)
	if err != nil {
		return err
	}
	reach, err := openAccounts(ctx, awsCfg, f.poolRoles, false, stderrWarn(stderr))
	if err != nil {
		return err
	}
	ctx = job.WithCampaign(ctx, campaign) // names the role sessions
	if f.allUsers || f.group != "" {
		limiter, err := ratelimit.New(ratelimit.Config{Ceiling: f.listRate})
		if err != nil {
			return usageError{err}
		}
		region := job.Job{UserPoolID: f.pools.one()}.Region()
		// throttles come to the Listing, which waits and asks again
		lister := cognito.Lister{API: cognito.NewListClient(reach.Pool(f.pools.one(), campaign).Config, region)}
		src = enqueue.Listing{API: lister, Pacer: limiter, Pool: f.pools.one(), Filter: f.filter, Group: f.group}.List
	}

	// The queue must exist and be readable (sqs:GetQueueAttributes is in
	// the producer policy) before anything is read or sent.
	if _, err := startupRead(ctx, newStartup(stderrWarn(stderr)), "read the queue", queue.New(sqsClient, f.queueURL, nil).ARN); err != nil {
		return err
	}

	var rejects *os.File
	if f.rejects != "" && !f.dryRun {
		if rejects, err = os.Create(f.rejects); err != nil {
			return usagef("--rejects: %v", err)
		}
		defer rejects.Close()
	}

	textOut := *f.output == "text"
	summaryOut := stdout
	if f.dryRun && textOut {
		summaryOut = stderr // stdout has the jobs
	}
	fmt.Fprintf(stderr, "campaign %s\n", campaign)

	var stderrMu sync.Mutex
	tty := isTerminal(stderr)
	clearLine := "" // the progress line, on a terminal
	if tty {
		clearLine = "\r\033[K"
	}
	invalidShown := 0
	cfg := enqueue.Config{
		Queue: queue.NewBatchSender(sqsClient, f.queueURL), QueueURL: f.queueURL, Campaign: campaign, SigningKey: signingKey, GlobalSignOut: f.globalSignOut, Incident: f.incident,
		Builder:     enqueue.Builder{Pool: f.pools.one(), Metadata: meta},
		Concurrency: f.concurrency, Retries: f.retries, DryRun: f.dryRun,
		Fatal: isConfigError,
		OnInvalid: func(inv enqueue.Invalid) {
			stderrMu.Lock()
			defer stderrMu.Unlock()
			invalidShown++
			switch {
			case invalidShown <= 100:
				fmt.Fprintf(stderr, "%sinvalid: line %d: %s\n", clearLine, inv.Line, inv.Error)
			case invalidShown == 101:
				fmt.Fprintf(stderr, "%sinvalid: more lines; the summary counts them all\n", clearLine)
			}
		},
	}
	if f.from != "" || f.ledgerTable != "" { // a listing names each user once; the ledger compares names as the pool does
		cfg.CaseSensitive = caseSensitive(reach, stderr, &stderrMu, clearLine, "enqueued")
	}
	if f.ledgerTable != "" && !f.dryRun {
		l, err := openLedger(ctx, awsCfg, f.ledgerTable, true)
		if err != nil {
			return err
		}
		cfg.OnSent = func(ctx context.Context, sent []enqueue.Sent) error {
			keys := make([]ledger.Key, len(sent))
			for i, s := range sent {
				keys[i] = ledger.Key{Campaign: campaign, Pool: s.Job.UserPoolID, User: s.Job.Username, Fold: s.Fold}
			}
			_, err := l.Enqueued(ctx, keys, time.Now())
			return err
		}
	}
	if f.dryRun && textOut {
		cfg.DryRunOut = stdout
	}
	if rejects != nil {
		cfg.Rejects = rejects
	}
	runner, err := enqueue.New(cfg)
	if err != nil {
		return err
	}

	stopProgress := showProgress(stderr, &stderrMu, tty, f.progress, func() string { return progressLine(runner.Progress(), total) })
	summary, runErr := runner.Run(ctx, src)
	stopProgress()
	if rejects != nil {
		if err := rejects.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("write --rejects: %w", err)
		}
	}

	var listErr *enqueue.ListError
	var colErr *enqueue.MissingColumnError
	usage := errors.As(runErr, &colErr) || errors.As(runErr, &listErr)
	if usage && summary.Read == 0 {
		return usageError{runErr} // nothing read, nothing sent: no summary
	}
	if err := writeResult(summaryOut, *f.output, summary, func(w io.Writer) error {
		return writeEnqueueSummary(w, summary, f.rejects)
	}); err != nil {
		return err
	}

	switch {
	case usage:
		return usageError{runErr}
	case isConfigError(runErr):
		return startupError("send to the queue", runErr)
	case runErr != nil:
		return runErr
	}
	var problems []string
	if summary.Rejected > 0 {
		problems = append(problems, fmt.Sprintf("%d jobs not enqueued", summary.Rejected))
	}
	if summary.Invalid > 0 {
		problems = append(problems, fmt.Sprintf("%d invalid input lines not enqueued", summary.Invalid))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, ", "))
	}
	return nil
}

func writeEnqueueSummary(w io.Writer, s enqueue.Summary, rejectsFile string) error {
	fmt.Fprintf(w, "campaign:    %s\n", s.Campaign)
	if s.DryRun {
		fmt.Fprintf(w, "dry run:     %d jobs would be enqueued; nothing was sent\n", s.WouldEnqueue)
	} else {
		fmt.Fprintf(w, "enqueued:    %d jobs are on the queue\n", s.Enqueued)
	}
	fmt.Fprintf(w, "read:        %d\n", s.Read)
	fmt.Fprintf(w, "invalid:     %d\n", s.Invalid)
	fmt.Fprintf(w, "duplicates:  %d (sent once)\n", s.Duplicates)
	fmt.Fprintf(w, "rejected:    %d\n", s.Rejected)
	fmt.Fprintf(w, "elapsed:     %.1fs (%.0f jobs/s)\n", s.ElapsedSeconds, s.Rate)
	for i, r := range s.Rejects {
		if i == 20 {
			fmt.Fprintf(w, "  ... %d more rejects\n", s.Rejected-20)
			break
		}
		fmt.Fprintf(w, "  rejected: line %d: %s: %s\n", r.Line, r.Job, r.Error)
	}
	if s.Rejected > 0 && rejectsFile != "" {
		fmt.Fprintf(w, "rejected jobs are in %s\n", rejectsFile)
	}
	if s.Invalid > 0 {
		fmt.Fprintf(w, "invalid lines were not sent: fix them and enqueue them again (exit code 1)\n")
	}
	return nil
}

// caseSensitive asks Cognito whether a pool's usernames are case-sensitive,
// and says on w what the answer means for the run: names that differ only
// in case are one user, `done` once ("enqueued", "reported").
func caseSensitive(reach *accounts.Resolver, w io.Writer, mu *sync.Mutex, clearLine, done string) func(context.Context, string) bool {
	pools := cognito.NewPoolsWith(reach)
	return func(ctx context.Context, pool string) bool {
		sensitive, err := pools.CaseSensitive(ctx, pool)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil && ctx.Err() == nil:
			fmt.Fprintf(w, "%swarning: %v\n  usernames of %s that differ only in case are taken for different users\n", clearLine, err, pool)
		case !sensitive:
			fmt.Fprintf(w, "%spool %s: usernames are not case-sensitive: names that differ only in case are one user, %s once\n", clearLine, pool, done)
		}
		return sensitive
	}
}

// Defaults of flags enqueue and report share.
const (
	defaultProgressInterval = 5 * time.Second // --progress-interval
	defaultListRate         = 25              // --list-rate: ListUsers calls/s, under UserList's 30/s
)

// showProgress prints line() on w every interval until the returned func
// is called: an updating line on a terminal (every 200ms), else a line
// every interval (0: none). mu guards w against the caller's other writes.
func showProgress(w io.Writer, mu *sync.Mutex, tty bool, interval time.Duration, line func() string) (stop func()) {
	if tty {
		interval = 200 * time.Millisecond
	}
	if interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					mu.Lock()
					fmt.Fprint(w, "\r\033[K")
					mu.Unlock()
				}
				return
			case <-t.C:
			}
			l := line()
			mu.Lock()
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", l)
			} else {
				fmt.Fprintln(w, l)
			}
			mu.Unlock()
		}
	})
	return func() { close(done); wg.Wait() }
}

func progressLine(p enqueue.Progress, total int) string {
	done := p.Done()
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	line := fmt.Sprintf("progress: %d", done)
	if total > 0 {
		line += fmt.Sprintf("/%d (%.0f%%)", total, 100*float64(done)/float64(total))
	}
	line += fmt.Sprintf(" done, %d enqueued, %.0f/s", p.Enqueued+p.WouldEnqueue, rate)
	if total > 0 && rate > 0 && int64(total) > done {
		eta := time.Duration(float64(int64(total)-done) / rate * float64(time.Second))
		line += ", ETA " + eta.Round(time.Second).String()
	}
	return line
}

// isConfigError is an SQS error that every call would get (no such queue,
// no access): startupError makes it a usage error.
func isConfigError(err error) bool {
	return err != nil && errors.As(startupError("", err), new(usageError))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
