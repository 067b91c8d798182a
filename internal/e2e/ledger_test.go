package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
	"github.com/resetq/resetq/ledger"
)

// TestLedgerFleetOneCodePerUser: three replicas without Redis, each
// user's job on the queue three times, the copies 10 messages apart (so
// the replicas' first batches hold the same users and their status checks
// run at the same instant): with --ledger-table, each user gets one code.
// Without the ledger the same case sent 79 codes for 30 users.
func TestLedgerFleetOneCodePerUser(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "ledgerfleet")
	table := "ledger-fleet-" + fmt.Sprint(time.Now().UnixNano())
	pool, users, bodies := e.ConfirmedUsers(e.East, "lf", 30)
	var sends []string
	for start := 0; start < len(bodies); start += 10 {
		group := bodies[start:min(start+10, len(bodies))]
		for range 3 {
			sends = append(sends, group...)
		}
	}
	e.Send("fleet-campaign", sends...)

	args := []string{"--exit-when-idle", "5s", "--ledger-table", table}
	procs := []*testenv.Proc{e.Start(args...), e.Start(args...), e.Start(args...)}
	for i, p := range procs {
		if code := p.Wait(t, 4*time.Minute); code != 0 {
			t.Fatalf("worker %d: exit code %d", i, code)
		}
	}
	e.ExpectStatus(e.East, pool, "RESET_REQUIRED", users...)
	st := e.Proxy.Stats()
	if n := st.Forwarded["AdminResetUserPassword"]; n != len(users) {
		t.Errorf("%d resets reached Cognito for %d users, want one each", n, len(users))
	}
	if dl := e.DrainDLQ(); len(dl) != 0 {
		t.Fatalf("%d jobs dead-lettered (first: %v)", len(dl), dl[0].Attrs)
	}
	out, stderr, code := opsRun(t, e, "status", "--ledger-table", table, "--campaign", "fleet-campaign", "--output", "json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var r struct {
		Campaign struct {
			Total struct{ Reset, Done int64 }
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Campaign.Total.Reset != int64(len(users)) || r.Campaign.Total.Done != int64(len(users)) {
		t.Fatalf("status: %v: %s", err, out)
	}
}

// TestLedgerEnqueueStatus: enqueue records the campaign's users in the
// ledger, the worker their outcomes, and status shows the total, the done
// and the dead-lettered by reason, without being told the campaign.
func TestLedgerEnqueueStatus(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "ledgerstatus")
	table := "ledger-status-" + fmt.Sprint(time.Now().UnixNano())
	pool, users, _ := e.ConfirmedUsers(e.East, "ls", 6)
	file := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(file, []byte(strings.Join(append(users, "ghost-1", "ghost-2"), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := opsRun(t, e, "enqueue", "--queue-url", e.QueueURL, "--pool", pool, "--from", file,
		"--campaign", "c-status", "--ledger-table", table)
	if code != 0 {
		t.Fatalf("enqueue: exit %d: %s", code, stderr)
	}
	out, stderr, code := opsRun(t, e, "status", "--ledger-table", table)
	if code != 0 || !strings.Contains(out, "campaign c-status: 8 enqueued, 0 done") || !strings.Contains(out, "8 left") {
		t.Fatalf("status before the work: exit %d:\n%s%s", code, out, stderr)
	}
	if code := e.Start("--exit-when-idle", "3s", "--ledger-table", table).Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("worker: exit code %d", code)
	}
	out, stderr, code = opsRun(t, e, "status", "--queue-url", e.QueueURL, "--ledger-table", table)
	for _, want := range []string{"campaign c-status: 8 enqueued, 6 done (6 reset", "2 dead-lettered (UserNotFoundException 2)", "0 left", "100.0% ended"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("status after the work lacks %q: exit %d:\n%s%s", want, code, out, stderr)
		}
	}
}

// TestLedgerDLQ: dlq list shows each dead-lettered job's user's outcome in
// the ledger now, and dlq redrive leaves in the DLQ the jobs whose user
// another job finished (a duplicate), moving the others.
func TestLedgerDLQ(t *testing.T) {
	t.Parallel()
	e := testenv.New(t, "ledgerdlq")
	ctx := context.Background()
	table := "ledger-dlq-" + fmt.Sprint(time.Now().UnixNano())
	const campaign = "c-dlq"
	pool := e.Pool(e.East, map[string]moto.UserState{"done-elsewhere": moto.Confirmed, "still-to-do": moto.Confirmed})
	l, err := ledger.New(ledger.NewClient(e.East), ledger.Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	done := ledger.Key{Campaign: campaign, Pool: pool, User: "done-elsewhere"}
	if err := l.Record(ctx, done, ledger.StepReset, time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	opsSendDLQ(t, e, testenv.Job(pool, "done-elsewhere"), "InternalErrorException", campaign)
	opsSendDLQ(t, e, testenv.Job(pool, "still-to-do"), "InternalErrorException", campaign)
	out, stderr, code := opsRun(t, e, "dlq", "list", "--queue-url", e.QueueURL, "--ledger-table", table, "--output", "json")
	if code != 0 {
		t.Fatalf("dlq list: exit %d: %s", code, stderr)
	}
	var list struct {
		Jobs []struct{ Username, Ledger string }
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, j := range list.Jobs {
		got[j.Username] = j.Ledger
	}
	if got["done-elsewhere"] != "reset" || got["still-to-do"] != "no_row" {
		t.Fatalf("dlq list's ledger column: %v (%s)", got, out)
	}
	out, stderr, code = opsRun(t, e, "dlq", "redrive", "--queue-url", e.QueueURL, "--ledger-table", table, "--output", "json")
	var res struct{ Moved, Skipped int }
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Moved != 1 || res.Skipped != 1 {
		t.Fatalf("dlq redrive: exit %d, %+v: %s%s", code, res, out, stderr)
	}
}
