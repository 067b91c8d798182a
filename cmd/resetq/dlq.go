package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"golang.org/x/time/rate"

	"github.com/resetq/resetq/ops"
	"github.com/resetq/resetq/queue"
)

const dlqUsage = `Usage: resetq dlq <summary|list|redrive> [flags]

  summary   count the DLQ's messages by resetq.reason and campaign
  list      show dead-lettered jobs (pool, username, reason, error, attempts, failed_at)
  redrive   move jobs back to the source queue, all or one reason / campaign

summary and list do not consume the DLQ: each message read is hidden for --visibility
during one pass, then made visible again. "resetq dlq <command> --help" for flags.
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
		about = "Count the DLQ's messages by resetq.reason and resetq.campaign in one pass. Messages\n" +
			"without a reason were moved by SQS itself after maxReceiveCount receives. The counts are\n" +
			"from one pass over a queue that others may use: approximate when the DLQ is large."
	case "list":
		fs.StringVar(&f.queueURL, "queue-url", "", "URL of the source queue, whose RedrivePolicy names the DLQ (or give --dlq-url)")
		fs.StringVar(&f.dlqURL, "dlq-url", "", "URL of the dead-letter queue (default: the DLQ of --queue-url's RedrivePolicy)")
		fs.StringVar(&f.reason, "reason", "", `only jobs with this resetq.reason ("none": moved by SQS's maxReceiveCount)`)
		fs.StringVar(&f.campaign, "campaign", "", "only jobs of this resetq.campaign")
		fs.IntVar(&f.limit, "limit", 100, "show at most this many jobs (0: no limit; at most 10000 messages are read)")
		usageLine = "resetq dlq list --queue-url URL | --dlq-url URL [--reason R] [--campaign C] [--limit N] [--output text|json]"
		about = "Show dead-lettered jobs: message ID, pool, username, reason, error, attempts, failed_at.\n" +
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
			"Each job is sent to the source before it is deleted from the DLQ: an error in between\n" +
			"leaves a duplicate, never a loss. Jobs that do not match (and jobs that could not be\n" +
			"sent) stay hidden during the pass and are made visible again when it ends.\n" +
			"Exit 1 when any job could not be moved."
	}
	fs.DurationVar(&f.visibility, "visibility", 60*time.Second, "how long each message read stays hidden from other readers during the pass")
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
	_, client, err := loadAWS(ctx, anyURL)
	if err != nil {
		return err
	}
	dlqURL := f.dlqURL
	var source *queue.Queue
	if f.queueURL != "" {
		source = queue.New(client, f.queueURL, nil)
		if dlqURL, err = resolveDLQ(ctx, client, source, f.dlqURL, true); err != nil {
			return err
		}
	}
	dlq := queue.New(client, dlqURL, nil)
	if _, err := dlq.Settings(ctx); err != nil {
		return startupError("read the dead-letter queue", err)
	}
	scan := ops.ScanConfig{Visibility: f.visibility, Wait: time.Second}
	filter := ops.Filter{Reason: f.reason, Campaign: f.campaign}

	switch cmd {
	case "summary":
		scan.Limit = f.limit
		s, err := ops.Summarize(ctx, dlq, scan)
		if err != nil {
			return err
		}
		return writeResult(stdout, *f.output, struct {
			DLQURL string `json:"dlq_url"`
			ops.Summary
			Note string `json:"note"`
		}{dlqURL, s, summaryNote(s)}, func(w io.Writer) error {
			fmt.Fprintf(w, "dead-letter queue %s: %d messages\n\n", dlqURL, s.Total)
			if len(s.Counts) > 0 {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "MESSAGES\tREASON\tCAMPAIGN")
				for _, c := range s.Counts {
					fmt.Fprintf(tw, "%d\t%s\t%s\n", c.Messages, c.Reason, orDash(c.Campaign))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintln(w)
			}
			_, err := fmt.Fprintln(w, summaryNote(s))
			return err
		})

	case "list":
		scan.Limit = 10000
		jobs, read, err := ops.List(ctx, dlq, scan, filter, f.limit)
		if err != nil {
			return err
		}
		if jobs == nil {
			jobs = []ops.Job{}
		}
		return writeResult(stdout, *f.output, struct {
			DLQURL string    `json:"dlq_url"`
			Read   int       `json:"read"`
			Jobs   []ops.Job `json:"jobs"`
		}{dlqURL, read, jobs}, func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MESSAGE ID\tPOOL\tUSERNAME\tREASON\tATTEMPTS\tFAILED AT\tCAMPAIGN\tERROR")
			for _, j := range jobs {
				errText := j.Error
				if j.Body != "" {
					errText += " (body: " + j.Body + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.MessageID, orDash(j.Pool), orDash(j.Username), j.Reason,
					orDash(j.Attempts), orDash(j.FailedAt), orDash(j.Campaign), orDash(oneLine(errText)))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "\n%d jobs shown of %d messages read (one pass; the DLQ is unchanged)\n", len(jobs), read)
			return err
		})

	default: // redrive
		cfg := ops.RedriveConfig{Scan: scan, Filter: filter, Max: f.limit}
		if f.maxRate > 0 {
			cfg.Limiter = rate.NewLimiter(rate.Limit(f.maxRate), 1)
			// A batch of 10 must be moved before its messages show again.
			if need := time.Duration(10/f.maxRate*float64(time.Second)) + 30*time.Second; need > cfg.Scan.Visibility {
				cfg.Scan.Visibility = min(need, 12*time.Hour).Round(time.Second)
			}
		}
		res, err := ops.Redrive(ctx, dlq, source, cfg)
		if perr := writeResult(stdout, *f.output, struct {
			DLQURL   string `json:"dlq_url"`
			QueueURL string `json:"queue_url"`
			ops.RedriveResult
		}{dlqURL, f.queueURL, res}, func(w io.Writer) error {
			for _, fl := range res.Failures {
				fmt.Fprintf(w, "failed  %s  %s\n", fl.MessageID, fl.Error)
			}
			_, err := fmt.Fprintf(w, "redrive %s -> %s: read %d, moved %d, skipped %d (left in the DLQ), failed %d\n",
				dlqURL, f.queueURL, res.Read, res.Moved, res.Skipped, res.Failed)
			return err
		}); perr != nil && err == nil {
			err = perr
		}
		if err != nil {
			return fmt.Errorf("redrive stopped: %w", err)
		}
		if res.Failed > 0 {
			return fmt.Errorf("%d jobs were not moved (see above)", res.Failed)
		}
		return nil
	}
}

func summaryNote(s ops.Summary) string {
	if s.Limited {
		return fmt.Sprintf("Counts are from one pass that stopped at --limit %d: the DLQ may hold more.", s.Total)
	}
	return "Counts are from one pass over the DLQ; approximate if it is large or in use."
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}
