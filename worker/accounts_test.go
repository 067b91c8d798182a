package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
)

// accountMap is Accounts from a map of pool to account.
type accountMap map[string]string

func (a accountMap) Account(pool string) string { return a[pool] }

// Role: the pools of account 222222222222 go through a role.
func (a accountMap) Role(pool string) string {
	if a[pool] == "222222222222" {
		return "arn:aws:iam::222222222222:role/r|"
	}
	return ""
}

// TestAccountsPacedApart: with Accounts, each account's jobs are paced
// and kept behind circuits under their own account-Region key; a role that
// cannot be assumed opens its account's circuit only, and its jobs end
// assume_role_denied after MaxDeferral while the other account's are reset.
func TestAccountsPacedApart(t *testing.T) {
	t.Parallel()
	const poolA, poolB = "us-east-1_PoolA", "us-east-1_PoolB"
	var mu sync.Mutex
	resets := map[string]int{}
	b := newBundle(func(_ context.Context, j job.Job) error {
		if j.UserPoolID == poolB {
			return fmt.Errorf("admin-reset-user-password in us-east-1: %w", awserr.From(&awserr.RoleError{
				Role: "arn:aws:iam::222222222222:role/r", Denied: true, Err: fmt.Errorf("AccessDenied")}))
		}
		mu.Lock()
		resets[j.Username]++
		mu.Unlock()
		return nil
	})
	b.cfg.Accounts = accountMap{poolA: "111111111111", poolB: "222222222222"}
	b.cfg.Breaker = BreakerConfig{Cooldown: time.Second, MaxDeferral: time.Minute}
	waits := map[string]int{}
	b.pacer.wait = func(ctx context.Context, scope string) error {
		mu.Lock()
		waits[scope]++
		mu.Unlock()
		b.clock.Advance(10 * time.Second) // the deferrals run out without waiting
		return ctx.Err()
	}
	for i := range 5 {
		b.q.push(jobBody(poolA, fmt.Sprintf("a%d", i)), nil)
		b.q.push(jobBody(poolB, fmt.Sprintf("b%d", i)), nil)
	}
	b.run(t)

	if len(resets) != 5 {
		t.Errorf("account A's users reset: %v, want all 5", resets)
	}
	if _, ok := waits["111111111111/us-east-1"]; !ok || len(waits) != 2 || waits["222222222222/us-east-1"] == 0 {
		t.Errorf("pacer keys %v, want one per account-Region", waits)
	}
	if th, ok := b.pacer.counts("111111111111/us-east-1"); th != 0 || ok < 5 {
		t.Errorf("account A: %d throttled, %d succeeded", th, ok)
	}
	dl := b.dlq.all()
	if len(dl) != 5 {
		t.Fatalf("%d dead letters, want account B's 5", len(dl))
	}
	for _, d := range dl {
		if d.Attributes[job.AttrReason].StringValue != job.ReasonAssumeRoleDenied ||
			!strings.Contains(d.Attributes[job.AttrError].StringValue, "arn:aws:iam::222222222222:role/r") {
			t.Errorf("dead letter %s: %s %q", d.Body, d.Attributes[job.AttrReason].StringValue, d.Attributes[job.AttrError].StringValue)
		}
	}
	if got := testutil.ToFloat64(b.m.CircuitOpen.WithLabelValues("222222222222", "us-east-1")); got != 1 {
		t.Errorf("resetq_circuit_open of account B = %v, want 1", got)
	}
	if got := testutil.ToFloat64(b.m.QuotaCalls.WithLabelValues("111111111111", "us-east-1")); got != 5 {
		t.Errorf("resetq_quota_calls_total of account A = %v, want its 5 resets", got)
	}
	if got := testutil.ToFloat64(b.m.CategoryCalls.WithLabelValues("111111111111", "us-east-1", "UserAccountRecovery")); got != 5 {
		t.Errorf("resetq_category_calls_total of account A = %v, want its 5 resets", got)
	}
	if got := testutil.ToFloat64(b.m.CategoryCalls.WithLabelValues("222222222222", "us-east-1", "UserAccountRecovery")); got != 0 {
		t.Errorf("resetq_category_calls_total of account B = %v, want 0: its role was never assumed, no call reached Cognito", got)
	}
	if got := testutil.ToFloat64(b.m.CircuitOpen.WithLabelValues("111111111111", "us-east-1")); got != 0 {
		t.Errorf("resetq_circuit_open of account A = %v, want 0", got)
	}
}
