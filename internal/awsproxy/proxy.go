// Package awsproxy is a reverse proxy for AWS JSON APIs (Cognito user pools,
// SQS over JSON 1.0) that enforces per-Region, per-operation quotas and
// injects faults. Put it in front of moto_server and point an SDK client at
// it (for example with AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER) to see
// TooManyRequestsException, service errors, slow calls and dropped
// connections the way the SDK would see them from AWS.
//
// The operation is the part after the last "." of the X-Amz-Target header
// ("AWSCognitoIdentityProviderService.AdminResetUserPassword",
// "AmazonSQS.DeleteMessageBatch"); the Region comes from the credential
// scope of the SigV4 Authorization header. Requests without them (such as
// moto's own /moto-api) have operation and Region "" and pass through.
//
// For each request the proxy first looks for a matching Fault, then applies
// the operation's quota, then forwards the request unchanged.
package awsproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resetq/resetq/internal/world"
)

// maxBody bounds the request bodies the proxy reads (SQS allows 1 MiB of
// payload per call, plus JSON framing).
const maxBody = 8 << 20

// Proxy is an http.Handler that forwards AWS JSON API calls to a target,
// subject to quotas and faults. It is safe for concurrent use.
type Proxy struct {
	target    *url.URL
	transport *http.Transport
	rp        *httputil.ReverseProxy
	now       func() time.Time
	requestID atomic.Uint64

	mu      sync.Mutex
	rng     *rand.Rand
	quotas  map[string]quotaSpec     // by operation
	windows map[quotaKey]world.Quota // each Region's, made at its first call
	faults  []*faultState            // in the order added
	removed map[int]int              // affected counts of removed faults, by id
	nextID  int
	stats   Stats
	observe func(Call)
}

type quotaKey struct{ region, operation string }

// quotaSpec is the arguments of world.NewQuota.
type quotaSpec struct {
	model     string
	perSecond float64
	burst     int
}

type faultState struct {
	id int
	Fault
	affected int
}

// Option configures a Proxy.
type Option func(*Proxy)

// WithNow sets the clock of the quota window (default time.Now). Fault
// delays use real time.
func WithNow(now func() time.Time) Option {
	return func(p *Proxy) { p.now = now }
}

// WithSeed seeds the random source that decides which calls a Fault with a
// Share below 1 affects (default seed 1), so tests are deterministic.
func WithSeed(seed uint64) Option {
	return func(p *Proxy) { p.rng = rand.New(rand.NewPCG(seed, seed)) }
}

// New returns a Proxy that forwards to target, e.g. a moto URL
// "http://127.0.0.1:PORT".
func New(target string, opts ...Option) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse proxy target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("proxy target %q: want http(s)://host[:port]", target)
	}
	p := &Proxy{
		target:    u,
		transport: http.DefaultTransport.(*http.Transport).Clone(),
		now:       time.Now,
		rng:       rand.New(rand.NewPCG(1, 1)),
		quotas:    map[string]quotaSpec{},
		windows:   map[quotaKey]world.Quota{},
		removed:   map[int]int{},
		stats:     newStats(),
	}
	for _, opt := range opts {
		opt(p)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.target)
			pr.Out.Host = pr.In.Host // keep the Host the client signed
		},
		Transport:    p.transport,
		ErrorHandler: p.forwardError,
		ModifyResponse: func(res *http.Response) error {
			p.observed(res.Request.Context(), res.StatusCode)
			return nil
		},
	}
	return p, nil
}

// Call is one call the proxy forwarded to the target, as an observer
// (SetObserver) sees it once the target has answered or failed.
type Call struct {
	Operation string // e.g. "AdminResetUserPassword"
	Region    string
	Body      []byte // the request body as forwarded
	// Status is the target's HTTP status, or 0 when no answer came (the
	// target failed or the client gave up first): such a call may or may
	// not have taken effect.
	Status int
}

