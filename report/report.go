// Package report tells, for resetq report, where each user of a campaign
// stands in Cognito: every user of a listing (Reporter.List) or each user
// a file names (Reporter.Get), categorized by Cognito's dates (an
// estimate); or every user of the campaign's ledger, and of a source
// beside it (Reporter.Campaign), categorized by what the campaign did
// (evidence). One record each and a tally by category.
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

// Categories of a user in an estimate, from Cognito's state alone.
const (
	CategoryPending     = "pending"               // RESET_REQUIRED: the code is out, not used yet
	CategoryCompleted   = "completed"             // CONFIRMED, last modified at or after since
	CategoryNotReset    = "not_reset"             // CONFIRMED, last modified before since
	CategoryForceChange = "force_change_password" // FORCE_CHANGE_PASSWORD: never signed in
	CategoryDisabled    = "disabled"              // Enabled false, whatever the status
	CategoryNotFound    = "not_found"             // no such user
)

// Categories are the categories every estimate counts, even at zero; other
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
	}
	return otherStatus(u.Status)
}

// Record is one line of the per-user report. Detail and the fields after
// it come from the campaign's ledger, in a report from one.
type Record struct {
	Username     string               `json:"username"`
	Status       string               `json:"status"`
	Enabled      *bool                `json:"enabled"`       // nil when not found
	LastModified *time.Time           `json:"last_modified"` // nil when not found
	Category     string               `json:"category"`
	Pool         string               `json:"pool"`
	Detail       string               `json:"detail,omitempty"`      // why the category (CategorizeCampaign)
	Reason       string               `json:"reason,omitempty"`      // the last dead letter's reason
	Enqueued     *time.Time           `json:"enqueued_at,omitempty"` // the first enqueue
	Steps        map[string]time.Time `json:"steps,omitempty"`       // each step's first time, by CampaignSteps' names
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

// RecordWriter writes records as CSV (with a header) or JSON lines. In
// CSV, a cell a spreadsheet would run as a formula is escaped (SafeCell).
type RecordWriter struct {
	csv      *csv.Writer
	json     *json.Encoder
	campaign bool
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

// NewRecordWriter writes format ("csv" or "jsonl") to w; with campaign,
// the CSV has the ledger's columns too (CSVHeader).
func NewRecordWriter(w io.Writer, format string, campaign bool) (*RecordWriter, error) {
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(CSVHeader(campaign)); err != nil {
			return nil, err
		}
		return &RecordWriter{csv: cw, campaign: campaign}, nil
	case "jsonl":
		return &RecordWriter{json: json.NewEncoder(w), campaign: campaign}, nil
	}
	return nil, fmt.Errorf("report format %q: want csv or jsonl", format)
}

// CSVHeader is the header of a CSV report; with campaign, the ledger's
// columns follow: detail, reason, enqueued_at and each step's time
// (CampaignSteps, as <step>_at).
func CSVHeader(campaign bool) []string {
	h := []string{"username", "status", "enabled", "last_modified", "category", "pool"}
	if campaign {
		h = append(h, "detail", "reason", "enqueued_at")
		for _, s := range CampaignSteps {
			h = append(h, s+"_at")
		}
	}
	return h
}

// SafeCell is s as a CSV cell that no spreadsheet runs as a formula: a
// cell that starts with '=', '+', '-', '@', a tab or a carriage return
// gets a leading single quote (OWASP's advice on CSV injection).
func SafeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// Write writes one record.
func (rw *RecordWriter) Write(r Record) error {
	if rw.json != nil {
		return rw.json.Encode(r)
	}
	enabled := ""
	if r.Enabled != nil {
		enabled = strconv.FormatBool(*r.Enabled)
	}
	row := []string{r.Username, r.Status, enabled, timeCell(r.LastModified), r.Category, r.Pool}
	if rw.campaign {
		row = append(row, r.Detail, r.Reason, timeCell(r.Enqueued))
		for _, s := range CampaignSteps {
			at := ""
			if t, ok := r.Steps[s]; ok {
				at = timeCell(&t)
			}
			row = append(row, at)
		}
	}
	for i := range row {
		row[i] = SafeCell(row[i])
	}
	return rw.csv.Write(row)
}

// timeCell is t in RFC 3339, or "" for nil.
func timeCell(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Format(time.RFC3339)
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
func NewTally() Tally { return tallyOf(Categories) }

// tallyOf is a tally with every category of cats at zero.
func tallyOf(cats []string) Tally {
	t := Tally{Counts: map[string]int64{}}
	for _, c := range cats {
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
	Line     int // the input line; 0 for a user of a listing or a ledger row
	Pool     string
	Username string
	Err      error
	// User is the user's state when the source read it already (a
	// listing); nil: one AdminGetUser reads it.
	User *userpool.User
	// Trail is the user's row in the campaign's ledger (Campaign's own
	// items); nil for a user of the source.
	Trail *Trail
}

// Config sets up a report run.
type Config struct {
	// Since is the campaign's start: an estimate's CONFIRMED user last
	// modified at or after it is completed. A report from a ledger
	// ignores it.
	Since time.Time
	// Write receives every record, in the order of the source.
	Write func(Record) error
	// Pacer paces every AdminGetUser call.
	Pacer Pacer
	// ListPacer paces every page of a listing (List, Listing); default
	// Pacer.
	ListPacer Pacer
	// Concurrency is how many AdminGetUser calls are in flight (default
	// DefaultConcurrency).
	Concurrency int
	// Fold reports whether usernames of pool are not case-sensitive; names
	// that differ only in case are then one user, reported once.
	Fold func(ctx context.Context, pool string) bool
	// OnInvalid is called for every invalid input line.
	OnInvalid func(Item)
}

// Bases of a report: what its categories stand on.
const (
	BasisEstimate = "estimate" // Cognito's state and dates against Since: any change to a user moves its date
	BasisLedger   = "ledger"   // what the campaign's ledger says it did, and Cognito's state now
)

// Summary is the outcome of a report.
type Summary struct {
	Tally
	Basis      string    `json:"basis"` // BasisEstimate or BasisLedger
	Campaign   string    `json:"campaign,omitempty"`
	Since      time.Time `json:"since,omitzero"` // an estimate's
	Source     string    `json:"source"`         // "list" (ListUsers pages), "get" (AdminGetUser per user) or "ledger" (AdminGetUser per row, and per user of a source without one)
	Calls      int64     `json:"calls"`
	Rows       int64     `json:"ledger_rows,omitempty"`      // users reported from a ledger row
	InLedger   int64     `json:"source_in_ledger,omitempty"` // users of the source reported from their row
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
	c.ListPacer = cmp.Or(c.ListPacer, c.Pacer)
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
	s := Summary{Tally: NewTally(), Basis: BasisEstimate, Since: r.cfg.Since, Source: "list"}
	err := r.pages(ctx, api, r.cfg.ListPacer, pool, filter, group, func(u *userpool.User) error {
		return r.emit(&s, NewRecord(pool, u.Username, u, r.cfg.Since))
	})
	return r.finish(s, start), err
}

// Listing is a source of every user of a listing, each with its state
// (no AdminGetUser), its pages paced by ListPacer: for Campaign.
func (r *Reporter) Listing(api UserPager, pool, filter, group string) func(context.Context, func(Item) error) error {
	return func(ctx context.Context, fn func(Item) error) error {
		return r.pages(ctx, api, r.cfg.ListPacer, pool, filter, group, func(u *userpool.User) error {
			return fn(Item{Pool: pool, Username: u.Username, User: u})
		})
	}
}

// pages calls fn with every user of a listing, page by page.
func (r *Reporter) pages(ctx context.Context, api UserPager, pacer Pacer, pool, filter, group string, fn func(*userpool.User) error) error {
	token := ""
	for {
		if err := pacer.Wait(ctx); err != nil {
			return err
		}
		users, next, err := api.UsersPage(ctx, pool, filter, group, token)
		r.calls.Add(1)
		if err != nil {
			return fmt.Errorf("list users of %s: %w", pool, err)
		}
		for i := range users {
			if err := fn(&users[i]); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
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
	s := Summary{Tally: NewTally(), Basis: BasisEstimate, Since: r.cfg.Since, Source: "get"}
	return r.run(ctx, api, s, src)
}

// Campaign reports every user of the campaign's ledger (rows calls its fn
// with each row), then every user of src (nil: none) that has no row, as
// not enqueued; each with one AdminGetUser (none for a user a Listing
// read), up to Concurrency at once, categorized by CategorizeCampaign.
// A user of src with a row is reported once, from the row.
func (r *Reporter) Campaign(ctx context.Context, api UserGetter, campaign string,
	rows func(context.Context, func(Trail) error) error, src func(context.Context, func(Item) error) error) (Summary, error) {
	s := Summary{Tally: tallyOf(CampaignCategories), Basis: BasisLedger, Campaign: campaign, Source: "ledger"}
	return r.run(ctx, api, s, func(ctx context.Context, fn func(Item) error) error {
		err := rows(ctx, func(t Trail) error {
			return fn(Item{Pool: t.Pool, Username: t.name(), Trail: &t})
		})
		if err != nil || src == nil {
			return err
		}
		return src(ctx, func(it Item) error {
			it.Trail = nil
			return fn(it)
		})
	})
}

// run reports the users of src into s, in src's order.
func (r *Reporter) run(ctx context.Context, api UserGetter, s Summary, src func(context.Context, func(Item) error) error) (Summary, error) {
	start := time.Now()
	ledger := s.Basis == BasisLedger
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	work := make(chan *slot)
	order := make(chan *slot, 4*r.cfg.Concurrency)
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for sl := range work {
				sl.rec, sl.err = r.get(ctx, api, sl.item, ledger)
				close(sl.done)
			}
		})
	}
	var srcErr error
	d := newDedupe(r.cfg.Fold)
	wg.Go(func() {
		defer close(order)
		defer close(work)
		srcErr = src(ctx, func(it Item) error {
			if it.Err == nil && !d.admit(ctx, it) {
				return nil
			}
			sl := &slot{item: it, done: make(chan struct{})}
			select {
			case order <- sl:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			if it.Err != nil || it.User != nil {
				close(sl.done) // nothing to read: the record is made in order
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
	var invalid int64
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
			if sl.item.User != nil {
				sl.rec = r.record(sl.item, sl.item.User, ledger)
			}
			if sl.item.Trail != nil {
				s.Rows++
			}
			runErr = r.emit(&s, sl.rec)
		}
		if runErr != nil {
			cancel(runErr)
		}
	}
	wg.Wait()
	s.Duplicates, s.InLedger, s.Invalid = d.dups, d.inLedger, invalid
	if runErr == nil && srcErr != nil && !errors.Is(srcErr, context.Canceled) {
		runErr = srcErr
	}
	if runErr == nil {
		runErr = ctx.Err()
	}
	return r.finish(s, start), runErr
}

// dedupe admits each user once: a ledger row always (rows are one per
// user), a user of the source when neither the source nor a row named it
// before. Only run's source goroutine uses it.
type dedupe struct {
	fold     func(context.Context, string) bool
	folds    map[string]bool
	rows     *nameSet // users with a ledger row, as the pool compares them
	source   *nameSet // users of the source
	dups     int64    // users the source named again
	inLedger int64    // users of the source with a row
}

func newDedupe(fold func(context.Context, string) bool) *dedupe {
	return &dedupe{fold: fold, folds: map[string]bool{}, rows: newNameSet(), source: newNameSet()}
}

// admit reports whether it is a user to report.
func (d *dedupe) admit(ctx context.Context, it Item) bool {
	if it.Trail != nil {
		d.rows.add(it.Pool, it.Trail.User, false)
		return true
	}
	fold, ok := d.folds[it.Pool]
	if !ok && d.fold != nil {
		fold = d.fold(ctx, it.Pool)
		d.folds[it.Pool] = fold
	}
	switch {
	case !d.source.add(it.Pool, it.Username, fold):
		d.dups++
		return false
	case d.rows.has(it.Pool, it.Username, fold):
		d.inLedger++
		return false
	}
	return true
}

// get reads it's user and makes its record.
func (r *Reporter) get(ctx context.Context, api UserGetter, it Item, ledger bool) (Record, error) {
	if err := r.cfg.Pacer.Wait(ctx); err != nil {
		return Record{}, err
	}
	u, found, err := api.GetUser(ctx, it.Pool, it.Username)
	r.calls.Add(1)
	if err != nil {
		where := ""
		if it.Line > 0 {
			where = fmt.Sprintf("line %d: ", it.Line)
		}
		return Record{}, fmt.Errorf("%sread user %q of %s: %w", where, it.Username, it.Pool, err)
	}
	if !found {
		return r.record(it, nil, ledger), nil
	}
	return r.record(it, &u, ledger), nil
}

// record is it's record with the user's state u (nil: not found).
func (r *Reporter) record(it Item, u *userpool.User, ledger bool) Record {
	if ledger {
		return NewCampaignRecord(it.Pool, it.Username, it.Trail, u)
	}
	return NewRecord(it.Pool, it.Username, u, r.cfg.Since)
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
