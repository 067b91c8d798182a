package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/userpool"
)

var since = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

// TestCategorize: Cognito's rules, including what moto 5.2.1 does not
// model (it keeps UserLastModifiedDate when a password is set or reset,
// so only a fake can show a CONFIRMED user modified after --since).
func TestCategorize(t *testing.T) {
	t.Parallel()
	before, at, after := since.Add(-time.Second), since, since.Add(time.Hour)
	tests := []struct {
		name string
		user *userpool.User
		want string
	}{
		{"missing", nil, CategoryNotFound},
		{"reset, code not used", &userpool.User{Status: "RESET_REQUIRED", Enabled: true, LastModified: after}, CategoryPending},
		{"reset before the campaign, still pending", &userpool.User{Status: "RESET_REQUIRED", Enabled: true, LastModified: before}, CategoryPending},
		{"new password after the start", &userpool.User{Status: "CONFIRMED", Enabled: true, LastModified: after}, CategoryCompleted},
		{"new password at the very start", &userpool.User{Status: "CONFIRMED", Enabled: true, LastModified: at}, CategoryCompleted},
		{"not touched since before the start", &userpool.User{Status: "CONFIRMED", Enabled: true, LastModified: before}, CategoryNotReset},
		{"never signed in", &userpool.User{Status: "FORCE_CHANGE_PASSWORD", Enabled: true, LastModified: after}, CategoryForceChange},
		{"disabled and confirmed", &userpool.User{Status: "CONFIRMED", Enabled: false, LastModified: after}, CategoryDisabled},
		{"disabled and pending", &userpool.User{Status: "RESET_REQUIRED", Enabled: false}, CategoryDisabled},
		{"other status by name", &userpool.User{Status: "UNCONFIRMED", Enabled: true}, "unconfirmed"},
		{"external provider", &userpool.User{Status: "EXTERNAL_PROVIDER", Enabled: true}, "external_provider"},
		{"no status", &userpool.User{Enabled: true}, "unknown"},
	}
	for _, tt := range tests {
		if got := Categorize(tt.user, since); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// fakeUsers is a pool in memory; with fold, usernames are not
// case-sensitive (which moto 5.2.1 ignores) and AdminGetUser answers with
// the name the user was created with.
type fakeUsers struct {
	fold  bool
	users []userpool.User
	fail  map[string]error

	mu    sync.Mutex
	calls int
}

func (f *fakeUsers) GetUser(_ context.Context, pool, name string) (userpool.User, bool, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if err := f.fail[name]; err != nil {
		return userpool.User{}, false, err
	}
	for _, u := range f.users {
		if u.Username == name || f.fold && strings.EqualFold(u.Username, name) {
			return u, true, nil
		}
	}
	return userpool.User{}, false, nil
}

func (f *fakeUsers) UsersPage(_ context.Context, pool, filter, group, token string) ([]userpool.User, string, error) {
	i := 0
	if token != "" {
		fmt.Sscan(token, &i)
	}
	end := min(i+PageSizeForTest, len(f.users))
	next := ""
	if end < len(f.users) {
		next = fmt.Sprint(end)
	}
	return f.users[i:end], next, nil
}

const PageSizeForTest = 60

type noPace struct{}

func (noPace) Wait(ctx context.Context) error { return ctx.Err() }

func items(pool string, names ...string) func(context.Context, func(Item) error) error {
	return func(_ context.Context, fn func(Item) error) error {
		for i, n := range names {
			it := Item{Line: i + 1, Pool: pool, Username: n}
			if n == "" {
				it.Err = errors.New("empty username")
			}
			if err := fn(it); err != nil {
				return err
			}
		}
		return nil
	}
}

func campaignUsers() []userpool.User {
	return []userpool.User{
		{Username: "Alice", Status: "CONFIRMED", Enabled: true, LastModified: since.Add(time.Hour)},
		{Username: "bob", Status: "RESET_REQUIRED", Enabled: true, LastModified: since.Add(time.Minute)},
		{Username: "carol", Status: "CONFIRMED", Enabled: true, LastModified: since.Add(-time.Hour)},
		{Username: "dan", Status: "CONFIRMED", Enabled: false, LastModified: since.Add(-time.Hour)},
		{Username: "erin", Status: "FORCE_CHANGE_PASSWORD", Enabled: true, LastModified: since.Add(-time.Hour)},
	}
}

func TestReportGet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fold       bool
		names      []string
		want       map[string]int64
		users      int64
		duplicates int64
		lines      string
	}{
		{"case-sensitive pool: Alice and alice are two users, alice is missing", false,
			[]string{"Alice", "alice", "bob", "carol", "dan", "erin", "ghost", "bob", ""},
			map[string]int64{CategoryCompleted: 1, CategoryPending: 1, CategoryNotReset: 1, CategoryDisabled: 1, CategoryForceChange: 1, CategoryNotFound: 2},
			7, 1,
			"Alice,CONFIRMED,true,2026-11-29T09:00:00Z,completed,p\nalice,,,,not_found,p\nbob,RESET_REQUIRED,true,2026-11-29T08:01:00Z,pending,p\n"},
		{"case-insensitive pool: ALICE and alice are Alice, reported once by her name", true,
			[]string{"ALICE", "alice", "bob", "carol", "dan", "erin", "ghost", "Ghost"},
			map[string]int64{CategoryCompleted: 1, CategoryPending: 1, CategoryNotReset: 1, CategoryDisabled: 1, CategoryForceChange: 1, CategoryNotFound: 1},
			6, 2,
			"Alice,CONFIRMED,true,2026-11-29T09:00:00Z,completed,p\nbob,RESET_REQUIRED,true,2026-11-29T08:01:00Z,pending,p\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeUsers{fold: tt.fold, users: campaignUsers()}
			var buf bytes.Buffer
			rw, err := NewRecordWriter(&buf, "csv", false)
			if err != nil {
				t.Fatal(err)
			}
			var invalid []int
			r := mustNew(t, Config{Since: since, Write: rw.Write, Pacer: noPace{}, Concurrency: 3,
				Fold:      func(context.Context, string) bool { return tt.fold },
				OnInvalid: func(it Item) { invalid = append(invalid, it.Line) }})
			s, err := r.Get(context.Background(), api, items("p", tt.names...))
			if err != nil {
				t.Fatal(err)
			}
			if err := rw.Flush(); err != nil {
				t.Fatal(err)
			}
			for _, c := range Categories {
				if s.Counts[c] != tt.want[c] {
					t.Errorf("%s: %d, want %d", c, s.Counts[c], tt.want[c])
				}
			}
			if s.Users != tt.users || s.Duplicates != tt.duplicates || s.Source != "get" || s.Calls != tt.users {
				t.Errorf("summary %+v", s)
			}
			if !strings.HasPrefix(buf.String(), "username,status,enabled,last_modified,category,pool\n"+tt.lines) {
				t.Errorf("records in source order:\n%s", buf.String())
			}
			if n := strings.Count(buf.String(), "\n"); int64(n) != tt.users+1 {
				t.Errorf("%d lines, want %d", n, tt.users+1)
			}
			if tt.names[len(tt.names)-1] == "" && (s.Invalid != 1 || len(invalid) != 1 || invalid[0] != len(tt.names)) {
				t.Errorf("invalid %d %v", s.Invalid, invalid)
			}
		})
	}
}

func TestReportGetFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	api := &fakeUsers{users: campaignUsers(), fail: map[string]error{"carol": boom}}
	var got []string
	r := mustNew(t, Config{Since: since, Pacer: noPace{}, Concurrency: 1,
		Write: func(rec Record) error { got = append(got, rec.Username); return nil }})
	_, err := r.Get(context.Background(), api, items("p", "Alice", "bob", "carol", "dan", "erin"))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), `line 3: read user "carol"`) {
		t.Fatalf("err %v", err)
	}
	if strings.Join(got, ",") != "Alice,bob" {
		t.Fatalf("records before the failure: %v", got)
	}
}

func TestReportList(t *testing.T) {
	t.Parallel()
	var users []userpool.User
	for i := range 150 {
		users = append(users, userpool.User{Username: fmt.Sprintf("u%03d", i), Status: "RESET_REQUIRED", Enabled: true})
	}
	users[7].Status, users[7].LastModified = "CONFIRMED", since
	users[99].Status = "ARCHIVED"
	var buf bytes.Buffer
	rw, _ := NewRecordWriter(&buf, "jsonl", false)
	r := mustNew(t, Config{Since: since, Write: rw.Write, Pacer: noPace{}})
	s, err := r.List(context.Background(), &fakeUsers{users: users}, "p", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Users != 150 || s.Calls != 3 || s.Counts[CategoryPending] != 148 || s.Counts[CategoryCompleted] != 1 || s.Counts["archived"] != 1 || s.Source != "list" {
		t.Fatalf("%+v", s)
	}
	first, _, _ := strings.Cut(buf.String(), "\n")
	if first != `{"username":"u000","status":"RESET_REQUIRED","enabled":true,"last_modified":"0001-01-01T00:00:00Z","category":"pending","pool":"p"}` {
		t.Fatalf("first record %s", first)
	}
}

func TestRecordFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"r.csv": "csv", "R.CSV": "csv", "r.jsonl": "jsonl", "r.ndjson": "jsonl", "r.json": "jsonl", "r.txt": "", "r": ""} {
		if got := RecordFormat(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

// TestReportMemory: a million users read through the fake, records
// written to io.Discard, stays within a bounded heap.
func TestReportMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a million users")
	}
	const n = 1_000_000
	u := userpool.User{Username: "x", Status: "CONFIRMED", Enabled: true, LastModified: since}
	api := getterFunc(func(_ context.Context, _, name string) (userpool.User, bool, error) {
		v := u
		v.Username = name
		return v, true, nil
	})
	rw, _ := NewRecordWriter(discard{}, "csv", false)
	var peak uint64
	written := 0
	write := func(rec Record) error { // samples the heap every 50,000 records
		if written++; written%50_000 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		return rw.Write(rec)
	}
	r := mustNew(t, Config{Since: since, Write: write, Pacer: noPace{}, Concurrency: 8})
	src := func(_ context.Context, fn func(Item) error) error {
		for i := range n {
			if err := fn(Item{Line: i + 1, Pool: "us-east-1_a", Username: fmt.Sprintf("user-%07d@example.com", i)}); err != nil {
				return err
			}
		}
		return nil
	}
	start := time.Now()
	s, err := r.Get(context.Background(), api, src)
	if err != nil || s.Users != n {
		t.Fatalf("%v %+v", err, s)
	}
	t.Logf("%d users in %v, peak heap in use %.1f MiB", n, time.Since(start).Round(time.Millisecond), float64(peak)/(1<<20))
	if peak > 128<<20 {
		t.Fatalf("peak heap %d MiB", peak>>20)
	}
}

type getterFunc func(context.Context, string, string) (userpool.User, bool, error)

func (f getterFunc) GetUser(ctx context.Context, pool, name string) (userpool.User, bool, error) {
	return f(ctx, pool, name)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func mustNew(t *testing.T, cfg Config) *Reporter {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewRefusesNegativeConcurrency(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{Concurrency: -1}); err == nil {
		t.Error("Concurrency -1 taken")
	}
	if r := mustNew(t, Config{}); r.cfg.Concurrency != DefaultConcurrency {
		t.Errorf("Concurrency %d, want the default %d", r.cfg.Concurrency, DefaultConcurrency)
	}
}
