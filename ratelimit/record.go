package ratelimit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// CallRecord keeps a process's own calls per minute and per scope where
// the next resetq process finds them (a restart, or a second worker beside
// it): the usage minutes count every caller, and calls another resetq
// process made are not real users'. It is kept in one or more stores: a
// folder on the machine (Folder), the campaign ledger's table, which a
// process on another machine reads too (ledger.CallRecords). Each process
// writes one record per category under a random ID (a restarted
// container's PID 1 is not taken for its predecessor) and reads the
// others' records written in the last ownMinutes minutes, each process's
// once whatever the stores that hold it.
type CallRecord struct {
	id     string
	stores []RecordStore

	mu    sync.Mutex
	wrote bool // a record with calls was saved
}

// RecordStore keeps the processes' records of one category: JSON, at most
// maxRecordFile bytes.
type RecordStore interface {
	// Save replaces process id's record, written at now; last says it is
	// the process's last (it exits).
	Save(id string, record []byte, now time.Time, last bool) error
	// Load returns, by process, the records other than id's written since
	// since that count as resetq's at now. A store shared between machines
	// may leave out the processes still running (ledger.CallRecords). A
	// store that cannot read one record skips it (another process's).
	Load(id string, since, now time.Time) (map[string][]byte, error)
}

// recordMinute is one minute of a scope's calls in a record.
type recordMinute struct {
	Minute    int64   `json:"minute"` // Unix minutes
	Calls     float64 `json:"calls"`
	Throttled float64 `json:"throttled"`
	First     int64   `json:"first"` // Unix microseconds
	Last      int64   `json:"last"`
}

// NewCallRecord returns the record of this process's calls, kept in
// stores (one at least).
func NewCallRecord(stores ...RecordStore) (*CallRecord, error) {
	if len(stores) == 0 {
		return nil, errors.New("call record: no store")
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &CallRecord{id: hex.EncodeToString(b[:]), stores: stores}, nil
}

// save writes this process's minutes by scope at now to every store, last
// at its exit; the error is the first store's that failed.
func (r *CallRecord) save(byScope map[string][]ownMinute, now time.Time, last bool) error {
	out := map[string][]recordMinute{}
	for scope, ms := range byScope {
		for _, o := range ms {
			out[scope] = append(out[scope], recordMinute{Minute: o.minute, Calls: o.calls, Throttled: o.throttled,
				First: micros(o.first), Last: micros(o.last)})
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(out) == 0 && !r.wrote {
		return nil // no call yet: nothing to tell (a category the campaign does not call)
	}
	r.wrote = true
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	var first error
	for _, s := range r.stores {
		if err := s.Save(r.id, b, now, last); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// others reads the other processes' minutes of the last ownMinutes minutes
// at now, summed by scope and Unix minute, each process's record once. A
// record that does not decode, or a minute no worker records, is skipped;
// the error is the first store's that failed (the others still count).
func (r *CallRecord) others(now time.Time) (map[string]map[int64]ownMinute, error) {
	oldest := now.Add(-ownMinutes * time.Minute)
	byID := map[string][]byte{}
	var first error
	for _, s := range r.stores {
		recs, err := s.Load(r.id, oldest, now)
		if err != nil && first == nil {
			first = err
		}
		for id, b := range recs {
			if _, ok := byID[id]; !ok && len(b) <= maxRecordFile {
				byID[id] = b
			}
		}
	}
	all := map[string]map[int64]ownMinute{}
	for _, b := range byID {
		var in map[string][]recordMinute
		if json.Unmarshal(b, &in) != nil {
			continue
		}
		for scope, ms := range in {
			if all[scope] == nil {
				all[scope] = map[int64]ownMinute{}
			}
			for _, m := range ms {
				if time.Unix(m.Minute*60, 0).Before(oldest) || !(m.Calls >= 0 && m.Calls <= maxRecordCalls) ||
					!(m.Throttled >= 0 && m.Throttled <= m.Calls) {
					continue // not a minute a worker records
				}
				all[scope][m.Minute] = addMinutes(all[scope][m.Minute], ownMinute{minute: m.Minute, calls: m.Calls,
					throttled: m.Throttled, first: fromMicros(m.First), last: fromMicros(m.Last)})
			}
		}
	}
	return all, first
}

// folder is a RecordStore in a folder of the machine: one file per
// process, CATEGORY-ID.json.
type folder struct{ dir, category string }

// Folder makes dir (mode 0700) and returns the store of category's
// records in it. The folder must be this user's own and private: another
// user who could write there could make the worker take real users' calls
// for its own (and run over them) or the reverse.
func Folder(dir, category string) (RecordStore, error) {
	if dir == "" || category == "" || strings.ContainsAny(category, `/\-`) {
		return nil, fmt.Errorf("call record: need a folder and a category without '/', '\\' or '-', got %q, %q", dir, category)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("call record: %w", err)
	}
	if err := private(dir); err != nil {
		return nil, fmt.Errorf("call record: %w", err)
	}
	return folder{dir: dir, category: category}, nil
}

// path is the file of the process id.
func (f folder) path(id string) string {
	return filepath.Join(f.dir, f.category+"-"+id+".json")
}

// Save replaces id's file at once (a reader never sees half of it).
func (f folder) Save(id string, b []byte, _ time.Time, _ bool) error {
	tmp, err := os.CreateTemp(f.dir, ".tmp-"+f.category+"-*")
	if err != nil {
		return fmt.Errorf("call record: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path(id))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("call record: %w", err)
	}
	return nil
}

// Load reads the other processes' files changed since since, of those
// still running too (two workers on one machine). Files untouched for
// longer are removed; a file that cannot be read, or not this user's, is
// skipped.
func (f folder) Load(id string, since, _ time.Time) (map[string][]byte, error) {
	files, err := filepath.Glob(filepath.Join(f.dir, f.category+"-*.json"))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, name := range files {
		if name == f.path(id) {
			continue
		}
		info, err := os.Lstat(name)
		if err != nil || !info.Mode().IsRegular() || info.Size() > maxRecordFile || !ours(info) {
			continue
		}
		if info.ModTime().Before(since) {
			os.Remove(name)
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		out[strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), f.category+"-"), ".json")] = b
	}
	return out, nil
}

// maxRecordFile bounds a record file: a process's minutes of a few
// hundred account-Regions.
const maxRecordFile = 4 << 20

// maxRecordCalls bounds a minute's calls in a record: a worker paces far
// under 10,000 calls a second.
const maxRecordCalls = 600_000

// addMinutes is the calls of a and b, two callers' counts of one minute.
func addMinutes(a, b ownMinute) ownMinute {
	if a.calls == 0 && a.throttled == 0 {
		return b
	}
	a.calls, a.throttled = a.calls+b.calls, a.throttled+b.throttled
	if !b.first.IsZero() && (a.first.IsZero() || b.first.Before(a.first)) {
		a.first = b.first
	}
	if b.last.After(a.last) {
		a.last = b.last
	}
	return a
}
