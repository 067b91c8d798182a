// Package report tells, for resetq report, where each user of a campaign
// stands in Cognito: every user of a listing (Reporter.List) or each user
// a file names (Reporter.Get), one record each and a tally by category.
package report

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resetq/resetq/userpool"
)

// Categories of a user, from Cognito's state.
const (
	CategoryPending     = "pending"               // RESET_REQUIRED: the code is out, not used yet
	CategoryCompleted   = "completed"             // CONFIRMED, last modified at or after since
	CategoryNotReset    = "not_reset"             // CONFIRMED, last modified before since
	CategoryForceChange = "force_change_password" // FORCE_CHANGE_PASSWORD: never signed in
	CategoryDisabled    = "disabled"              // Enabled false, whatever the status
	CategoryNotFound    = "not_found"             // no such user
)

// Categories are the categories every report counts, even at zero; other
// statuses are counted by their name in lower case.
var Categories = []string{CategoryCompleted, CategoryPending, CategoryNotReset, CategoryForceChange, CategoryDisabled, CategoryNotFound}

// Categorize is the report category of u (nil: not found) for a campaign
// that started at since.
func Categorize(u *userpool.User, since time.Time) string {
	switch {
	case u == nil:
		return CategoryNotFound
	case !u.Enabled:
		return CategoryDisabled
	}
	switch u.Status {
	case "RESET_REQUIRED":
		return CategoryPending
	case "CONFIRMED":
		if u.LastModified.Before(since) {
			return CategoryNotReset
		}
		return CategoryCompleted
	case "FORCE_CHANGE_PASSWORD":
		return CategoryForceChange
	case "":
		return "unknown"
	}
	return strings.ToLower(u.Status)
}

// Record is one line of the per-user report.
type Record struct {
	Username     string     `json:"username"`
	Status       string     `json:"status"`
	Enabled      *bool      `json:"enabled"`       // nil when not found
	LastModified *time.Time `json:"last_modified"` // nil when not found
	Category     string     `json:"category"`
	Pool         string     `json:"pool"`
}

// NewRecord is the record of u (nil: not found, under name) in pool.
func NewRecord(pool, name string, u *userpool.User, since time.Time) Record {
	r := Record{Username: name, Pool: pool, Category: Categorize(u, since)}
	if u != nil {
		enabled, modified := u.Enabled, u.LastModified.UTC()
		r.Username, r.Status, r.Enabled, r.LastModified = u.Username, u.Status, &enabled, &modified
	}
	return r
}

// RecordWriter writes records as CSV (with a header) or JSON lines.
type RecordWriter struct {
	csv  *csv.Writer
	json *json.Encoder
}

// RecordFormat is the format of a report file by its extension: "csv"
// (.csv) or "jsonl" (.jsonl, .ndjson, .json); "" for anything else.
func RecordFormat(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return "csv"
	case ".jsonl", ".ndjson", ".json":
		return "jsonl"
	}
	return ""
}

// NewRecordWriter writes format ("csv" or "jsonl") to w.
func NewRecordWriter(w io.Writer, format string) (*RecordWriter, error) {
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write([]string{"username", "status", "enabled", "last_modified", "category", "pool"}); err != nil {
			return nil, err
		}
		return &RecordWriter{csv: cw}, nil
	case "jsonl":
		return &RecordWriter{json: json.NewEncoder(w)}, nil
	}
	return nil, fmt.Errorf("report format %q: want csv or jsonl", format)
}

// Write writes one record.
func (rw *RecordWriter) Write(r Record) error {
	if rw.json != nil {
		return rw.json.Encode(r)
	}
	enabled, modified := "", ""
	if r.Enabled != nil {
		enabled = strconv.FormatBool(*r.Enabled)
	}
	if r.LastModified != nil {
		modified = r.LastModified.Format(time.RFC3339)
	}
	return rw.csv.Write([]string{r.Username, r.Status, enabled, modified, r.Category, r.Pool})
}

