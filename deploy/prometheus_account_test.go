package deploy

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// accountMetrics are the worker's metrics kept per AWS account and Region:
// Cognito's quotas, its daily email limit, and so resetq's pacing, circuits
// and usage readings, are an account's in a Region (--pool-roles).
var accountMetrics = []string{"resetq_throttles_total", "resetq_quota_calls_total", "resetq_ratelimit_limit", "resetq_ratelimit_usage_cap", "resetq_circuit_open",
	"resetq_email_limit_reached", "resetq_usage_calls_per_minute", "resetq_usage_throttles_per_minute", "resetq_usage_minute_timestamp_seconds"}

var groupingRE = regexp.MustCompile(`\b(by|on|without|ignoring)\s*\(([^)]*)\)`)

// groupingsWithoutAccount returns each label list of expr's by, on,
// without and ignoring clauses that names region but not account.
func groupingsWithoutAccount(expr string) []string {
	var out []string
	for _, m := range groupingRE.FindAllStringSubmatch(expr, -1) {
		var labels []string
		for _, l := range strings.Split(m[2], ",") {
			labels = append(labels, strings.TrimSpace(l))
		}
		if slices.Contains(labels, "region") && !slices.Contains(labels, "account") {
			out = append(out, m[0])
		}
	}
	return out
}

// TestAccountLabel: whatever rules.yml and the dashboard keep apart by Region
// they keep apart by account too: every by/on/without/ignoring list naming
// region names account; every annotation naming $labels.region names
// $labels.account; every panel selecting region=~"$region" selects
// account=~"$account", and a legend showing {{region}} shows {{account}}.
// The rules and the dashboard use every metric of accountMetrics that they
// used by Region.
func TestAccountLabel(t *testing.T) {
	t.Parallel()
	rules := readFile(t, rulesFile)
	if bad := groupingsWithoutAccount(rules); len(bad) > 0 {
		t.Errorf("%s keeps region but not account in %v", rulesFile, bad)
	}
	for i, line := range strings.Split(rules, "\n") {
		if strings.Contains(line, "$labels.region") && !strings.Contains(line, "$labels.account") {
			t.Errorf("%s:%d names the Region but not the account: %s", rulesFile, i+1, strings.TrimSpace(line))
		}
	}
	d := loadDashboard(t)
	for where, expr := range dashboardExprs(d) {
		if bad := groupingsWithoutAccount(expr); len(bad) > 0 {
			t.Errorf("%s: %s keeps region but not account in %v", dashboardFile, where, bad)
		}
		if strings.Contains(expr, `region=~"$region"`) && !strings.Contains(expr, `account=~"$account"`) {
			t.Errorf("%s: %s selects $region but not $account: %s", dashboardFile, where, expr)
		}
	}
	legends := regexp.MustCompile(`"legendFormat": "([^"]*)"`).FindAllStringSubmatch(readFile(t, dashboardFile), -1)
	for _, l := range legends {
		if strings.Contains(l[1], "{{region}}") && !strings.Contains(l[1], "{{account}}") {
			t.Errorf("%s: legend %q shows the Region but not the account", dashboardFile, l[1])
		}
	}
	for _, v := range d.Templating.List {
		if v.Name == "account" && !regexp.MustCompile(`^label_values\((resetq_[a-z_]+)\{[^}]*\}, account\)$`).MatchString(v.Definition) {
			t.Errorf("variable account is %q, want the account label of a metric kept by account", v.Definition)
		}
	}
	all := rules + strings.Join(slices.Collect(maps.Values(dashboardExprs(d))), "\n")
	for _, m := range accountMetrics {
		if m != "resetq_usage_minute_timestamp_seconds" && !strings.Contains(all, m) {
			t.Errorf("neither %s nor %s uses %s", rulesFile, dashboardFile, m)
		}
	}

	// The self-check: a grouping by Region alone is caught.
	if bad := groupingsWithoutAccount("sum by (namespace, job, region) (x) - on (region) y + on (account, region) z"); len(bad) != 2 {
		t.Errorf("groupingsWithoutAccount caught %v, want the by and the first on", bad)
	}
}

// TestAccountLabelExported: every metric of accountMetrics is exported by
// the code with an account and a region label, as the rules and the
// dashboard group it.
func TestAccountLabelExported(t *testing.T) {
	t.Parallel()
	fams, err := exportedRegistry(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string][]string{}
	for _, f := range fams {
		for _, m := range f.GetMetric()[:1] {
			for _, l := range m.GetLabel() {
				labels[f.GetName()] = append(labels[f.GetName()], l.GetName())
			}
		}
	}
	for _, m := range accountMetrics {
		got, ok := labels[m]
		if !ok || !slices.Contains(got, "account") || !slices.Contains(got, "region") {
			t.Errorf("%s is exported with labels %v (present %v), want account and region among them", m, got, ok)
		}
	}
}
