package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/testenv"
)

// ledgerProxy is the fault proxy in front of moto's DynamoDB, where the
// worker keeps its campaign ledger (--ledger-table). Its awsproxy.Proxy
// takes the faults and counts the calls; every DynamoDB call, as the
// worker got its answer (faulted ones included, which an awsproxy observer
// never sees), goes to the timeline. Calls of other services (CloudWatch,
// SQS without an SQS proxy) pass through a second proxy that has no faults.
//
// DynamoDB calls reach moto one at a time: moto's conditional writes are a
// check and then a write, and a failed transaction restores a copy of the
// table that undoes what other threads wrote meanwhile (docs/ledger.md,
// "Testing against moto"); DynamoDB serializes an item's writes and
// isolates transactions, so the suite tests the worker, not moto. The
// ledger scenarios therefore install no Delay fault here: it would hold
// every other call.
type ledgerProxy struct {
	*awsproxy.Proxy
	URL string // http://127.0.0.1:PORT

	tl     *timeline
	other  *awsproxy.Proxy
	serial sync.Mutex
	// confirming are the users whose claim the table granted and whose
	// confirming read has not come yet; outage, the faults startOutage
	// waits to install, and their ids once installed (guarded by serial).
	confirming map[string]bool
	outage     []awsproxy.Fault
	installed  chan []int
}

