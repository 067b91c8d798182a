package cognitostub

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/world"
)

func TestQuotaModel(t *testing.T) {
	t.Parallel()
	var now time.Time
	s := New(Config{Quota: 2, Model: world.Second, Now: func() time.Time { return now }})
	var got []bool
	for _, ms := range []int{0, 900, 999, 1000, 1001, 1002} {
		now = t0.Add(time.Duration(ms) * time.Millisecond) // t0 is on a whole second
		got = append(got, s.Admit(Worker))
	}
	if want := []bool{true, true, false, true, true, false}; !slices.Equal(got, want) {
		t.Errorf("calendar second of 2: admitted %v, want %v", got, want)
	}
	if err := s.SetQuotaModel("leaky", 2, 0); err == nil {
		t.Error("an unknown model: no error")
	}
}

// TestSetQuotaModelCountsTheLastSecond: a new quota counts the calls of
// the last second again, and only those.
func TestSetQuotaModelCountsTheLastSecond(t *testing.T) {
	t.Parallel()
	now := t0
	s := New(Config{Quota: 5, Now: func() time.Time { return now }})
	s.Admit(Worker)
	now = now.Add(600 * time.Millisecond)
	s.Admit(Background)
	s.Admit(Background)
	now = now.Add(600 * time.Millisecond) // the first call is over a second old
	if err := s.SetQuotaModel(world.Bucket, 1, 3); err != nil {
		t.Fatal(err)
	}
	if !s.Admit(Worker) || s.Admit(Worker) {
		t.Error("a bucket of 3 after 2 calls in the last second: want one more call, then a throttle")
	}
}

// listUsers is a world.Users of fixed calls that records its resets.
type listUsers struct {
	mu     sync.Mutex
	calls  []time.Time
	resets []time.Time
	peeked chan struct{} // closed at the first Peek
	once   sync.Once
}

func (u *listUsers) Peek() (time.Time, bool) {
	u.once.Do(func() { close(u.peeked) })
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.calls) == 0 {
		return time.Time{}, false
	}
	return u.calls[0], true
}

func (u *listUsers) Pop() (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.calls) == 0 {
		return time.Time{}, false
	}
	t := u.calls[0]
	u.calls = u.calls[1:]
	return t, true
}

func (u *listUsers) OnReset(at time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.resets = append(u.resets, at)
}

func TestRunUsersSendsEachCallWhenDue(t *testing.T) {
	t.Parallel()
	now := t0
	s := New(Config{Quota: 3, Now: func() time.Time { return now }})
	u := &listUsers{peeked: make(chan struct{})}
	for _, ms := range []int{0, 250, 500, 750, 1000, 1250} {
		u.calls = append(u.calls, t0.Add(time.Duration(ms)*time.Millisecond))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waited time.Duration
	s.wait = func(_ context.Context, d time.Duration) bool {
		if d > usersPoll {
			t.Errorf("waited %v, more than %v", d, usersPoll)
		}
		if _, ok := u.Peek(); !ok {
			cancel()
			return false
		}
		now = now.Add(d)
		waited += d
		return true
	}
	s.RunUsers(ctx, u)
	if waited != 1250*time.Millisecond {
		t.Errorf("waited %v in all, want 1.25 s: each call when due", waited)
	}
	// 750 ms finds 0, 250 and 500 in the window; 1,000 ms finds 250 and 500.
	if st := s.Stats(); st.Background != (Counts{Calls: 6, Throttles: 1}) || st.Worker != (Counts{}) {
		t.Errorf("background %+v worker %+v, want 6 calls, 1 throttled, and no worker", st.Background, st.Worker)
	}
}

func TestRunUsersHearsOfResets(t *testing.T) {
	t.Parallel()
	now := t0
	s := New(Config{Quota: 1, Now: func() time.Time { return now }})
	u := &listUsers{peeked: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunUsers(ctx, u)
	}()
	<-u.peeked
	for range 2 { // the second is throttled: no reset
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"UserPoolId":"`+pool+`","Username":"alice"}`))
		req.Header.Set("X-Amz-Target", targetPrefix+"AdminResetUserPassword")
		s.ServeHTTP(httptest.NewRecorder(), req)
	}
	cancel()
	<-done
	if !slices.Equal(u.resets, []time.Time{t0}) {
		t.Errorf("users heard of resets at %v, want one at %v", u.resets, t0)
	}
	s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", nil))
	if len(u.resets) != 1 {
		t.Error("users heard of a reset after RunUsers returned")
	}
}

func TestServerUsers(t *testing.T) {
	t.Parallel()
	srv := start(t, Config{})
	u, err := world.NewUsers(world.Even, 1000, time.Now(), 1)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetUsers(u)
	for srv.Stats().Background.Calls == 0 {
		runtime.Gosched() // the first call goes at once
	}
	srv.SetUsers(nil) // stops it and waits for it
	n := srv.Stats().Background.Calls
	if got := srv.Stats().Background.Calls; got != n {
		t.Errorf("users still running after SetUsers(nil): %d then %d calls", n, got)
	}
}
