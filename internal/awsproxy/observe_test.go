package awsproxy_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/resetq/resetq/internal/awsproxy"
)

// observer collects the calls a proxy reports.
type observer struct {
	mu    sync.Mutex
	calls []awsproxy.Call
}

func (o *observer) observe(c awsproxy.Call) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, c)
}

func (o *observer) snapshot() []awsproxy.Call {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls)
}

// TestObserverSeesWhatReachedTheTarget: forwarded and delayed calls are
// reported once with the target's status; calls a fault answered are not.
func TestObserverSeesWhatReachedTheTarget(t *testing.T) {
	srv, _ := startProxy(t)
	var o observer
	srv.SetObserver(o.observe)
	srv.AddFault(awsproxy.Fault{Count: 1, BodyContains: `"error"`, ErrorCode: "InternalErrorException", Status: 500})
	srv.AddFault(awsproxy.Fault{Count: 1, BodyContains: `"reset"`, ResetConnection: true})
	srv.AddFault(awsproxy.Fault{Count: 1, BodyContains: `"slow"`, Delay: 1})
	for _, body := range []string{`{"Username":"ok"}`, `{"Username":"error"}`, `{"Username":"slow"}`} {
		mustCall(t, srv.URL, "eu-west-1", op, body)
	}
	if _, err := call(t, t.Context(), srv.URL, "eu-west-1", op, `{"Username":"reset"}`); err == nil {
		t.Fatal("the reset call got an answer")
	}
	got := o.snapshot()
	want := []string{`{"Username":"ok"}`, `{"Username":"slow"}`}
	if len(got) != len(want) {
		t.Fatalf("observed %+v, want the calls %v", got, want)
	}
	for i, c := range got {
		if string(c.Body) != want[i] || c.Status != 200 || c.Operation != op || c.Region != "eu-west-1" {
			t.Errorf("call %d: %+v %s, want %s answered 200 in eu-west-1", i, c, c.Body, want[i])
		}
	}
}

// TestObserverNoAnswer: a call the target never answered is reported with
// status 0.
func TestObserverNoAnswer(t *testing.T) {
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}))
	t.Cleanup(dead.Close)
	srv, err := awsproxy.Start(dead.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var o observer
	srv.SetObserver(o.observe)
	if r := mustCall(t, srv.URL, "us-east-1", op, "{}"); r.status != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", r.status)
	}
	if got := o.snapshot(); len(got) != 1 || got[0].Status != 0 {
		t.Fatalf("observed %+v, want one call with status 0", got)
	}
}

// TestFaultDropResponse: the call reaches the target, the client gets no
// answer, and the observer sees the target's 200.
func TestFaultDropResponse(t *testing.T) {
	srv, got := startProxy(t)
	var o observer
	srv.SetObserver(o.observe)
	id := srv.AddFault(awsproxy.Fault{Count: 1, DropResponse: true})
	if r, err := call(t, t.Context(), srv.URL, "us-east-1", op, `{"Username":"a"}`); err == nil {
		t.Fatalf("got answer %+v, want a connection error", r)
	}
	if r := <-got; r.body != `{"Username":"a"}` {
		t.Errorf("backend got %+v, want the dropped call", r)
	}
	if c := o.snapshot(); len(c) != 1 || c[0].Status != 200 {
		t.Errorf("observed %+v, want the call answered 200 by the target", c)
	}
	st := srv.Stats()
	if st.Faulted[op] != 1 || st.Forwarded[op] != 1 || srv.Affected(id) != 1 {
		t.Errorf("stats %+v, affected %d; want 1 faulted, forwarded and affected", st, srv.Affected(id))
	}
	if r := mustCall(t, srv.URL, "us-east-1", op, "{}"); r.status != 200 {
		t.Errorf("after the fault: status %d", r.status)
	}
}

// TestAffectedSurvivesRemoval: per-fault counts stay readable after
// RemoveFault and ClearFaults.
func TestAffectedSurvivesRemoval(t *testing.T) {
	srv, _ := startProxy(t)
	a := srv.AddFault(awsproxy.Fault{Count: 2, ErrorCode: "A"})
	b := srv.AddFault(awsproxy.Fault{Count: 1, ErrorCode: "B"})
	for range 4 {
		mustCall(t, srv.URL, "us-east-1", op, "{}")
	}
	srv.RemoveFault(a)
	srv.ClearFaults()
	if srv.Affected(a) != 2 || srv.Affected(b) != 1 || srv.Affected(99) != 0 {
		t.Errorf("affected a=%d b=%d unknown=%d, want 2 1 0", srv.Affected(a), srv.Affected(b), srv.Affected(99))
	}
}

// TestSeedReseeds: Seed gives the same choices as WithSeed.
func TestSeedReseeds(t *testing.T) {
	run := func(srv *awsproxy.Server) []int {
		srv.AddFault(awsproxy.Fault{Share: 0.5, ErrorCode: "X"})
		var out []int
		for range 50 {
			out = append(out, mustCall(t, srv.URL, "us-east-1", op, "{}").status)
		}
		return out
	}
	a, _ := startProxy(t, awsproxy.WithSeed(42))
	b, _ := startProxy(t)
	b.Seed(42)
	if !slices.Equal(run(a), run(b)) {
		t.Error("Seed(42) and WithSeed(42) chose different calls")
	}
}
