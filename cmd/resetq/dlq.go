package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"golang.org/x/time/rate"

	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/dlq"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/ledger"
	"github.com/resetq/resetq/queue"
	"github.com/resetq/resetq/worker"
)

const dlqUsage = `Usage: resetq dlq <summary|list|redrive> [flags]

  summary   count the DLQ's messages by resetq.reason and campaign
  list      show dead-lettered jobs (pool, username, reason, error, attempts, failed_at)
  redrive   move jobs back to the source queue, all or one reason / campaign

Each job counts once, however many records it has in the DLQ (resetq.job-id). summary and
list do not consume the DLQ: each message read stays hidden until the pass ends, then is made
visible again. A pass ends once it has read every message the DLQ counts, and exits 1 when it
could not. "resetq dlq <command> --help" for flags.
`

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return usagef("a subcommand is required: summary, list or redrive")
	}
	switch args[0] {
	case "summary", "list", "redrive":
		return runDLQCommand(ctx, args[0], args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	}
	fmt.Fprint(stderr, dlqUsage)
	return usagef("unknown dlq subcommand %q", args[0])
}

// maxPeek bounds the messages one pass of summary holds in flight (SQS
// allows 120,000 in flight per standard queue).
const maxPeek = 100000

type dlqFlags struct {
	queueURL, dlqURL string
	reason, campaign string
	limit            int
	maxRate          float64
	visibility       time.Duration
	output           *string
	ledgerTable      string
	poolRoles        string
}

