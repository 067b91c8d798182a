package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRateLimitFallback: the fleet fallback gauge is exported from the
// start, at 0 (a worker without Redis never falls back), one series
// without labels.
func TestRateLimitFallback(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, "test")
	want := `
# HELP resetq_ratelimit_fallback 1 while --redis-url is set and Redis fails, so this replica paces at --rate/--fleet-size instead of the fleet-wide limit, else 0.
# TYPE resetq_ratelimit_fallback gauge
resetq_ratelimit_fallback 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "resetq_ratelimit_fallback"); err != nil {
		t.Error(err)
	}
	m.RateLimitFallback.Set(1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.Replace(want, "fallback 0", "fallback 1", 1)), "resetq_ratelimit_fallback"); err != nil {
		t.Error(err)
	}
}