// startLedgerProxy serves a ledgerProxy in front of e's moto until the test
// ends.
func startLedgerProxy(t *testing.T, e *testenv.Env, tl *timeline, opts ...awsproxy.Option) *ledgerProxy {
	t.Helper()
	ddb, err := awsproxy.New(e.Moto.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	other, err := awsproxy.New(e.Moto.URL)
	if err != nil {
		t.Fatal(err)
	}
	lp := &ledgerProxy{Proxy: ddb, tl: tl, other: other, confirming: map[string]bool{}}
	srv := httptest.NewServer(lp)
	t.Cleanup(func() { srv.Close(); ddb.Close(); other.Close() })
	lp.URL = srv.URL
	return lp
}

// env is e with the worker's DynamoDB behind lp. testenv's ChildEnv points
// AWS_ENDPOINT_URL_DYNAMODB (and CloudWatch's, and SQS's when e has no SQS
// proxy) at e.Moto.URL: the copy names lp there, which passes the other
// services' calls on to moto untouched.
func (lp *ledgerProxy) env(e *testenv.Env) *testenv.Env {
	le := *e
	le.Moto = &moto.Server{URL: lp.URL}
	return &le
}

func (lp *ledgerProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	if !strings.HasPrefix(target, "DynamoDB_") {
		lp.other.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "chaos: read DynamoDB request: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	a := &heldAnswer{w: w, header: http.Header{}}
	lp.forward(a, r, target[strings.LastIndexByte(target, '.')+1:], body)
	a.send()
}

// forward passes a DynamoDB call on, one at a time, and logs it before the
// caller can read the answer: the timeline's order is the order in which
// the worker learnt things. A caller killed while moto's answer is copied
// makes the reverse proxy panic (http.ErrAbortHandler): the call is then
// not logged, and the next one goes.
func (lp *ledgerProxy) forward(a *heldAnswer, r *http.Request, op string, body []byte) {
	lp.serial.Lock()
	defer lp.serial.Unlock()
	lp.Proxy.ServeHTTP(a, r)
	ev := lp.tl.ledgerCall(op, body, a)
	switch {
	case ev.call == "claim" && ev.status == http.StatusOK:
		lp.confirming[ev.user] = true
	case ev.call == "read":
		delete(lp.confirming, ev.user)
	}
	if lp.outage != nil && len(lp.confirming) == 0 {
		lp.install()
	}
}

// install adds the waiting outage's faults; the caller holds serial.
func (lp *ledgerProxy) install() {
	ids := make([]int, len(lp.outage))
	for i, f := range lp.outage {
		ids[i] = lp.AddFault(f)
	}
	lp.outage = nil
	lp.installed <- ids
}

// startOutage installs faults between two DynamoDB calls, and not between
// a claim the table granted and the read that confirms it (unless no such
// moment comes within a few seconds): an outage starting there leaves a
// claim its job does not know it holds, which a scenario makes happen on
// purpose (a claim's answer lost), not by the luck of timing. It returns
// the faults' ids.
func (lp *ledgerProxy) startOutage(faults ...awsproxy.Fault) []int {
	lp.serial.Lock()
	lp.outage, lp.installed = faults, make(chan []int, 1)
	if len(lp.confirming) == 0 {
		lp.install()
	}
	installed := lp.installed
	lp.serial.Unlock()
	select {
	case ids := <-installed:
		return ids
	case <-time.After(5 * time.Second):
	}
	lp.serial.Lock()
	if lp.outage != nil {
		lp.install()
	}
	lp.serial.Unlock()
	return <-installed
}

// heldAnswer keeps the proxy's answer until the call is logged. A hijacked
// connection (a reset, a lost answer) gets no answer: status 0.
type heldAnswer struct {
	w        http.ResponseWriter
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (a *heldAnswer) Header() http.Header { return a.header }
func (a *heldAnswer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}
func (a *heldAnswer) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.body.Write(b)
}

// Flush does nothing: the answer goes once logged.
func (a *heldAnswer) Flush() {}

// Hijack hands the connection over (awsproxy resets it).
func (a *heldAnswer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	a.hijacked = true
	return http.NewResponseController(a.w).Hijack()
}

// answered is the status the caller gets: 0 when its connection was taken.
func (a *heldAnswer) answered() int {
	if a.hijacked {
		return 0
	}
	return a.status
}

func (a *heldAnswer) send() {
	if a.answered() == 0 {
		return // taken, or the caller went away before an answer
	}
	for k, v := range a.header {
		a.w.Header()[k] = v
	}
	a.w.WriteHeader(a.answered())
	a.w.Write(a.body.Bytes())
}

// event is one call of the ledger or Cognito, in the order the worker
// learnt its answer.
type event struct {
	at     time.Time
	call   string // claim, read (a GetItem of a row), outcome (a transaction), update (another UpdateItem), reset, or the operation
	user   string // pool/user; "" for calls about no one row
	holder string // claim: the holder asking; read: the holder the row names
	heldBy string // a refused claim: the holder the row names
	status int    // the HTTP status the caller got; 0: none
	code   string // the error code of a failed call
}

// timeline is every ledger call and every reset Cognito saw, in order. It
// is safe for concurrent use.
type timeline struct {
	mu sync.Mutex
	ev []event
}

func (tl *timeline) add(ev ...event) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, e := range ev {
		e.at = time.Now()
		tl.ev = append(tl.ev, e)
	}
}

// events is a copy of the timeline so far.
func (tl *timeline) events() []event {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]event(nil), tl.ev...)
}

// cognito is an observer for watchResets: each AdminResetUserPassword
// that reached Cognito, with its answer.
func (tl *timeline) cognito(c awsproxy.Call) {
	if c.Operation != "AdminResetUserPassword" {
		return
	}
	var req struct{ UserPoolId, Username string }
	_ = json.Unmarshal(c.Body, &req)
	tl.add(event{call: "reset", user: req.UserPoolId + "/" + req.Username, status: c.Status})
}

type attr struct{ S string }

// ddbRequest is the part of DynamoDB's requests the timeline reads.
type ddbRequest struct {
	Key                       map[string]attr
	UpdateExpression          string
	ExpressionAttributeNames  map[string]string
	ExpressionAttributeValues map[string]attr
	TransactItems             []struct {
		Update *struct{ Key map[string]attr }
	}
}

