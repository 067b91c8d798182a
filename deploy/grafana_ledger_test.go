package deploy

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resetq/resetq/ledger"
)

// campaignUsersRE finds the ledger's gauge in an expression, with the
// aggregation around it and the states it selects.
var (
	campaignUsersRE = regexp.MustCompile(`(\w+(?: by \([^)]*\))? ?\()?resetq_campaign_users\{([^}]*)\}`)
	stateRE         = regexp.MustCompile(`state=~?"([^"]*)"`)
)

// states is the states an expression's selector names ("a|b" or "a").
func states(selector string) []string {
	m := stateRE.FindStringSubmatch(selector)
	if m == nil {
		return nil
	}
	return slices.Sorted(slices.Values(strings.Split(m[1], "|")))
}

// stepNames is the names of the ledger's steps for which keep says yes.
func stepNames(keep func(ledger.Step) bool) []string {
	var out []string
	for _, s := range ledger.Steps {
		if keep(s) {
			out = append(out, string(s))
		}
	}
	return slices.Sorted(slices.Values(out))
}

// countsDone is the states of resetq_campaign_users whose users
// ledger.Counts.Done counts as done (finished: reset, reinvited, disabled;
// a disabled user may yet be claimed again, but is no longer left).
func countsDone() []string {
	field := map[string]ledger.Counts{"reset": {Reset: 1}, "reinvited": {Reinvited: 1}, "disabled": {Disabled: 1}}
	var out []string
	for state, c := range field {
		if c.Done() == 1 {
			out = append(out, state)
		}
	}
	return slices.Sorted(slices.Values(out))
}

// TestDashboardCampaign: the campaign's panels read the ledger's counts as
// the ledger means them. Done is exactly what ledger.Counts.Done counts
// (reset, reinvited, disabled); the burn-down shows left and done over a long range
// (the whole campaign, not the dashboard's 6 hours); no panel takes an
// increase or a range of the counts (they are the campaign's totals
// already) or sums them over the replicas (each exports the same counts);
// the ETA is the recording rule whose pace counts every step that ends a
// user (done or dead-lettered); a stat shows the re-invited; the ledger's
// panel names every result of resetq_ledger_calls_total and its circuit
// has a panel; and the rate panel shows the usage cap and every caller's
// calls per Region beside the quota.
func TestDashboardCampaign(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	done := countsDone()
	ended := stepNames(ledger.Step.Outcome)
	found := map[string]bool{}
	var calls, circuit bool
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range campaignUsersRE.FindAllStringSubmatch(tg.Expr, -1) {
				if m[1] != "max by (campaign, state) (" && m[1] != "count(" {
					t.Errorf("panel %q takes resetq_campaign_users as %q: every replica exports the ledger's same counts, so max by (campaign, state), never a sum: %s", p.Title, m[1], tg.Expr)
				}
				if strings.Contains(tg.Expr, "$__range") && m[1] != "count(" || strings.Contains(tg.Expr, "rate(resetq_campaign_users") || strings.Contains(tg.Expr, "increase(resetq_campaign_users") {
					t.Errorf("panel %q takes a range of resetq_campaign_users: the counts are the whole campaign's already: %s", p.Title, tg.Expr)
				}
				st := states(m[2])
				switch {
				case slices.Equal(st, done):
					found[p.Title+": done"] = true
				case len(st) > 1:
					t.Errorf("panel %q sums the states %v: done is what ledger.Counts.Done counts, %v", p.Title, st, done)
				case len(st) == 1:
					found[p.Title+": "+st[0]] = true
				}
			}
			calls = calls || strings.Contains(tg.Expr, "sum by (call, result) (rate(resetq_ledger_calls_total")
			circuit = circuit || strings.Contains(tg.Expr, "resetq_ledger_circuit_open")
			if strings.Contains(tg.Expr, "resetq_ledger_calls_total") {
				for _, r := range []string{"ok", "done", "held_elsewhere", "error"} { // the worker's ledgerResult
					if !regexp.MustCompile(`\b` + r + `\b`).MatchString(p.Description) {
						t.Errorf("panel %q does not say what result %s means: %s", p.Title, r, p.Description)
					}
				}
			}
		}
		if p.Title == "Campaign burn-down" {
			days, err := strconv.Atoi(strings.TrimSuffix(p.TimeFrom, "d"))
			if !strings.HasSuffix(p.TimeFrom, "d") || err != nil || days < 1 {
				t.Errorf("the burn-down's time range is %q, want days (the whole campaign, not the dashboard's hours)", p.TimeFrom)
			}
		}
	}
	for _, want := range []string{"Campaign burn-down: left", "Campaign burn-down: done", "Campaign: done: done", "Campaign: left: left", "Re-invited: reinvited"} {
		if !found[want] {
			t.Errorf("no panel shows %q from resetq_campaign_users (found %v)", want, found)
		}
	}
	if !calls || !circuit {
		t.Errorf("the ledger's panels: calls by result %v, circuit %v; want both", calls, circuit)
	}

	exprs := dashboardExprs(d)
	if !strings.Contains(exprs["Campaign: ETA target A"], "resetq:campaign_eta:seconds") {
		t.Errorf("Campaign: ETA is %q, want resetq:campaign_eta:seconds", exprs["Campaign: ETA target A"])
	}
	pace := ruleExpr(t, readFile(t, rulesFile), "resetq:campaign_ended:rate15m")
	if got := states(pace); !slices.Equal(got, ended) {
		t.Errorf("resetq:campaign_ended:rate15m counts the states %v, want every step that ends a user %v:\n%s", got, ended, pace)
	}
	if v := exprs["variable campaign"]; !strings.Contains(v, "resetq_campaign_users") {
		t.Errorf("variable campaign is %q, want the campaigns of resetq_campaign_users", v)
	}

	var rate string
	for where, e := range exprs {
		if strings.HasPrefix(where, ratePanel+" target") {
			rate += e + "\n"
		}
	}
	for _, want := range []string{"sum by (account, region) (resetq_ratelimit_usage_cap", `max by (account, region) (resetq_usage_calls_per_minute{job=~"$job",account=~"$account",region=~"$region",category="UserAccountRecovery"}) / 60`, "vector(30)"} {
		if !strings.Contains(rate, want) {
			t.Errorf("%s does not show %s beside the quota", ratePanel, want)
		}
	}
}
