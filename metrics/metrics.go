// Package metrics defines resetq's Prometheus metrics. Labels are bounded:
// outcome, reason, code, region, queue, state, operation. No username or
// message ID is ever a label.
package metrics

import (
	"context"
	"github.com/resetq/resetq/clock"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the worker's collectors, registered on a private registry.
type Metrics struct {
	Jobs            *prometheus.CounterVec   // outcome
	DeadLetters     *prometheus.CounterVec   // reason
	CognitoRequests *prometheus.CounterVec   // code
	CognitoDuration prometheus.Histogram     //
	Throttles       *prometheus.CounterVec   // account, region
	QuotaCalls      *prometheus.CounterVec   // account, region
	RateLimitWait   prometheus.Histogram     //
	RateLimit       *prometheus.GaugeVec     // account, region
	Inflight        prometheus.Gauge         //
	QueueMessages   *prometheus.GaugeVec     // queue, state
	CircuitOpen     *prometheus.GaugeVec     // account, region
	SQSRequests     *prometheus.CounterVec   // operation, result
	SQSDuration     *prometheus.HistogramVec // operation
	BuildInfo       *prometheus.GaugeVec     // version, goversion

	RedeliveryChecks   *prometheus.CounterVec // result
	PoolCircuitsOpen   prometheus.Gauge       //
	EmailLimit         *prometheus.GaugeVec   // region
	Steps              *prometheus.CounterVec // step
	CognitoCalls       *prometheus.CounterVec // operation, code
	DeadLetterFailures prometheus.Counter     //
	LedgerCalls        *prometheus.CounterVec // call, result
	LedgerCircuitOpen  prometheus.Gauge       //
	CampaignUsers      *prometheus.GaugeVec   // campaign, state
	// Per quota category (UserAccountRecovery, UserRead, UserUpdate,
	// UserCreation), account and Region.
	CategoryCalls     *prometheus.CounterVec // account, region, category
	CategoryThrottles *prometheus.CounterVec // account, region, category
	CategoryLimit     *prometheus.GaugeVec   // account, region, category
	CategoryCap       *prometheus.GaugeVec   // account, region, category
	CategoryRoom      *prometheus.GaugeVec   // account, region, category

	// RateLimitFallback is 1 while a fleet replica paces at its local share
	// because Redis fails; one gauge, as all Regions share the connection.
	RateLimitFallback prometheus.Gauge
	// HarmBudget is the share of real users' calls a campaign may cost.
	HarmBudget prometheus.Gauge
	// RateCap is the cap the usage metrics put on a Region's rate (0: none).
	RateCap *prometheus.GaugeVec // region
}

// New creates the metrics and registers them, with the Go and process
// collectors, on reg.
func New(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_jobs_total",
			Help: "Jobs handled, by outcome: reset, dead_lettered, retried (sent back with a delay after a transient failure), deferred (sent back while the Region's or the pool's circuit is open), released (made visible again at shutdown), expired (its visibility lapsed while it waited, so it was left to its next delivery without a call), claimed_elsewhere (another job holds its user's ledger claim: sent back to look again), delivered_twice (SQS delivered its message to two workers at once: this copy hid while the other holds the claim).",
		}, []string{"outcome"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_dead_letters_total",
			Help: "Jobs sent to the dead-letter queue, by resetq.reason.",
		}, []string{"reason"}),
		CognitoRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_cognito_requests_total",
			Help: "AdminResetUserPassword calls, by result code (ok, the Cognito error code, timeout, network, credentials, canceled, unknown, other).",
		}, []string{"code"}),
		CognitoDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "resetq_cognito_request_duration_seconds",
			Help:    "Duration of AdminResetUserPassword calls.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		Throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_throttles_total",
			Help: "Calls in the reset's quota (AdminResetUserPassword, and AdminSetUserPassword's kills) answered TooManyRequestsException, by account and Region.",
		}, []string{"account", "region"}),
		QuotaCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_quota_calls_total",
			Help: "Calls made in the reset's quota (AdminResetUserPassword, and AdminSetUserPassword's kills), throttled ones included, by account and Region: resetq's own share of Cognito's UserAccountRecovery CallCount.",
		}, []string{"account", "region"}),
		RateLimitWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "resetq_ratelimit_wait_seconds",
			Help:    "Time a job waited for the Region's rate limiter before its call.",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		RateLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_ratelimit_limit",
			Help: "Current AdminResetUserPassword rate limit in calls per second, by account and Region (adaptive, at most --rate).",
		}, []string{"account", "region"}),
		HarmBudget: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resetq_harm_budget",
			Help: "--harm-budget: the share of real users' calls the campaign may cost by throttling them; resetq keeps its own throttled share under a fifth of it (0: off).",
		}),
		RateCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_ratelimit_usage_cap",
			Help: "Cap on the account-Region's rate in calls per second from Cognito's usage metrics: what real users lost each minute against --harm-budget (0: none).",
		}, []string{"account", "region"}),
		RateLimitFallback: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resetq_ratelimit_fallback",
			Help: "1 while --redis-url is set and Redis fails, so this replica paces at --rate/--fleet-size instead of the fleet-wide limit, else 0.",
		}),
		Inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resetq_inflight_jobs",
			Help: "Jobs received and not yet finished.",
		}),
		QueueMessages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_queue_messages",
			Help: "Approximate messages in the source queue and the DLQ, by state (visible, in_flight, delayed), from GetQueueAttributes.",
		}, []string{"queue", "state"}),
		CircuitOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_circuit_open",
			Help: "1 while the account-Region's circuit breaker stops calls to Cognito after a systemic error (a role that cannot be assumed among them), else 0.",
		}, []string{"account", "region"}),
		SQSRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_sqs_requests_total",
			Help: "SQS API calls, by operation and result (ok, error).",
		}, []string{"operation", "result"}),
		SQSDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resetq_sqs_request_duration_seconds",
			Help:    "Duration of SQS API calls, by operation (ReceiveMessage includes the long poll).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"operation"}),
		RedeliveryChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_redelivery_checks_total",
			Help: "AdminGetUser checks before a reset (every job, or only redelivered and sent-back ones: --status-check), by result: already_reset (counted done, no second code), not_reset, error (reset anyway).",
		}, []string{"result"}),
		PoolCircuitsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resetq_pool_circuits_open",
			Help: "User pools whose circuit breaker stops their calls after a pool-level error (the pool's SMS or email role, trigger, feature or IAM access); the logs name them.",
		}),
		EmailLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_email_limit_reached",
			Help: "1 while Cognito's daily email limit (default email: 50 a day per account and Region) holds the account-Region's default-email pools' jobs on the queue, else 0.",
		}, []string{"account", "region"}),
		Steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_steps_total",
			Help: "Job steps done, by step: reset, password_killed (AdminSetUserPassword with a random password, while the code waits), signed_out (AdminUserGlobalSignOut, after the password died), reinvited (AdminCreateUser RESEND), disabled (AdminDisableUser).",
		}, []string{"step"}),
		CognitoCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_cognito_calls_total",
			Help: "Cognito calls other than AdminResetUserPassword (AdminSetUserPassword, AdminUserGlobalSignOut, AdminCreateUser, AdminDisableUser), by operation and result code (circuit_open: refused before the call).",
		}, []string{"operation", "code"}),
		DeadLetterFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "resetq_dead_letter_failures_total",
			Help: "Dead-letter sends that failed even cut to the essentials; each job stays in the source queue and is tried again later.",
		}),
		LedgerCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_ledger_calls_total",
			Help: "Calls to the campaign ledger (--ledger-table), by call (claim, record, release) and result: ok, done (the user was done already: no second code), held_elsewhere (another job holds the user), error.",
		}, []string{"call", "result"}),
		LedgerCircuitOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resetq_ledger_circuit_open",
			Help: "1 while the campaign ledger cannot be reached: jobs wait on the queue and no code goes without a claim; else 0.",
		}),
		CategoryCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_category_calls_total",
			Help: "resetq's calls that reached Cognito, throttled ones included, by account, Region and quota category (UserAccountRecovery: resets and kills; UserRead: status checks; UserUpdate: sign-outs and disables; UserCreation: re-invitations): its own share of the category's AWS/Usage CallCount.",
		}, []string{"account", "region", "category"}),
		CategoryThrottles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetq_category_throttles_total",
			Help: "resetq's calls answered TooManyRequestsException, by account, Region and quota category: its own share of the category's AWS/Usage ThrottleCount.",
		}, []string{"account", "region", "category"}),
		CategoryLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_category_rate_limit",
			Help: "Current rate limit of the category's calls in calls per second, by account, Region and quota category (adaptive; at most --rate, --status-check-rate, --sign-out-rate or --reinvite-rate).",
		}, []string{"account", "region", "category"}),
		CategoryCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_category_usage_cap",
			Help: "Cap on the category's rate from its usage metrics against --harm-budget, by account, Region and quota category (0: none).",
		}, []string{"account", "region", "category"}),
		CategoryRoom: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_category_room",
			Help: "The most the category's rate may be given real users' calls the quota served in the latest judged usage minute (and the campaign's own users' returns), by account, Region and quota category (-1: not known; at or under the floor, the rate sits at the floor: real users, or someone, fill the quota).",
		}, []string{"account", "region", "category"}),
		CampaignUsers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_campaign_users",
			Help: "With --ledger-table, the ledger's counts of each campaign this worker has worked on, refreshed every minute, by state: enqueued, reset, reinvited, disabled, dead_lettered, left (enqueued and not yet reset, re-invited, disabled or dead-lettered), across every replica.",
		}, []string{"campaign", "state"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resetq_build_info",
			Help: "Always 1; the labels say which build is running.",
		}, []string{"version", "goversion"}),
	}
	reg.MustRegister(m.Jobs, m.DeadLetters, m.CognitoRequests, m.CognitoDuration, m.Throttles, m.QuotaCalls,
		m.RateLimitWait, m.RateLimit, m.Inflight, m.QueueMessages, m.CircuitOpen,
		m.SQSRequests, m.SQSDuration, m.BuildInfo, m.RedeliveryChecks, m.RateLimitFallback, m.HarmBudget, m.RateCap,
		m.PoolCircuitsOpen, m.DeadLetterFailures, m.EmailLimit, m.Steps, m.CognitoCalls, m.LedgerCalls, m.LedgerCircuitOpen, m.CampaignUsers,
		m.CategoryCalls, m.CategoryThrottles, m.CategoryLimit, m.CategoryCap, m.CategoryRoom,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	for _, o := range []string{"reset", "reinvited", "dead_lettered", "retried", "deferred", "released", "expired", "delivered_twice"} {
		m.Jobs.WithLabelValues(o) // export zeros so rates work from the first scrape
	}
	for _, c := range []string{"ok", "TooManyRequestsException"} {
		m.CognitoRequests.WithLabelValues(c) // the throttled share's terms, from zero too
	}
	for _, st := range []string{"signed_out", "reset", "password_killed", "reinvited", "disabled"} {
		m.Steps.WithLabelValues(st)
	}
	return m
}