// ledgerCall logs one DynamoDB call and its answer, and returns it (a
// transaction's first row).
func (tl *timeline) ledgerCall(op string, body []byte, a *heldAnswer) event {
	var req ddbRequest
	_ = json.Unmarshal(body, &req)
	ev := event{call: op, user: rowUser(req.Key), status: a.answered()}
	if ev.status != http.StatusOK && ev.status != 0 {
		ev.code = errorCode(a)
	}
	switch op {
	case "UpdateItem":
		ev.call = "update"
		if claimed := placeholder(req.ExpressionAttributeNames, "claimed_at"); claimed != "" {
			ev.call = "claim"
			ev.holder = req.ExpressionAttributeValues[assigned(req.UpdateExpression, placeholder(req.ExpressionAttributeNames, "holder"))].S
			if ev.code == "ConditionalCheckFailedException" {
				var out struct{ Item map[string]attr }
				_ = json.Unmarshal(a.body.Bytes(), &out)
				ev.heldBy = out.Item["holder"].S
			}
		}
	case "GetItem":
		ev.call = "read"
		if ev.status == http.StatusOK {
			var out struct{ Item map[string]attr }
			_ = json.Unmarshal(a.body.Bytes(), &out)
			ev.holder = out.Item["holder"].S
		}
	case "TransactWriteItems":
		var evs []event
		for _, it := range req.TransactItems {
			if it.Update != nil {
				if u := rowUser(it.Update.Key); u != "" {
					evs = append(evs, event{call: "outcome", user: u, status: ev.status, code: ev.code})
				}
			}
		}
		tl.add(evs...)
		if len(evs) > 0 {
			return evs[0]
		}
		return ev
	}
	tl.add(ev)
	return ev
}

// rowUser is the pool/user of a ledger row's key (sk = POOL#USER), or ""
// for a counter item or the campaign index.
func rowUser(key map[string]attr) string {
	pool, user, ok := strings.Cut(key["sk"].S, "#")
	if !ok {
		return ""
	}
	return pool + "/" + user
}

// placeholder is the #name standing for attribute in names.
func placeholder(names map[string]string, attribute string) string {
	for p, a := range names {
		if a == attribute {
			return p
		}
	}
	return ""
}

// assigned is the :value set to the attribute named by p in an update
// expression ("SET #a1 = :v2, ...").
func assigned(expr, p string) string {
	if p == "" {
		return ""
	}
	m := regexp.MustCompile(regexp.QuoteMeta(p) + ` = (:v\d+)`).FindStringSubmatch(expr)
	if m == nil {
		return ""
	}
	return m[1]
}

// errorCode is an answer's AWS error code.
func errorCode(a *heldAnswer) string {
	if c := a.header.Get("X-Amzn-ErrorType"); c != "" {
		return c
	}
	var out struct {
		Type string `json:"__type"`
	}
	_ = json.Unmarshal(a.body.Bytes(), &out)
	return out.Type[strings.LastIndexByte(out.Type, '#')+1:]
}

// claim states of one holder on one user.
const (
	asked   = "asked"   // the conditional write answered 200, not yet confirmed
	granted = "granted" // and a read named the holder: the worker holds the claim
	refused = "refused" // held by another, or done
	failed  = "failed"  // no answer, or an error: the worker does not hold it
)

// claimAudit is what the timeline says of the claims.
type claimAudit struct {
	Claims, Granted, Refused, Failed int      // claim calls (each SDK attempt) by result; Granted counts confirmed claims
	Resets                           int      // resets that reached Cognito
	Unclaimed                        []string // resets whose user no holder held a granted claim on, when they went
	// Grants are, per user, the granted claims in order: holder and time.
	Grants map[string][]grant
	// OwnRefusals are claims refused because another message of the same
	// job held the user (a claim whose answer its job never got), and
	// OwnWaits how long each such job waited for its user, from the first
	// refusal to its grant.
	OwnRefusals int
	OwnWaits    []time.Duration
}

type grant struct {
	holder string
	at     time.Time
}

