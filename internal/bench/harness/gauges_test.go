package main

import "testing"

// TestParseGauges: the reset's rate, cap and room from a /metrics page;
// the other categories' room and other metrics are not the reset's.
func TestParseGauges(t *testing.T) {
	page := `# HELP resetq_ratelimit_limit Current rate.
# TYPE resetq_ratelimit_limit gauge
resetq_ratelimit_limit{account="123456789012",region="us-east-1"} 12.5
resetq_ratelimit_usage_cap{account="123456789012",region="us-east-1"} 14.25
resetq_category_room{account="123456789012",category="UserRead",region="us-east-1"} 60
resetq_category_room{account="123456789012",category="UserAccountRecovery",region="us-east-1"} 19.5
resetq_ratelimit_wait_seconds_bucket{le="0.001"} 3
`
	g, ok := parseGauges(page)
	if !ok || g.Limit != 12.5 || g.Cap != 14.25 || g.Room != 19.5 {
		t.Errorf("gauges %+v (%v), want limit 12.5, cap 14.25, room 19.5", g, ok)
	}
	if g, ok := parseGauges("resetq_category_room{category=\"UserRead\"} 60\n"); ok || g.Room != -1 {
		t.Errorf("a page without the reset's rate: %+v (%v), want none and room -1 (not known)", g, ok)
	}
}
