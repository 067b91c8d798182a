package ratelimit

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/clock/clocktest"
)

// newFolderRecord is a process's record kept in dir alone.
func newFolderRecord(dir, category string) (*CallRecord, error) {
	f, err := Folder(dir, category)
	if err != nil {
		return nil, err
	}
	return NewCallRecord(f)
}

// recordPath is the file of r, kept in a folder.
func recordPath(r *CallRecord) string { return r.stores[0].(folder).path(r.id) }

// memStore is a RecordStore in memory, as the ledger's table keeps
// records: each process's, with when it was written.
type memStore struct {
	mu   sync.Mutex
	recs map[string]memRecord
	fail error // Load's and Save's error, if any
}

type memRecord struct {
	b  []byte
	at time.Time
}

func (m *memStore) Save(id string, b []byte, now time.Time, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.recs == nil {
		m.recs = map[string]memRecord{}
	}
	m.recs[id] = memRecord{bytes.Clone(b), now}
	return nil
}

func (m *memStore) Load(id string, since, _ time.Time) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	out := map[string][]byte{}
	for k, r := range m.recs {
		if k != id && !r.at.Before(since) {
			out[k] = r.b
		}
	}
	return out, nil
}

// TestCallRecordStores: a record kept in two stores (the folder and the
// ledger's table) counts each process once: a predecessor found in both
// is not doubled, one found only in the shared store (another machine's)
// counts, and a store that fails leaves the other's records counted.
func TestCallRecordStores(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_000_000*60, 0)
	m := now.Unix()/60 - 2
	shared := &memStore{}
	rec := func(dir string) *CallRecord {
		t.Helper()
		f, err := Folder(dir, "UserAccountRecovery")
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewCallRecord(f, shared)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	here, elsewhere, reader := rec(dir), rec(t.TempDir()), rec(dir)
	for _, w := range []struct {
		r     *CallRecord
		calls float64
	}{{here, 600}, {elsewhere, 120}} {
		if err := w.r.save(map[string][]ownMinute{"111/us-east-1": {{minute: m, calls: w.calls}}}, now, false); err != nil {
			t.Fatal(err)
		}
	}
	got, err := reader.others(now)
	if err != nil || got["111/us-east-1"][m].calls != 720 {
		t.Errorf("reads %v calls (%v), want 600 from this machine's predecessor (in both stores) and 120 from another machine's", got["111/us-east-1"][m].calls, err)
	}
	shared.fail = errors.New("AccessDeniedException")
	got, err = reader.others(now)
	if err == nil || got["111/us-east-1"][m].calls != 600 {
		t.Errorf("with the shared store failing: %v calls, %v; want the folder's 600 and the error", got["111/us-east-1"][m].calls, err)
	}
	if err := here.save(nil, now, false); err == nil {
		t.Error("a save that failed in one store returned no error")
	}
	if _, err := NewCallRecord(); err == nil {
		t.Error("a record with no store was made")
	}
}