func runDLQCommand(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	var f dlqFlags
	fs := newFlagSet("resetq dlq "+cmd, stderr)
	var usageLine, about string
	switch cmd {
	case "summary":
		fs.StringVar(&f.queueURL, "queue-url", "", "URL of the source queue, whose RedrivePolicy names the DLQ (or give --dlq-url)")
		fs.StringVar(&f.dlqURL, "dlq-url", "", "URL of the dead-letter queue (default: the DLQ of --queue-url's RedrivePolicy)")
		fs.IntVar(&f.limit, "limit", 10000, "read at most this many messages (1 to 100000: they are all in flight at once during the pass, and SQS allows 120,000)")
		usageLine = "resetq dlq summary --queue-url URL | --dlq-url URL [--limit N] [--output text|json]"
		about = "Count the DLQ's jobs by resetq.reason and resetq.campaign in one pass, each job once\n" +
			"however many records it has (resetq.job-id). Messages without a reason were moved by SQS\n" +
			"itself after maxReceiveCount receives. Exit 1 when the pass could not read every message."
	case "list":
		fs.StringVar(&f.queueURL, "queue-url", "", "URL of the source queue, whose RedrivePolicy names the DLQ (or give --dlq-url)")
		fs.StringVar(&f.dlqURL, "dlq-url", "", "URL of the dead-letter queue (default: the DLQ of --queue-url's RedrivePolicy)")
		fs.StringVar(&f.reason, "reason", "", `only jobs with this resetq.reason ("none": moved by SQS's maxReceiveCount)`)
		fs.StringVar(&f.campaign, "campaign", "", "only jobs of this resetq.campaign")
		fs.IntVar(&f.limit, "limit", 100, "show at most this many jobs (0: no limit; at most 10000 messages are read)")
		usageLine = "resetq dlq list --queue-url URL | --dlq-url URL [--reason R] [--campaign C] [--limit N] [--output text|json]"
		about = "Show dead-lettered jobs, each once: message ID, pool, username, reason, error, attempts,\n" +
			"failed_at, and how many records it has. Values with control characters are quoted.\n" +
			"Usernames are shown in full: this is an operator's tool reading the campaign's own DLQ;\n" +
			"mind where you paste its output."
	case "redrive":
		fs.StringVar(&f.queueURL, "queue-url", "", "URL of the source queue the jobs go back to (required)")
		fs.StringVar(&f.dlqURL, "dlq-url", "", "URL of the dead-letter queue (default: the DLQ of --queue-url's RedrivePolicy)")
		fs.StringVar(&f.reason, "reason", "", `only jobs with this resetq.reason ("none": moved by SQS's maxReceiveCount)`)
		fs.StringVar(&f.campaign, "campaign", "", "only jobs of this resetq.campaign")
		fs.IntVar(&f.limit, "limit", 0, "move at most this many jobs (0: all)")
		fs.Float64Var(&f.maxRate, "max-rate", 50, "jobs moved per second at most (0: no limit)")
		usageLine = "resetq dlq redrive --queue-url URL [--dlq-url URL] [--reason R] [--campaign C] [--max-rate N] [--limit N] [--output text|json]"
		about = "Move dead-lettered jobs back to the source queue: the body and resetq.campaign unchanged,\n" +
			"the failure record (resetq.reason, resetq.error, resetq.attempts, resetq.failed_at) removed.\n" +
			"One copy per job (resetq.job-id): the job's other records are deleted. Each job is sent\n" +
			"to the source before it is deleted from the DLQ: an error in between leaves a duplicate,\n" +
			"never a loss. Jobs that do not match (and jobs that could not be sent) stay hidden during\n" +
			"the pass and are made visible again when it ends. The pass ends once it has read every\n" +
			"message the DLQ counts. Exit 1 when any matching message was not moved, or the pass\n" +
			"could not read every message."
	}
	switch cmd {
	case "list":
		ledgerFlag(fs, &f.ledgerTable, "show each job's user's outcome in the campaign ledger now (a duplicate's user may be done by another job)")
		poolRolesFlag(fs, &f.poolRoles)
	case "redrive":
		ledgerFlag(fs, &f.ledgerTable, "leave in the DLQ the jobs whose user the campaign ledger says is done (reset, re-invited or disabled by another job): counted skipped")
		poolRolesFlag(fs, &f.poolRoles)
	}
	fs.DurationVar(&f.visibility, "visibility", dlq.DefaultVisibility, "how long a message read is hidden at first; the pass renews it until it ends (a killed pass leaves messages hidden this long, or as long as it had run)")
	f.output = outputFlag(fs)
	setUsage(fs, "Usage: "+usageLine+"\n\n"+about+"\n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case f.queueURL == "" && f.dlqURL == "":
		return usagef("--queue-url or --dlq-url is required")
	case cmd == "redrive" && f.queueURL == "":
		return usagef("--queue-url (the queue the jobs go back to) is required")
	case f.limit < 0:
		return usagef("--limit must not be negative")
	case cmd == "summary" && (f.limit < 1 || f.limit > maxPeek):
		return usagef("--limit must be between 1 and %d", maxPeek)
	case f.maxRate < 0 || math.IsNaN(f.maxRate) || math.IsInf(f.maxRate, 0):
		return usagef("--max-rate must be a positive number or 0")
	case f.visibility < time.Second || f.visibility > 12*time.Hour:
		return usagef("--visibility must be between 1s and 12h")
	case f.poolRoles != "" && f.ledgerTable == "":
		return usagef("--pool-roles goes with --ledger-table: the DLQ tools call a pool only to read it for the ledger")
	}
	if err := checkOutput(*f.output); err != nil {
		return err
	}
	if err := checkQueueURLs(f.queueURL, f.dlqURL); err != nil {
		return err
	}
	anyURL := f.queueURL
	if anyURL == "" {
		anyURL = f.dlqURL
	}
	awsCfg, client, err := loadAWS(ctx, anyURL)
	if err != nil {
		return err
	}
	var led *ledger.ForWorker
	if f.ledgerTable != "" {
		l, err := openLedger(ctx, awsCfg, f.ledgerTable, false)
		if err != nil {
			return err
		}
		reach, err := openAccounts(ctx, awsCfg, f.poolRoles, false, stderrWarn(stderr))
		if err != nil {
			return err
		}
		led = &ledger.ForWorker{Ledger: l, CaseSensitive: cognito.NewPoolsWith(reach).CaseSensitive}
	}
	dlqURL := f.dlqURL
	var source *queue.Queue
	st := newStartup(stderrWarn(stderr))
	if f.queueURL != "" {
		source = queue.New(client, f.queueURL, nil)
		settings, err := readSource(ctx, st, source)
		if err != nil {
			return err
		}
		if dlqURL, err = resolveDLQ(ctx, st, source, settings, f.dlqURL, true); err != nil {
			return err
		}
	}
	dead := queue.New(client, dlqURL, nil)
	if _, err := startupRead(ctx, st, "read the dead-letter queue", dead.Settings); err != nil {
		return err
	}
	scan := dlq.ScanConfig{Visibility: f.visibility, Wait: time.Second}
	filter := dlq.Filter{Reason: f.reason, Campaign: f.campaign}
	if led != nil && cmd == "redrive" {
		filter.Skip = func(m job.Message) bool {
			r, found, err := ledgerRow(ctx, led, dlq.JobOf(m))
			return err == nil && found && r.Done() // in doubt, redriven: the worker's claim still refuses a second code
		}
	}

	switch cmd {
	case "summary":
		scan.Limit = f.limit
		s, err := dlq.Summarize(ctx, dead, scan)
		if err != nil {
			return err
		}
		if err := writeResult(stdout, *f.output, struct {
			DLQURL string `json:"dlq_url"`
			dlq.Summary
			Note string `json:"note"`
		}{dlqURL, s, summaryNote(s)}, func(w io.Writer) error { return printSummary(w, dlqURL, s) }); err != nil {
			return err
		}
		return unreadError(s.Scan)

	case "list":
		scan.Limit = 10000
		jobs, sc, err := dlq.List(ctx, dead, scan, filter, f.limit)
		if err != nil {
			return err
		}
		if jobs == nil {
			jobs = []dlq.Job{}
		}
		if led != nil {
			for i := range jobs {
				jobs[i].Ledger = ledgerOutcome(ctx, led, jobs[i])
			}
		}
		if err := writeResult(stdout, *f.output, struct {
			DLQURL string `json:"dlq_url"`
			dlq.Scan
			Jobs []dlq.Job `json:"jobs"`
		}{dlqURL, sc, jobs}, func(w io.Writer) error { return printJobs(w, jobs, sc) }); err != nil {
			return err
		}
		return unreadError(sc)

	default: // redrive
		cfg := dlq.RedriveConfig{Scan: scan, Filter: filter, Max: f.limit}
		if f.maxRate > 0 {
			cfg.Limiter = rate.NewLimiter(rate.Limit(f.maxRate), 1)
			// The pass renews what it holds before each move, when it
			// ends within half the visibility: that must outlast a move.
			if need := time.Duration(10/f.maxRate*float64(time.Second)) + 30*time.Second; need > cfg.Scan.Visibility {
				cfg.Scan.Visibility = min(need, 12*time.Hour).Round(time.Second)
			}
		}
		res, err := dlq.Redrive(ctx, dead, source, cfg)
		if perr := writeResult(stdout, *f.output, struct {
			DLQURL   string `json:"dlq_url"`
			QueueURL string `json:"queue_url"`
			dlq.RedriveResult
		}{dlqURL, f.queueURL, res}, func(w io.Writer) error { return printRedrive(w, dlqURL, f.queueURL, res) }); perr != nil && err == nil {
			err = perr
		}
		if err != nil {
			return fmt.Errorf("redrive stopped: %w", err)
		}
		if res.Failed > 0 {
			return fmt.Errorf("%d matching messages were not moved (see above)", res.Failed)
		}
		return unreadError(res.Scan)
	}
}

