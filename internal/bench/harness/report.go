package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/resetq/resetq/internal/cognitostub"
)

// row is one scenario × contender: its inputs, the figures, and the verdict.
type row struct {
	Scenario   string  `json:"scenario"`
	Contender  string  `json:"contender"`
	Args       string  `json:"resetq_args,omitempty"`
	Jobs       int     `json:"jobs"`
	Quota      int     `json:"quota_per_second"`      // 0: unlimited
	Background float64 `json:"background_per_second"` // real users
	Available  float64 `json:"available_per_second"`  // quota - background

	// From the stand-in.
	Resets      int     `json:"resets"` // successful worker resets, duplicates included
	Users       int     `json:"users_reset"`
	Duplicates  int     `json:"duplicates"`
	Calls       int     `json:"calls"` // worker AdminResetUserPassword calls, throttled included
	Throttles   int     `json:"throttles"`
	Throttled   float64 `json:"throttled_share"`
	GetUser     int     `json:"admin_get_user_calls"`
	Rate        float64 `json:"rate_per_second"` // resets between the first and the last
	RateShare   float64 `json:"rate_share"`      // Rate / Available
	WallSeconds float64 `json:"wall_seconds"`    // start to last reset
	IdealWall   float64 `json:"ideal_seconds"`   // Jobs / Available

	BackgroundCalls     int     `json:"background_calls,omitempty"`
	BackgroundThrottled float64 `json:"background_throttled_share"`
	BackgroundAlone     float64 `json:"background_throttled_share_alone"`
	HarmPP              float64 `json:"harm_percentage_points"`

	// resetq only.
	CPUSeconds   float64  `json:"cpu_seconds,omitempty"`
	CPUPer10k    float64  `json:"cpu_seconds_per_10k_resets,omitempty"`
	SQSRequests  int      `json:"sqs_requests,omitempty"`
	SQSPerReset  float64  `json:"sqs_requests_per_reset,omitempty"`
	PeakRSSKiB   int64    `json:"peak_rss_kib,omitempty"`
	RSSGrowth    *float64 `json:"rss_growth,omitempty"`   // over the smaller queue's run; set on the larger's row
	UsageReads   int      `json:"usage_reads,omitempty"`  // GetMetricData calls (--usage-metrics)
	UsagePoints  int      `json:"usage_points,omitempty"` // datapoints they returned
	LeftOnQueue  int      `json:"left_on_queue"`
	DeadLettered int      `json:"dead_lettered"`

	// Timeline is the stand-in's counts second by second (from samples
	// every 100 ms, so a second's edges are ±100 ms).
	Timeline []second `json:"timeline,omitempty"`
	// Gauges is each resetq process's pacing gauges second by second
	// (scenario 8): its rate, the usage minutes' cap and real users' room.
	Gauges []gauge `json:"gauges,omitempty"`

	// Scenario 5 only.
	Model         string  `json:"quota_model,omitempty"`
	Pattern       string  `json:"users_pattern,omitempty"`
	UsersRate     float64 `json:"users_per_second,omitempty"` // real users' calls, measured
	LeftoverShare float64 `json:"leftover_share,omitempty"`   // Rate / (Quota - UsersRate)
	FrontierRate  float64 `json:"frontier_per_second,omitempty"`
	FrontierHarm  float64 `json:"frontier_harm,omitempty"`  // real users' throttled share at the frontier, simulated
	OfFrontier    float64 `json:"of_frontier,omitempty"`    // Rate / FrontierRate
	SimHarm       float64 `json:"simulated_harm,omitempty"` // the same run, simulated (alone and constant rows)
	HarmBudget    float64 `json:"harm_budget,omitempty"`
	// Scenario 6 only.
	LedgerTable    string         `json:"ledger_table,omitempty"`
	LedgerCalls    map[string]int `json:"ledger_calls,omitempty"` // DynamoDB calls by operation
	LedgerPerReset float64        `json:"ledger_calls_per_reset,omitempty"`
	LedgerPeak     int            `json:"ledger_peak_in_flight,omitempty"` // most DynamoDB calls at once
	LedgerItems    int            `json:"ledger_items,omitempty"`          // rows and counter items after the run
	OfNoLedger     float64        `json:"rate_of_no_ledger,omitempty"`     // Rate / the rate of the run without the ledger

	// Scenario 7 only.
	Scopes          int           `json:"account_regions,omitempty"`
	ScopeFigures    []scopeFigure `json:"per_account_region,omitempty"`
	LowestShare     float64       `json:"lowest_account_region_share,omitempty"`
	LowestScope     string        `json:"lowest_account_region,omitempty"`
	WorstThrottled  float64       `json:"worst_account_region_throttled,omitempty"`
	WorstScope      string        `json:"worst_account_region,omitempty"`
	SignOuts        int           `json:"sign_outs,omitempty"`
	AssumeRoles     int           `json:"sts_assume_role_calls,omitempty"`
	Identities      int           `json:"sts_get_caller_identity_calls,omitempty"`
	CPUPerJobMS     float64       `json:"resetq_cpu_ms_per_job,omitempty"`
	ProcessSeconds  float64       `json:"resetq_seconds,omitempty"`       // from resetq's start to its exit
	ResetqCPUShare  float64       `json:"resetq_cpus,omitempty"`          // resetq's CPU time / ProcessSeconds
	HarnessCPUShare float64       `json:"harness_cpus,omitempty"`         // the harness's (in-process stand-ins, SQS proxy) / ProcessSeconds
	FauxqsCPUShare  float64       `json:"fauxqs_cpus,omitempty"`          // fauxqs's / ProcessSeconds
	MachineBusy     float64       `json:"machine_busy_share,omitempty"`   // of all CPUs, every process on the machine
	OthersCPUs      float64       `json:"others_cpus"`                    // MachineBusy × CPUs less resetq's, the harness's and fauxqs's: other processes on the machine
	CognitoConns    int64         `json:"cognito_connections,omitempty"`  // TCP connections the Cognito (and STS) stand-in accepted
	DynamoConns     int64         `json:"dynamodb_connections,omitempty"` // and the DynamoDB stand-in
	showScopes      bool          // print a line per account-Region under the row

	// Scenario 8 only.
	Processes    int        `json:"processes,omitempty"`      // resetq processes in the campaign, one after another or at once
	CampaignFor  float64    `json:"campaign_for_s,omitempty"` // seconds from the start to the SIGTERM that ends it
	SplitSeconds int        `json:"split_s,omitempty"`        // where Start ends and Rest begins
	Start        harmSpan   `json:"start"`                    // the campaign's first SplitSeconds
	Rest         harmSpan   `json:"rest"`                     // and the rest, to the last reset
	Minutes      []harmSpan `json:"minutes,omitempty"`        // each minute from the start
	Run          int        `json:"run,omitempty"`            // of -long-runs, from 1
	long         bool

	usersSpan float64 // seconds over which BackgroundCalls were counted
	lossy     bool    // a throttled call is not retried: not every job's user is reset
	// unfinished: the run is stopped at a set time, before the queue
	// drains (scenario 8): jobs left on the queue are no error.
	unfinished bool

	Target string `json:"target"` // met, missed: ..., n/a, error, not run
	Error  string `json:"error,omitempty"`
	NotRun string `json:"not_run,omitempty"`
}

