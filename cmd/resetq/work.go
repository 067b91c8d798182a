package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/awscheck"
	"github.com/resetq/resetq/clock"
	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/ledger"
	"github.com/resetq/resetq/metrics"
	"github.com/resetq/resetq/preflight"
	"github.com/resetq/resetq/queue"
	"github.com/resetq/resetq/ratelimit"
	"github.com/resetq/resetq/usagemetrics"
	"github.com/resetq/resetq/userpool"
	"github.com/resetq/resetq/worker"
)

// cognitoQuota is the UserAccountRecovery quota per account per Region.
const cognitoQuota = 30

// defaultRate is --rate's default, resetq work's and preflight's (which
// checks the rate the worker will run with): 80% of cognitoQuota.
const defaultRate = 24

type workFlags struct {
	queueURL, dlqURL          string
	rate                      float64
	concurrency, maxAttempts  int
	metricsAddr               string
	exitWhenIdle              time.Duration
	shutdownTimeout           time.Duration
	circuitCooldown           time.Duration
	logFormat, logLevel       string
	logUsernames              string
	usernameKeyFile           string
	redeliveryCheck           bool
	statusCheck               string
	statusCheckRate           float64
	harmBudget                float64
	maxDeferral               time.Duration
	globalSignOut, reinvite   bool
	incident, killPassword    bool
	signOutRate, reinviteRate float64
	unreachable               string
	emailLimitProbe           time.Duration
	usageMetrics              bool
	usageInterval             time.Duration
	stateDir                  string
	pools                     listFlag
	allowAnyPool              bool
	signingKeyFile            string
	redisURL, redisKeyPrefix  string
	redisCAFile               string
	redisCluster              bool
	redisSentinelMaster       string
	fleetSize                 int
	ledgerTable               string
	poolRoles                 string
}

