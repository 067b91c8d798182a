package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/ledger"
)

// TestReportLedger: a small campaign enqueued and worked with
// --ledger-table, then what users and an attacker did afterwards, and the
// report from the ledger. Above all the attacker-edit case: "victim" had no
// verified contact and was dead-lettered; the attacker then verified an
// email of their own on it, so it is CONFIRMED and modified after the
// start. The estimate (--since) calls it completed; the ledger's report
// calls it dead_lettered, with the reason. A failed run leaves the previous
// report whole; a run that succeeds replaces it with a 0600 file.
func TestReportLedger(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "reportledger")
	ctx := context.Background()
	table := "ledger-report-" + fmt.Sprint(time.Now().UnixNano())
	const campaign = "c-report"
	pool := e.Pool(e.East, map[string]moto.UserState{
		"done1": moto.Confirmed, "done2": moto.Confirmed, "pend": moto.Confirmed,
		"victim": moto.ConfirmedNoContact, "invited": moto.Unconfirmed, "invited2": moto.Unconfirmed,
		"off": moto.Disabled, "late": moto.Confirmed, "locked": moto.Confirmed, "outsider": moto.Confirmed,
	})
	since := time.Now().UTC().Truncate(time.Second)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// The campaign: enqueue and work, with the ledger.
	jobs := write("jobs.txt", "done1\ndone2\npend\nvictim\ninvited\ninvited2\noff\nghost\n")
	if _, stderr, code := opsRun(t, e, "enqueue", "--queue-url", e.QueueURL, "--pool", pool, "--from", jobs,
		"--campaign", campaign, "--ledger-table", table); code != 0 {
		t.Fatalf("enqueue: exit %d: %s", code, stderr)
	}
	if code := e.Start("--exit-when-idle", "3s", "--reinvite", "--ledger-table", table).Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("worker: exit code %d", code)
	}
	// What the ledger package writes for the rest: "late" enqueued with no
	// outcome yet, "locked" disabled by the campaign.
	lg, err := ledger.New(ledger.NewClient(e.East), ledger.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	key := func(u string) ledger.Key { return ledger.Key{Campaign: campaign, Pool: pool, User: u} }
	now := time.Now()
	if _, err := lg.Enqueued(ctx, []ledger.Key{key("late"), key("locked")}, now); err != nil {
		t.Fatal(err)
	}
	if err := lg.Record(ctx, key("locked"), ledger.StepDisabled, now.Add(time.Second), ""); err != nil {
		t.Fatal(err)
	}

	// Afterwards, in Cognito: two users and a re-invited one set a password
	// of their own, "locked" is disabled, and the attacker edits "victim".
	api := cip.NewFromConfig(e.East)
	for _, u := range []string{"done1", "done2", "invited2"} {
		if _, err := api.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: &pool, Username: aws.String(u),
			Password: aws.String("Own-Passw0rd!"), Permanent: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.AdminDisableUser(ctx, &cip.AdminDisableUserInput{UserPoolId: &pool, Username: aws.String("locked")}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.AdminUpdateUserAttributes(ctx, &cip.AdminUpdateUserAttributesInput{UserPoolId: &pool, Username: aws.String("victim"),
		UserAttributes: []ciptypes.AttributeType{
			{Name: aws.String("email"), Value: aws.String("attacker@evil.example")},
			{Name: aws.String("email_verified"), Value: aws.String("true")},
		}}); err != nil {
		t.Fatal(err)
	}
	e.ExpectStatus(e.East, pool, "CONFIRMED", "victim", "done1", "invited2")

	everyone := write("everyone.txt", "done1\ndone2\npend\nvictim\ninvited\ninvited2\noff\nghost\nlate\nlocked\noutsider\n")
	records := filepath.Join(dir, "report.csv")
	previous := "username,status\nprevious,CONFIRMED\n"
	write("report.csv", previous)

	// The estimate, today's rule: the attacker's edit is a completed reset.
	estimate := filepath.Join(dir, "estimate.jsonl")
	out, stderr, code := opsRun(t, e, "report", "--pool", pool, "--from", everyone, "--since", since.Format(time.RFC3339),
		"--records", estimate, "--output", "json")
	var est struct{ Basis string }
	if err := json.Unmarshal([]byte(out), &est); code != 0 || err != nil || est.Basis != "estimate" {
		t.Fatalf("estimate: exit %d %v\n%s%s", code, err, out, stderr)
	}
	if b, _ := os.ReadFile(estimate); !strings.Contains(string(b), `{"username":"victim","status":"CONFIRMED","enabled":true,`) ||
		!strings.Contains(string(b), `"category":"completed","pool":"`+pool+`"}`+"\n"+`{"username":"invited"`) {
		t.Fatalf("the estimate does not call the attacker's edit completed:\n%s", b)
	}
	out, _, _ = opsRun(t, e, "report", "--pool", pool, "--from", everyone, "--since", since.Format(time.RFC3339))
	if !strings.Contains(out, "basis:") || !strings.Contains(out, "estimate") {
		t.Errorf("the estimate's text does not say it is one:\n%s", out)
	}

	// Runs that fail leave the previous report as it was.
	for _, args := range [][]string{
		{"--pool", "us-east-1_nosuchpool", "--from", everyone, "--since", since.Format(time.RFC3339), "--records", records},
		{"--ledger-table", table, "--campaign", "c-nosuch", "--records", records},
		{"--ledger-table", table, "--campaign", campaign, "--pool", pool, "--from", records, "--records", filepath.Join(dir, ".", "report.csv")},
	} {
		if _, stderr, code := opsRun(t, e, append([]string{"report"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
		if b, err := os.ReadFile(records); err != nil || string(b) != previous {
			t.Fatalf("after %v the previous report is %q %v", args, b, err)
		}
	}

	// The evidence: the ledger's rows, and the source's user without one.
	out, stderr, code = opsRun(t, e, "report", "--ledger-table", table, "--campaign", campaign, "--pool", pool,
		"--from", everyone, "--records", records, "--output", "json")
	var got struct {
		Basis, Campaign string
		LedgerTable     string `json:"ledger_table"`
		Counts          map[string]int
		Users           int
		LedgerRows      int `json:"ledger_rows"`
		SourceInLedger  int `json:"source_in_ledger"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("report: exit %d %v\n%s%s", code, err, out, stderr)
	}
	want := map[string]int{"completed": 2, "pending": 1, "reinvited": 1, "reinvited_signed_in": 1, "disabled": 1,
		"disabled_before": 1, "dead_lettered": 1, "enqueued": 1, "not_enqueued": 1, "not_found": 1}
	if got.Basis != "ledger" || got.Campaign != campaign || got.LedgerTable != table || got.Users != 11 || got.LedgerRows != 10 || got.SourceInLedger != 10 || !sameCounts(got.Counts, want) {
		t.Errorf("%+v\nwant counts %v", got, want)
	}
	fi, err := os.Stat(records)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("report file: %v %v, want mode 0600", fi, err)
	}
	f, err := os.Open(records)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 12 {
		t.Fatalf("%d rows %v", len(rows), err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	byUser := map[string][]string{}
	for _, r := range rows[1:] {
		byUser[r[col["username"]]] = r
	}
	for user, w := range map[string]struct{ category, detail string }{
		"done1":    {"completed", "reset, a new password since"},
		"pend":     {"pending", "reset, code not used yet"},
		"invited":  {"reinvited", "re-invited, not signed in yet"},
		"invited2": {"reinvited_signed_in", "re-invited, signed in since"},
		"locked":   {"disabled", "disabled by the campaign"},
		"late":     {"enqueued", "enqueued, no outcome yet"},
		"outsider": {"not_enqueued", "never enqueued in the campaign"},
	} {
		r := byUser[user]
		if r == nil || r[col["category"]] != w.category || r[col["detail"]] != w.detail {
			t.Errorf("%s: %q, want %s (%s)", user, r, w.category, w.detail)
		}
	}
	victim := byUser["victim"]
	if victim[col["category"]] != "dead_lettered" || victim[col["status"]] != "CONFIRMED" || victim[col["reason"]] == "" ||
		victim[col["detail"]] != "dead-lettered: "+victim[col["reason"]] || victim[col["dead_lettered_at"]] == "" || victim[col["reset_at"]] != "" {
		t.Errorf("the attacker-edit case: %q", victim)
	}
	if off := byUser["off"]; off[col["category"]] != "disabled_before" || !strings.HasPrefix(off[col["detail"]], "disabled, not by the campaign; dead-lettered: ") {
		t.Errorf("off: %q", off)
	}
	if ghost := byUser["ghost"]; ghost[col["category"]] != "not_found" || !strings.HasSuffix(ghost[col["detail"]], "; no such user now") {
		t.Errorf("ghost: %q", ghost)
	}
	if done := byUser["done1"]; done[col["reset_at"]] == "" || done[col["enqueued_at"]] == "" {
		t.Errorf("done1 without its times: %q", done)
	}
	// A listing beside the ledger: the pool's users come with their state;
	// "ghost" has a row and is not in the pool.
	out, stderr, code = opsRun(t, e, "report", "--ledger-table", table, "--campaign", campaign, "--pool", pool, "--all-users", "--output", "json")
	got.Counts = nil
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.Users != 11 || got.LedgerRows != 10 ||
		got.SourceInLedger != 9 || !sameCounts(got.Counts, want) {
		t.Errorf("with --all-users: exit %d %v %+v\n%s", code, err, got, stderr)
	}

	// Without a source, the campaign enqueued last, in text: the ledger's
	// rows only.
	out, stderr, code = opsRun(t, e, "report", "--ledger-table", table)
	if code != 0 || !strings.Contains(out, "basis:") || !strings.Contains(out, "campaign "+campaign) ||
		!strings.Contains(stderr, "campaign "+campaign+" (the one enqueued last)") || !regexp.MustCompile(`(?m)^users:\s+10$`).MatchString(out) {
		t.Errorf("report without a source: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("resetq report --ledger-table %s:\n%s", table, out)
}