func (r *row) fill(st cognitostub.Stats, start time.Time) {
	r.Resets, r.Users, r.Duplicates = st.Resets, st.Users, st.Duplicates
	r.Calls, r.Throttles, r.Throttled = st.Worker.Calls, st.Worker.Throttles, st.Worker.ThrottledShare()
	r.GetUser = st.GetUser
	r.UsageReads, r.UsagePoints = st.UsageReads, st.UsagePoints
	if span := st.LastReset.Sub(st.FirstReset).Seconds(); st.Resets > 1 && span > 0 {
		r.Rate = float64(st.Resets-1) / span
	}
	if !st.LastReset.IsZero() {
		r.WallSeconds = st.LastReset.Sub(start).Seconds()
	}
	if r.Available > 0 {
		r.RateShare = r.Rate / r.Available
		r.IdealWall = float64(r.Jobs) / r.Available
	}
}

// judge sets Target from the misses check finds.
func (r *row) judge(check func(*row) []string) {
	switch {
	case r.Error != "":
		r.Target = "error"
	case r.Target != "":
	default:
		if misses := check(r); len(misses) > 0 {
			r.Target = "missed: " + strings.Join(misses, "; ")
		} else {
			r.Target = "met"
		}
	}
}

func atLeast(what string, got, want float64, of string) []string {
	if got >= want {
		return nil
	}
	return []string{fmt.Sprintf("%s %.3f %s < %.2f (short by %.3f)", what, got, of, want, want-got)}
}

func atMost(what string, got, want float64) []string {
	if got <= want {
		return nil
	}
	return []string{fmt.Sprintf("%s %s > %s (over by %.2f pp)", what, pct(got), pct(want), 100*(got-want))}
}