func (f *workFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.queueURL, "queue-url", "", "URL of the SQS queue of reset jobs (required)")
	fs.StringVar(&f.dlqURL, "dlq-url", "", "URL of the dead-letter queue (default: the DLQ of the queue's RedrivePolicy)")
	fs.Float64Var(&f.rate, "rate", defaultRate, "AdminResetUserPassword calls per second per account and Region; the quota is 30/s shared with real users' ForgotPassword")
	fs.IntVar(&f.concurrency, "concurrency", worker.DefaultConcurrency, "jobs in flight at once, each through its Cognito calls one after another (--rate and the other rates pace the calls)")
	fs.IntVar(&f.maxAttempts, "max-attempts", worker.DefaultMaxAttempts, "transient failures of a job before it is dead-lettered as attempts_exhausted")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":9464", "address for /metrics, /healthz and /readyz (empty: off)")
	fs.DurationVar(&f.exitWhenIdle, "exit-when-idle", 0, "exit 0 once the queue has been empty with nothing in flight for this long (0: run until stopped)")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", worker.DefaultShutdownTimeout, "on SIGTERM/SIGINT, time to finish calls under way before exiting")
	fs.DurationVar(&f.circuitCooldown, "circuit-cooldown", worker.DefaultCircuitCooldown, "first wait before probing a Region whose circuit opened; doubles per failed probe, up to 10m")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logUsernames, "log-usernames", "hashed", "usernames in logs: hashed (a SHA-256 prefix, or keyed with --username-hash-key-file) or plain")
	fs.StringVar(&f.usernameKeyFile, "username-hash-key-file", "", "file whose first key line keys the usernames' hash in logs (HMAC-SHA256): without it the hash is unkeyed, and anyone with a list of usernames can tell whose lines are whose")
	poolFlag(fs, &f.pools, "of each user pool this worker may reset (repeatable, or comma-separated); jobs for other pools are dead-lettered as pool_not_allowed (required unless --allow-any-pool)")
	poolRolesFlag(fs, &f.poolRoles)
	fs.BoolVar(&f.allowAnyPool, "allow-any-pool", false, "reset users of any pool a job names (an explicit choice: anyone who can write to the queue can then reset users of any pool the credentials reach)")
	fs.StringVar(&f.signingKeyFile, "signing-key-file", "", "file of HMAC keys, one a line: accept only jobs whose resetq.signature attribute was made with one of them; others are dead-lettered as bad_signature (see the README's recipe)")
	fs.StringVar(&f.redisURL, "redis-url", "", "redis://[[user]:password@]host:port[/db], or rediss:// for TLS: share one limit of --rate per account and Region with every replica using this Redis, and one of each other call's rate (--status-check-rate, --sign-out-rate, --reinvite-rate), with the fleet's calls per minute for the usage metrics (empty: each replica paces up to each rate on its own)")
	fs.StringVar(&f.redisCAFile, "redis-ca-file", "", "with a rediss:// --redis-url, PEM file of the CA that signed Redis's certificate (default: the system's roots)")
	fs.BoolVar(&f.redisCluster, "redis-cluster", false, "with --redis-url, Redis is a Redis Cluster (ElastiCache or MemoryDB with cluster mode, ElastiCache Serverless): the URL names any node; keys are PREFIX:{SCOPE}:ratelimit, :pace, :calls and :usage (SCOPE: ACCOUNT/REGION)")
	fs.StringVar(&f.redisSentinelMaster, "redis-sentinel-master", "", "with --redis-url, reach Redis through Redis Sentinel: the URL's hosts are Sentinels (host:port,host:port; port 26379 by default) and this is the name they know the primary by")
	fs.IntVar(&f.fleetSize, "fleet-size", ratelimit.DefaultFleetSize, "with --redis-url, the number of replicas: while Redis is unreachable each paces at --rate (and each other call's rate) divided by this")
	fs.StringVar(&f.redisKeyPrefix, "redis-key-prefix", ratelimit.DefaultKeyPrefix, "with --redis-url, the start of the Redis keys: PREFIX:ratelimit:SCOPE, PREFIX:pace:SCOPE, PREFIX:calls:SCOPE and PREFIX:usage:SCOPE, SCOPE being ACCOUNT/REGION (PREFIX:{SCOPE}:ratelimit and so on with --redis-cluster); the other calls' under PREFIX:CATEGORY (PREFIX:UserRead:ratelimit:SCOPE and so on)")
	fs.StringVar(&f.statusCheck, "status-check", "all", "before a reset, ask Cognito (AdminGetUser) whether the user is already RESET_REQUIRED, and if so count the job done without a second code: all (every job: a user named twice gets one code), redelivered (only jobs delivered again or sent back after a failed call), or off")
	fs.Float64Var(&f.harmBudget, "harm-budget", 0.005, "the share of real users' calls in the quota (forgot password, confirm) a campaign may cost by throttling them: with --usage-metrics, what real users lose each minute (ThrottleCount less resetq's own) caps the rate, and their busiest recent minute sets the start; until a minute is judged, resetq keeps its own throttled share under a fifth of it and starts at half of --rate (0: off)")
	fs.Float64Var(&f.statusCheckRate, "status-check-rate", 50, "AdminGetUser calls per second per account and Region for --status-check (their quota, UserRead, is 120/s shared with the pool's other readers; keep it above --rate)")
	fs.BoolVar(&f.redeliveryCheck, "redelivery-check", true, "deprecated: false is --status-check=off")
	fs.BoolVar(&f.incident, "incident", false, "an incident: turns on --global-sign-out, --kill-password, --reinvite and --unreachable disable (logged at start), and proves at start that each call is permitted in each --pool pool; use with --signing-key-file. A job can ask for the same with the resetq.incident attribute (resetq enqueue --incident)")
	fs.BoolVar(&f.killPassword, "kill-password", false, "when a job's code cannot go now (Cognito's daily email limit, an open circuit, a retry, the per-user attempt limit), kill the old password at once: AdminSetUserPassword with a random password nobody learns (same quota as the reset, no message sent), then the sign-out; the code follows when it can")
	fs.BoolVar(&f.globalSignOut, "global-sign-out", false, "end every job's user's sessions (AdminUserGlobalSignOut: refresh tokens stop working) once the password is dead (after the reset, the kill, the re-invitation or the disable), and at the job's end; a job can ask for it alone with the resetq.global-sign-out attribute (resetq enqueue --global-sign-out)")
	fs.Float64Var(&f.signOutRate, "sign-out-rate", 20, "AdminUserGlobalSignOut and AdminDisableUser calls per second per account and Region (their quota category, UserUpdate, is 25/s shared with the app's profile updates); adaptive on throttles")
	fs.BoolVar(&f.reinvite, "reinvite", false, "re-invite users who never signed in (FORCE_CHANGE_PASSWORD, who cannot be reset): AdminCreateUser with MessageAction=RESEND sends a new temporary password and the old one stops working; outcome reinvited")
	fs.Float64Var(&f.reinviteRate, "reinvite-rate", 20, "AdminCreateUser calls per second per account and Region for --reinvite (quota category UserCreation, 50/s shared with sign-ups)")
	fs.StringVar(&f.unreachable, "unreachable", "dead-letter", "users Cognito cannot send a code to (no verified email or phone): dead-letter (their password keeps working), or disable (AdminDisableUser, after the sign-out if asked; the job is still dead-lettered, with resetq.remediation=disabled)")
	fs.BoolVar(&f.usageMetrics, "usage-metrics", true, "read Cognito's usage metrics (CloudWatch AWS/Usage CallCount and ThrottleCount) of every quota category the campaign calls (UserAccountRecovery; UserRead, UserUpdate and UserCreation when the flags use them) in each Region the worker works in, and export them (resetq_usage_*): real users' calls and throttles beside resetq's; needs cloudwatch:GetMetricData, and without it one warning, no gauges")
	fs.StringVar(&f.stateDir, "state-dir", defaultStateDir(), "folder where a worker without Redis records its calls per minute (a few KB), so that one restarted on this machine within 10 minutes, or another beside it, does not take them for real users' when it reads the usage metrics (empty: off; in a container, a volume that outlives the container, e.g. an emptyDir)")
	fs.DurationVar(&f.usageInterval, "usage-interval", usagemetrics.DefaultInterval, "how often --usage-metrics reads each Region (one GetMetricData call for the calls, one for the throttles)")
	fs.DurationVar(&f.emailLimitProbe, "email-limit-probe", worker.DefaultEmailProbe, "after Cognito's daily email limit (default email: 50 a day), how often one reset probes whether it lifted; the jobs meanwhile wait on the queue")
	ledgerFlag(fs, &f.ledgerTable, "claim each user there before a code or an invitation goes, so that one job in a whole fleet sends it, and record each step (created when missing); a minute's progress of each campaign in the logs and in resetq_campaign_users")
	fs.DurationVar(&f.maxDeferral, "max-deferral", worker.DefaultMaxDeferral, "a job deferred this long by an open circuit (a misconfigured pool, bad credentials) is dead-lettered with the error that keeps the circuit open, for a redrive after the fix")
}