// TestCallRecordOthers: a process reads the others' recorded calls, summed
// by scope and minute, never its own, and drops what is too old to matter.
func TestCallRecordOthers(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_000_000*60, 0)
	m := now.Unix()/60 - 3
	a, err := newFolderRecord(dir, "UserAccountRecovery")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newFolderRecord(dir, "UserAccountRecovery")
	c, _ := newFolderRecord(dir, "UserAccountRecovery")
	read, _ := newFolderRecord(dir, "UserRead") // another category: not counted
	one := func(calls float64) map[string][]ownMinute {
		return map[string][]ownMinute{"111/us-east-1": {{minute: m, calls: calls, throttled: 1, first: time.Unix(m*60+5, 0), last: time.Unix(m*60+50, 0)}}}
	}
	for _, w := range []struct {
		r     *CallRecord
		calls float64
	}{{a, 600}, {b, 300}, {c, 100}, {read, 5000}} {
		if err := w.r.save(one(w.calls), now, false); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.others(now)
	if err != nil {
		t.Fatal(err)
	}
	o := got["111/us-east-1"][m]
	if o.calls != 900 || o.throttled != 2 || !o.first.Equal(time.Unix(m*60+5, 0)) || !o.last.Equal(time.Unix(m*60+50, 0)) {
		t.Errorf("c reads %+v, want a's and b's: 900 calls, 2 throttled, from :05 to :50", o)
	}
	// A file untouched for longer than the usage minutes matter is removed.
	old := now.Add(-(ownMinutes + 1) * time.Minute)
	if err := os.Chtimes(recordPath(a), old, old); err != nil {
		t.Fatal(err)
	}
	got, _ = c.others(now)
	if o := got["111/us-east-1"][m]; o.calls != 300 {
		t.Errorf("with a's file stale, c reads %v calls, want b's 300", o.calls)
	}
	if _, err := os.Stat(recordPath(a)); !os.IsNotExist(err) {
		t.Errorf("the stale file is still there: %v", err)
	}
	// Minutes no worker records are skipped: more calls than a worker
	// makes (their sum would overflow to +Inf, the rate to NaN: unpaced),
	// more throttles than calls.
	if err := a.save(map[string][]ownMinute{"111/us-east-1": {{minute: m, calls: 1e308}, {minute: m, calls: 1e308}, {minute: m, calls: 10, throttled: 11}}}, now, false); err != nil {
		t.Fatal(err)
	}
	got, _ = c.others(now)
	if o := got["111/us-east-1"][m]; o.calls != 300 {
		t.Errorf("with forged minutes, c reads %v calls, want b's 300", o.calls)
	}
	os.Remove(recordPath(a))
	// A file that is not a record is skipped, not an error.
	if err := os.WriteFile(filepath.Join(dir, "UserAccountRecovery-junk.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err = c.others(now); err != nil || got["111/us-east-1"][m].calls != 300 {
		t.Errorf("with a junk file: %v, %v", got, err)
	}
}

// TestRestartReadsRecord: a worker restarted mid-campaign takes its
// predecessor's recorded calls for resetq's, not real users': it starts
// from what the real users (10/s) leave, not from the floor. Without the
// record it would start at the floor.
func TestRestartReadsRecord(t *testing.T) {
	for _, keep := range []bool{true, false} {
		dir := t.TempDir()
		start := time.Unix(1_000_000*60, 0)
		now := start
		cfg := Config{Ceiling: 30, HarmBudget: 0.005, Clock: clocktest.Func(func() time.Time { return now })}
		first, _ := NewRegions(cfg, nil)
		second, _ := NewRegions(cfg, nil)
		if keep {
			rec1, _ := newFolderRecord(dir, "UserAccountRecovery")
			rec2, _ := newFolderRecord(dir, "UserAccountRecovery")
			first.KeepRecord(rec1, func(err error) { t.Error(err) })
			second.KeepRecord(rec2, func(err error) { t.Error(err) })
		}
		const scope = "111/us-east-1"
		// The first process calls at 20/s for 3 minutes, beside real users
		// at 10/s, and stops (its record saved at exit).
		var minutes []Usage
		l := first.Get(scope)
		for ; now.Before(start.Add(3 * time.Minute)); now = now.Add(50 * time.Millisecond) {
			if l.Allow(now) {
				l.Succeeded()
			}
		}
		if err := first.SaveRecord(true); err != nil {
			t.Fatal(err)
		}
		for m := range 3 {
			at := start.Add(time.Duration(m) * time.Minute)
			minutes = append(minutes, Usage{Minute: at, Calls: l.ownIn(at).calls + 600})
		}
		// The second starts at once and reads the minutes before its first call.
		second.Observe(scope, minutes)
		got := second.Get(scope).Limit()
		want := 30 - 10 - startBursts*math.Sqrt(10) // what real users leave, less their bursts
		if keep && math.Abs(got-want) > 0.5 {
			t.Errorf("with the record: restarted at %.2f/s, want about %.2f (real users 10/s)", got, want)
		}
		if !keep && got > 2 {
			t.Errorf("without the record: restarted at %.2f/s; the test no longer shows what the record is for", got)
		}
	}
}

// TestCallRecordPrivate: the folder is made private (0700), a link is not
// followed, and (as root, as CI runs) a folder or file of another user is
// refused or skipped: whoever can write there decides which calls the
// worker takes for its own.
func TestCallRecordPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := newFolderRecord(dir, "UserAccountRecovery"); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(dir); info.Mode().Perm() != 0o700 {
		t.Errorf("mode %v, want 0700", info.Mode().Perm())
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, err := newFolderRecord(link, "UserAccountRecovery"); err == nil {
		t.Error("a link to a folder was taken")
	}
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" { // CI runs as root
			t.Fatal("other users' folders and files: only root can make them, and CI runs as root")
		}
		t.Skip("other users' folders and files: only root can make them (CI runs as root)")
	}
	theirs := filepath.Join(t.TempDir(), "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := newFolderRecord(theirs, "UserAccountRecovery"); err == nil {
		t.Error("another user's folder was taken")
	}
	a, _ := newFolderRecord(dir, "UserAccountRecovery")
	b, _ := newFolderRecord(dir, "UserAccountRecovery")
	m := time.Now().Unix() / 60
	if err := a.save(map[string][]ownMinute{"s": {{minute: m, calls: 100}}}, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(recordPath(a), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.others(time.Now()); got["s"][m].calls != 0 {
		t.Errorf("another user's file was read: %v calls", got["s"][m].calls)
	}
}