// Flush writes buffered records and reports any error so far.
func (rw *RecordWriter) Flush() error {
	if rw.csv != nil {
		rw.csv.Flush()
		return rw.csv.Error()
	}
	return nil
}

// Tally counts users by category. The zero value is not ready: use NewTally.
type Tally struct {
	Counts map[string]int64 `json:"counts"`
	Users  int64            `json:"users"`
}

// NewTally is a tally with every category of Categories at zero.
func NewTally() Tally {
	t := Tally{Counts: map[string]int64{}}
	for _, c := range Categories {
		t.Counts[c] = 0
	}
	return t
}

// Add counts one user of category c.
func (t *Tally) Add(c string) {
	t.Counts[c]++
	t.Users++
}

// UserGetter reads one user (AdminGetUser); found is false for a user that
// does not exist.
type UserGetter interface {
	GetUser(ctx context.Context, pool, username string) (u userpool.User, found bool, err error)
}

// UserPager reads one page of a user listing (ListUsers, or
// ListUsersInGroup when group is set); next is "" after the last page.
type UserPager interface {
	UsersPage(ctx context.Context, pool, filter, group, token string) (users []userpool.User, next string, err error)
}

// Pacer paces calls; *rate.Limiter is one.
type Pacer interface {
	Wait(ctx context.Context) error
}

// Item is one user named by a source: a pool and a username, or why
// the input line is invalid.
type Item struct {
	Line     int
	Pool     string
	Username string
	Err      error
}

// Config sets up a report run.
type Config struct {
	Since time.Time
	// Write receives every record, in the order of the source.
	Write func(Record) error
	// Pacer paces every Cognito call.
	Pacer Pacer
	// Concurrency is how many AdminGetUser calls are in flight (default
	// DefaultConcurrency).
	Concurrency int
	// Fold reports whether usernames of pool are not case-sensitive; names
	// that differ only in case are then one user, reported once.
	Fold func(ctx context.Context, pool string) bool
	// OnInvalid is called for every invalid input line.
	OnInvalid func(Item)
}

// Summary is the outcome of a report.
type Summary struct {
	Tally
	Since      time.Time `json:"since"`
	Source     string    `json:"source"` // "list" (ListUsers pages) or "get" (AdminGetUser per user)
	Calls      int64     `json:"calls"`
	Invalid    int64     `json:"invalid"`
	Duplicates int64     `json:"duplicates"`
	Elapsed    float64   `json:"elapsed_seconds"`
}

// Reporter runs one report and counts as it goes; Progress is safe to call
// from another goroutine.
type Reporter struct {
	cfg   Config
	done  atomic.Int64
	calls atomic.Int64
}

// DefaultConcurrency is how many AdminGetUser calls a report has in
// flight.
const DefaultConcurrency = 8

// New returns a Reporter for cfg, or why cfg does not Validate.
func New(cfg Config) (*Reporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Reporter{cfg: cfg.withDefaults()}, nil
}

func (c Config) withDefaults() Config {
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	return c
}

// Validate reports a negative Concurrency (zero is the default).
func (c Config) Validate() error {
	if c.Concurrency < 0 {
		return fmt.Errorf("report: negative concurrency %d", c.Concurrency)
	}
	return nil
}

// Progress is the number of users reported so far.
func (r *Reporter) Progress() int64 { return r.done.Load() }

// List reports every user of a listing, one UserPager page at a time.
func (r *Reporter) List(ctx context.Context, api UserPager, pool, filter, group string) (Summary, error) {
	start := time.Now()
	s := Summary{Tally: NewTally(), Since: r.cfg.Since, Source: "list"}
	token := ""
	for {
		if err := r.cfg.Pacer.Wait(ctx); err != nil {
			return r.finish(s, start), err
		}
		users, next, err := api.UsersPage(ctx, pool, filter, group, token)
		r.calls.Add(1)
		if err != nil {
			return r.finish(s, start), fmt.Errorf("list users of %s: %w", pool, err)
		}
		for i := range users {
			if err := r.emit(&s, NewRecord(pool, users[i].Username, &users[i], r.cfg.Since)); err != nil {
				return r.finish(s, start), err
			}
		}
		if next == "" {
			return r.finish(s, start), nil
		}
		token = next
	}
}