func (f *workFlags) validate() error {
	switch {
	case f.queueURL == "":
		return usagef("--queue-url is required")
	case !(f.rate > 0):
		return usagef("--rate must be positive, got %v", f.rate)
	case f.concurrency < 1:
		return usagef("--concurrency must be at least 1, got %d", f.concurrency)
	case f.maxAttempts < 1:
		return usagef("--max-attempts must be at least 1, got %d", f.maxAttempts)
	case f.exitWhenIdle < 0:
		return usagef("--exit-when-idle must not be negative")
	case f.shutdownTimeout <= 0:
		return usagef("--shutdown-timeout must be positive")
	case f.circuitCooldown <= 0:
		return usagef("--circuit-cooldown must be positive")
	case f.maxDeferral <= 0:
		return usagef("--max-deferral must be positive")
	case f.usageInterval < time.Second:
		return usagef("--usage-interval must be at least 1s, got %v", f.usageInterval)
	case f.emailLimitProbe <= 0:
		return usagef("--email-limit-probe must be positive")
	case !(f.signOutRate > 0) || !(f.reinviteRate > 0):
		return usagef("--sign-out-rate and --reinvite-rate must be positive")
	case f.unreachable != "dead-letter" && f.unreachable != "disable":
		return usagef("--unreachable %q: want dead-letter or disable", f.unreachable)
	case f.statusCheck != "all" && f.statusCheck != "redelivered" && f.statusCheck != "off":
		return usagef("--status-check %q: want all, redelivered or off", f.statusCheck)
	case !(f.harmBudget >= 0 && f.harmBudget <= 0.1):
		return usagef("--harm-budget must be from 0 to 0.1 (10%%), got %v", f.harmBudget)
	case f.statusCheck != "off" && !(f.statusCheckRate > 0):
		return usagef("--status-check-rate must be positive, got %v", f.statusCheckRate)
	case f.logUsernames != "hashed" && f.logUsernames != "plain":
		return usagef("--log-usernames %q: want hashed or plain", f.logUsernames)
	case len(f.pools) == 0 && f.poolRoles == "" && !f.allowAnyPool:
		return usagef("set --pool (the pools this worker may reset; without it, the pools of --pool-roles), or --allow-any-pool to accept jobs for any pool")
	case len(f.pools) > 0 && f.allowAnyPool:
		return usagef("--pool and --allow-any-pool contradict each other: choose one")
	case f.fleetSize < 1:
		return usagef("--fleet-size must be at least 1, got %d", f.fleetSize)
	case f.fleetSize > 1 && f.redisURL == "":
		return usagef("--fleet-size only applies with --redis-url; without Redis set each replica's --rate to its share")
	case f.redisURL != "" && (f.redisKeyPrefix == "" || strings.ContainsAny(f.redisKeyPrefix, " \t\r\n")):
		return usagef("--redis-key-prefix %q: want a non-empty prefix without spaces", f.redisKeyPrefix)
	}
	if err := f.validateRedis(); err != nil {
		return err
	}
	if err := checkPools(f.pools, 0, ""); err != nil {
		return err
	}
	if err := checkQueueURLs(f.queueURL, f.dlqURL); err != nil {
		return err
	}
	return nil
}

