package cognitostub

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/smithy-go"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type call struct {
	at   time.Duration // after t0
	src  Source
	want bool // admitted
}

func TestWindow(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name       string
		quota      int
		calls      []call
		worker, bg Counts
	}{
		{"unlimited", 0, []call{{0, Worker, true}, {0, Worker, true}, {0, Background, true}, {1, Worker, true}},
			Counts{3, 0}, Counts{1, 0}},
		{"a call counts until one second after it", 3, []call{
			{0, Worker, true}, {100 * ms, Worker, true}, {200 * ms, Worker, true},
			{300 * ms, Worker, false}, {999 * ms, Worker, false},
			{1000 * ms, Worker, true}, // the call at 0 no longer counts
			{1050 * ms, Worker, false},
			{1100 * ms, Worker, true},
		}, Counts{8, 3}, Counts{}},
		{"throttled calls do not count", 1, []call{
			{0, Worker, true}, {500 * ms, Worker, false}, {900 * ms, Worker, false}, {1000 * ms, Worker, true},
		}, Counts{4, 2}, Counts{}},
		{"worker and background share the window", 2, []call{
			{0, Background, true}, {100 * ms, Worker, true}, {200 * ms, Worker, false}, {300 * ms, Background, false},
			{1000 * ms, Background, true}, {1050 * ms, Worker, false}, {1100 * ms, Worker, true},
		}, Counts{4, 2}, Counts{3, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var now time.Time
			s := New(Config{Quota: tt.quota, Now: func() time.Time { return now }})
			for i, c := range tt.calls {
				now = t0.Add(c.at)
				if got := s.Admit(c.src); got != c.want {
					t.Errorf("call %d at %v: admitted %v, want %v", i, c.at, got, c.want)
				}
			}
			st := s.Stats()
			if st.Worker != tt.worker || st.Background != tt.bg {
				t.Errorf("worker %+v background %+v, want %+v %+v", st.Worker, st.Background, tt.worker, tt.bg)
			}
		})
	}
}

func TestSetQuotaAndReset(t *testing.T) {
	t.Parallel()
	now := t0
	s := New(Config{Quota: 1, Now: func() time.Time { return now }})
	if !s.Admit(Worker) || s.Admit(Worker) {
		t.Fatal("quota 1: want the first call admitted and the second throttled")
	}
	s.SetQuota(0)
	if !s.Admit(Worker) {
		t.Fatal("quota 0 must admit")
	}
	s.SetQuota(3)
	s.Reset()
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("after Reset: %+v", st)
	}
	// The call admitted under quota 1 still counts until its second ends
	// (calls admitted while the quota was unlimited are not recorded).
	admits := func(n int) []bool {
		var got []bool
		for range n {
			got = append(got, s.Admit(Worker))
		}
		return got
	}
	if got := admits(3); !slices.Equal(got, []bool{true, true, false}) {
		t.Fatalf("quota 3 after Reset, 1 call in the window: admitted %v, want two, then a throttle", got)
	}
	now = now.Add(time.Second)
	if got := admits(4); !slices.Equal(got, []bool{true, true, true, false}) {
		t.Fatalf("a second later: admitted %v, want three, then a throttle", got)
	}
}

func TestThrottledShare(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		c    Counts
		want float64
	}{{Counts{}, 0}, {Counts{4, 1}, 0.25}, {Counts{10, 10}, 1}} {
		if got := tt.c.ThrottledShare(); got != tt.want {
			t.Errorf("%+v: %v, want %v", tt.c, got, tt.want)
		}
	}
}