func printSummary(w io.Writer, dlqURL string, s dlq.Summary) error {
	fmt.Fprintf(w, "dead-letter queue %s: %d jobs in %d messages\n\n", dlqURL, s.Total, s.Read)
	if len(s.Counts) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "JOBS\tMESSAGES\tREASON\tCAMPAIGN")
		for _, c := range s.Counts {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", c.Jobs, c.Messages, cell(c.Reason), orDash(cell(c.Campaign)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	_, err := fmt.Fprintln(w, summaryNote(s))
	return err
}

func printJobs(w io.Writer, jobs []dlq.Job, sc dlq.Scan) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	ledgerCol := len(jobs) > 0 && jobs[0].Ledger != ""
	head := "MESSAGE ID\tPOOL\tUSERNAME\tREASON\tREMEDIATION\tSTEPS\tATTEMPTS\tFAILED AT\tRECORDS\tCAMPAIGN\t"
	if ledgerCol {
		head += "LEDGER\t"
	}
	fmt.Fprintln(tw, head+"ERROR")
	for _, j := range jobs {
		errText := cell(j.Error)
		if j.Body != "" {
			errText += " (body: " + cell(j.Body) + ")"
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t", cell(j.MessageID), orDash(cell(j.Pool)), orDash(cell(j.Username)),
			cell(j.Reason), orDash(cell(j.Remediation)), orDash(cell(j.Steps)), orDash(cell(j.Attempts)), orDash(cell(j.FailedAt)), j.Records, orDash(cell(j.Campaign)))
		if ledgerCol {
			row += cell(j.Ledger) + "\t"
		}
		fmt.Fprintln(tw, row+orDash(errText))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d jobs shown of %d messages read (one pass; the DLQ is unchanged)\n", len(jobs), sc.Read)
	if sc.Limited {
		fmt.Fprintln(w, "The pass stopped at a limit: the DLQ may hold more.")
	}
	return unreadLine(w, sc)
}

