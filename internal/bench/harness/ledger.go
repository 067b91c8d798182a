package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/resetq/resetq/internal/bench/dynamostub"
)

// Scenario 6: the campaign ledger's cost at the quota. The same campaign
// runs without --ledger-table and with it, the ledger served by
// internal/bench/dynamostub at DynamoDB's latency; the rate with the
// ledger must be within ledgerTolerance of the rate without.
const (
	ledgerQuota     = 30 // Cognito's default AdminResetUserPassword quota
	ledgerTolerance = 0.02
)

// ledgerCampaign is the campaign of scenario 6's jobs.
const ledgerCampaign = "bench"

// ledgerLatency is DynamoDB's latency as the stand-in serves it: single-
// digit milliseconds for a single-item call, about twice that for a
// transaction.
var ledgerLatency = dynamostub.Config{Latency: 5 * time.Millisecond, TransactLatency: 10 * time.Millisecond}

// ledgerSlow is DynamoDB at twice that: a run at --concurrency 1 then
// needs more time per job than the quota leaves it, and shows the limit.
var ledgerSlow = dynamostub.Config{Latency: 10 * time.Millisecond, TransactLatency: 20 * time.Millisecond}

// ledgerRun is one run with the ledger, compared with a run without it at
// the same concurrency.
type ledgerRun struct {
	concurrency int
	latency     dynamostub.Config
	limit       bool // expected to fall short: shown, not judged
}

// ledger is scenario 6: Q=30/s, resetq without and with --ledger-table,
// for each of the profile's runs.
func (h *harness) ledger(ctx context.Context) {
	h.w.stub.SetQuota(ledgerQuota)
	defer h.w.stub.SetQuota(0)
	dyn, err := dynamostub.Start(ledgerLatency)
	if err != nil {
		h.add(&row{Scenario: "6 ledger", Contender: contResetq, Error: err.Error(), Target: "error"})
		return
	}
	defer dyn.Close()
	front, err := startPoolFront(h.w.stub.URL)
	if err != nil {
		h.add(&row{Scenario: "6 ledger", Contender: contResetq, Error: err.Error(), Target: "error"})
		return
	}
	defer front.Close()
	// Both runs of a pair reach Cognito through the front, which answers
	// DescribeUserPool (the ledger asks how the pool compares names) and
	// passes the rest on to the stand-in: only --ledger-table differs.
	// Jobs without a campaign stay out of the ledger: both runs' jobs
	// carry one.
	h.w.env = []string{"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + front.url, "AWS_ENDPOINT_URL_DYNAMODB=" + dyn.URL}
	h.w.campaign = ledgerCampaign
	defer func() { h.w.env, h.w.campaign = nil, "" }()
	h.note("Scenario 6: the ledger in dynamostub, which answers each call after the latency the row names; Cognito's DescribeUserPool answered by the harness (a case-insensitive pool), in both runs of a pair.")
	bases := map[int]*row{}
	for _, run := range h.p.ledgerRuns {
		if ctx.Err() != nil {
			return
		}
		args := []string{"--rate", strconv.Itoa(ledgerQuota), "--concurrency", strconv.Itoa(run.concurrency)}
		base := bases[run.concurrency]
		if base == nil {
			base = &row{Scenario: "6 ledger", Contender: fmt.Sprintf("resetq --concurrency %d, no ledger", run.concurrency),
				Jobs: h.p.ledgerJobs, Quota: ledgerQuota, Available: ledgerQuota}
			h.runResetq(ctx, base, 1, args...)
			base.Target = "n/a (compared below)"
			h.add(base)
			bases[run.concurrency] = base
		}
		table := "bench-ledger-" + strconv.FormatInt(h.w.seq.Add(1), 10) // a new table: no user done before
		r := &row{Scenario: "6 ledger", Jobs: h.p.ledgerJobs, Quota: ledgerQuota, Available: ledgerQuota, LedgerTable: table,
			Contender: fmt.Sprintf("resetq --concurrency %d, --ledger-table, DynamoDB %v (%v a transaction)",
				run.concurrency, run.latency.Latency, run.latency.TransactLatency)}
		dyn.SetLatency(run.latency)
		dyn.ResetStats()
		h.runResetq(ctx, r, 1, append(args, "--ledger-table", table)...)
		r.ledgerStats(dyn.Stats(), dyn.Items(table))
		if run.limit && r.Error == "" {
			r.Target = "n/a (shows the limit: a job's time exceeds concurrency / rate)"
		}
		r.compareLedger(base)
		h.add(r)
	}
}

// ledgerStats fills r's ledger figures from the stand-in's counters.
func (r *row) ledgerStats(st dynamostub.Stats, items int) {
	r.LedgerCalls, r.LedgerPeak, r.LedgerItems = st.Calls, st.PeakInFlight, items
	if r.Resets > 0 {
		r.LedgerPerReset = float64(st.Total()) / float64(r.Resets)
	}
	if r.Error == "" && r.Resets > 0 && st.Calls["TransactWriteItems"] < r.Resets {
		r.Error = fmt.Sprintf("the ledger recorded %d resets of %d", st.Calls["TransactWriteItems"], r.Resets)
	}
}

// compareLedger judges r (with the ledger) against base (without): the
// rate within ledgerTolerance, both ways.
func (r *row) compareLedger(base *row) {
	if base.Error != "" && r.Error == "" {
		r.Target = "error (the run without the ledger failed)"
		return
	}
	if base.Rate > 0 {
		r.OfNoLedger = r.Rate / base.Rate
	}
	r.judge(func(r *row) []string {
		if base.Rate <= 0 {
			return []string{"no rate without the ledger to compare"}
		}
		if d := r.OfNoLedger - 1; math.Abs(d) > ledgerTolerance {
			return []string{fmt.Sprintf("rate %.3f of the run without the ledger, outside 1 ± %.2f (by %.3f)", r.OfNoLedger, ledgerTolerance, math.Abs(d)-ledgerTolerance)}
		}
		return nil
	})
}

// ledgerCost is the ledger's part of the cost column.
func ledgerCost(r *row) string {
	s := fmt.Sprintf("; DynamoDB %.2f calls/reset, at most %d at once", r.LedgerPerReset, r.LedgerPeak)
	if r.OfNoLedger > 0 {
		s += fmt.Sprintf("; rate %.3f of without", r.OfNoLedger)
	}
	return s
}

// poolFront is a Cognito endpoint that answers DescribeUserPool itself
// (cognitostub does not serve it) and passes every other call on.
type poolFront struct {
	url string
	srv *http.Server
}

// describeUserPool is the front's answer: a pool whose usernames are
// case-insensitive, as new pools are by default.
const describeUserPool = `{"UserPool":{"Id":"` + pool + `","UsernameConfiguration":{"CaseSensitive":false}}}`

func startPoolFront(target string) (*poolFront, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the cognito front: %w", err)
	}
	f := &poolFront{url: "http://" + ln.Addr().String()}
	f.srv = &http.Server{Handler: poolFrontHandler(u), ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(ln)
	return f, nil
}

func poolFrontHandler(target *url.URL) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".DescribeUserPool") {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Write([]byte(describeUserPool))
			return
		}
		rp.ServeHTTP(w, r)
	})
}

func (f *poolFront) Close() error { return f.srv.Close() }