// SetObserver has observe called once for every call forwarded to the
// target, including delayed calls, the forwarded part of a FailEntries
// call and DropResponse calls (whose answer the target did send). observe
// runs on the request's goroutine and must be safe for concurrent use; nil
// turns observing off. It lets a test count what really reached the
// service, e.g. the successful resets per user.
func (p *Proxy) SetObserver(observe func(Call)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observe = observe
}

// Seed reseeds the random source of Fault shares, like WithSeed.
func (p *Proxy) Seed(seed uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rng = rand.New(rand.NewPCG(seed, seed))
}

type callKey struct{}

// pendingCall is a forwarded call not yet reported to the observer.
type pendingCall struct {
	once    sync.Once
	observe func(Call)
	call    Call
}

// track attaches an observed call to r's context when an observer is set.
func (p *Proxy) track(r *http.Request, op string, body []byte) *http.Request {
	p.mu.Lock()
	observe := p.observe
	p.mu.Unlock()
	if observe == nil {
		return r
	}
	pc := &pendingCall{observe: observe, call: Call{Operation: op, Region: region(r), Body: body}}
	return r.WithContext(context.WithValue(r.Context(), callKey{}, pc))
}

// observed reports the call tracked in ctx, once, with the target's status.
func (p *Proxy) observed(ctx context.Context, status int) {
	pc, ok := ctx.Value(callKey{}).(*pendingCall)
	if !ok {
		return
	}
	pc.once.Do(func() {
		c := pc.call
		c.Status = status
		pc.observe(c)
	})
}

// SetQuota admits at most perSecond calls of operation per Region in any
// one-second window (the window slides: a call admitted at t counts until
// t+1s). Calls over the quota get HTTP 400 TooManyRequestsException "Rate
// exceeded" and do not count. 0 removes the quota.
func (p *Proxy) SetQuota(operation string, perSecond int) {
	if perSecond <= 0 {
		p.RemoveQuota(operation)
		return
	}
	if err := p.SetQuotaModel(operation, world.Sliding, float64(perSecond), 0); err != nil {
		panic(err) // a sliding window of at least 1/s is always valid
	}
}

// SetQuotaModel sets the quota of operation per Region to one of
// world.Models, empty: no call counts from before. Throttled calls are
// answered as under SetQuota.
func (p *Proxy) SetQuotaModel(operation, model string, perSecond float64, burst int) error {
	if _, err := world.NewQuota(model, perSecond, burst); err != nil {
		return fmt.Errorf("quota of %s: %w", operation, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropWindows(operation)
	p.quotas[operation] = quotaSpec{model, perSecond, burst}
	return nil
}

// RemoveQuota lets every call of operation through.
func (p *Proxy) RemoveQuota(operation string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.quotas, operation)
	p.dropWindows(operation)
}

func (p *Proxy) dropWindows(operation string) {
	for k := range p.windows {
		if k.operation == operation {
			delete(p.windows, k)
		}
	}
}

// Stats counts calls by operation.
type Stats struct {
	// Forwarded counts calls sent to the target, including delayed ones.
	Forwarded map[string]int
	// Throttled counts calls answered TooManyRequestsException by a quota.
	Throttled map[string]int
	// Faulted counts calls a Fault affected, including delayed ones.
	Faulted map[string]int
}

func newStats() Stats {
	return Stats{Forwarded: map[string]int{}, Throttled: map[string]int{}, Faulted: map[string]int{}}
}

// Stats returns a copy of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Forwarded: maps.Clone(p.stats.Forwarded),
		Throttled: maps.Clone(p.stats.Throttled),
		Faulted:   maps.Clone(p.stats.Faulted),
	}
}

