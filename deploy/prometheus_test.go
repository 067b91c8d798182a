package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/localserver/localservertest"
	"github.com/resetq/resetq/internal/testenv"
)

const (
	rulesFile   = "prometheus/rules.yml"
	runbookFile = "../docs/operations.md"
	promHint    = "apt-get install prometheus"
)

// TestPrometheusRules: promtool accepts the rules file, and the unit tests in
// prometheus/tests pass (each alert fires when it should and stays quiet when
// it should not; the recording rules compute the right numbers).
func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	needCLI(t, "promtool", promHint)
	if out, err := exec.Command("promtool", "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	tests, err := filepath.Glob("prometheus/tests/*.yml")
	if err != nil || len(tests) == 0 {
		t.Fatalf("no promtool tests in prometheus/tests (%v)", err)
	}
	if out, err := exec.Command("promtool", append([]string{"test", "rules"}, tests...)...).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

var (
	alertRE     = regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)\s*$`)
	runbookRE   = regexp.MustCompile(`(?m)^\s*runbook_url:\s*(\S+)\s*$`)
	anchorRE    = regexp.MustCompile(`id="([^"]+)"`)
	testAlertRE = regexp.MustCompile(`(?m)^\s*- alertname:\s*(\S+)\s*$`)
)

// TestAlertsHaveRunbooksAndTests: every alert links to an anchor that exists
// in docs/operations.md, and has at least two promtool test cases (one that
// fires, one that stays quiet).
func TestAlertsHaveRunbooksAndTests(t *testing.T) {
	t.Parallel()
	rules := readFile(t, rulesFile)
	doc := readFile(t, runbookFile)
	anchors := map[string]bool{}
	for _, m := range anchorRE.FindAllStringSubmatch(doc, -1) {
		anchors[m[1]] = true
	}
	alerts := alertRE.FindAllStringSubmatch(rules, -1)
	if len(alerts) < 6 {
		t.Fatalf("%d alerts in %s, want at least 6", len(alerts), rulesFile)
	}
	// Each alert's block runs from its "- alert:" line to the next rule.
	blocks := regexp.MustCompile(`(?m)^\s*- (?:alert|record):`).Split(rules, -1)[1:]
	tested := map[string]int{}
	tests, _ := filepath.Glob("prometheus/tests/*.yml")
	for _, f := range tests {
		for _, m := range testAlertRE.FindAllStringSubmatch(readFile(t, f), -1) {
			tested[m[1]]++
		}
	}
	const base = "https://github.com/resetq/resetq/blob/main/docs/operations.md#"
	for _, a := range alerts {
		name := a[1]
		var block string
		for _, b := range blocks {
			if strings.HasPrefix(strings.TrimSpace(b), name+"\n") {
				block = b
			}
		}
		u := runbookRE.FindStringSubmatch(block)
		if u == nil {
			t.Errorf("alert %s has no runbook_url", name)
			continue
		}
		anchor, ok := strings.CutPrefix(u[1], base)
		if !ok {
			t.Errorf("alert %s: runbook_url %s is not under %s", name, u[1], base)
		}
		if want := "alert-" + strings.ToLower(name); anchor != want {
			t.Errorf("alert %s: runbook anchor %q, want %q", name, anchor, want)
		}
		if !anchors[anchor] {
			t.Errorf("alert %s: %s has no anchor id=%q", name, runbookFile, anchor)
		}
		if tested[name] < 2 {
			t.Errorf("alert %s has %d promtool test cases, want at least 2 (fires, stays quiet)", name, tested[name])
		}
	}
}

// TestWorkerMetricsLint: `promtool check metrics` finds no problem in a live
// scrape of the worker taken during a small campaign with throttling and a
// dead letter, so the vectors have children.
func TestWorkerMetricsLint(t *testing.T) {
	t.Parallel()
	needCLI(t, "promtool", promHint)
	e := testenv.New(t, "promlint")
	pool, _, bodies := e.ConfirmedUsers(e.East, "l", 6)
	e.Proxy.SetQuota("AdminResetUserPassword", 3)
	e.Send("lint", append(bodies, testenv.Job(pool, "ghost"))...)
	p := e.Start("--rate", "10")
	testenv.Eventually(t, time.Minute, "the campaign to finish", func() bool {
		return p.Metric(t, `resetq_jobs_total{outcome="reset"}`) == 6 && p.Metric(t, `resetq_jobs_total{outcome="dead_lettered"}`) == 1
	})
	scrape := httpGet(t, "http://"+p.MetricsAddr()+"/metrics")
	for _, want := range []string{"resetq_dead_letters_total{", "resetq_cognito_requests_total{", "resetq_ratelimit_limit{", "resetq_queue_messages{", "resetq_cognito_request_duration_seconds_bucket{"} {
		if !strings.Contains(scrape, want) {
			t.Errorf("the scrape has no %s sample", want)
		}
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	// The queue is empty: testenv's cleanup kills the idle worker.
}

// TestPrometheusScrapesWorker: a real Prometheus server scrapes the worker
// every second during a demo-sized campaign (36 users, 4 missing, a quota
// below --rate and bursts of real users, so some calls are throttled) and
// evaluates rules.yml. What it
// reports agrees with what the worker did, as read from moto and the DLQ.
func TestPrometheusScrapesWorker(t *testing.T) {
	t.Parallel()
	needCLI(t, "prometheus", promHint)
	e := testenv.New(t, "prom")
	const nUsers, nGhosts = 36, 4
	pool, users, bodies := e.ConfirmedUsers(e.East, "p", nUsers)
	for i := range nGhosts {
		bodies = append(bodies, testenv.Job(pool, fmt.Sprintf("ghost%d", i)))
	}
	e.Proxy.SetQuota("AdminResetUserPassword", 5)
	// The limiter finds the quota within a second, before Prometheus's
	// first scrape, and a counter first seen at its final value shows no
	// rate: real users' bursts (a share of calls throttled all along)
	// keep throttles coming through the campaign.
	// Throttles that come whatever the rate keep the limiter cutting: the
	// campaign takes about a minute, hence the long wait below.
	e.Proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", Share: 0.15, ErrorCode: "TooManyRequestsException", Message: "Rate exceeded"})
	e.Send("prom", bodies...)
	// The worker starts with the jobs already queued, so its first queue poll
	// sees the whole backlog and the ETA has something to divide.
	start := time.Now()
	p := e.Start("--rate", "8")
	prom := startPrometheus(t, p.MetricsAddr())
	t.Logf("prometheus ready after %v", time.Since(start).Round(time.Millisecond))

	q := func(query string) (float64, bool) { return promQuery(t, prom, query) }
	eventually := func(what, query string, want float64) {
		t.Helper()
		var got float64
		var ok bool
		testenv.Eventually(t, 120*time.Second, fmt.Sprintf("%s (%s == %v, last %v)", what, query, want, got), func() bool {
			got, ok = q(query)
			return ok && got == want
		})
	}
	eventually("Prometheus to scrape the worker", `up{job="resetq"}`, 1)
	eventually("every job to end", `sum(resetq_jobs_total{outcome=~"reset|dead_lettered"})`, nUsers+nGhosts)
	t.Logf("campaign done after %v", time.Since(start).Round(time.Millisecond))
	// The queue gauges are polled every 15 s: wait for the poll after the end.
	eventually("the backlog to read 0", `resetq:backlog:messages`, 0)
	eventually("the DLQ to read its jobs", `resetq:dlq:messages`, nGhosts)
	t.Logf("queue gauges settled after %v", time.Since(start).Round(time.Millisecond))

	reset := 0
	for _, u := range users {
		if e.Status(e.East, pool, u) == "RESET_REQUIRED" {
			reset++
		}
	}
	dl := e.DrainDLQ()
	check := func(query string, want float64) {
		t.Helper()
		if got, ok := q(query); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", query, got, ok, want)
		}
	}
	check(`sum(resetq_jobs_total{outcome="reset"})`, float64(reset))
	check(`sum(resetq_cognito_requests_total{code="ok"})`, float64(reset))
	check(`sum(resetq_jobs_total{outcome="dead_lettered"})`, float64(len(dl)))
	check(`sum(resetq_dead_letters_total{reason="UserNotFoundException"})`, float64(len(dl)))
	if reset != nUsers || len(dl) != nGhosts {
		t.Errorf("the campaign itself: %d users reset (want %d), %d dead letters (want %d)", reset, nUsers, len(dl), nGhosts)
	}
	// Throttles: Prometheus agrees with the worker's own /metrics, and the two
	// metrics that count them agree with each other.
	throttled := p.Metric(t, `resetq_cognito_requests_total{code="TooManyRequestsException"}`)
	check(`sum(resetq_cognito_requests_total{code="TooManyRequestsException"})`, throttled)
	check(`sum(resetq_throttles_total)`, throttled)
	// resetq_quota_calls_total counts every reset call by account and Region
	// (no kill in this campaign), throttled ones and the ghosts' included.
	if calls, ok := q(`sum(resetq_cognito_requests_total)`); !ok || !(calls > 0) {
		t.Errorf("sum(resetq_cognito_requests_total) = %v (present %v), want > 0", calls, ok)
	} else {
		check(`sum(resetq_quota_calls_total{region="us-east-1"})`, calls)
	}
	// The recording rules ran on real scrapes.
	// resetq:quota_calls:rate5m: the calls per account-Region, with the
	// labels the worker exports.
	for _, query := range []string{`max_over_time(resetq:resets:rate1m[5m])`, `max_over_time(resetq:drain:rate5m[5m])`, `max_over_time(resetq:eta:seconds[5m])`,
		`max_over_time(resetq:quota_calls:rate5m{region="us-east-1"}[5m])`} {
		if got, ok := q(query); !ok || !(got > 0) {
			t.Errorf("%s = %v (present %v), want > 0", query, got, ok)
		}
	}
	share, ok := q(`max_over_time(resetq:throttled_share:rate5m[5m])`)
	switch {
	case !ok || share < 0 || share > 1:
		t.Errorf("resetq:throttled_share:rate5m = %v (present %v), want a share in [0, 1]", share, ok)
	case throttled > 0 && share == 0:
		t.Errorf("%v calls throttled but resetq:throttled_share:rate5m stayed 0", throttled)
	}
	check(`resetq:workers:up`, 1)
	checkDashboardQueries(t, prom)
	if got, ok := q(`resetq:ratelimit_limit:sum{region="us-east-1"}`); !ok || got <= 0 || got > 8 {
		t.Errorf("resetq:ratelimit_limit:sum = %v (present %v), want in (0, 8] (--rate 8)", got, ok)
	}
	if got, ok := q(`resetq:ratelimit_limit:shared{region="us-east-1"}`); !ok || got <= 0 || got > 8 {
		t.Errorf("resetq:ratelimit_limit:shared = %v (present %v), want in (0, 8] (--rate 8)", got, ok)
	}

	t.Logf("checks done after %v", time.Since(start).Round(time.Millisecond))
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	t.Logf("worker stopped after %v", time.Since(start).Round(time.Millisecond))
}

// checkDashboardQueries runs every panel query of the dashboard, its
// variables filled in, on the Prometheus server that scraped the campaign:
// each must be valid PromQL, and the panels an incident lead reads first must
// show data.
func checkDashboardQueries(t *testing.T, prom string) {
	t.Helper()
	vars := strings.NewReplacer("$job", "resetq", "$account", ".*", "$region", ".*", "$campaign", ".*", "$__range", "10m", "$__rate_interval", "1m")
	mustShow := map[string]bool{"Reset": true, "Dead-lettered": true, "Remaining": true, "In the DLQ": true, "Workers up": true,
		"Reset rate against the limit and the quota": true, "Source queue and DLQ": true, "Outcomes": true, "Dead letters by reason": true,
		"Cognito calls by result code": true, "Cognito latency": true, "Builds running": true,
		"Steps": true, "Pools with an open circuit": true, "Dead-letter send failures": true}
	d := loadDashboard(t)
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			// $redis picks the fleet limit's target: one of the two shows.
			n := 0
			for _, redis := range []string{"0", "1"} {
				n += len(promQueryAll(t, prom, strings.ReplaceAll(vars.Replace(tg.Expr), "$redis", redis)))
			}
			// moto's CloudWatch has no AWS/Usage data: no usage gauge, and no cap from it.
			usage := strings.Contains(tg.Expr, "resetq_usage_") || strings.Contains(tg.Expr, "resetq_ratelimit_usage_cap")
			switch {
			case n == 0 && mustShow[p.Title] && !usage:
				t.Errorf("dashboard panel %q target %d shows no data after the campaign: %s", p.Title, i, tg.Expr)
			case n == 0:
				t.Logf("dashboard panel %q target %d has no data in this campaign (expected for circuits, SQS errors, the email limit and incident-mode calls, for the usage gauges: moto's CloudWatch has no AWS/Usage data, so the worker exports none, and for the ledger's panels: this worker runs without --ledger-table)", p.Title, i)
			}
		}
	}
}

// startPrometheus runs a Prometheus server that scrapes target every second
// as job "resetq" and evaluates rules.yml every second. It returns its base
// URL once /-/ready answers; the test's cleanup stops it.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	if target == "" {
		t.Fatal("resetq never said where it serves /metrics (no \"serving metrics\" line in its log)")
	}
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: resetq
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The port is picked here and bound by Prometheus: another process
	// can take it in between, so a server that exits on it is started
	// again on another port.
	for attempt := 1; ; attempt++ {
		base, ok := runPrometheus(t, cfgFile, filepath.Join(dir, fmt.Sprint("data", attempt)), attempt == 3)
		if ok {
			return base
		}
	}
}

// runPrometheus starts one Prometheus server and returns its base URL once
// /-/ready answers, or false when it exited because its port was taken
// (and last is false).
func runPrometheus(t *testing.T, cfgFile, data string, last bool) (string, bool) {
	t.Helper()
	addr := testenv.FreeAddr(t)
	var log bytes.Buffer
	cmd := exec.Command("prometheus", "--config.file="+cfgFile, "--storage.tsdb.path="+data,
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := localservertest.StopAtCleanup(t, cmd, 15*time.Second, "prometheus", &log)
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			if !last && strings.Contains(log.String(), "address already in use") {
				t.Logf("prometheus: %s taken, another port", addr)
				return "", false
			}
			t.Fatalf("prometheus exited: %s", log.String())
		default:
		}
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promQuery runs an instant query and returns its value when it has exactly
// one sample.
func promQuery(t *testing.T, base, query string) (float64, bool) {
	t.Helper()
	vals := promQueryAll(t, base, query)
	if len(vals) != 1 {
		return 0, false
	}
	return vals[0], true
}

// promQueryAll runs an instant query, which must succeed, and returns the
// values of its samples.
func promQueryAll(t *testing.T, base, query string) []float64 {
	t.Helper()
	body := httpGet(t, base+"/api/v1/query?query="+url.QueryEscape(query))
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s %s", query, err, r.Error, body)
	}
	var out []float64
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			t.Fatalf("query %s: value %q", query, str)
		}
		out = append(out, v)
	}
	return out
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %s\n%s", u, err, resp.Status, b)
	}
	return string(b)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
