// Package cognitostub is a fast stand-in for Cognito's AdminResetUserPassword,
// for benchmarks. It speaks the AWS JSON 1.1 protocol the SDK uses for
// cognito-idp, so a real SDK client (or the resetq binary, with
// AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER) can call it over HTTP.
//
// The model is Cognito's UserAccountRecovery quota: by default at most Quota
// calls are admitted in any one-second window. The window slides: a call
// admitted at t counts until t+1s. Config.Model (or SetQuotaModel) picks
// another of world.Models: the calendar second, a token bucket. Throttled
// calls do not count. Every caller shares the quota: the HTTP callers (the
// "worker") and the stand-in's own background load (the "real users" whose
// ForgotPassword and ConfirmForgotPassword share it), which sends its calls
// straight into the quota: evenly spaced (SetBackground) or as any
// world.Users (SetUsers), which hear of every successful reset. Calls and
// throttles are counted per source.
//
// As in Cognito, the quota is per account and Region: each scope
// ("ACCOUNT/REGION", ScopeStats) has a window of its own. A call's Region
// is its SigV4 credential scope's, and its account the one its access key
// belongs to (AccountOf): a key the stand-in's STS issued says it, any
// other key (the benchmark's "test") is DefaultAccount's. A call without a
// signature, and the background load, are in DefaultScope.
//
// Answers:
//   - AdminResetUserPassword: 200 {} when admitted; over quota, HTTP 400
//     with x-amzn-ErrorType TooManyRequestsException, which the SDK turns
//     into *types.TooManyRequestsException. A missing UserPoolId or
//     Username is InvalidParameterException.
//   - AdminGetUser: UserStatus RESET_REQUIRED if the user was reset,
//     else CONFIRMED (resetq's redelivery check calls it). It is not a
//     password operation and does not use the quota.
//   - AdminUserGlobalSignOut: 200 {}, counted (resetq's incident mode
//     signs every user out); not in the quota.
//   - DescribeUserPool: the pool, its usernames case-insensitive (the
//     campaign ledger asks); not in the quota.
//   - anything else: HTTP 400 UnknownOperationException.
//
// On the same server it also answers CloudWatch's GetMetricData (the AWS
// Query protocol: a form-encoded POST, as awscheck.NewCloudWatch's client
// and the SDK's AWS_ENDPOINT_URL_CLOUDWATCH send it) with Cognito's usage
// metrics of the UserAccountRecovery category, as CloudWatch publishes
// them (namespace AWS/Usage, dimensions Service=Cognito User Pools,
// Type=API, Resource=UserAccountRecovery, Class=None, statistic Sum): per
// UTC minute, CallCount is every call of the category the stand-in
// served, the worker's resets and the real users' calls, throttled or
// not, and ThrottleCount those throttled. A minute is published once it
// has ended and Config.UsageDelay has passed; a minute without a call (or,
// for ThrottleCount, without a throttle) has no point, as in CloudWatch.
// SeedUsage puts a simulated history before the first call served. The
// usage record is one for all scopes.
//
// It also answers STS (the Query protocol, AWS_ENDPOINT_URL_STS):
// AssumeRole into a role ARN of any account, with credentials whose access
// key names that account, and GetCallerIdentity, the account of the
// caller's access key (sts.go).
//
// There are no users to create: every username exists and is CONFIRMED
// until reset. Usernames are per pool.
package cognitostub

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resetq/resetq/internal/world"
)

// Source says who made a call.
type Source int

const (
	// Worker is every call that reaches the stand-in over HTTP.
	Worker Source = iota
	// Background is the stand-in's own load of real users' calls.
	Background
)

// window is how long an admitted call is kept to be counted again when the
// quota changes.
const window = time.Second

// targetPrefix starts the X-Amz-Target of every Cognito user-pools call.
const targetPrefix = "AWSCognitoIdentityProviderService."

// Config configures a Stub. The zero value is an unlimited quota, no
// background load, no latency and the real clock.
type Config struct {
	// Quota is the calls admitted in any one-second window, shared by the
	// worker and the background (0: unlimited).
	Quota int
	// Model is the quota's model, one of world.Models (default
	// world.Sliding), and Burst the bucket's capacity (0: Quota).
	Model string
	Burst int
	// Latency delays every HTTP answer, after the call was admitted or
	// throttled (0: answer at once).
	Latency time.Duration
	// Now is the clock of the quota window, of the reset times and of
	// the usage minutes (default time.Now).
	Now func() time.Time
	// UsageDelay is how long after a minute ends GetMetricData shows its
	// usage (0: at once). Real CloudWatch is a few minutes late, usually 3
	// to 5; the benchmark does not wait for that.
	UsageDelay time.Duration
}

// Counts are the calls of one source. Calls includes throttled ones.
type Counts struct {
	Calls     int `json:"calls"`
	Throttles int `json:"throttles"`
}

// ThrottledShare is Throttles / Calls (0 without calls).
func (c Counts) ThrottledShare() float64 {
	if c.Calls == 0 {
		return 0
	}
	return float64(c.Throttles) / float64(c.Calls)
}

