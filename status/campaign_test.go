package status

import (
	"strings"
	"testing"
	"time"
)

func TestCampaignSumsPoolsAndDrains(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	pools := map[string]Counts{
		"us-east-1_A": {Enqueued: 100, Reset: 40, Reinvited: 5, DeadLettered: map[string]int64{"UserNotFoundException": 5}},
		"eu-west-1_B": {Enqueued: 50, Reset: 10, Disabled: 2, DeadLettered: map[string]int64{"UserNotFoundException": 1, "attempts_exhausted": 2}},
	}
	var s LeftSamples
	s.Window = 15 * time.Minute
	s.Add(t0, 146)
	c := NewCampaign("c1", pools, s.Add(t0.Add(time.Minute), 85))
	tot := c.Total
	if tot.Enqueued != 150 || tot.Done != 57 || tot.DeadLettered["UserNotFoundException"] != 6 || tot.Ended() != 65 || tot.Left != 85 {
		t.Fatalf("total %+v", tot)
	}
	if c.Pools["us-east-1_A"].Left != 50 || c.Pools["eu-west-1_B"].Left != 35 {
		t.Fatalf("pools %+v", c.Pools)
	}
	if c.Drain.State != DrainDraining || c.Drain.ETA != 84*time.Second {
		t.Fatalf("drain %+v, want 61 users a minute, ETA 84s for 85 left", c.Drain)
	}
	txt := c.Text()
	for _, want := range []string{"150 enqueued", "57 done", "UserNotFoundException 6", "85 left", "ETA 1m24s", "pool eu-west-1_B"} {
		if !strings.Contains(txt, want) {
			t.Errorf("text lacks %q:\n%s", want, txt)
		}
	}
	// A user done without a ledger enqueue never makes left negative.
	if n := (Counts{Enqueued: 1, Reset: 3}).Finish(); n.Left != 0 || n.ShareDone != 1 {
		t.Fatalf("%+v", n)
	}
}