func atMostPP(what string, got, want float64) []string {
	if got <= want {
		return nil
	}
	return []string{fmt.Sprintf("%s by %.2f pp > %.0f pp", what, got, want)}
}

func atMostN(what string, got, want float64) []string {
	if got <= want {
		return nil
	}
	return []string{fmt.Sprintf("%s %.3f > %.2f", what, got, want)}
}

func atLeastN(what string, got, want float64) []string {
	if got >= want {
		return nil
	}
	return []string{fmt.Sprintf("%s %.0f < %.0f", what, got, want)}
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 2, 64) + "%" }

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func mib(kib int64) string { return strconv.FormatFloat(float64(kib)/1024, 'f', 1, 64) + " MiB" }

const tableHeader = "| scenario | contender | jobs | resets (dup) | rate/s | of available | throttled | wall (ideal) | real users throttled | cost | target |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|\n"

const worldHeader = "| model | real users | contender | jobs | rate/s | of leftover | of frontier | throttled | real users/s | real users throttled | simulated | verdict |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|\n"

const accountsHeader = "| scenario | contender | account-Regions | jobs | resets (dup) | rate/s | of N × Q | lowest account-Region | throttled (worst account-Region) | wall (ideal) | resetq CPU | harness, fauxqs, others; machine | connections; STS | target |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"

// header is the table header r belongs under.
func (r *row) header() string {
	switch {
	case r.long:
		return longHeader(r.SplitSeconds)
	case r.Model != "":
		return worldHeader
	case r.Scopes > 0:
		return accountsHeader
	}
	return tableHeader
}

// markdown is one table row.
func (r *row) markdown() string {
	if r.long {
		return r.longMarkdown()
	}
	if r.Model != "" {
		return r.worldMarkdown()
	}
	if r.Scopes > 0 {
		return r.accountsMarkdown()
	}
	dash := "–"
	cell := func(ok bool, s string) string {
		if !ok {
			return dash
		}
		return s
	}
	worked := r.Resets > 0
	c := []string{
		r.Scenario,
		r.Contender,
		cell(r.Jobs > 0, thousands(r.Jobs)),
		cell(worked, fmt.Sprintf("%s (%d)", thousands(r.Resets), r.Duplicates)),
		cell(r.Rate > 0, strconv.FormatFloat(r.Rate, 'f', 1, 64)),
		cell(r.RateShare > 0, strconv.FormatFloat(r.RateShare, 'f', 3, 64)),
		cell(r.Calls > 0, fmt.Sprintf("%s (%d of %d)", pct(r.Throttled), r.Throttles, r.Calls)),
		cell(worked, wall(r)),
		cell(r.BackgroundCalls > 0 && r.Background > 0, background(r)),
		cell(r.PeakRSSKiB > 0, cost(r)),
		verdict(r),
	}
	for i := range c {
		c[i] = strings.ReplaceAll(c[i], "|", "\\|")
	}
	return "| " + strings.Join(c, " | ") + " |\n"
}

// worldMarkdown is one row of scenario 5's table.
func (r *row) worldMarkdown() string {
	dash := "–"
	cell := func(ok bool, s string) string {
		if !ok {
			return dash
		}
		return s
	}
	sim := dash
	switch {
	case r.Contender == contResetq:
		sim = fmt.Sprintf("frontier %.1f/s at %s", r.FrontierRate, pct(r.FrontierHarm))
	case r.Jobs == 0 || r.lossy:
		sim = pct(r.SimHarm) + " throttled"
	}
	users := dash
	if r.BackgroundCalls > 0 {
		users = fmt.Sprintf("%s (%d of %d)", pct(r.BackgroundThrottled), int(r.BackgroundThrottled*float64(r.BackgroundCalls)+0.5), r.BackgroundCalls)
	}
	c := []string{
		r.Model,
		r.Pattern,
		r.Contender,
		cell(r.Jobs > 0, thousands(r.Jobs)),
		cell(r.Rate > 0, strconv.FormatFloat(r.Rate, 'f', 1, 64)),
		cell(r.LeftoverShare > 0, strconv.FormatFloat(r.LeftoverShare, 'f', 3, 64)),
		cell(r.OfFrontier > 0, strconv.FormatFloat(r.OfFrontier, 'f', 3, 64)),
		cell(r.Calls > 0, fmt.Sprintf("%s (%d of %d)", pct(r.Throttled), r.Throttles, r.Calls)),
		cell(r.UsersRate > 0, strconv.FormatFloat(r.UsersRate, 'f', 1, 64)),
		users,
		sim,
		verdict(r),
	}
	for i := range c {
		c[i] = strings.ReplaceAll(c[i], "|", "\\|")
	}
	return "| " + strings.Join(c, " | ") + " |\n"
}