func TestBackgroundIsEvenlySpaced(t *testing.T) {
	t.Parallel()
	now := t0
	s := New(Config{Quota: 3, Now: func() time.Time { return now }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	s.wait = func(_ context.Context, d time.Duration) bool {
		waits = append(waits, d)
		now = now.Add(d)
		if len(waits) == 8 {
			cancel()
			return false
		}
		return true
	}
	s.RunBackground(ctx, 4) // 4/s against a quota of 3: one in four throttled
	for i, d := range waits {
		if d != 250*time.Millisecond {
			t.Errorf("wait %d: %v, want 250ms", i, d)
		}
	}
	st := s.Stats()
	if want := (Counts{Calls: 8, Throttles: 2}); st.Background != want || st.Worker != (Counts{}) {
		t.Errorf("background %+v worker %+v, want %+v and none", st.Background, st.Worker, want)
	}
}

func TestBackgroundCatchesUpWhenLate(t *testing.T) {
	t.Parallel()
	now := t0
	s := New(Config{Now: func() time.Time { return now }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	s.wait = func(_ context.Context, d time.Duration) bool {
		waits = append(waits, d)
		if len(waits) == 1 {
			now = now.Add(d + 250*time.Millisecond) // overslept by more than two intervals
		} else {
			now = now.Add(d)
		}
		if len(waits) == 3 {
			cancel()
			return false
		}
		return true
	}
	s.RunBackground(ctx, 10)
	// The call due at 0 goes, the wait for 100ms ends at 350ms: the calls
	// due at 100, 200 and 300ms go at once, then 50ms to the 400ms one.
	want := []time.Duration{100 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Errorf("waits %v, want %v", waits, want)
			break
		}
	}
	if got := s.Stats().Background.Calls; got != 5 {
		t.Errorf("%d background calls, want 5 (due at 0, 100, 200, 300, 400 ms)", got)
	}
}

func client(t *testing.T, url string) *cip.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		t.Fatal(err)
	}
	return cip.NewFromConfig(cfg, func(o *cip.Options) {
		o.BaseEndpoint = aws.String(url)
		o.Retryer = aws.NopRetryer{}
	})
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	srv, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

const pool = "us-east-1_bench"

func reset(ctx context.Context, c *cip.Client, user string) error {
	_, err := c.AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{UserPoolId: aws.String(pool), Username: aws.String(user)})
	return err
}

func TestSDKResetsAndThrottles(t *testing.T) {
	t.Parallel()
	now := t0
	var mu = make(chan struct{}, 1)
	clock := func() time.Time { mu <- struct{}{}; defer func() { <-mu }(); return now }
	advance := func(d time.Duration) { mu <- struct{}{}; now = now.Add(d); <-mu }
	srv := start(t, Config{Quota: 2, Now: clock})
	c := client(t, srv.URL)
	ctx := context.Background()

	if err := reset(ctx, c, "alice"); err != nil {
		t.Fatal(err)
	}
	advance(100 * time.Millisecond)
	if err := reset(ctx, c, "bob"); err != nil {
		t.Fatal(err)
	}
	err := reset(ctx, c, "carol")
	var tooMany *types.TooManyRequestsException
	if !errors.As(err, &tooMany) {
		t.Fatalf("third call in the second: %v, want *types.TooManyRequestsException", err)
	}
	if tooMany.ErrorMessage() != "Rate exceeded" {
		t.Errorf("message %q", tooMany.ErrorMessage())
	}
	advance(time.Second)
	if err := reset(ctx, c, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := reset(ctx, c, "alice"); err != nil {
		t.Fatal(err)
	}

	st := srv.Stats()
	want := Stats{Worker: Counts{Calls: 5, Throttles: 1}, Resets: 4, Users: 3, Duplicates: 1,
		FirstReset: t0, LastReset: t0.Add(1100 * time.Millisecond)}
	if st != want {
		t.Errorf("stats\n got %+v\nwant %+v", st, want)
	}
	for user, n := range map[string]int{"alice": 2, "bob": 1, "carol": 1, "dave": 0} {
		if got := srv.ResetsOf(pool, user); got != n {
			t.Errorf("%s reset %d times, want %d", user, got, n)
		}
	}
	if got := srv.Resets(); len(got) != 3 || got[pool+"/alice"] != 2 {
		t.Errorf("Resets() = %v", got)
	}
}

func TestSDKGetUser(t *testing.T) {
	t.Parallel()
	srv := start(t, Config{Quota: 1})
	c := client(t, srv.URL)
	ctx := context.Background()
	status := func(user string) types.UserStatusType {
		t.Helper()
		out, err := c.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: aws.String(pool), Username: aws.String(user)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.Username) != user || !out.Enabled {
			t.Errorf("AdminGetUser %s: %+v", user, out)
		}
		return out.UserStatus
	}
	if s := status("alice"); s != types.UserStatusTypeConfirmed {
		t.Errorf("before the reset: %s", s)
	}
	if err := reset(ctx, c, "alice"); err != nil {
		t.Fatal(err)
	}
	// AdminGetUser does not use the reset quota of 1.
	for range 3 {
		if s := status("alice"); s != types.UserStatusTypeResetRequired {
			t.Errorf("after the reset: %s", s)
		}
	}
	if st := srv.Stats(); st.GetUser != 4 || st.Worker.Calls != 1 {
		t.Errorf("stats %+v, want 4 AdminGetUser and 1 reset call", st)
	}
}

func TestSDKUnknownOperation(t *testing.T) {
	t.Parallel()
	srv := start(t, Config{})
	_, err := client(t, srv.URL).ListUsers(context.Background(), &cip.ListUsersInput{UserPoolId: aws.String(pool)})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UnknownOperationException" {
		t.Fatalf("ListUsers: %v, want UnknownOperationException", err)
	}
	if st := srv.Stats(); st.Worker.Calls != 0 {
		t.Errorf("an unknown operation was counted: %+v", st)
	}
}

func TestHTTPBadRequests(t *testing.T) {
	t.Parallel()
	srv := start(t, Config{})
	tests := []struct {
		name, target, body, wantCode string
	}{
		{"no target", "", `{}`, "UnknownOperationException"},
		{"another service", "AmazonSQS.ReceiveMessage", `{}`, "UnknownOperationException"},
		{"missing username", targetPrefix + "AdminResetUserPassword", `{"UserPoolId":"` + pool + `"}`, "InvalidParameterException"},
		{"not JSON", targetPrefix + "AdminResetUserPassword", `{`, "SerializationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			if tt.target != "" {
				req.Header.Set("X-Amz-Target", tt.target)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Amzn-ErrorType") != tt.wantCode {
				t.Errorf("status %d, error type %q; want 400 %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), tt.wantCode)
			}
		})
	}
	if st := srv.Stats(); st.Worker.Calls != 0 || st.Resets != 0 {
		t.Errorf("bad requests were counted: %+v", st)
	}
}

func TestServerBackground(t *testing.T) {
	t.Parallel()
	srv := start(t, Config{})
	srv.SetBackground(1000)
	for srv.Stats().Background.Calls == 0 {
		runtime.Gosched() // the first call goes at once
	}
	srv.SetBackground(0) // stops it and waits for it
	n := srv.Stats().Background.Calls
	if got := srv.Stats().Background.Calls; got != n {
		t.Errorf("background still running after SetBackground(0): %d then %d calls", n, got)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	srv := start(t, Config{Latency: 20 * time.Millisecond})
	start := time.Now()
	if err := reset(context.Background(), client(t, srv.URL), "alice"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Errorf("answered after %v, before the 20ms latency", took)
	}
}