// Stats is a snapshot of a Stub's counters.
type Stats struct {
	Worker     Counts `json:"worker"`
	Background Counts `json:"background"`
	// Resets is the worker's successful AdminResetUserPassword calls,
	// duplicates included.
	Resets int `json:"resets"`
	// Users is the distinct users reset; Duplicates is Resets - Users.
	Users      int `json:"users"`
	Duplicates int `json:"duplicates"`
	// GetUser counts AdminGetUser calls, SignOuts AdminUserGlobalSignOut
	// calls.
	GetUser  int `json:"get_user"`
	SignOuts int `json:"sign_outs"`
	// AssumeRoles and Identities count STS's AssumeRole and
	// GetCallerIdentity calls.
	AssumeRoles int `json:"assume_roles"`
	Identities  int `json:"caller_identities"`
	// UsageReads counts GetMetricData calls, and UsagePoints the
	// datapoints they returned.
	UsageReads  int `json:"usage_reads"`
	UsagePoints int `json:"usage_points"`
	// FirstReset and LastReset are the times of the first and last
	// successful worker reset (zero before the first).
	FirstReset time.Time `json:"first_reset"`
	LastReset  time.Time `json:"last_reset"`
}

// Stub is the stand-in, an http.Handler. It is safe for concurrent use.
type Stub struct {
	now        func() time.Time
	wait       func(ctx context.Context, d time.Duration) bool // the background's pause
	latency    time.Duration
	usageDelay time.Duration

	mu       sync.Mutex
	users    world.Users // told of each successful reset (nil: none)
	counts   [2]Counts
	resets   map[string]int // pool + "/" + username -> successful resets
	getUser  int
	signOuts int
	first    time.Time
	last     time.Time
	total    int
	// scopes are each account-Region's window and counts; newQuota makes
	// a scope's quota (nil: unlimited).
	scopes   map[string]*scope
	newQuota func() world.Quota
	sts      stsState
	// usage is CallCount and ThrottleCount per Unix minute: every call
	// of the category, worker's and background's, and the seeded history.
	usage       map[int64]*Counts
	usageReads  int
	usagePoints int
}

// New returns a Stub configured by cfg. It panics on an unknown Model or
// a Burst below 0 (check with world.NewQuota first).
func New(cfg Config) *Stub {
	s := &Stub{now: cfg.Now, wait: sleep, latency: cfg.Latency, usageDelay: cfg.UsageDelay,
		resets: map[string]int{}, usage: map[int64]*Counts{}, scopes: map[string]*scope{}}
	if s.now == nil {
		s.now = time.Now
	}
	model := cfg.Model
	if model == "" {
		model = world.Sliding
	}
	if cfg.Quota > 0 {
		if err := s.SetQuotaModel(model, float64(cfg.Quota), cfg.Burst); err != nil {
			panic("cognitostub: " + err.Error())
		}
	}
	return s
}

// SetQuota changes the quota to a sliding window of perSecond (0:
// unlimited) in every scope. Calls already admitted keep counting until
// their second is over; calls admitted while the quota was unlimited are
// not recorded.
func (s *Stub) SetQuota(perSecond int) {
	if perSecond <= 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.newQuota = nil
		for _, sc := range s.scopes {
			sc.quota = nil
		}
		return
	}
	if err := s.SetQuotaModel(world.Sliding, float64(perSecond), 0); err != nil {
		panic(err) // a sliding window of at least 1/s is always valid
	}
}

// SetQuotaModel changes the quota of every scope to a new one of model
// (world.NewQuota's arguments). The calls admitted under a quota in the
// last second are counted into it again, in order, as they would be for
// Cognito.
func (s *Stub) SetQuotaModel(model string, perSecond float64, burst int) error {
	if _, err := world.NewQuota(model, perSecond, burst); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.newQuota = func() world.Quota {
		q, _ := world.NewQuota(model, perSecond, burst) // valid: checked above
		return q
	}
	now := s.now()
	for _, sc := range s.scopes {
		q := s.newQuota()
		sc.trim(now)
		for _, t := range sc.admitted {
			q.Admit(t)
		}
		sc.quota = q
	}
	return nil
}

// Reset clears the counters and the resets, for the next run. The window
// stays: calls admitted in the last second (the background's) keep
// counting, as they would for Cognito; so does the usage record, which is
// CloudWatch's, not the run's (SeedUsage replaces it).
func (s *Stub) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = [2]Counts{}
	s.resets = map[string]int{}
	s.getUser, s.signOuts, s.total, s.usageReads, s.usagePoints = 0, 0, 0, 0, 0
	s.sts.assumed, s.sts.identities = 0, 0
	for _, sc := range s.scopes {
		sc.stats = ScopeStats{}
	}
	s.first, s.last = time.Time{}, time.Time{}
}

// Admit records one call from src in DefaultScope at the current time and
// reports whether the quota admitted it.
func (s *Stub) Admit(src Source) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admit(DefaultScope, src, s.now())
}

