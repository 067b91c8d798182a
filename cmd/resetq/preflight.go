package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/resetq/resetq/awscheck"
	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/preflight"
	"github.com/resetq/resetq/queue"
	"github.com/resetq/resetq/userpool"
)

const preflightHelp = `Usage: resetq preflight --pool ID [--pool ID ...] [--queue-url URL] [--users N] [--rate R]
                        [--incident | --global-sign-out --reinvite --kill-password
                         --unreachable dead-letter|disable --status-check all|redelivered|off]
                        [--output text|json]

Check pools and the queue before a campaign. Each check is ok, warning or
blocking; exit 1 when anything is blocking.

With --probe-calls (default), also, per pool, one line per Cognito call
the campaign makes (every incident call with --incident, else the calls
the flags of resetq work given here imply): the call is made for a user
that cannot exist (resetq-preflight-<16 hex digits>; AdminCreateUser with
MessageAction RESEND, which creates nobody). UserNotFoundException proves
the call permitted; AccessDeniedException is blocking, naming the IAM
action. It proves the permissions of the credentials preflight runs with:
run it with the worker's role.

With --incident, Cognito's default email for more than 50 users (a day
per 50) is blocking. Each pool's sign-in policy is read: a first factor
other than the password (passkeys, email or SMS codes) is a warning, as
the reset does not close it.

With --pool-roles FILE, the pools it names are checked too, each with its
role's credentials, and the capacity below is read per account and
Region, with the campaign's duration set by the slowest of them.

With --capacity (default), also, per pool and per account and Region:
  ses quota, ses rate    pools that send email through SES (DEVELOPER):
                         GetSendQuota in the SES identity's Region: the
                         sandbox (200 a day, 1/s) is blocking; the 24-hour
                         quota left against --users, the send rate against
                         --rate
  sms spend limit        pools that recover by phone: SNS MonthlySpendLimit
                         (USD 1 a month on a new account)
  recovery quota         the UserAccountRecovery quota (Service Quotas,
                         cognito-idp L-7D6E8ED3; the documented 30/s when
                         it does not answer)
  real users' use        CloudWatch AWS/Usage CallCount of UserAccountRecovery
                         per minute over --usage-window: real users' peak
                         calls/s, and the highest --rate that leaves it free
                         (quota - peak - a tenth of the quota). A past
                         campaign's calls count as real users' here.
A reading that is not permitted is a warning naming the IAM action.
`