func wall(r *row) string {
	s := strconv.FormatFloat(r.WallSeconds, 'f', 1, 64) + " s"
	if r.IdealWall > 0 {
		s += " (" + strconv.FormatFloat(r.IdealWall, 'f', 1, 64) + " s)"
	}
	return s
}

func background(r *row) string {
	if r.Jobs == 0 {
		return pct(r.BackgroundThrottled) + " alone"
	}
	return fmt.Sprintf("%s (%+.2f pp)", pct(r.BackgroundThrottled), r.HarmPP)
}

func cost(r *row) string {
	s := fmt.Sprintf("CPU %.2f s/10k, %.3f SQS req/reset, RSS %s", r.CPUPer10k, r.SQSPerReset, mib(r.PeakRSSKiB))
	if r.RSSGrowth != nil {
		s += fmt.Sprintf(" (%+.1f%% over the smaller queue)", 100**r.RSSGrowth)
	}
	if r.LedgerTable != "" {
		s += ledgerCost(r)
	}
	return s
}

func verdict(r *row) string {
	switch {
	case r.NotRun != "":
		return "not run: " + r.NotRun
	case r.Error != "":
		e := r.Error
		if len(e) > 300 {
			e = e[:300] + "…"
		}
		return "error: " + e
	}
	return r.Target
}

// accountsMarkdown is one row of scenario 7's table, and with showScopes
// a line for each account-Region under it.
func (r *row) accountsMarkdown() string {
	dash := "–"
	cell := func(ok bool, s string) string {
		if !ok {
			return dash
		}
		return s
	}
	worked := r.Resets > 0
	share := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	c := []string{
		r.Scenario,
		r.Contender,
		strconv.Itoa(r.Scopes),
		thousands(r.Jobs),
		cell(worked, fmt.Sprintf("%s (%d)", thousands(r.Resets), r.Duplicates)),
		cell(r.Rate > 0, strconv.FormatFloat(r.Rate, 'f', 1, 64)),
		cell(r.RateShare > 0, share(r.RateShare)),
		cell(r.LowestScope != "", share(r.LowestShare)+" ("+r.LowestScope+")"),
		cell(r.Calls > 0, fmt.Sprintf("%s (%d of %d; %s in %s)", pct(r.Throttled), r.Throttles, r.Calls, pct(r.WorstThrottled), r.WorstScope)),
		cell(worked, wall(r)),
		cell(r.CPUPerJobMS > 0, fmt.Sprintf("%.2f ms/job, %.2f CPUs", r.CPUPerJobMS, r.ResetqCPUShare)),
		cell(r.ProcessSeconds > 0, fmt.Sprintf("%.2f, %.2f, %.2f CPUs; %.0f%% busy", r.HarnessCPUShare, r.FauxqsCPUShare, r.OthersCPUs, 100*r.MachineBusy)),
		cell(r.ProcessSeconds > 0, connections(r)),
		verdict(r),
	}
	out := markdownRow(c)
	if !r.showScopes {
		return out
	}
	for _, f := range r.ScopeFigures {
		by := "default credentials"
		if f.Role != "" {
			by = "role"
		}
		out += markdownRow([]string{r.Scenario, "↳ " + f.key() + " (" + by + ")", "1", thousands(f.Jobs),
			thousands(f.Resets), cell(f.Rate > 0, strconv.FormatFloat(f.Rate, 'f', 1, 64)),
			cell(f.Share > 0, share(f.Share)), dash, cell(f.Calls > 0, fmt.Sprintf("%s (%d of %d)", pct(f.Throttled), f.Throttles, f.Calls)),
			dash, dash, dash, dash, f.Target})
	}
	return out
}

// connections is the TCP connections resetq opened to the stand-ins
// (accepted by them) and its STS calls.
func connections(r *row) string {
	s := fmt.Sprintf("Cognito %d", r.CognitoConns)
	if r.LedgerTable != "" {
		s += fmt.Sprintf(", DynamoDB %d", r.DynamoConns)
	}
	return s + fmt.Sprintf("; %d AssumeRole, %d GetCallerIdentity", r.AssumeRoles, r.Identities)
}

// markdownRow is cells as a table row, "|" escaped.
func markdownRow(c []string) string {
	for i := range c {
		c[i] = strings.ReplaceAll(c[i], "|", "\\|")
	}
	return "| " + strings.Join(c, " | ") + " |\n"
}
