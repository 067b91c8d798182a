package deploy

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/ledger"
)

// TestPrometheusScrapesLedger: a real Prometheus scrapes a worker run with
// --ledger-table on a campaign whose users the ledger holds as enqueued (8
// users, one of them missing from the pool), and the dashboard's ledger
// panels, their queries run as Grafana would, show what the campaign did:
// 7 done, 1 dead-lettered, none left, the claims granted, the circuit
// closed. The worker exports the campaign's counts once a minute, so this
// waits for a tick after the campaign.
func TestPrometheusScrapesLedger(t *testing.T) {
	t.Parallel()
	needCLI(t, "prometheus", promHint)
	e := testenv.New(t, "promledger")
	const campaign, nUsers = "ledger-dash", 7
	pool, users, bodies := e.ConfirmedUsers(e.East, "d", nUsers)
	bodies = append(bodies, testenv.Job(pool, "ghost"))

	// What enqueue would have recorded: every user, the missing one too.
	table := "resetq-prom-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	l, err := ledger.New(ledger.NewClient(e.East), ledger.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	var keys []ledger.Key
	for _, u := range append(users, "ghost") {
		keys = append(keys, ledger.Key{Campaign: campaign, Pool: pool, User: u})
	}
	if _, err := l.Enqueued(t.Context(), keys, time.Now()); err != nil {
		t.Fatal(err)
	}

	e.Send(campaign, bodies...)
	start := time.Now()
	p := e.Start("--ledger-table", table)
	prom := startPrometheus(t, p.MetricsAddr())
	eventually := func(what, query string, want float64) {
		t.Helper()
		var got float64
		testenv.Eventually(t, 150*time.Second, fmt.Sprintf("%s (%s == %v, last %v)", what, query, want, got), func() bool {
			var ok bool
			got, ok = promQuery(t, prom, query)
			return ok && got == want
		})
	}
	eventually("every job to end", `sum(resetq_jobs_total{outcome=~"reset|dead_lettered"})`, nUsers+1)
	eventually("the campaign's counts after a progress tick", `max(resetq_campaign_users{campaign="`+campaign+`",state="left"})`, 0)
	t.Logf("campaign counted after %v", time.Since(start).Round(time.Millisecond))

	panel := func(title string, target int) []float64 {
		t.Helper()
		vars := strings.NewReplacer("$job", "resetq", "$account", ".*", "$region", ".*", "$campaign", campaign, "$__range", "10m", "$__rate_interval", "1m")
		for _, pn := range loadDashboard(t).Panels {
			if pn.Title == title && target < len(pn.Targets) {
				return promQueryAll(t, prom, vars.Replace(pn.Targets[target].Expr))
			}
		}
		t.Fatalf("no panel %q with a target %d", title, target)
		return nil
	}
	one := func(title string, target int, want float64) {
		t.Helper()
		if got := panel(title, target); len(got) != 1 || got[0] != want {
			t.Errorf("panel %q target %d shows %v, want [%v]", title, target, got, want)
		}
	}
	one("Campaign: done", 0, nUsers)
	one("Campaign: left", 0, 0)
	one("Re-invited", 0, 0)
	if got := panel("Re-invited", 1); len(got) != 0 {
		t.Errorf("Re-invited shows the time range's count %v beside the ledger's", got)
	}
	one("Campaign burn-down", 0, 0)
	one("Campaign burn-down", 1, nUsers)
	one("Campaign burn-down", 2, 1)
	one("Ledger circuit", 0, 0)
	if got := panel("Ledger calls by result", 0); len(got) == 0 {
		t.Error("Ledger calls by result shows nothing after the campaign's claims")
	}
	if got, ok := promQuery(t, prom, `sum(resetq_ledger_calls_total{call="claim",result="ok"})`); !ok || got != nUsers+1 {
		t.Errorf("claims granted: %v (present %v), want %d: one per job", got, ok, nUsers+1)
	}

	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}