// SQSCall records one SQS call.
func (m *Metrics) SQSCall(operation string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.SQSRequests.WithLabelValues(operation, result).Inc()
	m.SQSDuration.WithLabelValues(operation).Observe(time.Since(start).Seconds())
}

// Depth is a queue's approximate message counts.
type Depth struct{ Visible, InFlight, Delayed int64 }

// DepthReader reads a queue's depth (GetQueueAttributes).
type DepthReader interface {
	Depth(ctx context.Context) (Depth, error)
}

// PollQueues sets resetq_queue_messages from each queue (keyed by the
// queue label, e.g. "source" and "dlq") every interval until ctx ends.
// onErr, if not nil, hears about failed reads.
func (m *Metrics) PollQueues(ctx context.Context, clk clock.Clock, interval time.Duration, queues map[string]DepthReader, onErr func(queue string, err error)) {
	t := clk.NewTicker(interval)
	defer t.Stop()
	for {
		for name, q := range queues {
			d, err := q.Depth(ctx)
			if err != nil {
				if onErr != nil && ctx.Err() == nil {
					onErr(name, err)
				}
				continue
			}
			m.QueueMessages.WithLabelValues(name, "visible").Set(float64(d.Visible))
			m.QueueMessages.WithLabelValues(name, "in_flight").Set(float64(d.InFlight))
			m.QueueMessages.WithLabelValues(name, "delayed").Set(float64(d.Delayed))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}