// audit walks the timeline: each reset that reached Cognito (answered or
// not) must come after a claim granted to some holder of its user, with no
// failed claim call of that holder since.
func (tl *timeline) audit() claimAudit {
	a := claimAudit{Grants: map[string][]grant{}}
	state := map[string]map[string]string{} // user -> holder -> state
	ownSince := map[string]time.Time{}      // user -> first refusal by its own job's claim
	for _, ev := range tl.events() {
		hs := state[ev.user]
		if hs == nil {
			hs = map[string]string{}
			state[ev.user] = hs
		}
		switch ev.call {
		case "claim":
			a.Claims++
			switch {
			case ev.status == http.StatusOK:
				hs[ev.holder] = asked
			case ev.code == "ConditionalCheckFailedException":
				a.Refused++
				hs[ev.holder] = refused
				if ev.heldBy != ev.holder && jobOf(ev.heldBy) == jobOf(ev.holder) {
					a.OwnRefusals++
					if ownSince[ev.user].IsZero() {
						ownSince[ev.user] = ev.at
					}
				}
			default:
				a.Failed++
				hs[ev.holder] = failed
			}
		case "read":
			for h, s := range hs {
				if s != asked {
					continue
				}
				switch {
				case ev.status != http.StatusOK:
					hs[h] = failed
				case ev.holder == h:
					hs[h] = granted
					a.Granted++
					a.Grants[ev.user] = append(a.Grants[ev.user], grant{h, ev.at})
					if since := ownSince[ev.user]; !since.IsZero() {
						a.OwnWaits = append(a.OwnWaits, ev.at.Sub(since))
						delete(ownSince, ev.user)
					}
				default:
					hs[h] = refused
				}
			}
		case "reset":
			a.Resets++
			held := false
			for _, s := range hs {
				held = held || s == granted
			}
			if !held {
				a.Unclaimed = append(a.Unclaimed, fmt.Sprintf("%s at %s (claims %v)", ev.user, ev.at.Format("15:04:05.000"), hs))
			}
		}
	}
	return a
}

// jobOf is the job of a claim's holder: the worker names a claim by the
// job's ID, its message's, and the delivery's receive count and receipt
// digest ("JOB/MESSAGE/COUNT/DIGEST").
func jobOf(holder string) string {
	job, _, _ := strings.Cut(holder, "/")
	return job
}

// messageOf is the job and message of a claim's holder ("JOB/MESSAGE"):
// one message's deliveries share it.
func messageOf(holder string) string {
	parts := strings.Split(holder, "/")
	if len(parts) < 4 {
		return holder
	}
	return strings.Join(parts[:len(parts)-2], "/")
}

// heldNow is, per user, the holder of a granted claim with no outcome
// recorded since: the claims a worker killed now leaves behind.
func (tl *timeline) heldNow() map[string]string {
	out := map[string]string{}
	a := map[string]map[string]string{}
	for _, ev := range tl.events() {
		switch {
		case ev.call == "claim" && ev.status == http.StatusOK:
			if a[ev.user] == nil {
				a[ev.user] = map[string]string{}
			}
			a[ev.user][ev.holder] = asked
		case ev.call == "read" && ev.status == http.StatusOK && a[ev.user][ev.holder] == asked:
			out[ev.user] = ev.holder
			delete(a[ev.user], ev.holder)
		case ev.call == "outcome" && ev.status == http.StatusOK:
			delete(out, ev.user)
		}
	}
	return out
}

// refusedBy counts the claims refused because one of holders held the user.
func (tl *timeline) refusedBy(holders map[string]bool) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, ev := range tl.ev {
		if ev.call == "claim" && ev.code == "ConditionalCheckFailedException" && holders[ev.heldBy] {
			n++
		}
	}
	return n
}

// ledgerCalls counts the DynamoDB calls between from and to, by result:
// ok, or the error code ("no_answer" for a reset connection).
func (tl *timeline) ledgerCalls(from, to time.Time) map[string]int {
	out := map[string]int{}
	for _, ev := range tl.events() {
		if ev.call == "reset" || ev.at.Before(from) || ev.at.After(to) {
			continue
		}
		switch {
		case ev.status == http.StatusOK:
			out["ok"]++
		case ev.status == 0:
			out["no_answer"]++
		default:
			out[ev.code]++
		}
	}
	return out
}

// resetsBetween counts the resets that reached Cognito between from and to.
func (tl *timeline) resetsBetween(from, to time.Time) int {
	n := 0
	for _, ev := range tl.events() {
		if ev.call == "reset" && !ev.at.Before(from) && !ev.at.After(to) {
			n++
		}
	}
	return n
}
