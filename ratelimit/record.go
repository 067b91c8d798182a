package ratelimit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CallRecord keeps a process's own calls per minute and per scope in a
// folder, where the next resetq process on the machine (a restart, or a
// second worker beside it) finds them: the usage minutes count every
// caller, and calls another resetq process made are not real users'. Each
// process writes one file per category (CATEGORY-ID.json, ID random, so a
// restarted container's PID 1 is not taken for its predecessor) and reads
// the others' files written in the last ownMinutes minutes.
type CallRecord struct {
	dir, category, id string
}

// recordMinute is one minute of a scope's calls in a record file.
type recordMinute struct {
	Minute    int64   `json:"minute"` // Unix minutes
	Calls     float64 `json:"calls"`
	Throttled float64 `json:"throttled"`
	First     int64   `json:"first"` // Unix microseconds
	Last      int64   `json:"last"`
}

// NewCallRecord makes dir (mode 0700) and returns the record of this
// process's calls in category. The folder must be this user's own and
// private: another user who could write there could make the worker take
// real users' calls for its own (and run over them) or the reverse.
func NewCallRecord(dir, category string) (*CallRecord, error) {
	if dir == "" || category == "" || strings.ContainsAny(category, `/\-`) {
		return nil, fmt.Errorf("call record: need a folder and a category without '/', '\\' or '-', got %q, %q", dir, category)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("call record: %w", err)
	}
	if err := private(dir); err != nil {
		return nil, fmt.Errorf("call record: %w", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &CallRecord{dir: dir, category: category, id: hex.EncodeToString(b[:])}, nil
}

// path is the file of the process id.
func (r *CallRecord) path(id string) string {
	return filepath.Join(r.dir, r.category+"-"+id+".json")
}

// save writes this process's minutes by scope, replacing its file at once
// (a reader never sees half of it).
func (r *CallRecord) save(byScope map[string][]ownMinute) error {
	out := map[string][]recordMinute{}
	for scope, ms := range byScope {
		for _, o := range ms {
			out[scope] = append(out[scope], recordMinute{Minute: o.minute, Calls: o.calls, Throttled: o.throttled,
				First: micros(o.first), Last: micros(o.last)})
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(r.dir, ".tmp-"+r.category+"-*")
	if err != nil {
		return fmt.Errorf("call record: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), r.path(r.id))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("call record: %w", err)
	}
	return nil
}

// others reads the other processes' minutes of the last ownMinutes minutes
// at now, summed by scope and Unix minute. Files untouched for longer are
// removed; a file that cannot be read is skipped (it is another process's).
func (r *CallRecord) others(now time.Time) (map[string]map[int64]ownMinute, error) {
	files, err := filepath.Glob(filepath.Join(r.dir, r.category+"-*.json"))
	if err != nil {
		return nil, err
	}
	oldest := now.Add(-ownMinutes * time.Minute)
	all := map[string]map[int64]ownMinute{}
	for _, name := range files {
		if name == r.path(r.id) {
			continue
		}
		info, err := os.Lstat(name)
		if err != nil || !info.Mode().IsRegular() || info.Size() > maxRecordFile || !ours(info) {
			continue
		}
		if info.ModTime().Before(oldest) {
			os.Remove(name)
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
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
	return all, nil
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