type slot struct {
	item Item
	rec  Record
	err  error
	done chan struct{}
}

// Get reports every user that src names, with one AdminGetUser each, up to
// Concurrency at once; records come out in the order of src. A user named
// twice is reported once.
func (r *Reporter) Get(ctx context.Context, api UserGetter, src func(context.Context, func(Item) error) error) (Summary, error) {
	start := time.Now()
	s := Summary{Tally: NewTally(), Since: r.cfg.Since, Source: "get"}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	work := make(chan *slot)
	order := make(chan *slot, 4*r.cfg.Concurrency)
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for sl := range work {
				sl.rec, sl.err = r.get(ctx, api, sl.item)
				close(sl.done)
			}
		})
	}
	var srcErr error
	var dups, invalid int64
	wg.Go(func() {
		defer close(order)
		defer close(work)
		seen := newNameSet()
		folds := map[string]bool{}
		srcErr = src(ctx, func(it Item) error {
			sl := &slot{item: it, done: make(chan struct{})}
			if it.Err == nil {
				fold, ok := folds[it.Pool]
				if !ok && r.cfg.Fold != nil {
					fold = r.cfg.Fold(ctx, it.Pool)
					folds[it.Pool] = fold
				}
				if !seen.add(it.Pool, it.Username, fold) {
					atomic.AddInt64(&dups, 1)
					return nil
				}
			}
			select {
			case order <- sl:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			if it.Err != nil {
				close(sl.done)
				return nil
			}
			select {
			case work <- sl:
			case <-ctx.Done():
				sl.err = context.Cause(ctx)
				close(sl.done)
				return sl.err
			}
			return nil
		})
	})
	var runErr error
	for sl := range order {
		<-sl.done
		if runErr != nil {
			continue
		}
		switch {
		case sl.item.Err != nil:
			invalid++
			if r.cfg.OnInvalid != nil {
				r.cfg.OnInvalid(sl.item)
			}
		case sl.err != nil:
			runErr = sl.err
		default:
			runErr = r.emit(&s, sl.rec)
		}
		if runErr != nil {
			cancel(runErr)
		}
	}
	wg.Wait()
	s.Duplicates, s.Invalid = atomic.LoadInt64(&dups), invalid
	if runErr == nil && srcErr != nil && !errors.Is(srcErr, context.Canceled) {
		runErr = srcErr
	}
	if runErr == nil {
		runErr = ctx.Err()
	}
	return r.finish(s, start), runErr
}

func (r *Reporter) get(ctx context.Context, api UserGetter, it Item) (Record, error) {
	if err := r.cfg.Pacer.Wait(ctx); err != nil {
		return Record{}, err
	}
	u, found, err := api.GetUser(ctx, it.Pool, it.Username)
	r.calls.Add(1)
	if err != nil {
		return Record{}, fmt.Errorf("line %d: read user %q of %s: %w", it.Line, it.Username, it.Pool, err)
	}
	if !found {
		return NewRecord(it.Pool, it.Username, nil, r.cfg.Since), nil
	}
	return NewRecord(it.Pool, it.Username, &u, r.cfg.Since), nil
}

func (r *Reporter) emit(s *Summary, rec Record) error {
	if r.cfg.Write != nil {
		if err := r.cfg.Write(rec); err != nil {
			return fmt.Errorf("write the report: %w", err)
		}
	}
	s.Add(rec.Category)
	r.done.Add(1)
	return nil
}

func (r *Reporter) finish(s Summary, start time.Time) Summary {
	s.Calls = r.calls.Load()
	s.Elapsed = time.Since(start).Seconds()
	return s
}
