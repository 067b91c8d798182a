package deploy

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/metrics"
	"github.com/resetq/resetq/usagemetrics"
	"github.com/resetq/resetq/userpool"
)

const dashboardFile = "grafana/resetq.json"

// dashboard is the part of Grafana's JSON model the tests read.
type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
			Options    []struct {
				Text  string `json:"text"`
				Value string `json:"value"`
			} `json:"options"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID          int    `json:"id"`
		Type        string `json:"type"`
		Title       string `json:"title"`
		Description string `json:"description"`
		TimeFrom    string `json:"timeFrom"`
		Repeat      string `json:"repeat"`
		GridPos     struct {
			Y int `json:"y"`
		} `json:"gridPos"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr       string `json:"expr"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal([]byte(readFile(t, dashboardFile)), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// dashboardExprs is every PromQL expression of the dashboard: panel targets
// and variable queries, keyed by where it is.
func dashboardExprs(d dashboard) map[string]string {
	out := map[string]string{}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			out[p.Title+" target "+string(rune('A'+i))] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out["variable "+v.Name] = v.Definition
		}
	}
	return out
}

// TestDashboardModel: the dashboard parses, has a Prometheus datasource
// variable that every panel uses, and account and region variables, and
// every panel has a title and at least one target with an expression.
func TestDashboardModel(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("title %q, uid %q, schemaVersion %d: want a title, a uid and schemaVersion >= 36", d.Title, d.UID, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "datasource" && (v.Type != "datasource" || v.Query != "prometheus") {
			t.Errorf("variable datasource: type %q query %v, want a datasource variable of type prometheus", v.Type, v.Query)
		}
	}
	if vars["datasource"] == "" || vars["region"] != "query" || vars["account"] != "query" {
		t.Errorf("variables %v: want datasource, and account and region query variables", vars)
	}
	if len(d.Panels) < 10 {
		t.Errorf("%d panels", len(d.Panels))
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if p.Title == "" {
			t.Errorf("panel %d (%s) has no title", p.ID, p.Type)
		}
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			// A row groups the panels below it and queries nothing.
			if len(p.Targets) != 0 {
				t.Errorf("row %q has targets", p.Title)
			}
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no target", p.Title)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has a target without an expression", p.Title)
			}
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: target datasource %q, want ${datasource}", p.Title, tg.Datasource.UID)
			}
		}
	}
	// What an incident lead must see at a glance.
	all := strings.Join(slices.Collect(maps.Values(dashboardExprs(d))), "\n")
	for _, want := range []string{"resetq:backlog:messages", "resetq:eta:seconds", `outcome="reset"`, "resetq_ratelimit_limit", "vector(30)",
		"resetq_dead_letters_total", "resetq:throttles:rate5m", "resetq_cognito_request_duration_seconds_bucket", "resetq_circuit_open", `account=~"$account",region=~"$region"`,
		// Incident mode and what stalls a campaign without failing it.
		"resetq_steps_total", "resetq_cognito_calls_total", "resetq_email_limit_reached", "resetq_pool_circuits_open", "resetq_dead_letter_failures_total",
		// Real users' share of the quota, from CloudWatch, beside resetq's own.
		"resetq_usage_calls_per_minute", "resetq_usage_throttles_per_minute", "resetq:real_user_throttles:increase5m"} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel uses %s", want)
		}
	}
}

// exportedMetrics is every series name the worker exports, from the code:
// metrics.New on a fresh registry, each vector given one child so it shows in
// Gather. Histograms count as their _bucket, _sum and _count series, the only
// names a query can select. families is the metric families' own names, the
// names prose uses.
func exportedMetrics(t *testing.T) (series, families map[string]bool) {
	t.Helper()
	fams, err := exportedRegistry(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	names, families := map[string]bool{}, map[string]bool{}
	for _, f := range fams {
		families[f.GetName()] = true
		switch f.GetType().String() {
		case "HISTOGRAM":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		case "SUMMARY":
			names[f.GetName()] = true
			names[f.GetName()+"_sum"] = true
			names[f.GetName()+"_count"] = true
		default:
			names[f.GetName()] = true
		}
	}
	return names, families
}

// exportedRegistry is a registry with every metric the worker exports, each
// vector with one child (empty label values), the usage gauges set.
func exportedRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		get := v.Field(i).MethodByName("GetMetricWithLabelValues")
		if !get.IsValid() {
			continue // a plain metric, always exported
		}
		// Find the number of labels: the call errs until it is right.
		ok := false
		for n := 0; n <= 8 && !ok; n++ {
			res := get.CallSlice([]reflect.Value{reflect.ValueOf(make([]string, n))})
			ok = res[1].IsNil()
		}
		if !ok {
			t.Fatalf("metrics.Metrics.%s: no label count works", v.Type().Field(i).Name)
		}
	}
	// The usage gauges are usagemetrics', set once CloudWatch answers: a
	// reader that answers one minute makes them show.
	usage := usagemetrics.NewWatcher(usagemetrics.WatcherConfig{Reader: oneMinute{}}, reg)
	usage.Add("us-east-1")
	usage.Poll(context.Background(), time.Unix(600, 0))
	return reg
}

// oneMinute is a usage reader with one minute of data.
type oneMinute struct{}

func (oneMinute) Usage(_ context.Context, _ string, q usagemetrics.Query) ([]usagemetrics.Point, error) {
	return []usagemetrics.Point{{At: q.Start, Value: 1}}, nil
}

var (
	metricRefRE = regexp.MustCompile(`\bresetq[_:][A-Za-z0-9_:]*`)
	recordRE    = regexp.MustCompile(`(?m)^\s*- record:\s*(\S+)\s*$`)
)

// recordedNames is the recording rules rules.yml defines.
func recordedNames(rules string) map[string]bool {
	out := map[string]bool{}
	for _, m := range recordRE.FindAllStringSubmatch(rules, -1) {
		out[m[1]] = true
	}
	return out
}

// unknownMetrics returns the resetq metric names text uses that are in
// neither known set.
func unknownMetrics(text string, known ...map[string]bool) []string {
	var out []string
next:
	for _, name := range metricRefRE.FindAllString(text, -1) {
		name = strings.TrimRight(name, ":") // "resetq: ..." in prose
		if name == "resetq" {
			continue
		}
		for _, k := range known {
			if k[name] {
				continue next
			}
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// TestMetricNamesExist: every metric name a panel, a recording rule or an
// alert uses is one the worker exports or a recording rule of rules.yml, so
// renaming a metric in metrics/metrics.go fails here instead of leaving dead
// panels and silent alerts. (`up` is Prometheus's own.)
func TestMetricNamesExist(t *testing.T) {
	t.Parallel()
	exported, families := exportedMetrics(t)
	for _, want := range []string{"resetq_jobs_total", "resetq_queue_messages", "resetq_cognito_request_duration_seconds_bucket", "resetq_dead_letters_total", "resetq_circuit_open"} {
		if !exported[want] {
			t.Fatalf("the exported set lacks %s: %v", want, exported)
		}
	}
	rules := readFile(t, rulesFile)
	recorded := recordedNames(rules)
	if len(recorded) < 5 {
		t.Fatalf("%d recording rules in %s", len(recorded), rulesFile)
	}
	for where, expr := range dashboardExprs(loadDashboard(t)) {
		if bad := unknownMetrics(expr, exported, recorded); len(bad) > 0 {
			t.Errorf("%s: panel %s uses %v, which the worker does not export and rules.yml does not record", dashboardFile, where, bad)
		}
		if !metricRefRE.MatchString(expr) && !strings.Contains(expr, "vector(") {
			t.Errorf("%s: %s uses no resetq metric: %s", dashboardFile, where, expr)
		}
	}
	if bad := unknownMetrics(rules, exported, families, recorded); len(bad) > 0 {
		t.Errorf("%s uses %v, which the worker does not export and no rule records", rulesFile, bad)
	}
	if bad := unknownMetrics(readFile(t, runbookFile), exported, families, recorded); len(bad) > 0 {
		t.Errorf("%s names %v, which the worker does not export and no rule records", runbookFile, bad)
	}
}

// TestMetricNamesCatchRename: the check above does catch a rename, in a
// panel, in a rule, and in the code.
func TestMetricNamesCatchRename(t *testing.T) {
	t.Parallel()
	exported, _ := exportedMetrics(t)
	rules := readFile(t, rulesFile)
	recorded := recordedNames(rules)
	dash := strings.Join(slices.Collect(maps.Values(dashboardExprs(loadDashboard(t)))), "\n")
	if bad := unknownMetrics(dash, exported, recorded); len(bad) != 0 {
		t.Fatalf("the dashboard already has unknown names %v", bad)
	}
	if bad := unknownMetrics(strings.ReplaceAll(dash, "resetq_circuit_open", "resetq_circuit_opened"), exported, recorded); !slices.Equal(bad, []string{"resetq_circuit_opened"}) {
		t.Errorf("a renamed metric in a panel: unknown %v", bad)
	}
	if bad := unknownMetrics(strings.ReplaceAll(dash, "resetq:eta:seconds", "resetq:eta:secs"), exported, recorded); !slices.Equal(bad, []string{"resetq:eta:secs"}) {
		t.Errorf("a renamed recording rule in a panel: unknown %v", bad)
	}
	// The worker's metric renamed in the code: the rules still use the old name.
	renamed := map[string]bool{}
	for k := range exported {
		renamed[k] = k != "resetq_jobs_total"
	}
	if bad := unknownMetrics(rules, renamed, recorded); !slices.Contains(bad, "resetq_jobs_total") {
		t.Errorf("resetq_jobs_total gone from the code: rules.yml unknown %v", bad)
	}
	// A recording rule renamed in rules.yml: the dashboard still uses the old name.
	renamedRules := recordedNames(strings.ReplaceAll(rules, "record: resetq:backlog:messages", "record: resetq:backlog:jobs"))
	if bad := unknownMetrics(dash, exported, renamedRules); !slices.Contains(bad, "resetq:backlog:messages") {
		t.Errorf("resetq:backlog:messages renamed in rules.yml: dashboard unknown %v", bad)
	}
}

// ratePanel is the panel of the reset rate against the fleet's limit.
const ratePanel = "Reset rate against the limit and the quota"

// TestDashboardFleetLimit: with one limit in Redis the rate panel shows that
// limit (resetq:ratelimit_limit:shared, a max over the replicas plus the
// local shares of those in fallback), not the sum of every replica's limit,
// which is N x --rate; the sum shows only when the Fleet limit variable
// says the replicas pace alone. The metrics cannot tell the two apart
// (resetq_ratelimit_fallback is 0 in both), hence the variable.
func TestDashboardFleetLimit(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	values := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Name == "redis" {
			for _, o := range v.Options {
				values[o.Value] = o.Text
			}
		}
	}
	if len(values) != 2 || !strings.Contains(values["1"], "Redis") || values["0"] == "" {
		t.Errorf("variable redis has options %v: want 0 (each replica alone) and 1 (one limit in Redis)", values)
	}
	gate := regexp.MustCompile(`\band on \(\) \(vector\(\$redis\) == ([01])\)\s*$`)
	limitRE := regexp.MustCompile(`resetq(_ratelimit_limit|:ratelimit_limit:\w+)`)
	found := false
	shown := map[string]bool{}
	for _, p := range d.Panels {
		if p.Title != ratePanel {
			continue
		}
		found = true
		for _, tg := range p.Targets {
			uses := limitRE.FindAllString(tg.Expr, -1)
			if len(uses) == 0 {
				continue
			}
			m := gate.FindStringSubmatch(tg.Expr)
			switch {
			case m == nil:
				t.Errorf("%s: %s shows the limit whatever the fleet: gate it on $redis", ratePanel, tg.Expr)
			case m[1] == "1" && !slices.Equal(uses, []string{"resetq:ratelimit_limit:shared"}):
				t.Errorf("%s: with one limit in Redis the target uses %v, want resetq:ratelimit_limit:shared alone: %s", ratePanel, uses, tg.Expr)
			case m[1] == "0" && !slices.Equal(uses, []string{"resetq:ratelimit_limit:sum"}):
				t.Errorf("%s: with each replica alone the target uses %v, want resetq:ratelimit_limit:sum: %s", ratePanel, uses, tg.Expr)
			}
			if m != nil {
				shown[m[1]] = true
			}
		}
		for _, want := range []string{"resetq:ratelimit_limit:shared", "resetq_ratelimit_fallback", "--fleet-size", "not N x --rate"} {
			if !strings.Contains(p.Description, want) {
				t.Errorf("%s: the description does not say %q: %s", ratePanel, want, p.Description)
			}
		}
	}
	if !found {
		t.Fatalf("no panel %q", ratePanel)
	}
	if !shown["0"] || !shown["1"] {
		t.Errorf("%s: a limit for each value of $redis, got %v", ratePanel, shown)
	}
	// The rule behind it takes the replicas' limit once, never their sum.
	shared := ruleExpr(t, readFile(t, rulesFile), "resetq:ratelimit_limit:shared")
	if regexp.MustCompile(`sum\b[^()]*\(\s*resetq_ratelimit_limit`).MatchString(shared) || !strings.Contains(shared, "max by (namespace, job, account, region) (resetq_ratelimit_limit") ||
		!strings.Contains(shared, "resetq_ratelimit_fallback") || !strings.Contains(shared, "resetq:ratelimit_limit:fallback") {
		t.Errorf("resetq:ratelimit_limit:shared: want the largest replica's limit among those reaching Redis plus the fallback shares, never a sum of resetq_ratelimit_limit:\n%s", shared)
	}
}

// ruleExpr is the text of a recording rule's block in rules, from its
// record line to the next rule.
func ruleExpr(t *testing.T, rules, record string) string {
	t.Helper()
	i := strings.Index(rules, "- record: "+record+"\n")
	if i < 0 {
		t.Fatalf("no recording rule %s", record)
	}
	block := rules[i+len("- record: "+record+"\n"):]
	if j := regexp.MustCompile(`(?m)^\s*- (?:record|alert):`).FindStringIndex(block); j != nil {
		block = block[:j[0]]
	}
	return block
}

// TestDashboardHarmBudget: one panel draws resetq's throttled share beside
// its target, a fifth of resetq_harm_budget.
func TestDashboardHarmBudget(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	for _, p := range d.Panels {
		var share, target bool
		for _, tg := range p.Targets {
			share = share || strings.Contains(tg.Expr, "throttled_share")
			target = target || regexp.MustCompile(`resetq_harm_budget\{[^}]*\}\)? */ *5\b`).MatchString(tg.Expr)
		}
		if share && target {
			return
		}
	}
	t.Error("no panel draws the throttled share beside resetq_harm_budget / 5")
}

// TestDashboardRealUsersBudget: one panel draws real users' lost share
// (resetq:real_user_throttled_share:rate5m, what ResetqRealUsersThrottled
// watches) beside the harm budget itself, resetq_harm_budget.
func TestDashboardRealUsersBudget(t *testing.T) {
	t.Parallel()
	for _, p := range loadDashboard(t).Panels {
		var share, budget bool
		for _, tg := range p.Targets {
			share = share || strings.Contains(tg.Expr, "resetq:real_user_throttled_share:rate5m")
			budget = budget || regexp.MustCompile(`^max\(resetq_harm_budget\{[^}]*\}\) > 0 or vector\(0\.005\)$`).MatchString(tg.Expr)
		}
		if share && budget {
			return
		}
	}
	t.Error("no panel draws resetq:real_user_throttled_share:rate5m beside resetq_harm_budget (0.005 when 0)")
}

// TestDashboardNamesEveryStep: the panel of resetq_steps_total names every
// step the worker records (worker/*.go: stepDone and step calls), and the
// panel of resetq_cognito_calls_total every operation it counts there (the
// worker's ops other than the reset), so a new step or call (the password
// kill, AdminSetUserPassword) is explained where an operator looks.
func TestDashboardNamesEveryStep(t *testing.T) {
	t.Parallel()
	steps, calls := job.Steps, userpool.IncidentCalls()
	var stepPanel, callPanel string
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			switch {
			case strings.Contains(tg.Expr, "resetq_steps_total"):
				stepPanel = p.Title + ": " + p.Description
			case strings.Contains(tg.Expr, "resetq_cognito_calls_total"):
				callPanel = p.Title + ": " + p.Description
			}
		}
	}
	for _, s := range steps {
		if !regexp.MustCompile(`\b` + s + `\b`).MatchString(stepPanel) {
			t.Errorf("the panel of resetq_steps_total does not name the step %s: %s", s, stepPanel)
		}
	}
	for _, c := range calls {
		// The reset has its own panels; AdminGetUser counts in resetq_redelivery_checks_total.
		if c != userpool.OpResetPassword && c != userpool.OpGetUser && !strings.Contains(callPanel, c) {
			t.Errorf("the panel of resetq_cognito_calls_total does not name %s: %s", c, callPanel)
		}
	}
}

// TestDashboardQuotaCategories: a "Quota categories" row, repeated per value
// of a category variable (the categories resetq counts calls in), holds
// panels of resetq's calls and throttles per category, its limiter's rate
// and usage cap, Cognito's usage gauges of the category and real users'
// lost share in it beside the harm budget, each filtered by $category.
func TestDashboardQuotaCategories(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	var def string
	for _, v := range d.Templating.List {
		if v.Name == "category" {
			def = v.Definition
		}
	}
	if !regexp.MustCompile(`^label_values\(resetq_category_calls_total(\{[^}]*\})?, category\)$`).MatchString(def) {
		t.Errorf("variable category: definition %q, want label_values(resetq_category_calls_total, category)", def)
	}
	rowY := -1
	for _, p := range d.Panels {
		if p.Type == "row" && strings.HasPrefix(p.Title, "Quota categories") {
			rowY = p.GridPos.Y
			if p.Repeat != "category" {
				t.Errorf("row %q repeats %q, want category", p.Title, p.Repeat)
			}
		}
	}
	if rowY < 0 {
		t.Fatal("no row \"Quota categories\"")
	}
	// The row holds the panels below it, up to the next row.
	all := map[string]bool{}
	for _, p := range d.Panels {
		if p.Type == "row" || p.GridPos.Y <= rowY {
			continue
		}
		if p.Description == "" {
			t.Errorf("panel %q has no description", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `category=~"$category"`) && !strings.Contains(tg.Expr, "resetq_harm_budget") {
				t.Errorf("panel %q: %s is not filtered by $category", p.Title, tg.Expr)
			}
			for _, m := range metricRefRE.FindAllString(tg.Expr, -1) {
				all[m] = true
			}
		}
	}
	for _, want := range []string{"resetq_category_calls_total", "resetq_category_throttles_total", "resetq_category_rate_limit", "resetq_category_usage_cap",
		"resetq_usage_calls_per_minute", "resetq_usage_throttles_per_minute", "resetq:category_real_user_throttled_share:rate5m", "resetq_harm_budget"} {
		if !all[want] {
			t.Errorf("the Quota categories row does not use %s (uses %v)", want, slices.Sorted(maps.Keys(all)))
		}
	}
}
