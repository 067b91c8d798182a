package awsproxy_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/world"
)

// clock is a fake clock for the quota window.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// received is what the stub backend saw of one request.
type received struct {
	host, target, body string
}

// startStub starts a backend that answers 200 {} and reports each request.
func startStub(t *testing.T) (url string, got <-chan received) {
	t.Helper()
	ch := make(chan received, 1000)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- received{r.Host, r.Header.Get("X-Amz-Target"), string(body)}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, "{}")
	}))
	t.Cleanup(backend.Close)
	return backend.URL, ch
}

// startProxy starts a proxy in front of a stub backend.
func startProxy(t *testing.T, opts ...awsproxy.Option) (*awsproxy.Server, <-chan received) {
	t.Helper()
	backend, got := startStub(t)
	srv, err := awsproxy.Start(backend, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv, got
}

// response is the part of an answer the tests look at.
type response struct {
	status    int
	errorType string
	body      string
}

// call sends a Cognito-style call of op, signed for region, with body.
func call(t *testing.T, ctx context.Context, url, region, op, body string) (response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AWSCognitoIdentityProviderService."+op)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20250101/"+region+
		"/cognito-idp/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), string(b)}, nil
}

// mustCall is call for calls that must get an HTTP answer.
func mustCall(t *testing.T, url, region, op, body string) response {
	t.Helper()
	r, err := call(t, t.Context(), url, region, op, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// admitted makes n calls and returns how many were not throttled.
func admitted(t *testing.T, url, region, op string, n int) int {
	t.Helper()
	ok := 0
	for range n {
		switch r := mustCall(t, url, region, op, "{}"); r.status {
		case http.StatusOK:
			ok++
		case http.StatusBadRequest:
			if r.errorType != "TooManyRequestsException" {
				t.Fatalf("unexpected answer %+v", r)
			}
		default:
			t.Fatalf("unexpected answer %+v", r)
		}
	}
	return ok
}

const op = "AdminResetUserPassword"

func TestQuotaSlidingWindow(t *testing.T) {
	clk := newClock()
	srv, _ := startProxy(t, awsproxy.WithNow(clk.Now))
	srv.SetQuota(op, 3)

	steps := []struct {
		advance time.Duration
		calls   int
		want    int
	}{
		{0, 2, 2},                      // t=0: 2 of 3
		{500 * time.Millisecond, 3, 1}, // t=0.5: 1 more fills the window
		{499 * time.Millisecond, 1, 0}, // t=0.999: the calls of t=0 still count
		{time.Millisecond, 3, 2},       // t=1.0: the 2 calls of t=0 aged out
		{499 * time.Millisecond, 1, 0}, // t=1.499: the call of t=0.5 still counts
		{time.Millisecond, 2, 1},       // t=1.5: it aged out
		{10 * time.Second, 5, 3},       // much later: a full window again
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		if got := admitted(t, srv.URL, "us-east-1", op, s.calls); got != s.want {
			t.Fatalf("step %d: admitted %d of %d, want %d", i, got, s.calls, s.want)
		}
	}
	st := srv.Stats()
	if st.Forwarded[op] != 9 || st.Throttled[op] != 8 {
		t.Errorf("stats = %+v, want 9 forwarded, 8 throttled", st)
	}
}

func TestQuotaAnswer(t *testing.T) {
	srv, _ := startProxy(t, awsproxy.WithNow(newClock().Now))
	srv.SetQuota(op, 1)
	mustCall(t, srv.URL, "us-east-1", op, "{}")
	got := mustCall(t, srv.URL, "us-east-1", op, "{}")
	want := response{400, "TooManyRequestsException", `{"__type":"TooManyRequestsException","message":"Rate exceeded"}`}
	if got != want {
		t.Errorf("throttled answer = %+v, want %+v", got, want)
	}
}

func TestQuotaPerRegionAndOperation(t *testing.T) {
	srv, _ := startProxy(t, awsproxy.WithNow(newClock().Now))
	srv.SetQuota(op, 2)
	if got := admitted(t, srv.URL, "us-east-1", op, 4); got != 2 {
		t.Errorf("us-east-1: admitted %d, want 2", got)
	}
	if got := admitted(t, srv.URL, "eu-west-1", op, 4); got != 2 {
		t.Errorf("eu-west-1: admitted %d, want 2", got)
	}
	if got := admitted(t, srv.URL, "us-east-1", "AdminGetUser", 4); got != 4 {
		t.Errorf("operation without quota: admitted %d, want 4", got)
	}
	srv.SetQuota(op, 0)
	if got := admitted(t, srv.URL, "us-east-1", op, 4); got != 4 {
		t.Errorf("after removing the quota: admitted %d, want 4", got)
	}
}

func TestQuotaConcurrent(t *testing.T) {
	srv, _ := startProxy(t, awsproxy.WithNow(newClock().Now))
	srv.SetQuota(op, 7)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := call(t, t.Context(), srv.URL, "us-east-1", op, "{}"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := srv.Stats(); st.Forwarded[op] != 7 || st.Throttled[op] != 43 {
		t.Errorf("stats = %+v, want 7 forwarded, 43 throttled", st)
	}
}

// TestQuotaModels: the same calls under the calendar-second model and a
// token bucket (the clock starts on a whole second).
func TestQuotaModels(t *testing.T) {
	for _, tt := range []struct {
		model string
		burst int
		want  []int // admitted of 3 calls at t=0, 0.9, 1.0, 1.5 s
	}{
		{world.Sliding, 0, []int{2, 0, 2, 0}},
		{world.Second, 0, []int{2, 0, 2, 0}},
		{world.Bucket, 3, []int{3, 1, 1, 1}},
	} {
		clk := newClock()
		srv, _ := startProxy(t, awsproxy.WithNow(clk.Now))
		if err := srv.SetQuotaModel(op, tt.model, 2, tt.burst); err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, d := range []time.Duration{0, 900 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond} {
			clk.Advance(d)
			got = append(got, admitted(t, srv.URL, "us-east-1", op, 3))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: admitted %v of 3 calls at 0, 0.9, 1.0, 1.5 s, want %v", tt.model, got, tt.want)
		}
	}
	srv, _ := startProxy(t)
	if err := srv.SetQuotaModel(op, "leaky", 2, 0); err == nil {
		t.Error("an unknown model: no error")
	}
}

func TestForwardsUnchanged(t *testing.T) {
	srv, got := startProxy(t)
	body := `{"UserPoolId":"us-east-1_abc","Username":"bob"}`
	if r := mustCall(t, srv.URL, "us-east-1", op, body); r.status != 200 || r.body != "{}" {
		t.Fatalf("answer = %+v, want the backend's", r)
	}
	want := received{strings.TrimPrefix(srv.URL, "http://"), "AWSCognitoIdentityProviderService." + op, body}
	if r := <-got; r != want {
		t.Errorf("backend got %+v, want %+v", r, want)
	}
}

func TestFaultError(t *testing.T) {
	srv, got := startProxy(t)
	srv.AddFault(awsproxy.Fault{Operation: op, ErrorCode: "InternalErrorException", Message: "boom", Status: 500})
	r := mustCall(t, srv.URL, "us-east-1", op, "{}")
	want := response{500, "InternalErrorException", `{"__type":"InternalErrorException","message":"boom"}`}
	if r != want {
		t.Errorf("answer = %+v, want %+v", r, want)
	}
	if r := mustCall(t, srv.URL, "us-east-1", "AdminGetUser", "{}"); r.status != 200 {
		t.Errorf("other operation: status %d, want 200", r.status)
	}
	if r := <-got; !strings.HasSuffix(r.target, ".AdminGetUser") {
		t.Errorf("backend got %q, want only AdminGetUser", r.target)
	}
	st := srv.Stats()
	if st.Faulted[op] != 1 || st.Forwarded[op] != 0 || st.Forwarded["AdminGetUser"] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFaultCountAndBody(t *testing.T) {
	srv, _ := startProxy(t)
	srv.AddFault(awsproxy.Fault{BodyContains: `"Username":"bob"`, Count: 2, ErrorCode: "LimitExceededException"})
	statuses := func(body string, n int) []int {
		var s []int
		for range n {
			s = append(s, mustCall(t, srv.URL, "us-east-1", op, body).status)
		}
		return s
	}
	if got := statuses(`{"Username":"alice"}`, 2); got[0] != 200 || got[1] != 200 {
		t.Errorf("alice: %v, want all 200", got)
	}
	if got := statuses(`{"Username":"bob"}`, 3); got[0] != 400 || got[1] != 400 || got[2] != 200 {
		t.Errorf("bob: %v, want 400 400 200", got)
	}
}

func TestFaultOrderRemoveClear(t *testing.T) {
	srv, _ := startProxy(t)
	first := srv.AddFault(awsproxy.Fault{Operation: op, ErrorCode: "First"})
	srv.AddFault(awsproxy.Fault{ErrorCode: "Second"})
	check := func(want string) {
		t.Helper()
		if r := mustCall(t, srv.URL, "us-east-1", op, "{}"); r.errorType != want {
			t.Errorf("error type %q, want %q", r.errorType, want)
		}
	}
	check("First")
	srv.RemoveFault(first)
	check("Second")
	srv.RemoveFault(12345) // unknown ids are ignored
	srv.ClearFaults()
	check("")
}

func TestFaultShareIsSeeded(t *testing.T) {
	run := func(seed uint64) []int {
		srv, _ := startProxy(t, awsproxy.WithSeed(seed))
		srv.AddFault(awsproxy.Fault{Share: 0.3, ErrorCode: "InternalErrorException"})
		var statuses []int
		for range 200 {
			statuses = append(statuses, mustCall(t, srv.URL, "us-east-1", op, "{}").status)
		}
		if f := srv.Stats().Faulted[op]; f < 40 || f > 80 {
			t.Errorf("seed %d: %d of 200 faulted, want about 60", seed, f)
		}
		return statuses
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		t.Error("same seed, different faulted calls")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same faulted calls")
	}
}

func TestFaultDoesNotConsumeQuota(t *testing.T) {
	srv, _ := startProxy(t, awsproxy.WithNow(newClock().Now))
	srv.SetQuota(op, 1)
	srv.AddFault(awsproxy.Fault{Count: 3, ErrorCode: "InternalErrorException", Status: 500})
	for range 3 {
		if r := mustCall(t, srv.URL, "us-east-1", op, "{}"); r.status != 500 {
			t.Fatalf("status %d, want the fault's 500", r.status)
		}
	}
	if got := admitted(t, srv.URL, "us-east-1", op, 2); got != 1 {
		t.Errorf("admitted %d after faults, want the full quota of 1", got)
	}
}

func TestFaultResetConnection(t *testing.T) {
	srv, got := startProxy(t)
	srv.AddFault(awsproxy.Fault{Count: 1, ResetConnection: true})
	if r, err := call(t, t.Context(), srv.URL, "us-east-1", op, "{}"); err == nil {
		t.Fatalf("got answer %+v, want a connection error", r)
	}
	if r := mustCall(t, srv.URL, "us-east-1", op, "{}"); r.status != 200 {
		t.Errorf("after the fault: status %d, want 200", r.status)
	}
	<-got
	select {
	case r := <-got:
		t.Errorf("backend got a second call %+v; the reset one must not be forwarded", r)
	default:
	}
}

func TestFaultDelay(t *testing.T) {
	srv, _ := startProxy(t)
	const delay = 50 * time.Millisecond
	srv.AddFault(awsproxy.Fault{Count: 1, Delay: delay})
	start := time.Now()
	if r := mustCall(t, srv.URL, "us-east-1", op, "{}"); r.status != 200 {
		t.Fatalf("status %d, want 200", r.status)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("delayed call took %v, want at least %v", took, delay)
	}
	st := srv.Stats()
	if st.Faulted[op] != 1 || st.Forwarded[op] != 1 {
		t.Errorf("stats = %+v, want 1 faulted and forwarded", st)
	}
}

func TestFaultDelayCancelled(t *testing.T) {
	backend, _ := startStub(t)
	p, err := awsproxy.New(backend)
	if err != nil {
		t.Fatal(err)
	}
	p.AddFault(awsproxy.Fault{Delay: time.Hour})
	entered, returned := make(chan struct{}), make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		p.ServeHTTP(w, r)
		close(returned)
	}))
	defer front.Close()

	// Give up once the proxy has the request. (Giving up as soon as it is
	// written can close the connection before the server reads it, and
	// then no handler runs at all.)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := call(t, ctx, front.URL, "us-east-1", op, "{}")
		errc <- err
	}()
	<-entered
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Faulted[op] == 0; { // the delay has begun
		if time.Now().After(deadline) {
			t.Fatal("the fault never began")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the delayed call still waits after its client gave up")
	}
	if st := p.Stats(); st.Faulted[op] != 1 || st.Forwarded[op] != 0 {
		t.Errorf("stats = %+v, want 1 faulted, 0 forwarded", st)
	}
}

func TestAddFaultRejectsInvalid(t *testing.T) {
	p, err := awsproxy.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]awsproxy.Fault{
		"no action":      {Operation: op},
		"two actions":    {ErrorCode: "X", ResetConnection: true},
		"drop and delay": {DropResponse: true, Delay: time.Second},
		"bad status":     {ErrorCode: "X", Status: 302},
		"bad share":      {ErrorCode: "X", Share: 1.5},
		"lone status":    {Delay: time.Second, Status: 500},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("AddFault accepted it")
				}
			}()
			p.AddFault(f)
		})
	}
}

func TestNewRejectsBadTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:80", "ftp://x", "http://"} {
		if _, err := awsproxy.New(target); err == nil {
			t.Errorf("New(%q): no error", target)
		}
	}
}

func TestStatsIsACopy(t *testing.T) {
	srv, _ := startProxy(t)
	st := srv.Stats()
	st.Forwarded[op] = 99
	if srv.Stats().Forwarded[op] != 0 {
		t.Error("changing a Stats changed the proxy's counters")
	}
}