func runWork(ctx context.Context, args []string, _, stderr io.Writer) error {
	var f workFlags
	fs := newFlagSet("resetq work", stderr)
	f.register(fs)
	setUsage(fs, "Usage: resetq work --queue-url URL (--pool ID [--pool ID ...] | --allow-any-pool) [flags]\n\n"+
		"Consume AdminResetUserPassword jobs from an SQS queue. Each job ends with the user\n"+
		"reset or in the dead-letter queue with a reason.\n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	expanded, err := f.expandIncident(fs)
	if err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	if f.incident {
		log.Info("incident mode", "expands_to", expanded)
		if f.signingKeyFile == "" {
			log.Error("INCIDENT MODE WITHOUT SIGNED JOBS: anyone who can write to the queue can reset, disable or sign out users of the allowed pools, and the jobs' progress cannot be verified, so a held job's kill is repeated by each replica; set --signing-key-file (see the README's recipe)")
		}
	}
	allowed := poolSet(f.pools)
	if f.allowAnyPool {
		log.Warn("--allow-any-pool: jobs for any user pool the credentials reach will be reset")
	}
	var signingKeys [][]byte
	if f.signingKeyFile != "" {
		if signingKeys, err = job.ReadKeyFile(f.signingKeyFile); err != nil {
			return usageError{err}
		}
		log.Info("accepting only signed jobs", "keys", len(signingKeys))
	} else {
		log.Warn("no --signing-key-file: jobs are not authenticated, so anyone who can write to the queue can reset users of the allowed pools, and, with resetq.incident on a job, kill their passwords, sign them out and disable those without a verified contact")
	}
	var usernameKey []byte
	if f.usernameKeyFile != "" {
		keys, err := job.ReadKeyFile(f.usernameKeyFile)
		if err != nil {
			return usageError{err}
		}
		usernameKey = keys[0]
	}
	if f.statusCheck == "all" && f.statusCheckRate < f.rate {
		log.Warn("--status-check-rate is below --rate: every job's status check paces the campaign below --rate; raise --status-check-rate (UserRead's quota is 120/s)",
			"status_check_rate", f.statusCheckRate, "rate", f.rate)
	}
	if f.rate > cognitoQuota {
		log.Warn("--rate is above Cognito's UserAccountRecovery quota; expect throttling and real users' forgot-password to fail",
			"rate", f.rate, "quota", cognitoQuota)
	}

	awsCfg, sqsClient, err := loadAWS(ctx, f.queueURL)
	if err != nil {
		return err
	}
	reach, err := openAccounts(ctx, awsCfg, f.poolRoles, true, log.Warn)
	if err != nil {
		return err
	}
	if reach.DefaultAccount() == "" && (f.redisURL != "" || f.poolRoles != "") {
		// Keyed by Region alone, this replica's default-credential pools
		// would have a limiter (and Redis keys) apart from the other
		// replicas' and from a role in the same account: twice the rate.
		return errors.New("the default credentials' account could not be read (sts:GetCallerIdentity): with --redis-url or --pool-roles the account keys the limits; start again when STS answers")
	}
	if !f.allowAnyPool && len(f.pools) == 0 {
		allowed = poolSet(slices.Sorted(maps.Keys(reach.Roles()))) // the file names the campaign's pools
	}
	if len(reach.Roles()) > 0 {
		log.Info("pools reached through roles: each account's quota is paced apart", "pools", len(reach.Roles()),
			"accounts", len(reach.Accounts()), "default_account", reach.DefaultAccount())
	}
	if f.incident {
		// A denied sign-out or kill would hold every job of its pool behind
		// the pool's circuit for up to --max-deferral: prove each call first.
		if err := provePermissions(ctx, reach, allowed, log); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	m := metrics.New(reg, version())
	source := queue.New(sqsClient, f.queueURL, m)
	st := newStartup(log.Warn)
	settings, err := readSource(ctx, st, source)
	if err != nil {
		return err
	}
	if settings.FIFO {
		return usagef("%s is a FIFO queue; resetq needs a standard queue (retries are sent back with a per-message delay)", f.queueURL)
	}
	dlqURL, err := resolveDLQ(ctx, st, source, settings, f.dlqURL, true)
	if err != nil {
		return err
	}
	dlq := queue.New(sqsClient, dlqURL, m)
	if _, err := startupRead(ctx, st, "read the dead-letter queue", dlq.Settings); err != nil {
		return err
	}
	if settings.DLQARN == "" {
		log.Warn("the source queue has no RedrivePolicy: a job whose dead letter cannot be sent (a DLQ that refuses it) stays in the source queue, retried less and less often, and is lost when the queue's retention period ends; watch resetq_dead_letter_failures_total")
	}
	if settings.MaxReceiveCount > 0 && settings.MaxReceiveCount < 5 {
		log.Warn("the queue's maxReceiveCount is low: every receive counts, including after a crash or shutdown; SQS then moves the job to the DLQ without a reason",
			"max_receive_count", settings.MaxReceiveCount)
	}

	var led *ledger.Ledger
	var workLedger worker.Ledger
	if f.ledgerTable != "" {
		if led, err = openLedger(ctx, awsCfg, f.ledgerTable, true); err != nil {
			return err
		}
		workLedger = &ledger.ForWorker{Ledger: led, CaseSensitive: cognito.NewPoolsWith(reach).CaseSensitive}
		log.Info("claiming users in the campaign ledger", "table", f.ledgerTable)
	}
	// Without Redis each category's record of this process's calls goes to
	// the ledger too, where a successor on another machine finds it.
	var records func(string) ratelimit.RecordStore
	if led != nil {
		records = func(category string) ratelimit.RecordStore { return led.CallRecords(category) }
	}
	// With Redis the fleet's rate adapts as one, to the same settings.
	cfg := categoryPace(f.rate, cognitoQuota, f.harmBudget, true)
	m.HarmBudget.Set(f.harmBudget)
	// The calls beside the reset have quotas of their own, each paced
	// apart under the same harm budget: the status check's reads
	// (UserRead), the sign-outs and disables (UserUpdate, shared with the
	// apps' profile updates), the re-invitations (UserCreation).
	categoryRate := func(category string) func(scope string, limit float64) {
		return func(scope string, limit float64) {
			m.CategoryLimit.WithLabelValues(append(scopeLabels(scope), category)...).Set(limit)
		}
	}
	// With --redis-url each is a fleet's, as the reset's: its own keys,
	// the flag's rate for the whole fleet.
	fallbacks := &fallbackGauge{gauge: m.RateLimitFallback}
	statusPacer, closeStatus, err := newPacer(ctx, &f, usagemetrics.ReadCategory, categoryPace(f.statusCheckRate, userReadQuota, f.harmBudget, false),
		categoryRate(usagemetrics.ReadCategory), fallbacks, records, log)
	if err != nil {
		return err
	}
	defer closeStatus()
	signOutPacer, closeSignOut, err := newPacer(ctx, &f, usagemetrics.UpdateCategory, categoryPace(f.signOutRate, userUpdateQuota, f.harmBudget, false),
		categoryRate(usagemetrics.UpdateCategory), fallbacks, records, log)
	if err != nil {
		return err
	}
	defer closeSignOut()
	reinvitePacer, closeReinvite, err := newPacer(ctx, &f, usagemetrics.CreationCategory, categoryPace(f.reinviteRate, userCreationQuota, f.harmBudget, false),
		categoryRate(usagemetrics.CreationCategory), fallbacks, records, log)
	if err != nil {
		return err
	}
	defer closeReinvite()
	var usage *usagemetrics.Watcher
	var pacer scopePacer
	if f.usageMetrics {
		usage = usagemetrics.NewWatcher(usagemetrics.WatcherConfig{Reader: awscheck.NewWith(reach), Interval: f.usageInterval, Log: log.With("component", "usage"),
			Categories: f.categories(),
			OnRead: func(scope, category string, minutes []usagemetrics.Minute) {
				switch category {
				case usagemetrics.RecoveryCategory:
					observeUsage(pacer, m, scope, category, minutes)
				case usagemetrics.ReadCategory:
					observeUsage(statusPacer, m, scope, category, minutes)
				case usagemetrics.UpdateCategory:
					observeUsage(signOutPacer, m, scope, category, minutes)
				case usagemetrics.CreationCategory:
					observeUsage(reinvitePacer, m, scope, category, minutes)
				}
			}}, reg)
	}
	categories := f.categories()
	var seenMu sync.Mutex
	seen := map[string]bool{} // account-Regions whose series are made
	onRate := func(scope string, limit float64) {
		labels := scopeLabels(scope)
		m.RateLimit.WithLabelValues(labels...).Set(limit)
		m.CategoryLimit.WithLabelValues(append(labels, usagemetrics.RecoveryCategory)...).Set(limit)
		seenMu.Lock()
		first := !seen[scope]
		seen[scope] = true
		seenMu.Unlock()
		if !first { // the rest once, at the account-Region's first job
			return
		}
		if usage != nil {
			usage.Add(scope) // read from the first job on
		}
		m.CircuitOpen.WithLabelValues(labels...) // 0 from the first job: closed is not "no data"
		m.Throttles.WithLabelValues(labels...)   // and counters from 0, so their first increase shows in rate()
		m.QuotaCalls.WithLabelValues(labels...)
		m.EmailLimit.WithLabelValues(labels...) // 0 until Cognito's daily email limit is reached
		for _, c := range categories {
			m.CategoryCalls.WithLabelValues(append(labels, c)...)
			m.CategoryThrottles.WithLabelValues(append(labels, c)...)
		}
	}
	pacer, closePacer, err := newPacer(ctx, &f, usagemetrics.RecoveryCategory, cfg, onRate, fallbacks, records, log)
	if err != nil {
		return err
	}
	defer closePacer()
	// The status check reads users (AdminGetUser, in the UserRead quota,
	// not the 30/s reset quota), paced on its own.
	var statuses worker.StatusReader
	cog := cognito.NewWith(reach)
	if !f.redeliveryCheck {
		f.statusCheck = "off"
	}
	// The user is read even with --status-check off: a re-invitation and a
	// kill need the user's state, and a job may ask for them itself
	// (resetq.incident).
	statuses = cog
	w, err := worker.New(worker.Config{
		Ledger:                  workLedger,
		Source:                  source,
		Requeue:                 source,
		DeadLetters:             dlq,
		Depth:                   source,
		Cognito:                 cog,
		Pacer:                   pacer,
		Statuses:                statuses,
		StatusPacer:             statusPacer,
		CheckEveryJob:           f.statusCheck == "all",
		StatusesForReinviteOnly: f.statusCheck == "off",
		Remedies:                cog,
		SignOutPacer:            signOutPacer,
		ReinvitePacer:           reinvitePacer,
		GlobalSignOut:           f.globalSignOut,
		Reinvite:                f.reinvite,
		DisableUnreachable:      f.unreachable == "disable",
		KillPassword:            f.killPassword,
		Metrics:                 m,
		Logger:                  log,
		AllowedPools:            allowed,
		Accounts:                reach,
		SigningKeys:             signingKeys,
		Concurrency:             f.concurrency,
		Policy:                  worker.Policy{MaxAttempts: f.maxAttempts},
		Breaker:                 worker.BreakerConfig{Cooldown: f.circuitCooldown, MaxDeferral: f.maxDeferral, EmailProbe: f.emailLimitProbe},
		ExitWhenIdle:            f.exitWhenIdle,
		ShutdownTimeout:         f.shutdownTimeout,
		Visibility:              max(30*time.Second, settings.Visibility),
		LogUsernames:            f.logUsernames == "plain",
		UsernameKey:             usernameKey,
	})
	if err != nil {
		return usageError{err}
	}

	bg, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	if f.metricsAddr != "" {
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return usagef("--metrics-addr: %v", err)
		}
		srv := &http.Server{Handler: metricsMux(reg, w), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	if usage != nil {
		go usage.Run(bg)
	}
	go m.PollQueues(bg, clock.Real{}, 15*time.Second, map[string]metrics.DepthReader{"source": source, "dlq": dlq},
		func(q string, err error) { log.Warn("reading queue depth failed", "queue", q, "error", err) })

	log.Info("worker starting", "queue_url", f.queueURL, "dlq_url", dlqURL, "rate", f.rate,
		"concurrency", f.concurrency, "max_attempts", f.maxAttempts, "exit_when_idle", f.exitWhenIdle,
		"incident", f.incident, "global_sign_out", f.globalSignOut, "kill_password", f.killPassword, "reinvite", f.reinvite, "unreachable", f.unreachable,
		"max_receive_count", settings.MaxReceiveCount, "version", version())
	go progressLoop(bg, w, led, m, log)
	start := time.Now()
	err = w.Run(ctx)
	logTally(log, "worker stopped", w.Tally(), time.Since(start))
	return err
}

// provePermissions makes each incident call once in each allowed pool,
// for a user that cannot exist (UserNotFoundException: permitted), logs
// each answer, and fails on a denied one. With --allow-any-pool there are
// no pools to prove: it says so.
func provePermissions(ctx context.Context, reach *accounts.Resolver, allowed map[string]bool, log *slog.Logger) error {
	if len(allowed) == 0 {
		log.Warn("--incident with --allow-any-pool: the calls' permissions cannot be proven before the campaign; run resetq preflight --incident --pool ID for each pool")
		return nil
	}
	pools := make([]string, 0, len(allowed))
	for p := range allowed {
		pools = append(pools, p)
	}
	sort.Strings(pools)
	checks, err := checkPermissions(ctx, reach, pools, userpool.IncidentCalls())
	if err != nil {
		return err
	}
	for _, c := range checks {
		lvl := slog.LevelInfo
		switch c.Level {
		case preflight.Warning:
			lvl = slog.LevelWarn
		case preflight.Blocking:
			lvl = slog.LevelError
		}
		log.Log(ctx, lvl, "permission check", "pool", c.Subject, "check", c.Name, "result", string(c.Level), "message", c.Message)
	}
	// A pool reached through a role is another account's: its denial holds
	// its own jobs (behind its circuits) and must not stop every account's
	// campaign, nor let one tenant keep the fleet from starting.
	var own []preflight.Check
	for _, c := range checks {
		if reach.Role(c.Subject) == "" {
			own = append(own, c)
		} else if c.Level == preflight.Blocking {
			log.Error("a pool reached through --pool-roles refuses an incident call: its jobs will wait behind its circuit, then be dead-lettered; the other pools go on",
				"pool", c.Subject, "check", c.Name)
		}
	}
	if preflight.Blocked(own) {
		return startupError("prove the incident calls' permissions", errors.New("a call the campaign must make is denied (see the log); grant it, then start again"))
	}
	return nil
}

// expandIncident turns --incident into the flags it stands for, and
// returns them as a command line for the log. A flag set to the contrary
// on the command line or in the environment is a usage error: an incident
// that silently drops one of its steps leaves the attacker a way in.
func (f *workFlags) expandIncident(fs *flag.FlagSet) (string, error) {
	if !f.incident {
		return "", nil
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	switch {
	case set["global-sign-out"] && !f.globalSignOut, set["kill-password"] && !f.killPassword, set["reinvite"] && !f.reinvite:
		return "", usagef("--incident needs --global-sign-out, --kill-password and --reinvite: do not set them to false")
	case set["unreachable"] && f.unreachable != "disable":
		return "", usagef("--incident disables users who cannot get a code: --unreachable %s contradicts it", f.unreachable)
	case f.statusCheck == "off" || !f.redeliveryCheck:
		return "", usagef("--incident needs the status check (a user already reset is signed out without a second code): do not set --status-check off")
	}
	f.globalSignOut, f.killPassword, f.reinvite, f.unreachable = true, true, true, "disable"
	return "--global-sign-out --kill-password --reinvite --unreachable disable", nil
}

// metricsMux serves /metrics from the private registry, /healthz (the
// process is up) and /readyz (SQS answers and no circuit is open).
func metricsMux(reg *prometheus.Registry, w *worker.Worker) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := w.Ready(); err != nil {
			http.Error(rw, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	return mux
}

// poolSet is --pool as a set: nil for none (--allow-any-pool).
func poolSet(pools []string) map[string]bool {
	if len(pools) == 0 {
		return nil
	}
	set := map[string]bool{}
	for _, p := range pools {
		set[p] = true
	}
	return set
}

// validateRedis checks --redis-url and the flags that go with it.
func (f *workFlags) validateRedis() error {
	if f.redisURL == "" {
		if f.redisCAFile != "" || f.redisCluster || f.redisSentinelMaster != "" {
			return usagef("--redis-ca-file, --redis-cluster and --redis-sentinel-master only apply with --redis-url")
		}
		return nil
	}
	a, err := f.parseRedisURL()
	switch {
	case err != nil:
		return usagef("--redis-url: %v", err)
	case f.redisCluster && f.redisSentinelMaster != "":
		return usagef("--redis-cluster and --redis-sentinel-master contradict each other: a Redis Cluster fails over by itself")
	case f.redisSentinelMaster != "" && strings.TrimSpace(f.redisSentinelMaster) != f.redisSentinelMaster:
		return usagef("--redis-sentinel-master %q: want the master's name without surrounding spaces", f.redisSentinelMaster)
	case f.redisCAFile != "" && !a.TLS:
		return usagef("--redis-ca-file only applies to a rediss:// --redis-url (TLS)")
	case f.redisCluster && a.DB != 0:
		return usagef("--redis-url %s: a Redis Cluster has only database 0", a)
	}
	return nil
}

// parseRedisURL parses --redis-url, as a list of Sentinels with
// --redis-sentinel-master.
func (f *workFlags) parseRedisURL() (ratelimit.RedisAddr, error) {
	if f.redisSentinelMaster != "" {
		return ratelimit.ParseSentinelURL(f.redisURL)
	}
	return ratelimit.ParseRedisURL(f.redisURL)
}

// scopePacer paces one quota category's calls per account and Region,
// and takes the category's usage minutes there: a replica's own limiters
// (ratelimit.Regions) or a fleet's in Redis (ratelimit.Fleet).
type scopePacer interface {
	worker.Pacer
	Observe(scope string, minutes []ratelimit.Usage)
	Cap(scope string) float64
	Room(scope string) (float64, bool)
}

var (
	_ scopePacer = (*ratelimit.Regions)(nil)
	_ scopePacer = (*ratelimit.Fleet)(nil)
)

// observeUsage gives a category's pacer its usage minutes: where to start,
// and what real users lose. A fleet's pacer subtracts the whole fleet's
// calls, counted in Redis.
func observeUsage(p scopePacer, m *metrics.Metrics, scope, category string, minutes []usagemetrics.Minute) {
	us := make([]ratelimit.Usage, len(minutes))
	for i, u := range minutes {
		us[i] = ratelimit.Usage{Minute: u.At, Calls: u.Calls, Throttles: u.Throttles}
	}
	p.Observe(scope, us)
	limit := p.Cap(scope)
	if category == usagemetrics.RecoveryCategory {
		m.RateCap.WithLabelValues(scopeLabels(scope)...).Set(limit)
	}
	m.CategoryCap.WithLabelValues(append(scopeLabels(scope), category)...).Set(limit)
	room, ok := p.Room(scope)
	if !ok {
		room = -1
	}
	m.CategoryRoom.WithLabelValues(append(scopeLabels(scope), category)...).Set(room)
}

// The quotas of the categories of the calls beside the reset, per account
// and Region (docs: Cognito's quotas; shared with the apps' own calls).
const (
	userReadQuota     = 120
	userUpdateQuota   = 25
	userCreationQuota = 50
)

// categoryPace is the pacing of a category's calls at rate per second,
// whose quota is quota, the reset's included. A throttle that finds well
// under the rate got through means real users share the quota: the
// limiter leaves them headroom. With a harm budget: a cautious start, its
// own throttled share under a fifth of the budget (real users lose about
// 1 to 4 calls for each of resetq's own throttles, docs/pacing.md), and
// the category's usage minutes capping it and saying the room real users
// leave. Only the reset is owed speed (0.9 of what the budget allows):
// the categories beside it pace for the budget alone (Config.Cautious).
func categoryPace(rate, quota, harmBudget float64, owedSpeed bool) ratelimit.Config {
	c := ratelimit.Config{Ceiling: rate, SharedBelow: 0.95 * rate, Quota: max(rate, quota), Cautious: !owedSpeed}
	if harmBudget > 0 {
		// Without a reading of real users' calls: half the rate, back to
		// it over 100 s, so that the returns of the first calls (the
		// reset users' confirmations) are heard before the quota is full.
		c.ThrottleTarget, c.Start, c.StartIncrease, c.HarmBudget = harmBudget/5, 0.5*rate, 0.005*rate, harmBudget
	}
	return c
}

// categories are the quota categories whose usage the worker reads: the
// reset's always; the reads' when users are read (the status check, and
// the incident's steps); the sign-outs' and the re-invitations' when the
// flags make them.
func (f *workFlags) categories() []string {
	c := []string{usagemetrics.RecoveryCategory}
	if f.statusCheck != "off" || f.reinvite || f.killPassword {
		c = append(c, usagemetrics.ReadCategory)
	}
	if f.globalSignOut || f.unreachable == "disable" {
		c = append(c, usagemetrics.UpdateCategory)
	}
	if f.reinvite {
		c = append(c, usagemetrics.CreationCategory)
	}
	return c
}

// newPacer is a quota category's pacer at cfg.Ceiling: the local adaptive
// limiters alone (their record of calls also in records(category), if
// records is not nil), or with --redis-url the fleet-wide limit in Redis
// behind them, on keys of the category's own (the reset's keep
// --redis-key-prefix, the others' add ":" and the category). It logs which.
func newPacer(ctx context.Context, f *workFlags, category string, cfg ratelimit.Config, onRate func(string, float64), fallbacks *fallbackGauge, records func(category string) ratelimit.RecordStore, log *slog.Logger) (scopePacer, func(), error) {
	if f.redisURL == "" {
		local, err := ratelimit.NewRegions(cfg, onRate)
		if err != nil {
			return nil, nil, usageError{err}
		}
		if category == usagemetrics.RecoveryCategory {
			log.Info("pacing on this replica alone", "rate", f.rate)
		}
		var shared ratelimit.RecordStore
		if records != nil {
			shared = records(category)
		}
		return local, keepCallRecord(ctx, f, category, local, shared, cmp.Or[clock.Clock](cfg.Clock, clock.Real{}), log), nil
	}
	addr, err := f.parseRedisURL() // checked by validate
	if err != nil {
		return nil, nil, usageError{err}
	}
	var roots *x509.CertPool
	if f.redisCAFile != "" {
		if roots, err = ratelimit.LoadRedisCA(f.redisCAFile); err != nil {
			return nil, nil, usageError{err}
		}
	}
	prefix := f.redisKeyPrefix
	if category != usagemetrics.RecoveryCategory {
		prefix += ":" + category
	}
	fleet, err := ratelimit.NewFleet(ratelimit.FleetConfig{
		Redis: addr, Cluster: f.redisCluster, SentinelMaster: f.redisSentinelMaster, RootCAs: roots,
		KeyPrefix: prefix, Rate: cfg.Ceiling, FleetSize: f.fleetSize, Pace: cfg, OnRate: onRate,
		Logger:     log.With("component", "ratelimit", "category", category),
		OnFallback: func(on bool) { fallbacks.set(category, on) },
	})
	if err != nil {
		return nil, nil, usageError{err}
	}
	log.Info("pacing by a fleet-wide limit in Redis", "category", category, "redis", addr.String(), "cluster", f.redisCluster,
		"sentinel_master", f.redisSentinelMaster, "rate", cfg.Ceiling,
		"key", fleet.Key("SCOPE"), "fleet_size", f.fleetSize, "fallback_share", fleet.Share())
	return fleet, func() { fleet.Close() }, nil
}

// keepCallRecord makes a replica's own limiters record their calls per
// minute where the next process finds them (docs/pacing.md, "Restarts"):
// in --state-dir, for one on this machine, and in shared (the ledger's
// table; nil: none), for one anywhere. It writes the record every
// recordEvery on clk, and at exit by the function it returns. From the
// moment ctx ends (SIGTERM: the worker stops taking jobs) each record says
// it is the process's last, so that a successor started while this one
// finishes its jobs (a rolling update) takes its calls for resetq's at
// once. A process killed without its exit (SIGKILL, the OOM killer, a lost
// node) leaves its successor at most recordEvery of its calls to take for
// real users'. A folder that cannot be written, or a ledger that refuses,
// is a warning: the worker runs on.
func keepCallRecord(ctx context.Context, f *workFlags, category string, local *ratelimit.Regions, shared ratelimit.RecordStore, clk clock.Clock, log *slog.Logger) func() {
	if f.harmBudget <= 0 || !f.usageMetrics {
		return func() {}
	}
	warn := func(err error) {
		log.Warn("cannot keep the record of this process's calls: a worker restarted within 10 minutes will take them for real users' and start low", "category", category, "state_dir", f.stateDir, "ledger", shared != nil, "error", err)
	}
	var stores []ratelimit.RecordStore
	if f.stateDir != "" {
		if s, err := ratelimit.Folder(f.stateDir, category); err != nil {
			warn(err)
		} else {
			stores = append(stores, s)
		}
	}
	if shared != nil {
		stores = append(stores, shared)
	}
	if len(stores) == 0 {
		return func() {}
	}
	rec, err := ratelimit.NewCallRecord(stores...)
	if err != nil {
		warn(err)
		return func() {}
	}
	var once sync.Once
	save := func(last bool) {
		if err := local.SaveRecord(last); err != nil {
			once.Do(func() { warn(err) })
		}
	}
	local.KeepRecord(rec, func(err error) { once.Do(func() { warn(err) }) })
	stop, stopped := make(chan struct{}), make(chan struct{})
	tick := clk.NewTicker(recordEvery)
	go func() {
		defer close(stopped)
		defer tick.Stop()
		done, last := ctx.Done(), false
		for {
			select {
			case <-stop:
				return
			case <-done:
				done, last = nil, true
				save(true)
			case <-tick.C():
				save(last)
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
		save(true)
	}
}

// recordEvery is how often a worker without Redis writes its record of
// calls (keepCallRecord): a small file, replaced at once.
const recordEvery = 5 * time.Second

// defaultStateDir is where --state-dir points by default: resetq-UID in
// the temporary folder, which every process of the user on the machine
// finds whatever its HOME (made private, 0700, and refused if another user
// owns it).
func defaultStateDir() string {
	return filepath.Join(os.TempDir(), "resetq-"+strconv.Itoa(os.Getuid()))
}

// fallbackGauge sets resetq_ratelimit_fallback over the fleets of every
// category: 1 while any of them paces at its local share.
type fallbackGauge struct {
	gauge prometheus.Gauge
	mu    sync.Mutex
	on    map[string]bool
}

func (g *fallbackGauge) set(category string, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.on == nil {
		g.on = map[string]bool{}
	}
	g.on[category] = on
	v := 0.0
	for _, on := range g.on {
		if on {
			v = 1
		}
	}
	g.gauge.Set(v)
}