// ServeHTTP applies faults and quotas, then forwards the request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "awsproxy: read request body: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil

	op := operation(r)
	if f, ok := p.matchFault(op, body); ok {
		if f.FailEntries > 0 {
			p.failEntries(w, r, op, body, f)
			return
		}
		if f.DropResponse {
			p.dropResponse(w, r, op, body)
			return
		}
		if !p.applyFault(w, r, op, f) {
			return
		}
		// A delay fault forwards the call, which then meets the quota
		// like any other call reaching the service.
	}
	if !p.admit(region(r), op) {
		writeError(w, r, http.StatusBadRequest, "TooManyRequestsException", "Rate exceeded", p.nextRequestID())
		return
	}
	p.count(p.stats.Forwarded, op)
	p.rp.ServeHTTP(w, p.track(r, op, body))
}

// dropResponse forwards the call under its quota, then resets the client's
// connection instead of answering.
func (p *Proxy) dropResponse(w http.ResponseWriter, r *http.Request, op string, body []byte) {
	if !p.admit(region(r), op) {
		writeError(w, r, http.StatusBadRequest, "TooManyRequestsException", "Rate exceeded", p.nextRequestID())
		return
	}
	p.count(p.stats.Forwarded, op)
	p.rp.ServeHTTP(&discardWriter{header: http.Header{}}, p.track(r, op, body))
	resetConnection(w)
}

// discardWriter is a ResponseWriter that throws the answer away.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// applyFault carries out f and reports whether the call is still to be
// forwarded (after a delay).
func (p *Proxy) applyFault(w http.ResponseWriter, r *http.Request, op string, f Fault) (forward bool) {
	switch {
	case f.ResetConnection:
		resetConnection(w)
		return false
	case f.Delay > 0:
		timer := time.NewTimer(f.Delay)
		defer timer.Stop()
		select {
		case <-timer.C:
			return true
		case <-r.Context().Done():
			return false // the client gave up; nobody reads an answer
		}
	default:
		status := f.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		msg := f.Message
		if msg == "" {
			msg = "injected by awsproxy"
		}
		writeError(w, r, status, f.ErrorCode, msg, p.nextRequestID())
		return false
	}
}

// admit records a call of op in region if its quota allows it.
func (p *Proxy) admit(region, op string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	spec, ok := p.quotas[op]
	if !ok {
		return true
	}
	key := quotaKey{region, op}
	q := p.windows[key]
	if q == nil {
		q, _ = world.NewQuota(spec.model, spec.perSecond, spec.burst) // checked by SetQuotaModel
		p.windows[key] = q
	}
	if !q.Admit(p.now()) {
		p.stats.Throttled[op]++
		return false
	}
	return true
}

func (p *Proxy) count(m map[string]int, op string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m[op]++
}

func (p *Proxy) nextRequestID() string {
	return "awsproxy-" + strconv.FormatUint(p.requestID.Add(1), 10)
}

// forwardError answers a call the target did not answer, as a gateway would.
func (p *Proxy) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	p.observed(r.Context(), 0)
	if r.Context().Err() != nil {
		return // the client is gone
	}
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprintf(w, "awsproxy: forward to %s: %v\n", p.target, err)
}

// Close releases the proxy's idle connections to the target.
func (p *Proxy) Close() {
	p.transport.CloseIdleConnections()
}

// operation returns the operation named by the X-Amz-Target header.
func operation(r *http.Request) string {
	target := r.Header.Get("X-Amz-Target")
	return target[strings.LastIndexByte(target, '.')+1:]
}

// region returns the Region of a SigV4 Authorization header:
// "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/cognito-idp/aws4_request, ...".
func region(r *http.Request) string {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[2]
}

// writeError answers like an AWS JSON service: the code in the
// x-amzn-ErrorType header and in the body's __type.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg, requestID string) {
	contentType := r.Header.Get("Content-Type")
	if !strings.HasPrefix(contentType, "application/x-amz-json") {
		contentType = "application/x-amz-json-1.1"
	}
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{code, msg})
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Amzn-ErrorType", code)
	h.Set("X-Amzn-RequestId", requestID)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// resetConnection drops the client's TCP connection without an answer,
// with a RST where possible.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Cannot hijack (e.g. HTTP/2): abort the response instead.
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0) // close with RST rather than FIN
	}
	conn.Close()
}