func (s *Stub) admit(key string, src Source, now time.Time) bool {
	sc := s.scope(key)
	s.counts[src].Calls++
	if src == Worker {
		sc.stats.Calls++
	}
	ok := sc.quota == nil || sc.quota.Admit(now)
	record(s.usage, now, !ok)
	if !ok {
		s.counts[src].Throttles++
		if src == Worker {
			sc.stats.Throttles++
		}
		return false
	}
	if sc.quota == nil {
		return true
	}
	sc.trim(now)
	sc.admitted = append(sc.admitted, now)
	return true
}

// Stats returns a snapshot of the counters.
func (s *Stub) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Worker:      s.counts[Worker],
		Background:  s.counts[Background],
		Resets:      s.total,
		Users:       len(s.resets),
		Duplicates:  s.total - len(s.resets),
		GetUser:     s.getUser,
		SignOuts:    s.signOuts,
		AssumeRoles: s.sts.assumed,
		Identities:  s.sts.identities,
		UsageReads:  s.usageReads,
		UsagePoints: s.usagePoints,
		FirstReset:  s.first,
		LastReset:   s.last,
	}
}

// ResetsOf returns how many times the worker reset username of pool.
func (s *Stub) ResetsOf(pool, username string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resets[pool+"/"+username]
}

// Resets returns, for each user reset at least once ("pool/username"),
// how many times.
func (s *Stub) Resets() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.resets))
	for k, v := range s.resets {
		out[k] = v
	}
	return out
}

// knownOps are the Cognito operations the stand-in answers.
var knownOps = map[string]bool{"AdminResetUserPassword": true, "AdminGetUser": true,
	"AdminUserGlobalSignOut": true, "DescribeUserPool": true}

type userRequest struct {
	UserPoolId string
	Username   string
}

// ServeHTTP answers one Cognito call, or one CloudWatch call: the AWS
// Query protocol's form-encoded POST.
func (s *Stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); r.Method == http.MethodPost &&
		strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
		s.serveQuery(w, r)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, targetPrefix)
	if r.Method != http.MethodPost || !ok {
		s.answerError(w, r, "UnknownOperationException", "unknown operation "+strconv.Quote(target))
		return
	}
	var req userRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	switch {
	case !knownOps[op]:
		s.answerError(w, r, "UnknownOperationException", "the stand-in does not implement "+op)
	case err != nil:
		s.answerError(w, r, "SerializationException", "cannot read the request: "+err.Error())
	case op == "DescribeUserPool" && req.UserPoolId != "":
		out, _ := json.Marshal(map[string]any{"UserPool": map[string]any{"Id": req.UserPoolId,
			"UsernameConfiguration": map[string]any{"CaseSensitive": false}}})
		s.answer(w, r, http.StatusOK, "", out)
	case req.UserPoolId == "" || req.Username == "":
		s.answerError(w, r, "InvalidParameterException", "UserPoolId and Username are required")
	case op == "AdminUserGlobalSignOut":
		key := scopeOf(r)
		s.mu.Lock()
		s.signOuts++
		s.scope(key).stats.SignOuts++
		s.mu.Unlock()
		s.answer(w, r, http.StatusOK, "", []byte("{}"))
	case op == "AdminGetUser":
		s.mu.Lock()
		s.getUser++
		reset := s.resets[req.UserPoolId+"/"+req.Username] > 0
		s.mu.Unlock()
		status := "CONFIRMED"
		if reset {
			status = "RESET_REQUIRED"
		}
		out, _ := json.Marshal(map[string]any{"Username": req.Username, "UserStatus": status, "Enabled": true,
			"UserAttributes": []any{}})
		s.answer(w, r, http.StatusOK, "", out)
	default:
		key := scopeOf(r)
		s.mu.Lock()
		now := s.now()
		ok := s.admit(key, Worker, now)
		if ok {
			s.resets[req.UserPoolId+"/"+req.Username]++
			s.total++
			if s.first.IsZero() {
				s.first = now
			}
			s.last = now
			st := &s.scope(key).stats
			st.Resets++
			if st.FirstReset.IsZero() {
				st.FirstReset = now
			}
			st.LastReset = now
		}
		users := s.users
		s.mu.Unlock()
		if ok && users != nil {
			users.OnReset(now)
		}
		if !ok {
			s.answerError(w, r, "TooManyRequestsException", "Rate exceeded")
			return
		}
		s.answer(w, r, http.StatusOK, "", []byte("{}"))
	}
}

func (s *Stub) answerError(w http.ResponseWriter, r *http.Request, code, msg string) {
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{code, msg})
	s.answer(w, r, http.StatusBadRequest, code, body)
}

func (s *Stub) answer(w http.ResponseWriter, r *http.Request, status int, errorType string, body []byte) {
	if s.latency > 0 {
		t := time.NewTimer(s.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-Requestid", "cognitostub")
	if errorType != "" {
		h.Set("X-Amzn-Errortype", errorType)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
