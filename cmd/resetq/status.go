package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/ledger"
	"io"
	"regexp"
	"slices"
	"time"

	"github.com/resetq/resetq/awscheck"
	"github.com/resetq/resetq/queue"
	"github.com/resetq/resetq/status"
)

// statusWindow is how many samples the drain rate of --watch looks back on.
const statusWindow = 12

type statusFlags struct {
	queueURL, dlqURL string
	watch            bool
	interval         time.Duration
	count            int
	output           *string
	usageRegions     listFlag // Regions, or "none"
	poolRoles        string
	ledgerTable      string
	campaign         string
}

// statusResult is one sample as --output json prints it.
type statusResult struct {
	Time     time.Time        `json:"time"`
	QueueURL string           `json:"queue_url"`
	Visible  int64            `json:"visible"`
	InFlight int64            `json:"in_flight"`
	Delayed  int64            `json:"delayed"`
	DLQURL   string           `json:"dlq_url,omitempty"`
	DLQ      *int64           `json:"dlq,omitempty"` // visible + in flight + delayed in the DLQ
	Drain    *status.Drain    `json:"drain,omitempty"`
	Usage    []status.Usage   `json:"usage,omitempty"`    // everyone's calls and throttles of the recovery category, per Region
	Campaign *status.Campaign `json:"campaign,omitempty"` // with --ledger-table: the campaign's users, per pool and in all
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f statusFlags
	fs := newFlagSet("resetq status", stderr)
	fs.StringVar(&f.queueURL, "queue-url", "", "URL of the SQS queue of reset jobs (required)")
	fs.StringVar(&f.dlqURL, "dlq-url", "", "URL of the dead-letter queue (default: the DLQ of the queue's RedrivePolicy)")
	fs.BoolVar(&f.watch, "watch", false, "sample again every --interval and print the drain rate and an ETA, until interrupted")
	fs.DurationVar(&f.interval, "interval", 5*time.Second, "time between samples with --watch")
	fs.IntVar(&f.count, "count", 0, "with --watch, stop after this many samples (0: until interrupted)")
	poolRolesFlag(fs, &f.poolRoles)
	fs.Var(&f.usageRegions, "usage-region", "`REGION` whose Cognito UserAccountRecovery calls and throttles to show, everyone's, from CloudWatch AWS/Usage (repeatable, or comma-separated; default: the queue's Region; none: off); needs cloudwatch:GetMetricData")
	ledgerFlag(fs, &f.ledgerTable, "show the campaign's users from the ledger: enqueued, done by outcome, dead-lettered by reason, left, per pool and in all, the share ended and (with --watch) an ETA; --queue-url is then optional")
	fs.StringVar(&f.campaign, "campaign", "", "with --ledger-table, the campaign to show (default: the one enqueued last)")
	f.output = outputFlag(fs)
	setUsage(fs, "Usage: resetq status --queue-url URL [--dlq-url URL] [--usage-region R,...|none] [--ledger-table TABLE [--campaign ID]] [--watch [--interval 5s] [--count N]] [--output text|json]\n\n"+
		"Show the campaign's queue: jobs visible, in flight and delayed (approximate counts from\n"+
		"GetQueueAttributes) and the DLQ depth. With --watch, one line per sample with the drain\n"+
		"rate over the last minute or so and an ETA (JSON: one object per line).\n\n"+
		"Also shows, per --usage-region, the latest minute CloudWatch has of Cognito's\n"+
		"UserAccountRecovery calls and throttles: everyone's, real users' and every resetq's\n"+
		"together (status does not know resetq's own counts; the worker's metrics do). Without\n"+
		"the permission or the data, one line says so; status does not fail for it.\n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case f.queueURL == "" && f.ledgerTable == "":
		return usagef("--queue-url is required (or --ledger-table)")
	case f.campaign != "" && f.ledgerTable == "":
		return usagef("--campaign goes with --ledger-table")
	case f.interval <= 0:
		return usagef("--interval must be positive")
	case f.count < 0:
		return usagef("--count must not be negative")
	case f.count > 0 && !f.watch:
		return usagef("--count needs --watch")
	}
	if err := checkOutput(*f.output); err != nil {
		return err
	}
	if err := checkQueueURLs(f.queueURL, f.dlqURL); err != nil {
		return err
	}
	if err := checkUsageRegions(f.usageRegions); err != nil {
		return err
	}
	var awsCfg aws.Config
	var source, dlq *queue.Queue
	var err error
	st := newStartup(stderrWarn(stderr))
	if f.queueURL == "" {
		if awsCfg, err = loadConfig(ctx); err != nil {
			return err
		}
	} else {
		var client queue.Client
		if awsCfg, client, err = loadAWS(ctx, f.queueURL); err != nil {
			return err
		}
		source = queue.New(client, f.queueURL, nil)
		settings, err := readSource(ctx, st, source)
		if err != nil {
			return err
		}
		dlqURL, err := resolveDLQ(ctx, st, source, settings, f.dlqURL, false)
		if err != nil {
			return err
		}
		if dlqURL != "" {
			dlq = queue.New(client, dlqURL, nil)
		}
	}
	usageRegions := []string(f.usageRegions)
	if len(usageRegions) == 0 && source != nil {
		usageRegions = []string{regionOfQueueURL(f.queueURL, awsCfg.Region)}
	} else if len(usageRegions) > 0 && usageRegions[0] == "none" {
		usageRegions = nil
	}
	reach, err := openAccounts(ctx, awsCfg, f.poolRoles, false, stderrWarn(stderr))
	if err != nil {
		return err
	}
	usageRegions = withAccounts(usageRegions, reach.Accounts())
	usage := &status.UsageCache{Reader: awscheck.NewWith(reach)}
	camp, err := openCampaign(ctx, awsCfg, f.ledgerTable, f.campaign)
	if err != nil {
		return err
	}

	var samples []status.Sample
	printed := map[string]string{} // the usage line last printed per Region, with --watch
	sample := func(ctx context.Context) (statusResult, error) {
		r, err := statusSample(ctx, source, dlq)
		if err == nil && camp != nil {
			r.Campaign, err = camp.sample(ctx, r.Time)
		}
		return r, err
	}
	// The first sample waits out SQS's (or the ledger's) faults as the
	// start-up reads do; with --watch, a later one that fails with a
	// fault that may pass is skipped with a warning, up to startupTries
	// in a row.
	failed := 0
	for n := 1; ; {
		var r statusResult
		var err error
		if n == 1 {
			r, err = startupRead(ctx, st, "read the queue", sample)
		} else {
			r, err = sample(ctx)
		}
		switch {
		case err != nil && f.watch && ctx.Err() != nil:
			return nil // interrupted: a normal end of --watch
		case err != nil && n == 1:
			return err
		case err != nil:
			if failed++; failed >= startupTries || !mayPassAtStartup(err) {
				return fmt.Errorf("read the queue (%s in a row): %w", tries(failed), err)
			}
			st.warn("a sample failed; the next in --interval", "error", err, "failed_in_a_row", failed, "max", startupTries)
		default:
			failed = 0
			if f.watch && source != nil {
				samples = append(samples, status.Sample{At: r.Time, Backlog: r.Visible + r.InFlight + r.Delayed})
				if len(samples) > statusWindow {
					samples = samples[len(samples)-statusWindow:]
				}
				d := status.DrainRate(samples)
				r.Drain = &d
			}
			r.Usage = usage.Read(ctx, usageRegions, r.Time)
			if err := printStatus(stdout, *f.output, f.watch, r, printed); err != nil {
				return err
			}
			if !f.watch || (f.count > 0 && n >= f.count) {
				return nil
			}
			n++
		}
		select {
		case <-ctx.Done():
			return nil // interrupted: a normal end of --watch
		case <-time.After(f.interval):
		}
	}
}