func printRedrive(w io.Writer, dlqURL, queueURL string, res dlq.RedriveResult) error {
	for _, fl := range res.Failures {
		fmt.Fprintf(w, "failed  %s  %s\n", cell(fl.MessageID), cell(fl.Error))
	}
	fmt.Fprintf(w, "redrive %s -> %s: read %d, moved %d, duplicates dropped %d, skipped %d (left in the DLQ), failed %d\n",
		dlqURL, queueURL, res.Read, res.Moved, res.Dropped, res.Skipped, res.Failed)
	if res.Limited {
		fmt.Fprintln(w, "The pass stopped at --limit: the DLQ may hold more matching jobs.")
	}
	return unreadLine(w, res.Scan)
}

func summaryNote(s dlq.Summary) string {
	dups := ""
	if s.Duplicates > 0 {
		dups = fmt.Sprintf(" %d messages were further records of a job already counted (dead-lettered again before their delete).", s.Duplicates)
	}
	switch {
	case s.Unread > 0:
		return fmt.Sprintf("Incomplete: the DLQ still counts %d messages this pass could not read.", s.Unread) + dups
	case s.Limited:
		return fmt.Sprintf("Counts are from one pass that stopped at --limit %d: the DLQ may hold more.", s.Read) + dups
	}
	return "Counts are from one pass that read every message once; jobs dead-lettered meanwhile may be missing." + dups
}

// unreadLine says, when the pass could not read every message, how many
// it missed and what to do.
func unreadLine(w io.Writer, sc dlq.Scan) error {
	if sc.Unread == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "Incomplete: the DLQ still counts %d messages this pass could not read (hidden by another reader, or delayed); run it again.\n", sc.Unread)
	return err
}

// unreadError is an error (exit 1) when the pass could not read every message.
func unreadError(sc dlq.Scan) error {
	if sc.Unread > 0 {
		return fmt.Errorf("incomplete: the DLQ still counts %d messages this pass could not read", sc.Unread)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ledgerRow reads the ledger's row of j's user in j's campaign.
func ledgerRow(ctx context.Context, led *ledger.ForWorker, j dlq.Job) (ledger.Row, bool, error) {
	if j.Pool == "" || j.Username == "" || j.Campaign == "" { // a job without a campaign is not in the ledger
		return ledger.Row{}, false, nil
	}
	return led.Row(ctx, worker.LedgerUser{Campaign: j.Campaign, Pool: j.Pool, Username: j.Username})
}

// ledgerOutcome is j's user's outcome in the ledger for dlq list: the
// outcome, "none" (enqueued, no outcome), "no_row", or "unknown" (the
// read failed).
func ledgerOutcome(ctx context.Context, led *ledger.ForWorker, j dlq.Job) string {
	r, found, err := ledgerRow(ctx, led, j)
	switch {
	case err != nil:
		return "unknown"
	case !found:
		return "no_row"
	case r.Outcome == "":
		return "none"
	}
	return string(r.Outcome)
}
