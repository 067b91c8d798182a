package status

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Counts are a campaign's users (in one pool, or in all) by what happened
// to them, as the ledger counts them.
type Counts struct {
	Enqueued     int64            `json:"enqueued"`
	Reset        int64            `json:"reset"`
	Reinvited    int64            `json:"reinvited"`
	Disabled     int64            `json:"disabled"`
	DeadLettered map[string]int64 `json:"dead_lettered,omitempty"` // by reason
	Done         int64            `json:"done"`                    // reset, re-invited or disabled
	Left         int64            `json:"left"`                    // enqueued and not yet done or dead-lettered
	ShareDone    float64          `json:"share_done"`              // of the enqueued, ended (done or dead-lettered)
}

// Ended is the users done or dead-lettered.
func (c Counts) Ended() int64 {
	n := c.Done
	for _, v := range c.DeadLettered {
		n += v
	}
	return n
}

// Finish fills Done, Left and ShareDone from the other counts.
func (c Counts) Finish() Counts {
	c.Done = c.Reset + c.Reinvited + c.Disabled
	c.Left = max(0, c.Enqueued-c.Ended())
	if c.Enqueued > 0 {
		c.ShareDone = min(1, float64(c.Ended())/float64(c.Enqueued))
	}
	return c
}

// Campaign is a campaign's progress: per pool and in all, with the drain
// of what is left.
type Campaign struct {
	Name  string            `json:"campaign"`
	Pools map[string]Counts `json:"pools"`
	Total Counts            `json:"total"`
	Drain Drain             `json:"drain"`
}

// NewCampaign sums pools into the campaign's total; samples of Left
// (oldest first, the last one now) give the drain and the ETA.
func NewCampaign(name string, pools map[string]Counts, left []Sample) Campaign {
	c := Campaign{Name: name, Pools: map[string]Counts{}}
	var t Counts
	for p, n := range pools {
		n = n.Finish()
		c.Pools[p] = n
		t.Enqueued += n.Enqueued
		t.Reset += n.Reset
		t.Reinvited += n.Reinvited
		t.Disabled += n.Disabled
		for r, v := range n.DeadLettered {
			if t.DeadLettered == nil {
				t.DeadLettered = map[string]int64{}
			}
			t.DeadLettered[r] += v
		}
	}
	c.Total = t.Finish()
	c.Drain = DrainRate(left)
	return c
}

// Text is the campaign's progress for people: one line in all, one a pool.
func (c Campaign) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "campaign %s: %s", c.Name, c.Total.text())
	switch c.Drain.State {
	case DrainDraining:
		fmt.Fprintf(&b, ", %.1f/s, ETA %s", c.Drain.PerSecond, c.Drain.ETAText)
	case DrainEmpty:
		b.WriteString(", finished")
	}
	b.WriteString("\n")
	if len(c.Pools) > 1 {
		for _, p := range slices.Sorted(maps.Keys(c.Pools)) {
			fmt.Fprintf(&b, "  pool %s: %s\n", p, c.Pools[p].text())
		}
	}
	return b.String()
}

func (n Counts) text() string {
	s := fmt.Sprintf("%d enqueued, %d done (%d reset, %d re-invited, %d disabled), %d dead-lettered",
		n.Enqueued, n.Done, n.Reset, n.Reinvited, n.Disabled, n.Ended()-n.Done)
	if len(n.DeadLettered) > 0 {
		var rs []string
		for _, r := range slices.Sorted(maps.Keys(n.DeadLettered)) {
			rs = append(rs, fmt.Sprintf("%s %d", r, n.DeadLettered[r]))
		}
		s += " (" + strings.Join(rs, ", ") + ")"
	}
	return s + fmt.Sprintf(", %d left, %.1f%% ended", n.Left, 100*n.ShareDone)
}

// LeftSamples keeps a campaign's Left samples of the last window.
type LeftSamples struct {
	Window  time.Duration
	samples []Sample
}

// Add notes left at now and returns the samples of the window, oldest first.
func (s *LeftSamples) Add(now time.Time, left int64) []Sample {
	s.samples = append(s.samples, Sample{At: now, Backlog: left})
	for len(s.samples) > 2 && now.Sub(s.samples[0].At) > s.Window {
		s.samples = s.samples[1:]
	}
	return slices.Clone(s.samples)
}