func statusSample(ctx context.Context, source, dlq *queue.Queue) (statusResult, error) {
	if source == nil { // the ledger's campaign alone
		return statusResult{Time: time.Now().UTC()}, nil
	}
	r := statusResult{QueueURL: source.URL()}
	d, err := source.Depth(ctx)
	if err != nil {
		return r, err
	}
	r.Time = time.Now().UTC()
	r.Visible, r.InFlight, r.Delayed = d.Visible, d.InFlight, d.Delayed
	if dlq != nil {
		dd, err := dlq.Depth(ctx)
		if err != nil {
			return r, err
		}
		n := dd.Visible + dd.InFlight + dd.Delayed
		r.DLQURL, r.DLQ = dlq.URL(), &n
	}
	return r, nil
}

// withAccounts is each of regions for the default credentials' account,
// then for each of accounts (those of --pool-roles), as job.Scope keys.
func withAccounts(regions, accounts []string) []string {
	out := slices.Clone(regions)
	for _, a := range accounts {
		for _, r := range regions {
			out = append(out, job.Scope{Account: a, Region: r}.Key())
		}
	}
	return out
}

// checkUsageRegions is a usage error unless regions is empty, "none"
// alone, or Region names.
func checkUsageRegions(regions []string) error {
	for _, r := range regions {
		switch {
		case r == "none" && len(regions) > 1:
			return usagef("--usage-region none turns the usage figures off: give it alone")
		case r != "none" && !regionName.MatchString(r):
			return usagef("--usage-region %q: want a Region such as us-east-1, or none", r)
		}
	}
	return nil
}

var regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// printStatus prints r; with --watch as text, a Region's usage line only
// when it differs from the one in printed, which it updates.
func printStatus(w io.Writer, format string, watch bool, r statusResult, printed map[string]string) error {
	if format == "json" && watch {
		return json.NewEncoder(w).Encode(r) // one object per line
	}
	return writeResult(w, format, r, func(w io.Writer) error {
		if r.Campaign != nil {
			prefix := ""
			if watch {
				prefix = r.Time.Format(time.TimeOnly) + "  "
			}
			if _, err := fmt.Fprint(w, prefix+r.Campaign.Text()); err != nil {
				return err
			}
		}
		if r.QueueURL == "" {
			return nil
		}
		if watch {
			line := fmt.Sprintf("%s  visible %d  in flight %d  delayed %d", r.Time.Format(time.TimeOnly), r.Visible, r.InFlight, r.Delayed)
			if r.DLQ != nil {
				line += fmt.Sprintf("  dlq %d", *r.DLQ)
			}
			if _, err := fmt.Fprintln(w, line+"  "+drainText(*r.Drain)); err != nil {
				return err
			}
			for _, u := range r.Usage {
				if text := u.Text(); printed[u.Region] != text {
					printed[u.Region] = text
					if _, err := fmt.Fprintf(w, "%s  usage %s\n", r.Time.Format(time.TimeOnly), text); err != nil {
						return err
					}
				}
			}
			return nil
		}
		fmt.Fprintf(w, "queue      %s\n", r.QueueURL)
		fmt.Fprintf(w, "visible    %d\n", r.Visible)
		fmt.Fprintf(w, "in flight  %d\n", r.InFlight)
		fmt.Fprintf(w, "delayed    %d\n", r.Delayed)
		if r.DLQ != nil {
			fmt.Fprintf(w, "dlq        %d  (%s)\n", *r.DLQ, r.DLQURL)
		} else {
			fmt.Fprintf(w, "dlq        none (the queue has no RedrivePolicy)\n")
		}
		if _, err := fmt.Fprintln(w, "(approximate counts from GetQueueAttributes)"); err != nil {
			return err
		}
		for _, u := range r.Usage {
			if _, err := fmt.Fprintf(w, "usage      %s\n", u.Text()); err != nil {
				return err
			}
		}
		return nil
	})
}

func drainText(d status.Drain) string {
	switch d.State {
	case status.DrainEmpty:
		return "empty"
	case status.DrainDraining:
		return fmt.Sprintf("draining %.1f/s  eta %s", d.PerSecond, d.ETAText)
	case status.DrainGrowing:
		return fmt.Sprintf("growing %.1f/s  eta none", -d.PerSecond)
	case status.DrainStalled:
		return "stalled  eta none"
	}
	return "rate: need another sample"
}

// readSource reads the source queue's settings, again while SQS faults
// (startupRead); a queue that does not exist or may not be read is a
// usage error.
func readSource(ctx context.Context, st startup, source *queue.Queue) (queue.Settings, error) {
	return startupRead(ctx, st, "read the source queue", source.Settings)
}

// resolveDLQ is flagURL when set, else the DLQ of the RedrivePolicy in s.
// With required, a queue without either is a usage error; else it is "".
// A DLQ that is the source queue is a usage error.
func resolveDLQ(ctx context.Context, st startup, source *queue.Queue, s queue.Settings, flagURL string, required bool) (string, error) {
	url := flagURL
	if url == "" {
		var err error
		url, err = startupRead(ctx, st, "find the DLQ of the RedrivePolicy", func(ctx context.Context) (string, error) {
			return source.DLQURL(ctx, s)
		})
		if err != nil {
			return "", err
		}
		if url == "" {
			if required {
				return "", usageError{queue.ErrNoDLQ}
			}
			return "", nil
		}
	}
	if source.SameAs(ctx, url) {
		return "", usagef("the dead-letter queue is the source queue (%s): failed jobs would come straight back", url)
	}
	return url, nil
}

// campaignStatus reads a campaign's progress from the ledger, keeping the
// samples of what is left for the ETA.
type campaignStatus struct {
	l    *ledger.Ledger
	name string
	left status.LeftSamples
}

// openCampaign opens the ledger's campaign name, or the one enqueued last;
// nil without a table.
func openCampaign(ctx context.Context, awsCfg aws.Config, table, name string) (*campaignStatus, error) {
	if table == "" {
		return nil, nil
	}
	l, err := openLedger(ctx, awsCfg, table, false)
	if err != nil {
		return nil, err
	}
	if name == "" {
		if name, err = lastCampaign(ctx, l); err != nil {
			return nil, err
		}
	}
	return &campaignStatus{l: l, name: name, left: status.LeftSamples{Window: 15 * time.Minute}}, nil
}

func (c *campaignStatus) sample(ctx context.Context, now time.Time) (*status.Campaign, error) {
	p, err := c.l.Progress(ctx, c.name)
	if err != nil {
		return nil, err
	}
	counts := campaignCounts(p)
	total := status.NewCampaign(c.name, counts, nil).Total
	out := status.NewCampaign(c.name, counts, c.left.Add(now, total.Left))
	return &out, nil
}