func runPreflight(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var pools listFlag
	var queueURL string
	var users int
	var rateFlag float64
	fs := newFlagSet("resetq preflight", stderr)
	poolFlag(fs, &pools, "of each user pool of the campaign (required unless --pool-roles names them; repeatable, or comma-separated)")
	var poolRoles string
	poolRolesFlag(fs, &poolRoles)
	fs.StringVar(&queueURL, "queue-url", "", "URL of the SQS queue of reset jobs (optional: checks its RedrivePolicy, visibility and retention)")
	fs.IntVar(&users, "users", 0, "number of users in the campaign (optional: for the email quota and the expected duration)")
	fs.Float64Var(&rateFlag, "rate", defaultRate, "the --rate resetq work will run with (calls per second per account and Region)")
	var capacity bool
	var window time.Duration
	fs.BoolVar(&capacity, "capacity", true, "also check capacity: SES send quota, SNS SMS spend limit, the recovery quota (Service Quotas) and real users' use of it (CloudWatch)")
	fs.DurationVar(&window, "usage-window", preflight.DefaultUsageWindow, "how far back real users' use of the recovery quota is read (per minute)")
	var calls callFlags
	calls.register(fs)
	var probeCalls bool
	fs.BoolVar(&probeCalls, "probe-calls", true, "prove that the credentials may make each Cognito call of the campaign: one call per pool and operation, for a user that cannot exist")
	output := outputFlag(fs)
	setUsage(fs, preflightHelp)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case len(pools) == 0 && poolRoles == "":
		return usagef("--pool is required")
	case users < 0:
		return usagef("--users must not be negative")
	case !(rateFlag > 0) || math.IsInf(rateFlag, 0):
		return usagef("--rate must be positive, got %v", rateFlag)
	case window < time.Minute || window > 15*24*time.Hour:
		return usagef("--usage-window must be between 1m and 360h (CloudWatch keeps per-minute data 15 days), got %v", window)
	}
	if err := calls.validate(); err != nil {
		return err
	}
	if err := checkPools(pools, 0, ""); err != nil {
		return err
	}
	if err := checkOutput(*output); err != nil {
		return err
	}
	if queueURL != "" {
		if err := checkQueueURLs(queueURL); err != nil {
			return err
		}
	}

	var cfg aws.Config
	var sqsClient queue.Client
	var err error
	if queueURL != "" {
		cfg, sqsClient, err = loadAWS(ctx, queueURL)
	} else {
		cfg, err = loadConfig(ctx)
	}
	if err != nil {
		return err
	}

	reach, err := openAccounts(ctx, cfg, poolRoles, false, stderrWarn(stderr))
	if err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(reach.Roles())) {
		if !slices.Contains(pools, p) {
			pools = append(pools, p)
		}
	}
	describer := cognito.NewPoolsWith(reach)
	var checks []preflight.Check
	var described []userpool.Pool
	seen := map[string]bool{}
	for _, id := range pools {
		if seen[id] {
			continue
		}
		seen[id] = true
		p, err := describer.Describe(ctx, id)
		if err != nil {
			checks = append(checks, preflight.Check{Level: preflight.Blocking, Subject: id, Name: "describe pool", Message: err.Error()})
			continue
		}
		described = append(described, p)
		checks = append(checks, preflight.CheckPool(p, users, calls.incident)...)
		checks = append(checks, preflight.CheckSignIn(p))
	}
	if probeCalls {
		probed, err := checkPermissions(ctx, reach, pools, calls.calls())
		if err != nil {
			return err
		}
		checks = append(checks, probed...)
	}
	checks = append(checks, preflight.CheckTokens(slices.Contains(calls.calls(), userpool.OpGlobalSignOut)))
	if capacity && len(described) > 0 {
		readers := awscheck.NewWith(reach)
		c := preflight.Capacity{SES: readers, SMS: readers, Quota: readers, Usage: readers, Window: window, Scope: reach.Scope}
		checks = append(checks, c.Check(ctx, described, users, rateFlag, time.Now())...)
	}
	if queueURL != "" {
		qi, err := describeQueue(ctx, sqsClient, queueURL)
		if err != nil {
			checks = append(checks, preflight.Check{Level: preflight.Blocking, Subject: queueURL, Name: "read queue", Message: err.Error()})
		} else {
			checks = append(checks, preflight.CheckQueue(qi)...)
		}
	}
	for _, c := range preflight.CheckRate(users, rateFlag) {
		// Over several account-Regions the capacity checks said the
		// duration, from the slowest: one Region's estimate would mislead.
		if c.Name == "duration" && slices.ContainsFunc(checks, func(d preflight.Check) bool { return d.Subject == c.Subject && d.Name == c.Name }) {
			continue
		}
		checks = append(checks, c)
	}

	blocked := preflight.Blocked(checks)
	if err := writeResult(stdout, *output, struct {
		Checks  []preflight.Check `json:"checks"`
		Blocked bool              `json:"blocked"`
	}{checks, blocked}, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Level, c.Subject, c.Name, c.Message)
		}
		return tw.Flush()
	}); err != nil {
		return err
	}
	if blocked {
		return errors.New("blocking problems found: fix them before the campaign")
	}
	return nil
}

// describeQueue reads the source queue's settings and its DLQ's retention.
func describeQueue(ctx context.Context, client queue.Client, url string) (preflight.QueueInfo, error) {
	qi := preflight.QueueInfo{URL: url}
	src := queue.New(client, url, nil)
	s, err := src.Settings(ctx)
	if err != nil {
		return qi, err
	}
	qi.FIFO, qi.DLQARN, qi.MaxReceiveCount, qi.Visibility = s.FIFO, s.DLQARN, s.MaxReceiveCount, s.Visibility
	if qi.Retention, err = src.Retention(ctx); err != nil {
		return qi, err
	}
	if s.DLQARN != "" {
		dlqURL, err := src.DLQURL(ctx, s)
		if err == nil {
			qi.DLQRetention, err = queue.New(client, dlqURL, nil).Retention(ctx)
		}
		if err != nil {
			qi.DLQError = err.Error()
		}
	}
	return qi, nil
}
