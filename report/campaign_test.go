package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/userpool"
)

// trail is a ledger row of pool p: enqueued at since, then each step a
// minute apart, in the order given; reason is the dead letter's.
func trail(user string, reason string, steps ...string) *Trail {
	t := &Trail{Pool: "p", User: strings.ToLower(user), Username: user, Enqueued: since, Reason: reason}
	for i, s := range steps {
		if t.Steps == nil {
			t.Steps = map[string]time.Time{}
		}
		t.Steps[s] = since.Add(time.Duration(i+1) * time.Minute)
	}
	return t
}

func user(status string, enabled bool, modified time.Time) *userpool.User {
	return &userpool.User{Username: "u", Status: status, Enabled: enabled, LastModified: modified}
}

// TestCategorizeCampaign: what the campaign did decides; the user's dates
// never do. Every category, and the attacker-edit case: a user dead-
// lettered for want of a verified contact, on whom an attacker then
// verified an email of their own (CONFIRMED, modified after the start),
// is dead_lettered, not completed.
func TestCategorizeCampaign(t *testing.T) {
	t.Parallel()
	before, after := since.Add(-24*time.Hour), since.Add(time.Hour)
	tests := []struct {
		name   string
		trail  *Trail
		user   *userpool.User
		want   string
		detail string
	}{
		{"reset, new password since", trail("a", "", "reset"), user("CONFIRMED", true, after), CategoryCompleted, "reset, a new password since"},
		{"reset, confirmed, dates older than the start (moto keeps the date)", trail("a", "", "reset"), user("CONFIRMED", true, before), CategoryCompleted, "reset, a new password since"},
		{"reset with sign-out and kill, new password since", trail("a", "", "password_killed", "reset", "signed_out"), user("CONFIRMED", true, after), CategoryCompleted, "reset, a new password since"},
		{"dead-lettered, redriven, then reset", trail("a", "InternalErrorException", "dead_lettered", "reset"), user("CONFIRMED", true, after), CategoryCompleted, "reset, a new password since"},
		{"reset, then disabled by someone", trail("a", "", "reset"), user("CONFIRMED", false, after), CategoryCompleted, "reset, a new password since; disabled since, not by the campaign"},
		{"reset, code not used", trail("a", "", "reset"), user("RESET_REQUIRED", true, after), CategoryPending, "reset, code not used yet"},
		{"reset, now another status", trail("a", "", "reset"), user("FORCE_CHANGE_PASSWORD", true, after), "force_change_password", "reset; FORCE_CHANGE_PASSWORD now"},
		{"re-invited, not signed in", trail("a", "", "reinvited"), user("FORCE_CHANGE_PASSWORD", true, after), CategoryReinvited, "re-invited, not signed in yet"},
		{"re-invited, signed in since", trail("a", "", "reinvited"), user("CONFIRMED", true, after), CategoryReinvitedSignedIn, "re-invited, signed in since"},
		{"disabled by the campaign", trail("a", "InvalidParameterException", "disabled", "dead_lettered"), user("CONFIRMED", false, after), CategoryDisabled, "disabled by the campaign (dead-lettered: InvalidParameterException)"},
		{"disabled by the campaign, enabled again", trail("a", "", "disabled"), user("CONFIRMED", true, after), CategoryDisabled, "disabled by the campaign; enabled again since"},
		{"disabled before the campaign, dead-lettered", trail("a", "NotAuthorizedException", "dead_lettered"), user("CONFIRMED", false, before), CategoryDisabledBefore, "disabled, not by the campaign; dead-lettered: NotAuthorizedException"},
		{"disabled, no outcome yet", trail("a", ""), user("CONFIRMED", false, before), CategoryDisabledBefore, "disabled, not by the campaign"},
		{"dead-lettered, untouched", trail("a", "InvalidParameterException", "dead_lettered"), user("CONFIRMED", true, before), CategoryDeadLettered, "dead-lettered: InvalidParameterException"},
		{"attacker edit: dead-lettered, CONFIRMED and modified after the start", trail("a", "InvalidParameterException", "dead_lettered"), user("CONFIRMED", true, after), CategoryDeadLettered, "dead-lettered: InvalidParameterException"},
		{"dead-lettered, killed and signed out first", trail("a", "attempts_exhausted", "password_killed", "signed_out", "dead_lettered"), user("CONFIRMED", true, after), CategoryDeadLettered, "dead-lettered: attempts_exhausted"},
		{"enqueued, no outcome", trail("a", ""), user("CONFIRMED", true, after), CategoryEnqueued, "enqueued, no outcome yet"},
		{"enqueued, signed out only", trail("a", "", "signed_out"), user("CONFIRMED", true, after), CategoryEnqueued, "enqueued, no outcome yet"},
		{"never enqueued, confirmed since", nil, user("CONFIRMED", true, after), CategoryNotEnqueued, "never enqueued in the campaign"},
		{"never enqueued, pending", nil, user("RESET_REQUIRED", true, after), CategoryNotEnqueued, "never enqueued in the campaign"},
		{"never enqueued, no such user", nil, nil, CategoryNotFound, "never enqueued; no such user"},
		{"reset, deleted since", trail("a", "", "reset"), nil, CategoryNotFound, "reset; no such user now"},
		{"dead-lettered, deleted since", trail("a", "UserNotFoundException", "dead_lettered"), nil, CategoryNotFound, "dead-lettered: UserNotFoundException; no such user now"},
		{"enqueued, deleted since", trail("a", ""), nil, CategoryNotFound, "enqueued, no outcome; no such user now"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got, detail := CategorizeCampaign(tt.trail, tt.user)
		if got != tt.want || detail != tt.detail {
			t.Errorf("%s: %q (%s), want %q (%s)", tt.name, got, detail, tt.want, tt.detail)
		}
		seen[got] = true
	}
	for _, c := range CampaignCategories {
		if !seen[c] {
			t.Errorf("no case of %s", c)
		}
	}
}

// TestCategorizeCampaignNeverCompletesWithoutReset: whatever the user's
// state and the other steps, no reset step, no completed.
func TestCategorizeCampaignNeverCompletesWithoutReset(t *testing.T) {
	t.Parallel()
	others := []string{"signed_out", "password_killed", "reinvited", "disabled", "dead_lettered"}
	for mask := range 1 << len(others) {
		var steps []string
		for i, s := range others {
			if mask&(1<<i) != 0 {
				steps = append(steps, s)
			}
		}
		for _, status := range []string{"CONFIRMED", "RESET_REQUIRED", "FORCE_CHANGE_PASSWORD", "UNCONFIRMED", ""} {
			for _, enabled := range []bool{true, false} {
				tr := trail("a", "r", steps...)
				if got, _ := CategorizeCampaign(tr, user(status, enabled, since.Add(time.Hour))); got == CategoryCompleted {
					t.Errorf("steps %v, %s enabled=%v: completed without a reset", steps, status, enabled)
				}
			}
		}
	}
}

// rowsOf is a ledger of trails.
func rowsOf(trails ...*Trail) func(context.Context, func(Trail) error) error {
	return func(_ context.Context, fn func(Trail) error) error {
		for _, t := range trails {
			if err := fn(*t); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestCampaign: the ledger's rows first, then the source's users without a
// row (not_enqueued); a source's user with a row, in another case in a
// pool that folds case, is reported once, from the row.
func TestCampaign(t *testing.T) {
	t.Parallel()
	after := since.Add(time.Hour)
	api := &fakeUsers{fold: true, users: []userpool.User{
		{Username: "Alice", Status: "CONFIRMED", Enabled: true, LastModified: after},
		{Username: "bob", Status: "RESET_REQUIRED", Enabled: true, LastModified: after},
		{Username: "mallory", Status: "CONFIRMED", Enabled: true, LastModified: after},
		{Username: "walt", Status: "CONFIRMED", Enabled: true, LastModified: after},
	}}
	rows := rowsOf(trail("Alice", "", "reset"), trail("bob", "", "reset"), trail("mallory", "InvalidParameterException", "dead_lettered"))
	var buf bytes.Buffer
	rw, err := NewRecordWriter(&buf, "csv", true)
	if err != nil {
		t.Fatal(err)
	}
	r := mustNew(t, Config{Write: rw.Write, Pacer: noPace{}, Concurrency: 2,
		Fold: func(context.Context, string) bool { return true }})
	s, err := r.Campaign(context.Background(), api, "c-1", rows, items("p", "ALICE", "walt", "ghost", "walt", "MALLORY"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Flush(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{CategoryCompleted: 1, CategoryPending: 1, CategoryDeadLettered: 1, CategoryNotEnqueued: 1, CategoryNotFound: 1}
	for _, c := range CampaignCategories {
		if s.Counts[c] != want[c] {
			t.Errorf("%s: %d, want %d", c, s.Counts[c], want[c])
		}
	}
	if s.Users != 5 || s.Rows != 3 || s.InLedger != 2 || s.Duplicates != 1 || s.Calls != 5 ||
		s.Basis != BasisLedger || s.Campaign != "c-1" || s.Source != "ledger" || !s.Since.IsZero() {
		t.Errorf("summary %+v", s)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(recs[0], ","); got != "username,status,enabled,last_modified,category,pool,detail,reason,enqueued_at,signed_out_at,password_killed_at,reset_at,reinvited_at,disabled_at,dead_lettered_at" {
		t.Errorf("header %s", got)
	}
	wantRows := [][]string{
		{"Alice", "completed", "reset, a new password since", "", "2026-11-29T08:00:00Z", "2026-11-29T08:01:00Z", ""},
		{"bob", "pending", "reset, code not used yet", "", "2026-11-29T08:00:00Z", "2026-11-29T08:01:00Z", ""},
		{"mallory", "dead_lettered", "dead-lettered: InvalidParameterException", "InvalidParameterException", "2026-11-29T08:00:00Z", "", "2026-11-29T08:01:00Z"},
		{"walt", "not_enqueued", "never enqueued in the campaign", "", "", "", ""},
		{"ghost", "not_found", "never enqueued; no such user", "", "", "", ""},
	}
	if len(recs) != 1+len(wantRows) {
		t.Fatalf("%d records:\n%s", len(recs)-1, buf.String())
	}
	for i, w := range wantRows {
		rec := recs[i+1]
		got := []string{rec[0], rec[4], rec[6], rec[7], rec[8], rec[11], rec[14]}
		if strings.Join(got, "|") != strings.Join(w, "|") {
			t.Errorf("record %d: %q, want %q", i+1, got, w)
		}
	}
}

// TestCampaignListing: a listing's users come with their state, so only
// the rows are read with AdminGetUser; the pages are paced by ListPacer.
func TestCampaignListing(t *testing.T) {
	t.Parallel()
	api := &fakeUsers{users: campaignUsers()} // Alice bob carol dan erin
	pages := &countPace{}
	var recs []Record
	r := mustNew(t, Config{Pacer: noPace{}, ListPacer: pages, Write: func(rec Record) error { recs = append(recs, rec); return nil }})
	rows := rowsOf(&Trail{Pool: "p", User: "bob", Steps: map[string]time.Time{"reset": since}})
	s, err := r.Campaign(context.Background(), api, "c-1", rows, r.Listing(api, "p", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if s.Users != 5 || s.Rows != 1 || s.InLedger != 1 || s.Counts[CategoryPending] != 1 || s.Counts[CategoryNotEnqueued] != 4 {
		t.Errorf("summary %+v", s)
	}
	if api.calls != 1 || pages.n != 1 || s.Calls != 2 {
		t.Errorf("%d AdminGetUser, %d pages, %d calls counted; want 1, 1, 2", api.calls, pages.n, s.Calls)
	}
	if recs[1].Username != "Alice" || recs[1].Status != "CONFIRMED" || recs[1].Category != CategoryNotEnqueued {
		t.Errorf("a listed user's record: %+v", recs[1])
	}
}

type countPace struct{ n int }

func (c *countPace) Wait(ctx context.Context) error { c.n++; return ctx.Err() }

// TestCampaignLedgerFailure: the ledger's error ends the report with it.
func TestCampaignLedgerFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("ledger throttled")
	r := mustNew(t, Config{Pacer: noPace{}})
	_, err := r.Campaign(context.Background(), &fakeUsers{}, "c-1", func(context.Context, func(Trail) error) error { return boom }, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

// TestCampaignRecordJSON: a JSON record carries the detail, the reason,
// the enqueue and each step's time; an estimate's has none of them.
func TestCampaignRecordJSON(t *testing.T) {
	t.Parallel()
	rec := NewCampaignRecord("p", "mallory", trail("mallory", "InvalidParameterException", "dead_lettered"), user("CONFIRMED", true, since.Add(time.Hour)))
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"username":"u","status":"CONFIRMED","enabled":true,"last_modified":"2026-11-29T09:00:00Z","category":"dead_lettered","pool":"p",` +
		`"detail":"dead-lettered: InvalidParameterException","reason":"InvalidParameterException","enqueued_at":"2026-11-29T08:00:00Z","steps":{"dead_lettered":"2026-11-29T08:01:00Z"}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

// TestSafeCell: a cell a spreadsheet would run as a formula gets a quote.
func TestSafeCell(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice": "alice", "": "", "=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")", "+1": "'+1", "-2+3": "'-2+3",
		"@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx", "a=b": "a=b", "'=x": "'=x", " =x": " =x",
	} {
		if got := SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRecordWriterEscapesFormulas: every CSV cell is escaped, in both
// kinds of report; JSON lines are data, written as they are.
func TestRecordWriterEscapesFormulas(t *testing.T) {
	t.Parallel()
	rec := NewCampaignRecord("p", "=cmd|' /C calc'!A0", trail("x", "@reason", "dead_lettered"), nil)
	for _, campaign := range []bool{false, true} {
		var buf bytes.Buffer
		rw, _ := NewRecordWriter(&buf, "csv", campaign)
		if err := rw.Write(rec); err != nil {
			t.Fatal(err)
		}
		rw.Flush()
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range recs[1] {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Errorf("campaign=%v: cell %q unescaped", campaign, c)
			}
		}
		if recs[1][0] != "'=cmd|' /C calc'!A0" {
			t.Errorf("username cell %q", recs[1][0])
		}
	}
	var buf bytes.Buffer
	rw, _ := NewRecordWriter(&buf, "jsonl", true)
	rw.Write(rec)
	if !strings.Contains(buf.String(), `"username":"=cmd|' /C calc'!A0"`) {
		t.Errorf("JSON changed the name: %s", buf.String())
	}
}
