package cognitostub

import (
	"net/http"
	"strings"
	"time"

	"github.com/resetq/resetq/internal/world"
	"github.com/resetq/resetq/job"
)

// The scope of calls that say no other: the benchmark's static
// credentials ("test") and Region.
const (
	DefaultAccount = "123456789012"
	DefaultRegion  = "us-east-1"
)

// DefaultScope is the key of DefaultAccount in DefaultRegion.
var DefaultScope = ScopeKey(DefaultAccount, DefaultRegion)

// ScopeKey is the key of account in region, "ACCOUNT/REGION", as
// job.Scope.Key makes it.
func ScopeKey(account, region string) string {
	return job.Scope{Account: account, Region: region}.Key()
}

// ScopeStats are the worker's calls in one scope (an account in a
// Region). Calls includes throttled ones.
type ScopeStats struct {
	Calls     int `json:"calls"`
	Throttles int `json:"throttles"`
	// Resets is the successful AdminResetUserPassword calls, SignOuts the
	// AdminUserGlobalSignOut calls.
	Resets   int `json:"resets"`
	SignOuts int `json:"sign_outs"`
	// FirstReset and LastReset are the times of the scope's first and
	// last successful reset (zero before the first).
	FirstReset time.Time `json:"first_reset"`
	LastReset  time.Time `json:"last_reset"`
}

// ThrottledShare is Throttles / Calls (0 without calls).
func (c ScopeStats) ThrottledShare() float64 {
	return Counts{Calls: c.Calls, Throttles: c.Throttles}.ThrottledShare()
}

// scope is one account-Region's quota window and counts.
type scope struct {
	quota    world.Quota // nil: unlimited
	admitted []time.Time // calls admitted under a quota in the last second, oldest first
	stats    ScopeStats
}

// trim drops the admitted calls older than a window before now.
func (sc *scope) trim(now time.Time) {
	cutoff := now.Add(-window)
	i := 0
	for i < len(sc.admitted) && !sc.admitted[i].After(cutoff) {
		i++
	}
	if i > 0 {
		n := copy(sc.admitted, sc.admitted[i:])
		sc.admitted = sc.admitted[:n]
	}
}

// scope is key's scope, made with the current quota on first use. Call
// it with s.mu held.
func (s *Stub) scope(key string) *scope {
	sc := s.scopes[key]
	if sc == nil {
		sc = &scope{}
		if s.newQuota != nil {
			sc.quota = s.newQuota()
		}
		s.scopes[key] = sc
	}
	return sc
}

// ScopeStats returns the worker's counts in each scope that has seen a
// call since the last Reset, by key ("ACCOUNT/REGION").
func (s *Stub) ScopeStats() map[string]ScopeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]ScopeStats{}
	for k, sc := range s.scopes {
		if sc.stats != (ScopeStats{}) {
			out[k] = sc.stats
		}
	}
	return out
}

// scopeOf is the scope of a signed request: the account of its access key
// and the Region of its SigV4 credential scope ("Credential=KEY/DATE/
// REGION/SERVICE/aws4_request"); DefaultScope when it is not signed.
func scopeOf(r *http.Request) string {
	key, region, ok := credentialOf(r.Header.Get("Authorization"))
	if !ok {
		return DefaultScope
	}
	return ScopeKey(AccountOf(key), region)
}

// credentialOf reads the access key and the Region of a SigV4
// Authorization header.
func credentialOf(auth string) (key, region string, ok bool) {
	_, cred, found := strings.Cut(auth, "Credential=")
	if !found {
		return "", "", false
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 || parts[0] == "" || parts[2] == "" {
		return "", "", false
	}
	return parts[0], parts[2], true
}
